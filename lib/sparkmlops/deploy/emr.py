"""EMR: add-steps on a running cluster, EMR Serverless job runs, schedules, failure alerts."""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
from typing import Any

from sparkmlops import __version__
from sparkmlops.config import Settings
from sparkmlops.deploy.common import (
    JOB_COMMANDS,
    job_args,
    job_name,
    secret_refs,
    string_leaves,
    wheel_location,
    wheel_name,
)
from sparkmlops.errors import ConfigError
from sparkmlops.secrets import AWS_SECRETS_ENV, aws_secrets_value

log = logging.getLogger(__name__)

# Delta Lake as AWS documents it for EMR 7.0.0 and later (emr-spark-8.0.0 included): the
# cluster's delta-defaults classification puts the jars on the classpath; EMR Serverless
# names them in spark.jars (delta-core.jar was renamed delta-spark.jar in EMR 7.0.0)
EMR_DELTA_JARS = ("/usr/share/aws/delta/lib/delta-spark.jar",
                  "/usr/share/aws/delta/lib/delta-storage.jar")
DELTA_SQL_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}
# where bootstrap.sh records, on every node, the dependencies it installed at boot
DEPENDENCIES_STATE = "/var/lib/sparkmlops/dependencies.sha256"


# ---------------------------------------------------------------- EMR


def emr_artifact_dir(settings: Settings) -> str:
    """The S3 folder of the wheel: the job scripts, constraints and bootstrap go beside it."""
    location = wheel_location(settings)
    if not location.startswith("s3://"):
        raise ConfigError(f"deploy.wheel: EMR installs the wheel from S3; got {location!r} "
                          f"(set deploy.wheel to s3://... in conf/{settings.env}.yml)")
    return location.rsplit("/", 1)[0]


def emr_conf_dir(settings: Settings) -> str:
    """Where EMR jobs read the project's conf dir: ``deploy.conf_dir``, else
    ``<wheel folder>/conf`` (the deploy workflow syncs the project's conf/ there)."""
    return settings.deploy.conf_dir or f"{emr_artifact_dir(settings)}/conf"


def constraints_location(settings: Settings) -> str:
    return f"{emr_artifact_dir(settings)}/sparkmlops-{__version__}-constraints.txt"


def venv_archive_location(settings: Settings) -> str:
    return f"{emr_artifact_dir(settings)}/sparkmlops-{__version__}-venv.tar.gz"


def emr_job_script(settings: Settings, job: str) -> tuple[str, list[str]]:
    """The job script on S3 (jobs/<command>.py beside the wheel) and its arguments."""
    command, *rest = job_args(settings, job, conf_dir=emr_conf_dir(settings))
    return f"{emr_artifact_dir(settings)}/jobs/{command}.py", rest


def emr_job_env(settings: Settings) -> dict[str, str]:
    """The env of an EMR job: ``deploy.env``, and the Secrets Manager ARNs of
    ``deploy.secrets`` that the job reads at start (never a secret's value)."""
    env = dict(settings.deploy.env)
    refs = secret_refs(settings, "emr")
    if refs:
        env[AWS_SECRETS_ENV] = aws_secrets_value(refs)
    return env


def delta_python_requirement(settings: Settings) -> str:
    """The pip requirement of Delta's Python API (``delta.tables``) at the version of the
    release's Delta, e.g. ``delta-spark==4.0.0``. Install it with ``--no-deps``: its wheel
    requires pyspark, which would put a second Spark over the cluster's own."""
    spec = settings.deploy.emr
    assert spec is not None
    return f"delta-spark=={spec.delta}"


def emr_add_steps(settings: Settings, jobs: list[str] | None = None) -> dict[str, Any]:
    """The request body of EMR's AddJobFlowSteps (sent with ``call_aws``: the AWS CLI's
    ``emr add-steps`` takes other arguments) for ``jobs`` (default: ``deploy.emr.steps``,
    in that order), after a step that checks the cluster still has the dependencies the
    jobs need (``emr_check_dependencies_step``)."""
    spec = settings.deploy.emr
    assert spec is not None
    return {"JobFlowId": spec.cluster_id,
            "Steps": [emr_check_dependencies_step(settings),
                      *(_emr_step(settings, job) for job in (jobs or spec.steps))]}


