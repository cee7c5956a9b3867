"""EMR: add-steps on a running cluster, EMR Serverless job runs, schedules, failure alerts."""

from __future__ import annotations

import json
import logging
from typing import Any

from sparkmlops import __version__
from sparkmlops.config import Settings
from sparkmlops.deploy.common import (
    JOB_COMMANDS,
    job_args,
    job_name,
    secret_refs,
    wheel_location,
    wheel_name,
)
from sparkmlops.errors import ConfigError
from sparkmlops.secrets import AWS_SECRETS_ENV, aws_secrets_value

log = logging.getLogger(__name__)


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
        "spark.archives": f"{venv_archive_location(settings)}#environment",
        "spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON": "./environment/bin/python",
        "spark.emr-serverless.driverEnv.PYSPARK_PYTHON": "./environment/bin/python",
        "spark.executorEnv.PYSPARK_PYTHON": "./environment/bin/python",
    }
    for name, value in emr_job_env(settings).items():
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
