"""GitHub Actions workflows of a project that uses sparkmlops (``sparkmlops init``):
tests on pull requests, one deploy workflow per platform on the main branch.

They install the released sparkmlops wheel pinned in the project's requirements.txt
with its constraints.txt, never a sparkmlops checkout. Deploying is not running: a push
uploads and updates definitions and schedules; a job runs only from a manual
``workflow_dispatch`` with ``job`` set. Every workflow declares its ``permissions``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sparkmlops.config import Settings
from sparkmlops.deploy.ci import (
    JOB_CHOICES,
    PYTHON_VERSION,
    databricks_conf_dir_of_commit,
    databricks_deploy_lines,
    databricks_run_lines,
    emr_conf_dir_of_commit,
    emr_deploy_lines,
    emr_run_lines,
    install_lines,
)
from sparkmlops.deploy.common import DATABRICKS_CLI_VERSION
from sparkmlops.deploy.databricks import bundle_name

log = logging.getLogger(__name__)

# a private index (a PyPI mirror holding sparkmlops) from repository variables; unset,
# PIP_INDEX_URL falls back to PyPI (pip reads an empty PIP_INDEX_URL as an index named "")
PIP_ENV = {"PIP_INDEX_URL": "${{ vars.PIP_INDEX_URL || 'https://pypi.org/simple' }}",
           "PIP_EXTRA_INDEX_URL": "${{ vars.PIP_EXTRA_INDEX_URL }}"}
RUN_ASKED = "github.event_name == 'workflow_dispatch' && inputs.job != 'none'"


def github_workflows(settings: Settings, platforms: list[str], *,
                     out_dir: Path | None = None) -> dict[str, dict[str, Any]]:
    """A test workflow for pull requests and one deploy workflow per platform, path
    (relative to the repository root) → workflow. ``settings`` is the env of the
    platforms (``sparkmlops deploy --env emr --target github``); ``out_dir`` is not
    used: every path in the workflows is relative to the repository's root."""
    prefix = f".github/workflows/sparkmlops-{settings.dataset.name}"
    files = {f"{prefix}-tests.yml": tests_workflow(settings)}
    for platform in platforms:
        deploy = databricks_workflow if platform == "databricks" else emr_workflow
        files[f"{prefix}-deploy-{platform}.yml"] = deploy(settings)
    return files


def _setup_steps(*, local: bool) -> list[dict[str, Any]]:
    return [{"uses": "actions/checkout@v4"},
            {"uses": "actions/setup-python@v5", "with": {"python-version": PYTHON_VERSION}},
            {"name": "Install the pinned sparkmlops" + (" with Spark" if local else ""),
             "run": "\n".join(install_lines(local=local)) + "\n"}]


def tests_workflow(settings: Settings) -> dict[str, Any]:
    """On pull requests: the project's own tests (config, features) with the pinned wheel."""
    github = settings.deploy.github
    return {
        "name": "sparkmlops: tests",
        "on": {"pull_request": {"branches": [github.branch]}, "workflow_dispatch": {}},
        "permissions": {"contents": "read"},
        "jobs": {"tests": {
            "runs-on": "ubuntu-latest",
            "env": PIP_ENV,
            "steps": [{"uses": "actions/checkout@v4"},
                      {"uses": "actions/setup-python@v5",
                       "with": {"python-version": PYTHON_VERSION}},
                      {"uses": "actions/setup-java@v4",
                       "with": {"distribution": "temurin", "java-version": "17"}},
                      _setup_steps(local=True)[-1],
                      {"name": "Run the tests", "run": github.test_command}],
        }},
    }


def _triggers(settings: Settings) -> dict[str, Any]:
    return {"push": {"branches": [settings.deploy.github.branch]},
            "workflow_dispatch": {"inputs": {"job": {
                "description": "run this job once after deploying (none: deploy only)",
                "type": "choice", "options": JOB_CHOICES, "default": "none"}}}}


def databricks_workflow(settings: Settings) -> dict[str, Any]:
    """Deploy the bundle's prod target; ``bundle run`` only from a manual dispatch.

    Auth: workload identity federation (OIDC) of a service principal: its application
    id in the DATABRICKS_CLIENT_ID variable and a federation policy for this repository
    (subject ``repo:<org>/<repo>:ref:refs/heads/<branch>``); no stored token.
    """
    env = {"DATABRICKS_HOST": "${{ vars.DATABRICKS_HOST }}",
           "DATABRICKS_AUTH_TYPE": "github-oidc",
           "DATABRICKS_CLIENT_ID": "${{ vars.DATABRICKS_CLIENT_ID }}",
           **PIP_ENV}
    conf_dir = databricks_conf_dir_of_commit(settings, "${{ github.sha }}")
    if conf_dir is not None:
        env["CONF_DIR"] = conf_dir
    return {
        "name": f"sparkmlops {settings.dataset.name}: deploy to Databricks (prod)",
        "on": _triggers(settings),
        # id-token: the OIDC token Databricks exchanges for its own
        "permissions": {"contents": "read", "id-token": "write"},
        "concurrency": {"group": f"{bundle_name(settings)}-databricks-prod",
                        "cancel-in-progress": False},
        "jobs": {"deploy": {"runs-on": "ubuntu-latest", "env": env, "steps": [
            *_setup_steps(local=False),
            {"uses": f"databricks/setup-cli@{DATABRICKS_CLI_VERSION}"},
            {"name": "Generate, upload and deploy the bundle (runs no job)",
             "run": "\n".join(databricks_deploy_lines(settings)) + "\n"},
            {"name": "Run the job asked for", "if": RUN_ASKED, "env": {"JOB": "${{ inputs.job }}"},
             "run": "\n".join(databricks_run_lines(settings)) + "\n"},
        ]}},
    }


def emr_workflow(settings: Settings) -> dict[str, Any]:
    """Upload the wheel, job scripts, constraints, bootstrap and this commit's conf dir;
    update schedules; add a step (or job run) only from a manual dispatch.

    A running cluster keeps the dependencies it installed at boot: a new sparkmlops
    version or constraints.txt reaches it only on a new cluster (bootstrap.sh).
    """
    return {
        "name": f"sparkmlops {settings.dataset.name}: deploy to EMR",
        "on": _triggers(settings),
        # OIDC: the role is assumed with a short-lived token, no stored AWS keys
        "permissions": {"contents": "read", "id-token": "write"},
        "concurrency": {"group": f"{bundle_name(settings)}-emr", "cancel-in-progress": False},
        "jobs": {"deploy": {
            "runs-on": "ubuntu-latest",
            "env": {"CONF_DIR": emr_conf_dir_of_commit(settings, "${{ github.sha }}"),
                    **PIP_ENV},
            "steps": [
                *_setup_steps(local=False),
                {"uses": "aws-actions/configure-aws-credentials@v4",
                 "with": {"role-to-assume": "${{ vars.AWS_ROLE_ARN }}",
                          "aws-region": "${{ vars.AWS_REGION }}"}},
                {"name": "Generate and upload the EMR files, update the schedules "
                         "(runs no job)",
                 "run": "\n".join(emr_deploy_lines(settings)) + "\n"},
                {"name": "Run the job asked for", "if": RUN_ASKED,
                 "env": {"JOB": "${{ inputs.job }}"},
                 "run": "\n".join(emr_run_lines(settings)) + "\n"},
            ]}},
    }