def emr_check_dependencies_step(settings: Settings) -> dict[str, Any]:
    """A step that runs ``bootstrap.sh --check`` on the primary node: it fails, and
    cancels the steps after it, when the lock, the wheel's requirements or the Delta pin
    on S3 differ from what bootstrap.sh installed at boot.

    A running cluster keeps what its nodes installed at boot, and a step runs on the
    primary node only: re-installing from a step would leave the executors' Python on
    the old dependencies. New dependencies need a new cluster (``run-job-flow.json``).
    Code changes need none: every step ships the wheel in ``--py-files``.
    """
    script = f"{emr_artifact_dir(settings)}/bootstrap.sh"
    return {
        "Name": job_name(settings, "check-dependencies"),
        "ActionOnFailure": "CANCEL_AND_WAIT",
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": [
            "bash", "-c", f'f=$(mktemp) && aws s3 cp --only-show-errors {script} "$f" '
                          '&& bash "$f" --check']},
    }


def _emr_step(settings: Settings, job: str) -> dict[str, Any]:
    spec = settings.deploy.emr
    assert spec is not None
    script, args = emr_job_script(settings, job)
    submit = ["spark-submit", "--deploy-mode", "cluster", "--py-files", wheel_location(settings)]
    # static SQL settings, fixed when the session starts: on the command line they hold on
    # any cluster with delta-defaults, whatever its spark-defaults say
    for name, value in DELTA_SQL_CONF.items():
        submit += ["--conf", f"{name}={value}"]
    for name, value in {"PYSPARK_PYTHON": spec.python, **emr_job_env(settings)}.items():
        # cluster mode: the driver runs in the YARN application master
        submit += ["--conf", f"spark.yarn.appMasterEnv.{name}={value}",
                   "--conf", f"spark.executorEnv.{name}={value}"]
    if spec.executors is not None:
        submit += ["--num-executors", str(spec.executors.instances),
                   "--executor-cores", str(spec.executors.cores),
                   "--executor-memory", spec.executors.memory]
    return {
        "Name": job_name(settings, job),
        "ActionOnFailure": spec.action_on_failure,
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": [*submit, script, *args]},
    }


def emr_start_job_run(settings: Settings, job: str) -> dict[str, Any]:
    """The request body of EMR Serverless StartJobRun for one job.

    No clientToken: the AWS CLI and SDKs generate one per call, so each submission
    is a new run (a fixed token would make every later submission a no-op).
    """
    spec = settings.deploy.emr
    assert spec is not None and spec.serverless is not None
    serverless = spec.serverless
    script, args = emr_job_script(settings, job)
    # Serverless has no bootstrap actions: the dependencies come as a packed virtualenv
    conf = {
        # EMR's own Delta (the release's version): the packed venv holds its Python API
        "spark.jars": ",".join(EMR_DELTA_JARS),
        **DELTA_SQL_CONF,
        "spark.archives": f"{venv_archive_location(settings)}#environment",
        "spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON": "./environment/bin/python",
        "spark.emr-serverless.driverEnv.PYSPARK_PYTHON": "./environment/bin/python",
        "spark.executorEnv.PYSPARK_PYTHON": "./environment/bin/python",
    }
    for name, value in emr_job_env(settings).items():
        conf[f"spark.emr-serverless.driverEnv.{name}"] = value
        conf[f"spark.executorEnv.{name}"] = value
    conf.update(_s3a_encryption(settings, prefix="spark.hadoop."))
    if spec.executors is not None:
        conf["spark.executor.instances"] = str(spec.executors.instances)
        conf["spark.executor.cores"] = str(spec.executors.cores)
        conf["spark.executor.memory"] = spec.executors.memory
    parameters = " ".join([f"--py-files {wheel_location(settings)}",
                           *(f"--conf {k}={v}" for k, v in conf.items())])
    body: dict[str, Any] = {
        "applicationId": serverless.application_id,
        "executionRoleArn": serverless.execution_role_arn,
        "name": job_name(settings, job),
        "jobDriver": {"sparkSubmit": {"entryPoint": script, "entryPointArguments": args,
                                      "sparkSubmitParameters": parameters}},
        "tags": {"sparkmlops_dataset": settings.dataset.name, "sparkmlops_job": job},
    }
    overrides: dict[str, Any] = {}
    if serverless.log_uri:
        logs = {"logUri": serverless.log_uri}
        if spec.kms_key_arn is not None:
            logs["encryptionKeyArn"] = spec.kms_key_arn
        overrides["monitoringConfiguration"] = {"s3MonitoringConfiguration": logs}
    if spec.kms_key_arn is not None:
        # Serverless takes no security configuration: the workers' disks by this override
        overrides["diskEncryptionConfiguration"] = {"encryptionKeyArn": spec.kms_key_arn}
    if overrides:
        body["configurationOverrides"] = overrides
    return body


