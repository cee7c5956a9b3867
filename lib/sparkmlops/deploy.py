"""``sparkmlops deploy``: job definitions for Databricks, EMR and GitHub Actions from config.

The same settings a job runs with (``--env``, ``--dataset``, ``--conf-dir``, ``--set``)
say what to deploy; the ``deploy:`` section of the env file adds the schedule, cluster
size, notifications, wheel location and permissions. Three jobs are defined once and
written for each platform:

- ``batch``: ``sparkmlops pipeline --mode batch`` (ingest → … → train → promote → predict)
- ``continuous``: ``sparkmlops pipeline --mode continuous`` (score with @champion,
  monitor, retrain and promote when ``dataset.retrain`` says so)
- ``maintain``: ``sparkmlops maintain`` (OPTIMIZE / Z-ORDER and VACUUM)

Each job is one ``pipeline`` (or ``maintain``) task, not a task per step: the pipeline
computes the batch id once, hands each step the exact Delta version the previous one
wrote, nests every step under one parent MLflow run, and treats a challenger that fails
the promotion gate as an outcome (the batch is still scored by the champion). Separate
tasks would each recompute the batch id (a file landing between tasks would split the
batch), lose the parent run, and a failed gate (exit 5) would stop the predict task.
A retry re-runs the whole pipeline, which is idempotent by design.

Example::

    files = render(settings, resolve_targets(["all"], settings), out_dir=Path("deploy"))
    write_files(files)
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import yaml

from sparkmlops import __version__
from sparkmlops.config import DeploySettings, Settings
from sparkmlops.errors import ConfigError

log = logging.getLogger(__name__)

TARGETS = ("databricks", "emr", "github")
PLATFORMS = ("databricks", "emr")
# the CLI arguments of each job, before --env/--dataset/--conf-dir
JOB_COMMANDS: dict[str, list[str]] = {
    "batch": ["pipeline", "--mode", "batch"],
    "continuous": ["pipeline", "--mode", "continuous"],
    "maintain": ["maintain"],
}
PLACEHOLDER = "CHANGE-ME"
JOB_CLUSTER_KEY = "sparkmlops"
# the pinned Databricks CLI of the generated workflows (mlops-stacks pins it the same way)
DATABRICKS_CLI_VERSION = "v0.236.0"


# ---------------------------------------------------------------- shared pieces


def resolve_targets(requested: list[str], settings: Settings) -> list[str]:
    """``--target`` values (repeatable, comma-separated, ``all``) → targets in TARGETS order.

    ``all`` means github plus every platform the env configures (``deploy.databricks``,
    ``deploy.emr``). A platform named explicitly must be configured.
    """
    names = {name.strip() for value in requested for name in value.split(",") if name.strip()}
    unknown = sorted(names - {*TARGETS, "all"})
    if unknown or not names:
        raise ConfigError(f"--target: unknown target(s) {unknown or ['(none)']}; choose from "
                          f"{', '.join(TARGETS)} or all (comma-separated or repeated)")
    deploy = settings.deploy
    if "all" in names:
        names = {"github", *(p for p in PLATFORMS if getattr(deploy, p) is not None)}
    for platform in PLATFORMS:
        if platform in names and getattr(deploy, platform) is None:
            raise ConfigError(f"deploy.{platform}: not set for env {settings.env!r}; "
                              f"--target {platform} needs it (see conf/{platform}.yml)")
    if "github" in names and not deployed_platforms(names, deploy):
        raise ConfigError(f"--target github: env {settings.env!r} configures no platform "
                          "to deploy to (deploy.databricks or deploy.emr)")
    return [t for t in TARGETS if t in names]


def deployed_platforms(targets: set[str] | list[str], deploy: DeploySettings) -> list[str]:
    """The platforms the GitHub workflows deploy to: those asked for, else all configured."""
    asked = [p for p in PLATFORMS if p in targets]
    return asked or [p for p in PLATFORMS if getattr(deploy, p) is not None]


def job_args(settings: Settings, job: str) -> list[str]:
    """The ``sparkmlops`` command line of a job, e.g. ``pipeline --mode batch --env emr ...``."""
    args = [*JOB_COMMANDS[job], "--env", settings.env, "--dataset", settings.dataset.name]
    if settings.deploy.conf_dir:
        args += ["--conf-dir", settings.deploy.conf_dir]
    return args


def wheel_location(settings: Settings) -> str:
    return settings.deploy.wheel.replace("{version}", __version__)


def wheel_name(settings: Settings) -> str:
    return wheel_location(settings).rsplit("/", 1)[-1]


def job_name(settings: Settings, job: str) -> str:
    return f"sparkmlops-{settings.dataset.name}-{job}"


def placeholders(settings: Settings) -> list[str]:
    """Key paths under ``deploy`` whose value still holds CHANGE-ME."""
    found: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}.{i}")
        elif isinstance(node, str) and PLACEHOLDER in node:
            found.append(path)

    walk(settings.deploy.model_dump(mode="json"), "deploy")
    return found


def _is_remote(path: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", path)) or path.startswith(
        ("/Volumes/", "/Workspace/"))


# ---------------------------------------------------------------- Databricks Asset Bundle


def bundle_name(settings: Settings) -> str:
    return f"sparkmlops_{settings.dataset.name}"


def databricks_bundle(settings: Settings, *, out_dir: Path) -> dict[str, dict[str, Any]]:
    """The bundle's files, path relative to ``out_dir`` → content: databricks.yml and
    one resources/<job>-job.yml per job (the layout of mlops-stacks)."""
    files = {"databricks/databricks.yml": _bundle_root(settings)}
    library = _bundle_wheel(settings, resources_dir=out_dir / "databricks" / "resources")
    for job in JOB_COMMANDS:
        files[f"databricks/resources/{job}-job.yml"] = {
            "resources": {"jobs": {f"{bundle_name(settings)}_{job}":
                                   databricks_job(settings, job, wheel=library)}}}
    return files


def _bundle_root(settings: Settings) -> dict[str, Any]:
    prod: dict[str, Any] = {
        "mode": "production",
        # set explicitly, as production mode asks: one copy per deploying identity (the
        # CI's), and not under /Workspace/Shared, which every workspace user can write
        "workspace": {"root_path": "/Workspace/Users/${workspace.current_user.userName}"
                                   "/.bundle/${bundle.name}/${bundle.target}"},
    }
    principal = settings.deploy.databricks and settings.deploy.databricks.run_as_service_principal
    if principal:
        prod["run_as"] = {"service_principal_name": principal}
    return {
        "bundle": {"name": bundle_name(settings)},
        "include": ["resources/*.yml"],
        "targets": {
            # development: resources prefixed "[dev <user>]", schedules paused
            "dev": {"mode": "development", "default": True},
            "prod": prod,
        },
    }


def _bundle_wheel(settings: Settings, *, resources_dir: Path) -> str:
    """A remote wheel as is; a local one relative to the resource file (the bundle
    CLI resolves it there and uploads it on deploy)."""
    location = wheel_location(settings)
    if _is_remote(location):
        return location
    local = Path(settings.project_dir) / location
    return os.path.relpath(local, resources_dir.resolve())


def databricks_job(settings: Settings, job: str, *, wheel: str) -> dict[str, Any]:
    """One bundle job: a python_wheel_task on a job cluster, schedule, notifications,
    permissions. ``permissions`` is a bundle key, not a Jobs API field."""
    deploy = settings.deploy
    definition: dict[str, Any] = {
        "name": job_name(settings, job),
        "max_concurrent_runs": 1,
        "tags": {"sparkmlops_dataset": settings.dataset.name, "sparkmlops_job": job},
        "job_clusters": [{"job_cluster_key": JOB_CLUSTER_KEY,
                          "new_cluster": _databricks_cluster(settings)}],
        "tasks": [{
            "task_key": JOB_COMMANDS[job][0],
            "job_cluster_key": JOB_CLUSTER_KEY,
            "python_wheel_task": {"package_name": "sparkmlops", "entry_point": "sparkmlops",
                                  "parameters": job_args(settings, job)},
            "libraries": [{"whl": wheel}],
        }],
    }
    cron = getattr(deploy.schedule, job)
    if cron:
        definition["schedule"] = {"quartz_cron_expression": cron,
                                  "timezone_id": deploy.schedule.timezone,
                                  "pause_status": "UNPAUSED"}
    if deploy.notifications.on_failure:
        definition["email_notifications"] = {"on_failure": list(deploy.notifications.on_failure)}
    if deploy.permissions:
        definition["permissions"] = [p.model_dump(exclude_none=True) for p in deploy.permissions]
    return definition


def _databricks_cluster(settings: Settings) -> dict[str, Any]:
    spec = settings.deploy.databricks
    assert spec is not None  # resolve_targets checked it
    cluster: dict[str, Any] = {
        "spark_version": spec.spark_version,
        "node_type_id": spec.node_type_id,
        # dedicated (single user) access: Unity Catalog, and MLlib runs there (not on
        # standard access mode)
        "data_security_mode": "SINGLE_USER",
    }
    if spec.autoscale is not None:
        cluster["autoscale"] = spec.autoscale.model_dump()
    else:
        cluster["num_workers"] = spec.num_workers
    if settings.deploy.env:
        cluster["spark_env_vars"] = dict(settings.deploy.env)
    return cluster


# ---------------------------------------------------------------- EMR


def emr_artifact_dir(settings: Settings) -> str:
    """The S3 folder of the wheel: the job scripts, constraints and bootstrap go beside it."""
    location = wheel_location(settings)
    if not location.startswith("s3://"):
        raise ConfigError(f"deploy.wheel: EMR installs the wheel from S3; got {location!r} "
                          f"(set deploy.wheel to s3://... in conf/{settings.env}.yml)")
    return location.rsplit("/", 1)[0]


def constraints_location(settings: Settings) -> str:
    return f"{emr_artifact_dir(settings)}/sparkmlops-{__version__}-constraints.txt"


def venv_archive_location(settings: Settings) -> str:
    return f"{emr_artifact_dir(settings)}/sparkmlops-{__version__}-venv.tar.gz"


def emr_job_script(settings: Settings, job: str) -> tuple[str, list[str]]:
    """The job script on S3 (jobs/<command>.py beside the wheel) and its arguments."""
    command, *rest = job_args(settings, job)
    return f"{emr_artifact_dir(settings)}/jobs/{command}.py", rest


def emr_add_steps(settings: Settings, jobs: list[str] | None = None) -> dict[str, Any]:
    """The request body of EMR's AddJobFlowSteps (``aws emr add-steps --cli-input-json``)
    for ``jobs`` (default: ``deploy.emr.steps``, in that order)."""
    spec = settings.deploy.emr
    assert spec is not None
    return {"JobFlowId": spec.cluster_id,
            "Steps": [_emr_step(settings, job) for job in (jobs or spec.steps)]}


def _emr_step(settings: Settings, job: str) -> dict[str, Any]:
    spec = settings.deploy.emr
    assert spec is not None
    script, args = emr_job_script(settings, job)
    submit = ["spark-submit", "--deploy-mode", "cluster", "--py-files", wheel_location(settings)]
    for name, value in {"PYSPARK_PYTHON": spec.python, **settings.deploy.env}.items():
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
        "spark.archives": f"{venv_archive_location(settings)}#environment",
        "spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON": "./environment/bin/python",
        "spark.emr-serverless.driverEnv.PYSPARK_PYTHON": "./environment/bin/python",
        "spark.executorEnv.PYSPARK_PYTHON": "./environment/bin/python",
    }
    for name, value in settings.deploy.env.items():
        conf[f"spark.emr-serverless.driverEnv.{name}"] = value
        conf[f"spark.executorEnv.{name}"] = value
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
    if serverless.log_uri:
        body["configurationOverrides"] = {"monitoringConfiguration": {
            "s3MonitoringConfiguration": {"logUri": serverless.log_uri}}}
    return body


def emr_bootstrap(settings: Settings) -> str:
    """bootstrap.sh: install the wheel with the pinned dependencies on every node."""
    spec = settings.deploy.emr
    assert spec is not None
    return f"""#!/bin/bash
