"""GitHub Actions workflows: test on every push, deploy the wheel and the jobs on main."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sparkmlops.config import Settings
from sparkmlops.deploy.common import (
    DATABRICKS_CLI_VERSION,
    is_remote,
    wheel_location,
    wheel_name,
)
from sparkmlops.deploy.databricks import bundle_name
from sparkmlops.deploy.emr import (
    constraints_location,
    emr_artifact_dir,
    emr_conf_dir,
    emr_schedules,
    venv_archive_location,
)
from sparkmlops.errors import ConfigError

log = logging.getLogger(__name__)


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
    if is_remote(location):
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
    conf_dir = emr_conf_dir(settings)
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