def emr_bootstrap(settings: Settings) -> str:
    """bootstrap.sh: install the wheel with the pinned dependencies on every node, and
    record them; ``bootstrap.sh --check`` (a step) compares them with those on S3."""
    spec = settings.deploy.emr
    assert spec is not None
    return f"""#!/bin/bash
# EMR bootstrap action: install sparkmlops {__version__} on every node of the cluster,
# its dependencies pinned by the project's lock file (pip constraints: a pin only
# applies to what the wheel requires), with the [aws] extra (botocore reads the
# secrets of deploy.secrets). Not pyspark: the cluster's Spark is the one jobs use.
# With --check (the first step of add-steps.json, on the primary node) it installs
# nothing and fails if the dependencies on S3 differ from those installed at boot:
# a running cluster keeps them, so new dependencies need a new cluster.
# Generated by `sparkmlops deploy --target emr`.
set -euo pipefail
PYTHON={spec.python}
WHEEL={wheel_location(settings)}
WHEEL_FILE={wheel_name(settings)}
CONSTRAINTS={constraints_location(settings)}
# delta.tables at the version of the release's Delta ({spec.release_label}); not from the
# lock (it pins the Delta the suite runs on) and --no-deps (it requires pyspark)
DELTA={delta_python_requirement(settings)}
STATE={DEPENDENCIES_STATE}
""" + _BOOTSTRAP_BODY


_BOOTSTRAP_BODY = r"""work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fetch() {
    aws s3 cp --only-show-errors "$WHEEL" "$work/$WHEEL_FILE"
    aws s3 cp --only-show-errors "$CONSTRAINTS" "$work/constraints.txt"
}

# what a node's Python environment is built from: the lock, the wheel's requirements
# (not its code: every step ships the wheel in --py-files), the interpreter, Delta
fingerprint() {
    {
        cat "$work/constraints.txt"
        "$PYTHON" -c 'import sys, zipfile
wheel = zipfile.ZipFile(sys.argv[1])
meta = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
for line in wheel.read(meta).decode().splitlines():
    if line.startswith("Requires-Dist:"):
        print(line)' "$work/$WHEEL_FILE"
        echo "$PYTHON $DELTA"
    } | sha256sum | cut -d' ' -f1
}

if [ "${1:-}" = "--check" ]; then
    fetch
    if [ "$(fingerprint)" != "$(cat "$STATE" 2>/dev/null || true)" ]; then
        echo "sparkmlops: this cluster installed other dependencies at boot than" \
             "$WHEEL and $CONSTRAINTS need; start a new cluster (emr/run-job-flow.json)" \
             "and set deploy.emr.cluster_id to it" >&2
        exit 1
    fi
    exit 0
fi

if ! command -v "$PYTHON" >/dev/null; then
    sudo dnf install -y -q "$(basename "$PYTHON")" "$(basename "$PYTHON")-pip"
fi
fetch
sudo "$PYTHON" -m pip install --quiet -c "$work/constraints.txt" "$work/${WHEEL_FILE}[aws]"
sudo "$PYTHON" -m pip install --quiet --no-deps "$DELTA"
sudo mkdir -p "$(dirname "$STATE")"
fingerprint | sudo tee "$STATE" >/dev/null
"""


def emr_cluster_configurations(settings: Settings) -> list[dict[str, Any]]:
    """The ``Configurations`` of RunJobFlow (``aws emr create-cluster --configurations``):
    Delta enabled as AWS documents it (``delta-defaults``), its extension and catalog in
    ``spark-defaults``, and the interpreter bootstrap.sh installs into as PySpark's."""
    spec = settings.deploy.emr
    assert spec is not None
    configurations: list[dict[str, Any]] = [
        {"Classification": "delta-defaults", "Properties": {"delta.enabled": "true"}},
        {"Classification": "spark-defaults", "Properties": dict(DELTA_SQL_CONF)},
        {"Classification": "spark-env", "Properties": {}, "Configurations": [
            {"Classification": "export", "Properties": {"PYSPARK_PYTHON": spec.python}}]},
    ]
    s3a = _s3a_encryption(settings, prefix="")
    if s3a:
        configurations.append({"Classification": "core-site", "Properties": s3a})
    return configurations


def _s3a_encryption(settings: Settings, *, prefix: str) -> dict[str, str]:
    """Hadoop's S3A settings that write every object SSE-KMS with ``kms_key_arn``
    (``prefix`` ``spark.hadoop.`` for a Spark conf). The security configuration's S3
    encryption is EMRFS's; since EMR 7.10 S3A is the connector of every S3 scheme (the
    lake's ``s3a://`` included), so S3A's own settings say it too."""
    spec = settings.deploy.emr
    assert spec is not None
    if spec.kms_key_arn is None:
        return {}
    return {f"{prefix}fs.s3a.encryption.algorithm": "SSE-KMS",
            f"{prefix}fs.s3a.encryption.key": spec.kms_key_arn}


