"""GitHub Actions workflows of a project that uses sparkmlops (``sparkmlops init``):
tests on pull requests, one deploy workflow per platform on the main branch.

They install the released sparkmlops wheel pinned in the project's requirements.txt
with its constraints.txt, never a sparkmlops checkout. Deploying is not running: a push
uploads and updates definitions and schedules; a job runs only from a manual
``workflow_dispatch`` with ``job`` set. Every workflow declares its ``permissions``.

The security scans (bandit, detect-secrets, pip-audit: ``ci.scan_steps``) run as a
``security`` job on pull requests (tests workflow) and before every deploy: each deploy
workflow runs them again on the commit it deploys and its ``deploy`` job ``needs`` them.
A pull request's scan saw the PR's head, not the merge commit a push to main deploys (nor
a direct push, nor a merge past a required check), and a dependency audit's answer
changes with time: a vulnerability published after the PR was scanned stops the deploy.
A failed scan stops the upload, never a running job: what was deployed last keeps its
schedules.
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
    scan_install_lines,
    scan_steps,
)
from sparkmlops.deploy.common import DATABRICKS_CLI_VERSION
from sparkmlops.deploy.databricks import bundle_name

log = logging.getLogger(__name__)

# a private index (a PyPI mirror holding sparkmlops) from repository variables; unset,
# PIP_INDEX_URL falls back to PyPI (pip reads an empty PIP_INDEX_URL as an index named "")
PIP_ENV = {"PIP_INDEX_URL": "${{ vars.PIP_INDEX_URL || 'https://pypi.org/simple' }}",
           "PIP_EXTRA_INDEX_URL": "${{ vars.PIP_EXTRA_INDEX_URL }}"}
RUN_ASKED = "github.event_name == 'workflow_dispatch' && inputs.job != 'none'"
SCANS_RUN = "!cancelled() && steps.install.outcome == 'success'"


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


def security_job() -> dict[str, Any]:
    """The scans (``ci.scan_steps``) with the scanners at the lock's versions; only
    ``contents: read`` (in a deploy workflow too, whose deploy job may mint OIDC tokens).
    Each scan runs even when one before it failed, so one run reports all three. The
    checkout keeps no token in .git/config: the scanners are third-party code, and
    nothing in the job pushes."""
    steps: list[dict[str, Any]] = [
        {"uses": "actions/checkout@v4", "with": {"persist-credentials": False}},
        {"uses": "actions/setup-python@v5", "with": {"python-version": PYTHON_VERSION}},
        {"name": "Install the pinned scanners", "id": "install",
         "run": "\n".join(scan_install_lines()) + "\n"}]
    # each scan after a failed one too, but none after a failed install
    steps += [{"name": name, "if": SCANS_RUN, "run": "\n".join(lines) + "\n"}
              for name, lines in scan_steps()]
    return {"runs-on": "ubuntu-latest", "permissions": {"contents": "read"}, "env": PIP_ENV,
            "steps": steps}


def tests_workflow(settings: Settings) -> dict[str, Any]:
    """On pull requests: the project's own tests (config, features) with the pinned wheel,
    and the security scans."""
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
        }, "security": security_job()},
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
        "jobs": {"security": security_job(),
                 "deploy": {"needs": "security", "runs-on": "ubuntu-latest", "env": env,
                            "steps": [
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
        "jobs": {"security": security_job(), "deploy": {
            "needs": "security",
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