# EMR bootstrap action: install sparkmlops {__version__} on every node of the cluster,
# its dependencies pinned by the project's lock file (pip constraints: a pin only
# applies to what the wheel requires). Generated by `sparkmlops deploy --target emr`.
set -euo pipefail
PYTHON={spec.python}
WHEEL={wheel_location(settings)}
CONSTRAINTS={constraints_location(settings)}
work=$(mktemp -d)
if ! command -v "$PYTHON" >/dev/null; then
    sudo dnf install -y -q "$(basename "$PYTHON")" "$(basename "$PYTHON")-pip"
fi
aws s3 cp --only-show-errors "$WHEEL" "$work/"
aws s3 cp --only-show-errors "$CONSTRAINTS" "$work/constraints.txt"
sudo "$PYTHON" -m pip install --quiet -c "$work/constraints.txt" "$work/{wheel_name(settings)}"
"""


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


# ---------------------------------------------------------------- GitHub Actions


def github_workflows(settings: Settings, platforms: list[str], *,
                     out_dir: Path) -> dict[str, dict[str, Any]]:
    """A test workflow for pull requests and one deploy workflow per platform.

    GitHub reads workflows from the repository root, and they build the wheel there:
    ``out_dir`` must be the project dir, so every path in them is relative to it.
    """
    if out_dir.resolve() != Path(settings.project_dir).resolve():
        raise ConfigError(f"--target github: --out must be the project dir "
                          f"{settings.project_dir} (the root of the repository the "
                          f"workflows run in), got {out_dir}")
    prefix = f".github/workflows/sparkmlops-{settings.dataset.name}"
    files = {f"{prefix}-tests.yml": _tests_workflow(settings)}
    for platform in platforms:
        deploy = _databricks_workflow if platform == "databricks" else _emr_workflow
        files[f"{prefix}-deploy-{platform}.yml"] = deploy(settings)
    return files


def _setup_steps(settings: Settings) -> list[dict[str, Any]]:
    return [{"uses": "actions/checkout@v4"},
            {"uses": "actions/setup-python@v5", "with": {"python-version": "3.11"}}]


def _tests_workflow(settings: Settings) -> dict[str, Any]:
    branch = settings.deploy.github.branch
    return {
        "name": f"sparkmlops {settings.dataset.name}: tests",
        "on": {"pull_request": {"branches": [branch]}, "workflow_dispatch": {}},
        "jobs": {"tests": {
            "runs-on": "ubuntu-latest",
            "steps": [*_setup_steps(settings),
                      {"uses": "actions/setup-java@v4",
                       "with": {"distribution": "temurin", "java-version": "17"}},
                      {"name": "Run the tests", "run": settings.deploy.github.test_command}],
        }},
    }


BUILD_WHEEL = {"name": "Build the wheel", "run": "python -m pip wheel --no-deps --wheel-dir dist ."}


def _push_trigger(settings: Settings) -> dict[str, Any]:
    return {"push": {"branches": [settings.deploy.github.branch]}, "workflow_dispatch": {}}


def _databricks_workflow(settings: Settings) -> dict[str, Any]:
    steps = [*_setup_steps(settings),
             {"uses": f"databricks/setup-cli@{DATABRICKS_CLI_VERSION}"}, BUILD_WHEEL]
    location = wheel_location(settings)
    if _is_remote(location):
        target = location if ":" in location.split("/", 1)[0] else f"dbfs:{location}"
        steps.append({"name": "Upload the wheel",
                      "run": f"databricks fs cp --overwrite dist/{wheel_name(settings)} "
                             f"{target}"})
    conf_dir = settings.deploy.conf_dir or ""
    if conf_dir.startswith("dbfs:"):
        steps.append({"name": "Upload the conf dir",
                      "run": f"databricks fs cp --recursive --overwrite conf {conf_dir}"})
    steps += [
        {"name": "Validate the bundle", "working-directory": "databricks",
         "run": "databricks bundle validate -t prod"},
        {"name": "Deploy the bundle", "working-directory": "databricks",
         "run": "databricks bundle deploy -t prod"},
    ]
    return {
        "name": f"sparkmlops {settings.dataset.name}: deploy to Databricks (prod)",
        "on": _push_trigger(settings),
        "concurrency": f"{bundle_name(settings)}-databricks-prod",
        "env": {"DATABRICKS_HOST": "${{ secrets.DATABRICKS_HOST }}",
                "DATABRICKS_TOKEN": "${{ secrets.DATABRICKS_TOKEN }}"},
        "jobs": {"deploy": {"runs-on": "ubuntu-latest", "steps": steps}},
    }


def _emr_workflow(settings: Settings) -> dict[str, Any]:
    artifacts = emr_artifact_dir(settings)
    upload = [
        f"aws s3 cp --only-show-errors dist/{wheel_name(settings)} "
        f"{wheel_location(settings)}",
        f"aws s3 cp --only-show-errors deps/requirements.lock "
        f"{constraints_location(settings)}",
        f"aws s3 cp --only-show-errors --recursive --exclude '*' --include '*.py' "
        f"jobs {artifacts}/jobs",
        f"aws s3 cp --only-show-errors emr/bootstrap.sh {artifacts}/bootstrap.sh",
    ]
    if settings.deploy.emr is not None and settings.deploy.emr.serverless is not None:
        upload.append(f"aws s3 cp --only-show-errors dist/{VENV_ARCHIVE} "
                      f"{venv_archive_location(settings)}")
    conf_dir = settings.deploy.conf_dir or ""
    if conf_dir.startswith(("s3://", "s3a://")):
        upload.append(f"aws s3 sync --only-show-errors --delete conf "
                      f"{conf_dir.replace('s3a://', 's3://', 1)}")
    return {
        "name": f"sparkmlops {settings.dataset.name}: deploy to EMR",
        "on": _push_trigger(settings),
        "concurrency": f"{bundle_name(settings)}-emr",
        # OIDC: the role is assumed with a short-lived token, no stored AWS keys
        "permissions": {"id-token": "write", "contents": "read"},
        "jobs": {"deploy": {"runs-on": "ubuntu-latest", "steps": [
            *_setup_steps(settings),
            {"uses": "aws-actions/configure-aws-credentials@v4",
             "with": {"role-to-assume": "${{ secrets.AWS_ROLE_ARN }}",
                      "aws-region": "${{ secrets.AWS_REGION }}"}},
            BUILD_WHEEL,
            *_serverless_venv_steps(settings),
            {"name": "Upload the wheel, job scripts, constraints and bootstrap",
             "run": "\n".join(upload) + "\n"},
            *_emr_schedule_steps(settings),
            {"name": "Submit the steps to the EMR cluster",
             "run": "aws emr add-steps --cli-input-json file://emr/add-steps.json"},
        ]}},
    }


VENV_ARCHIVE = "sparkmlops-venv.tar.gz"
VENV_PACK = "venv-pack==0.2.0"
# EMR Serverless images run Amazon Linux 2023: the packed venv is built on it, so its
# compiled wheels (numpy, pyarrow) match the workers'
SERVERLESS_BUILD_IMAGE = "public.ecr.aws/amazonlinux/amazonlinux:2023"


def _serverless_venv_steps(settings: Settings) -> list[dict[str, Any]]:
    """EMR Serverless has no bootstrap actions: pack a virtualenv with the wheel and its
    pinned dependencies (venv-pack) for ``spark.archives``."""
    spec = settings.deploy.emr
    if spec is None or spec.serverless is None:
        return []
    python = Path(spec.python).name
    script = " && ".join([
        f"dnf install -y -q {python} {python}-pip tar gzip",
        f"{python} -m venv --copies /opt/venv",
        f"/opt/venv/bin/pip install -q -c deps/requirements.lock {VENV_PACK} "
        f"dist/{wheel_name(settings)}",
        f"/opt/venv/bin/venv-pack -p /opt/venv -o dist/{VENV_ARCHIVE}",
    ])
    return [{"name": "Pack the EMR Serverless virtualenv on Amazon Linux 2023",
             "run": f'docker run --rm -v "$PWD:/work" -w /work {SERVERLESS_BUILD_IMAGE} '
                    f"bash -c '{script}'\n"}]


def _emr_schedule_steps(settings: Settings) -> list[dict[str, Any]]:
    spec = settings.deploy.emr
    assert spec is not None
    run = [f"aws scheduler update-schedule --cli-input-json file://emr/schedule-{job}.json "
           f"|| aws scheduler create-schedule --cli-input-json file://emr/schedule-{job}.json"
           for job in emr_schedules(settings)]
    if spec.failure_topic_arn is not None:
        run += ["aws events put-rule --cli-input-json file://emr/failure-rule.json",
                "aws events put-targets --cli-input-json file://emr/failure-targets.json"]
    if not run:
        return []
    return [{"name": "Apply the schedules and the failure rule", "run": "\n".join(run) + "\n"}]


# ---------------------------------------------------------------- files


def emr_readme(settings: Settings) -> str:
    spec = settings.deploy.emr
    assert spec is not None
    todo = placeholders(settings)
    lines = [
        f"# sparkmlops on EMR: {settings.dataset.name} (env {settings.env})",
        "",
        "Generated by `sparkmlops deploy --target emr`; regenerate instead of editing.",
        "",
        f"1. Upload: the wheel to `{wheel_location(settings)}`, `deps/requirements.lock` to "
        f"`{constraints_location(settings)}`, `jobs/*.py` to `{emr_artifact_dir(settings)}/jobs/`"
        f" and `bootstrap.sh` to `{emr_artifact_dir(settings)}/bootstrap.sh` (the GitHub "
        "workflow does this).",
        "2. Create the cluster with `bootstrap.sh` as a bootstrap action.",
        "3. `aws emr add-steps --cli-input-json file://add-steps.json` runs "
        f"{', '.join(spec.steps)} on cluster `{spec.cluster_id}`.",
    ]
    if spec.serverless is not None:
        lines.append(
            "4. EMR Serverless: the workflow packs a virtualenv with the wheel (`venv-pack`, "
            f"on Amazon Linux 2023) to `{venv_archive_location(settings)}`; then "
            "`aws emr-serverless start-job-run --cli-input-json file://start-job-run.json`.")
    schedules = emr_schedules(settings)
    if schedules:
        on = ("EMR Serverless job runs" if spec.schedule_on == "serverless"
              else f"steps on `{spec.cluster_id}`")
        lines.append(
            f"{len(lines) - 3}. Schedules ({', '.join(schedules)}) start {on}: "
            "`aws scheduler create-schedule --cli-input-json file://schedule-<job>.json` "
            "(`update-schedule` with the same file afterwards; the workflow does this).")
    else:
        lines.append(f"{len(lines) - 3}. No schedules: set `deploy.emr.scheduler_role_arn` to "
                     "have EventBridge Scheduler run the jobs of `deploy.schedule`.")
    if spec.failure_topic_arn is not None:
        emails = settings.deploy.notifications.on_failure
        lines.append(
            f"{len(lines) - 3}. Failures: `aws events put-rule --cli-input-json "
            "file://failure-rule.json` and `aws events put-targets --cli-input-json "
            f"file://failure-targets.json` publish failed runs to `{spec.failure_topic_arn}`"
            + (f"; subscribe {', '.join(emails)} with `aws sns subscribe --protocol email`."
               if emails else "."))
    lines += ["", "Placeholders still to fill in the env config: "
              + (", ".join(f"`{p}`" for p in todo) if todo else "none."), ""]
    return "\n".join(lines)


def render(settings: Settings, targets: list[str], *, out_dir: Path) -> dict[Path, str]:
    """Every file of the targets, absolute path → text."""
    documents: dict[str, Any] = {}
    texts: dict[str, str] = {}
    if "databricks" in targets:
        documents.update(databricks_bundle(settings, out_dir=out_dir))
    if "emr" in targets:
        spec = settings.deploy.emr
        assert spec is not None
        texts["emr/add-steps.json"] = json.dumps(emr_add_steps(settings), indent=2) + "\n"
        if spec.serverless is not None:
            for i, job in enumerate(spec.steps):
                name = "start-job-run.json" if i == 0 else f"start-job-run-{job}.json"
                texts[f"emr/{name}"] = json.dumps(emr_start_job_run(settings, job),
                                                  indent=2) + "\n"
        for scheduled, schedule in emr_schedules(settings).items():
            texts[f"emr/schedule-{scheduled}.json"] = json.dumps(schedule, indent=2) + "\n"
        if spec.failure_topic_arn is not None:
            rule, rule_targets = emr_failure_rule(settings)
            texts["emr/failure-rule.json"] = json.dumps(rule, indent=2) + "\n"
            texts["emr/failure-targets.json"] = json.dumps(rule_targets, indent=2) + "\n"
        texts["emr/bootstrap.sh"] = emr_bootstrap(settings)
        texts["emr/README.md"] = emr_readme(settings)
    if "github" in targets:
        platforms = deployed_platforms(targets, settings.deploy)
        documents.update(github_workflows(settings, platforms, out_dir=out_dir))
    header = (f"# Generated by `sparkmlops deploy` from env {settings.env!r}, dataset "
              f"{settings.dataset.name!r}; regenerate instead of editing.\n")
    for name, document in documents.items():
        note = BUNDLE_HOST_NOTE if name == "databricks/databricks.yml" else ""
        texts[name] = header + note + yaml.dump(document, Dumper=_BlockDumper,
                                                sort_keys=False, width=100)
    return {out_dir / name: text for name, text in texts.items()}


BUNDLE_HOST_NOTE = ("# The workspace host comes from DATABRICKS_HOST (or a profile in "
                    "~/.databrickscfg), never from this file.\n")


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (a workflow's ``run:``) as literal blocks, not quoted lines."""


def _str_block(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str_block)


def write_files(files: dict[Path, str]) -> list[Path]:
    """Write the rendered files (bootstrap.sh executable); return their paths."""
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if path.suffix == ".sh":
            path.chmod(0o755)
        log.debug("wrote %s", path)
    return list(files)