def security_configuration_name(settings: Settings) -> str:
    return job_name(settings, "security")


def emr_encryption_missing(settings: Settings) -> list[str]:
    """The ``deploy.emr`` keys the security configuration needs and the env leaves
    unset: without them no security-configuration.json is written."""
    spec = settings.deploy.emr
    assert spec is not None
    return [f"deploy.emr.{key}" for key in ("kms_key_arn", "tls_certificates")
            if getattr(spec, key) is None]


def emr_security_configuration(settings: Settings) -> dict[str, Any] | None:
    """The EMR security configuration document (CreateSecurityConfiguration's
    ``SecurityConfiguration``, a JSON string; ``aws emr create-security-configuration
    --security-configuration file://...``): at rest, EMRFS writes S3 objects SSE-KMS and
    the nodes' local disks (instance store and EBS) are encrypted with ``kms_key_arn``; in
    transit, TLS with the PEM certificates of ``tls_certificates``. None while either key
    is unset (``emr_encryption_missing``): half a configuration would look like
    encryption without being it."""
    spec = settings.deploy.emr
    assert spec is not None
    if spec.kms_key_arn is None or spec.tls_certificates is None:
        return None
    return {"EncryptionConfiguration": {
        "EnableAtRestEncryption": True,
        "EnableInTransitEncryption": True,
        "AtRestEncryptionConfiguration": {
            "S3EncryptionConfiguration": {"EncryptionMode": "SSE-KMS",
                                          "AwsKmsKey": spec.kms_key_arn},
            "LocalDiskEncryptionConfiguration": {"EncryptionKeyProviderType": "AwsKms",
                                                 "AwsKmsKey": spec.kms_key_arn,
                                                 "EnableEbsEncryption": True},
        },
        "InTransitEncryptionConfiguration": {"TLSCertificateConfiguration": {
            "CertificateProviderType": "PEM", "S3Object": spec.tls_certificates}},
    }}


def emr_run_job_flow(settings: Settings) -> dict[str, Any]:
    """The request body of RunJobFlow (``aws emr create-cluster`` takes the same
    settings): a long-running cluster of ``deploy.emr.release_label`` with Delta, the
    bootstrap action, and the instance profile that ``iam-policy.json`` is for."""
    spec = settings.deploy.emr
    assert spec is not None
    cluster = spec.cluster
    instances: dict[str, Any] = {
        "InstanceGroups": [
            {"Name": "primary", "InstanceRole": "MASTER", "InstanceCount": 1,
             "InstanceType": cluster.primary_instance_type},
            {"Name": "core", "InstanceRole": "CORE", "InstanceCount": cluster.core_instances,
             "InstanceType": cluster.core_instance_type},
        ],
        # steps arrive over time (add-steps, schedules): the cluster waits for them
        "KeepJobFlowAliveWhenNoSteps": True,
        "TerminationProtected": False,
    }
    if cluster.subnet_id is not None:
        instances["Ec2SubnetId"] = cluster.subnet_id
    body: dict[str, Any] = {
        "Name": job_name(settings, "cluster"),
        "ReleaseLabel": spec.release_label,
        "Applications": [{"Name": "Spark"}],
        "Configurations": emr_cluster_configurations(settings),
        "Instances": instances,
        "BootstrapActions": [{"Name": "sparkmlops", "ScriptBootstrapAction": {
            "Path": f"{emr_artifact_dir(settings)}/bootstrap.sh", "Args": []}}],
        "JobFlowRole": cluster.instance_profile,
        "ServiceRole": cluster.service_role,
        "VisibleToAllUsers": True,
        "Tags": [{"Key": "sparkmlops_dataset", "Value": settings.dataset.name}],
    }
    if cluster.log_uri is not None:
        body["LogUri"] = cluster.log_uri
    if emr_security_configuration(settings) is not None:
        # created first (emr/README.md): RunJobFlow names it, it cannot carry it
        body["SecurityConfiguration"] = security_configuration_name(settings)
    return body


def _s3_bucket_prefix(uri: str) -> tuple[str, str] | None:
    match = re.match(r"^s3a?://([^/]+)/?(.*?)/?$", uri)
    return (match.group(1), match.group(2)) if match else None


def aws_partition(settings: Settings) -> str:
    """The AWS partition of the env (``aws``, ``aws-cn``, ``aws-us-gov``): that of the
    first ARN in ``deploy`` (a secret, a role, the failure topic), else ``aws``. An S3
    path names no partition, and an ``arn:aws:s3`` resource does not match in China."""
    return next((text.split(":")[1] for _, text in string_leaves(
        settings.deploy.model_dump(mode="json"), "deploy") if text.startswith("arn:")), "aws")


def emr_iam_policy(settings: Settings) -> dict[str, Any]:
    """The IAM policy document of the nodes' instance profile role (and of the EMR
    Serverless execution role): read the artifacts, the conf dir and the landing files,
    read and write the lake under ``storage.root`` and the MLflow artifacts of an
    ``s3://`` ``tracking.artifact_location``, write the logs, read exactly the Secrets
    Manager secrets of ``deploy.secrets`` and the TLS certificates' object, use exactly
    the KMS key, and, in catalog mode, the Glue database ``storage.schema`` and its
    tables. Every resource is one of these: no data action on ``*``."""
    spec = settings.deploy.emr
    assert spec is not None
    # relative data paths resolve under project_dir (s3a://bucket/<project> in an init'd
    # project), where the jobs read and write them
    read = [emr_artifact_dir(settings), emr_conf_dir(settings),
            settings.resolve_path(settings.dataset.source.path)]
    managed = settings.storage.catalog is not None and not settings.storage.external
    write = [] if managed else [settings.resolve_path(settings.storage.root)]
    # a run's artifacts go straight to an s3:// artifact location (not through the server)
    artifacts = settings.tracking.artifact_location
    if artifacts is not None and artifacts.startswith(("s3://", "s3a://")):
        write.append(artifacts)
    s3 = f"arn:{aws_partition(settings)}:s3:::"
    logs = [spec.cluster.log_uri, spec.serverless.log_uri if spec.serverless else None]
    objects: dict[str, list[str]] = {"read": [], "write": [], "logs": []}
    listed: dict[str, list[str]] = {}
    for kind, uris in (("read", read), ("write", write), ("logs", logs)):
        for uri in uris:
            parts = _s3_bucket_prefix(uri) if uri else None
            if parts is None:
                continue
            bucket, prefix = parts
            arn = f"{s3}{bucket}/{prefix}/*" if prefix else f"{s3}{bucket}/*"
            if arn not in objects[kind]:
                objects[kind].append(arn)
            prefixes = listed.setdefault(bucket, [])
            for pattern in ([prefix, f"{prefix}/*"] if prefix else ["*"]):
                if pattern not in prefixes:
                    prefixes.append(pattern)
    for kind, arns in objects.items():
        # a folder inside another one of the same statement adds nothing
        objects[kind] = [arn for arn in arns if not any(
            other != arn and arn.startswith(other[:-1]) for other in arns)]
    actions = {"read": ("ReadArtifactsConfAndLanding", ["s3:GetObject"]),
               "write": ("ReadWriteLake", ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]),
               "logs": ("WriteLogs", ["s3:PutObject"])}
    # a statement without a resource is invalid: a lake in a catalog's own storage has none
    statements: list[dict[str, Any]] = [
        {"Sid": sid, "Effect": "Allow", "Action": action, "Resource": objects[kind]}
        for kind, (sid, action) in actions.items() if objects[kind]]
    for i, (bucket, wanted) in enumerate(listed.items()):
        # a prefix another pattern of the bucket matches adds nothing
        prefixes = [p for p in wanted if not any(
            other != p and other.endswith("*") and fnmatch.fnmatchcase(p, other)
            for other in wanted)]
        statements.append({"Sid": f"List{i}", "Effect": "Allow", "Action": ["s3:ListBucket"],
                           "Resource": f"{s3}{bucket}",
                           "Condition": {"StringLike": {"s3:prefix": prefixes}}})
    secrets = sorted(set(secret_refs(settings, "emr").values()))
    if secrets:
        statements.append({"Sid": "ReadSecrets", "Effect": "Allow",
                           "Action": ["secretsmanager:GetSecretValue"], "Resource": secrets})
    if spec.tls_certificates is not None:
        # EMR fetches the certificates' zip with the nodes' role, at boot
        bucket_key = _s3_bucket_prefix(spec.tls_certificates)
        assert bucket_key is not None  # the setting's pattern
        statements.append({"Sid": "ReadTlsCertificates", "Effect": "Allow",
                           "Action": ["s3:GetObject"],
                           "Resource": f"{s3}{bucket_key[0]}/{bucket_key[1]}"})
    if spec.kms_key_arn is not None:
        # SSE-KMS objects are read with Decrypt and written with GenerateDataKey; the
        # local disks' keys come from the same two calls
        statements.append({"Sid": "UseKmsKey", "Effect": "Allow",
                           "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                           "Resource": spec.kms_key_arn})
    if settings.storage.catalog is not None and settings.storage.schema_ is not None:
        statements.append(_glue_statement(settings, settings.storage.schema_))
    return {"Version": "2012-10-17", "Statement": statements}


# what Spark's metastore client calls on the Glue Data Catalog for the jobs' tables: look
# the database and tables up, create a table on a first write, update its properties and
# schema; the tables are Delta tables (no Glue partitions) and no job drops one
GLUE_TABLE_ACTIONS = ["glue:GetDatabase", "glue:GetTable", "glue:GetTables",
                      "glue:CreateTable", "glue:UpdateTable"]


def _glue_statement(settings: Settings, database: str) -> dict[str, Any]:
    """The Glue Data Catalog (EMR's metastore) of catalog mode: the database
    ``storage.schema`` and its tables, and the catalog itself (Glue authorizes a
    database call on its catalog too). Region and account: the KMS key's when it is set
    (the lake's region), else any region of the env's account."""
    spec = settings.deploy.emr
    assert spec is not None
    partition = aws_partition(settings)
    if spec.kms_key_arn is not None:
        region, account = spec.kms_key_arn.split(":")[3:5]
    else:
        region, account = "*", _aws_account(settings)
    glue = f"arn:{partition}:glue:{region}:{account}"
    return {"Sid": "ReadWriteCatalogTables", "Effect": "Allow",
            "Action": list(GLUE_TABLE_ACTIONS),
            "Resource": [f"{glue}:catalog", f"{glue}:database/{database}",
                         f"{glue}:table/{database}/*"]}


def _aws_account(settings: Settings) -> str:
    """The account of the first ARN of the env that names one (``*``: none does)."""
    spec = settings.deploy.emr
    arns: list[str | None] = []
    if spec is not None:
        arns += [spec.scheduler_role_arn, spec.failure_topic_arn,
                 spec.serverless.execution_role_arn if spec.serverless else None,
                 spec.kms_key_arn]
    arns += secret_refs(settings, "emr").values()
    return next((arn.split(":")[4] for arn in arns
                 if arn and arn.count(":") >= 5 and arn.split(":")[4]), "*")


def _run_statements(settings: Settings, sid: str, *, serverless: bool) -> list[dict[str, Any]]:
    """Start the jobs: add steps to ``cluster_id``, or start job runs of the EMR
    Serverless application (passing its execution role)."""
    spec = settings.deploy.emr
    assert spec is not None
    partition, account = aws_partition(settings), _aws_account(settings)
    if not serverless:
        return [{"Sid": f"{sid}Steps", "Effect": "Allow",
                 "Action": ["elasticmapreduce:AddJobFlowSteps"],
                 "Resource": f"arn:{partition}:elasticmapreduce:*:{account}:cluster/"
                             f"{spec.cluster_id}"}]
    assert spec.serverless is not None
    return [{"Sid": f"{sid}JobRuns", "Effect": "Allow", "Action": ["emr-serverless:StartJobRun"],
             "Resource": f"arn:{partition}:emr-serverless:*:{account}:/applications/"
                         f"{spec.serverless.application_id}"},
            {"Sid": f"{sid}PassExecutionRole", "Effect": "Allow", "Action": ["iam:PassRole"],
             "Resource": spec.serverless.execution_role_arn,
             "Condition": {"StringEquals": {
                 "iam:PassedToService": "emr-serverless.amazonaws.com"}}}]


def _on_serverless(settings: Settings) -> bool:
    spec = settings.deploy.emr
    assert spec is not None
    return spec.schedule_on == "serverless" and spec.serverless is not None


def emr_ci_role_policy(settings: Settings) -> dict[str, Any]:
    """The IAM policy document of the CI role (``AWS_ROLE_ARN``), from the commands the
    deploy workflow runs: upload to the wheel folder and the conf dir (``aws s3 cp``,
    ``aws s3 sync --delete``), update or create the schedules (passing the scheduler
    role), put the failure rule and its target, and, in a manual run, add a step to the
    cluster (or start an EMR Serverless job run)."""
    spec = settings.deploy.emr
    assert spec is not None
    partition, account = aws_partition(settings), _aws_account(settings)
    s3 = f"arn:{partition}:s3:::"
    folders: list[tuple[str, str]] = []
    for uri in (emr_artifact_dir(settings), emr_conf_dir(settings)):
        parts = _s3_bucket_prefix(uri.replace("s3a://", "s3://", 1))
        if parts is not None and not any(
                parts[0] == b and (parts[1] + "/").startswith(p + "/") for b, p in folders):
            folders.append(parts)
    statements: list[dict[str, Any]] = [
        {"Sid": "UploadArtifacts", "Effect": "Allow",
         "Action": ["s3:PutObject", "s3:DeleteObject"],
         "Resource": [f"{s3}{bucket}/{prefix}/*" for bucket, prefix in folders]}]
    for i, bucket in enumerate(dict.fromkeys(b for b, _ in folders)):
        statements.append({"Sid": f"ListArtifacts{i}", "Effect": "Allow",
                           "Action": ["s3:ListBucket"], "Resource": f"{s3}{bucket}",
                           "Condition": {"StringLike": {"s3:prefix": [
                               pattern for b, p in folders if b == bucket
                               for pattern in (p, f"{p}/*")]}}})
    schedules = emr_schedules(settings)
    if schedules:
        statements += [
            {"Sid": "UpdateSchedules", "Effect": "Allow",
             "Action": ["scheduler:CreateSchedule", "scheduler:UpdateSchedule"],
             "Resource": [f"arn:{partition}:scheduler:*:{account}:schedule/default/"
                          f"{schedule['Name']}" for schedule in schedules.values()]},
            {"Sid": "PassSchedulerRole", "Effect": "Allow", "Action": ["iam:PassRole"],
             "Resource": spec.scheduler_role_arn,
             "Condition": {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}}]
    if spec.failure_topic_arn is not None:
        topic = spec.failure_topic_arn.split(":")
        statements.append({
            "Sid": "PutFailureRule", "Effect": "Allow",
            "Action": ["events:PutRule", "events:PutTargets"],
            "Resource": f"arn:{partition}:events:{topic[3]}:{topic[4]}:rule/"
                        f"{job_name(settings, 'failures')}"})
    statements += _run_statements(settings, "ManualRun", serverless=_on_serverless(settings))
    return {"Version": "2012-10-17", "Statement": statements}


def emr_scheduler_role_policy(settings: Settings) -> dict[str, Any]:
    """The IAM policy document of ``deploy.emr.scheduler_role_arn``'s role: what the
    schedules' universal target calls (``deploy.emr.schedule_on``)."""
    return {"Version": "2012-10-17", "Statement": _run_statements(
        settings, "Scheduled", serverless=_on_serverless(settings))}


def emr_scheduler_role_trust(settings: Settings) -> dict[str, Any]:
    """The trust policy of the scheduler role: EventBridge Scheduler of this account."""
    statement: dict[str, Any] = {"Effect": "Allow",
                                 "Principal": {"Service": "scheduler.amazonaws.com"},
                                 "Action": "sts:AssumeRole"}
    account = _aws_account(settings)
    if account != "*":
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": account}}
    return {"Version": "2012-10-17", "Statement": [statement]}


def emr_sns_topic_policy(settings: Settings) -> dict[str, Any]:
    """The request body of SNS SetTopicAttributes (``aws sns set-topic-attributes
    --cli-input-json``): the topic's access policy, letting EventBridge publish to
    ``failure_topic_arn`` for the failure rule only. It replaces the topic's policy."""
    spec = settings.deploy.emr
    assert spec is not None and spec.failure_topic_arn is not None
    topic = spec.failure_topic_arn
    partition, region, account = topic.split(":")[1], topic.split(":")[3], topic.split(":")[4]
    rule_arn = f"arn:{partition}:events:{region}:{account}:rule/{job_name(settings, 'failures')}"
    policy = {"Version": "2012-10-17", "Statement": [{
        "Sid": "FailureRulePublishes", "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sns:Publish", "Resource": topic,
        "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}}}]}
    return {"TopicArn": topic, "AttributeName": "Policy", "AttributeValue": json.dumps(policy)}


def aws_cron(quartz: str) -> str:
    """A Quartz cron (Databricks) as an EventBridge ``cron(...)`` expression.

    Both count day-of-week 1-7 from Sunday and need ``?`` in one day field; EventBridge
    has no seconds field and a mandatory year, and runs at most once a minute.
    """
    seconds, *rest = quartz.split()
    if seconds != "0":
        raise ConfigError(f"deploy.schedule: {quartz!r} fires at second {seconds}; "
                          "EventBridge schedules run on whole minutes (use 0 seconds)")
    year = rest[5] if len(rest) == 6 else "*"
    return f"cron({' '.join([*rest[:5], year])})"


def emr_schedules(settings: Settings) -> dict[str, dict[str, Any]]:
    """job → the request body of EventBridge Scheduler's CreateSchedule (UpdateSchedule
    takes the same body) for every job with a ``deploy.schedule`` cron.

    The target is a universal target calling EMR's AddJobFlowSteps (one step on
    ``cluster_id``) or EMR Serverless' StartJobRun, whose client token is the
    scheduler's id of each invocation: a retried invocation cannot start a second run.
    """
    spec = settings.deploy.emr
    assert spec is not None
    if spec.scheduler_role_arn is None:
        return {}
    schedules = {}
    for job in JOB_COMMANDS:
        cron = getattr(settings.deploy.schedule, job)
        if cron is None:
            continue
        if spec.schedule_on == "serverless":
            api = "aws-sdk:emrserverless:startJobRun"
            request = {**emr_start_job_run(settings, job),
                       "clientToken": "<aws.scheduler.execution-id>"}
        else:
            api = "aws-sdk:emr:addJobFlowSteps"
            request = emr_add_steps(settings, [job])
        schedules[job] = {
            "Name": job_name(settings, job),
            "Description": f"sparkmlops {job} of {settings.dataset.name} (env {settings.env}); "
                           "generated by `sparkmlops deploy`",
            "ScheduleExpression": aws_cron(cron),
            "ScheduleExpressionTimezone": settings.deploy.schedule.timezone,
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "State": "ENABLED",
            "Target": {
                "Arn": f"arn:aws:scheduler:::{api}",
                "RoleArn": spec.scheduler_role_arn,
                "Input": json.dumps(request),
                # an invocation that failed to call EMR (throttled, EMR unavailable)
                "RetryPolicy": {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600},
            },
        }
    return schedules


def emr_failure_rule(settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    """The request bodies of EventBridge PutRule and PutTargets: a failed step of this
    dataset's jobs on the cluster (or a failed EMR Serverless job run of the
    application) is published to ``failure_topic_arn``."""
    spec = settings.deploy.emr
    assert spec is not None and spec.failure_topic_arn is not None
    rule_name = job_name(settings, "failures")
    steps = {"clusterId": [spec.cluster_id], "name": [{"prefix": job_name(settings, "")}]}
    pattern: dict[str, Any] = {"source": ["aws.emr"],
                               "detail-type": ["EMR Step Status Change"],
                               "detail": {"state": ["FAILED"], **steps}}
    if spec.serverless is not None:
        pattern = {
            "source": ["aws.emr", "aws.emr-serverless"],
            "detail-type": ["EMR Step Status Change", "EMR Serverless Job Run State Change"],
            "detail": {"state": ["FAILED"], "$or": [
                steps, {"applicationId": [spec.serverless.application_id]}]}}
    rule = {"Name": rule_name, "EventPattern": json.dumps(pattern), "State": "ENABLED",
            "Description": f"failed sparkmlops jobs of {settings.dataset.name} "
                           f"(env {settings.env}) to SNS"}
    targets = {"Rule": rule_name, "Targets": [{"Id": "sns", "Arn": spec.failure_topic_arn}]}
    return rule, targets


def call_aws(service: str, operation: str, request_file: str) -> dict[str, Any]:
    """Call one AWS API operation with a generated request body, e.g.
    ``call_aws("emr", "run_job_flow", "emr/run-job-flow.json")``.

    The AWS CLI has no ``emr run-job-flow`` or ``emr add-job-flow-steps`` (its own
    ``create-cluster`` and ``add-steps`` take other arguments), so the generated bodies of
    those operations go through botocore (``pip install sparkmlops[aws]``), with the
    credentials and region of the usual AWS environment. botocore reads the region from
    AWS_DEFAULT_REGION only (``configprovider.py``); AWS CLI v2 and the CI actions set
    AWS_REGION, so that one counts when AWS_DEFAULT_REGION is unset.
    """
    import botocore.session

    with open(request_file) as handle:
        request = json.load(handle)
    session = botocore.session.get_session()
    if not os.environ.get("AWS_DEFAULT_REGION") and os.environ.get("AWS_REGION"):
        session.set_config_variable("region", os.environ["AWS_REGION"])
    client = session.create_client(service)
    response: dict[str, Any] = getattr(client, operation)(**request)
    response.pop("ResponseMetadata", None)
    return response


if __name__ == "__main__":  # python -m sparkmlops.deploy.emr <service> <operation> <file>
    import sys

    print(json.dumps(call_aws(*sys.argv[1:4]), indent=2, default=str))
