"""Azure Pipelines for a project that uses sparkmlops (``sparkmlops init --ci azure-devops``):
one azure-pipelines.yml with the tests on pull requests and a deploy stage per platform
on the main branch. A job runs only when the pipeline is started by hand with the
``job`` parameter set.

Auth without stored keys: Databricks (on Azure) through an Azure Resource Manager
service connection with workload identity federation, whose service principal the
Databricks CLI uses (``DATABRICKS_AUTH_TYPE=azure-cli`` inside ``AzureCLI@2``); EMR
through an AWS role that trusts the same connection's OIDC token (pipeline variables
``AWS_ROLE_ARN`` and ``AWS_REGION``).
"""

from __future__ import annotations

import logging
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
from sparkmlops.deploy.common import DATABRICKS_CLI_VERSION, PLACEHOLDER

log = logging.getLogger(__name__)

PIPELINE_FILE = "azure-pipelines.yml"
# the service connections (Project settings > Service connections), by name
AZURE_CONNECTION = f"{PLACEHOLDER}-azure-service-connection"
ON_MAIN = ("and(succeeded(), eq(variables['Build.SourceBranch'], 'refs/heads/{branch}'), "
           "ne(variables['Build.Reason'], 'PullRequest'))")
RUN_ASKED = "and(succeeded(), ne('${{ parameters.job }}', 'none'))"
COMMIT = "$(Build.SourceVersion)"


def azure_pipelines(platforms: dict[str, Settings]) -> dict[str, dict[str, Any]]:
    """``{"azure-pipelines.yml": pipeline}`` for the platforms, each with its env's
    settings (``{"emr": <emr settings>, "databricks": <databricks settings>}``).

    A private index holding sparkmlops: pipeline variables PIP_INDEX_URL /
    PIP_EXTRA_INDEX_URL reach pip as environment variables."""
    first = next(iter(platforms.values()))
    branch = first.deploy.github.branch
    stages = [_tests_stage(first)]
    for platform, settings in platforms.items():
        stage = _databricks_stage if platform == "databricks" else _emr_stage
        stages.append(stage(settings))
    return {PIPELINE_FILE: {
        "trigger": {"branches": {"include": [branch]}},
        "pr": {"branches": {"include": [branch]}},
        "parameters": [{"name": "job", "displayName": "Run this job once after deploying",
                        "type": "string", "default": "none", "values": JOB_CHOICES}],
        "pool": {"vmImage": "ubuntu-latest"},
        "stages": stages,
    }}


def _python_steps(*, local: bool) -> list[dict[str, Any]]:
    return [{"task": "UsePythonVersion@0", "inputs": {"versionSpec": PYTHON_VERSION}},
            {"script": "\n".join(install_lines(local=local)) + "\n",
             "displayName": "Install the pinned sparkmlops"}]


def _tests_stage(settings: Settings) -> dict[str, Any]:
    return {"stage": "tests", "jobs": [{"job": "tests", "steps": [
        {"checkout": "self"},
        *_python_steps(local=True),
        {"script": settings.deploy.github.test_command, "displayName": "Run the tests"},
    ]}]}


def _databricks_stage(settings: Settings) -> dict[str, Any]:
    install_cli = (f"curl -fsSL https://raw.githubusercontent.com/databricks/setup-cli/"
                   f"{DATABRICKS_CLI_VERSION}/install.sh | sudo sh")
    env = {"DATABRICKS_HOST": "$(DATABRICKS_HOST)", "DATABRICKS_AUTH_TYPE": "azure-cli"}
    variables = {}
    conf_dir = databricks_conf_dir_of_commit(settings, COMMIT)
    if conf_dir is not None:
        variables["CONF_DIR"] = conf_dir

    def azure_cli(name: str, lines: list[str], **extra: Any) -> dict[str, Any]:
        return {"task": "AzureCLI@2", "displayName": name, **extra, "env": env, "inputs": {
            "azureSubscription": AZURE_CONNECTION, "scriptType": "bash",
            "scriptLocation": "inlineScript", "inlineScript": "\n".join(lines) + "\n"}}

    return {"stage": "deploy_databricks", "dependsOn": "tests",
            "condition": ON_MAIN.format(branch=settings.deploy.github.branch),
            "jobs": [{"job": "deploy", **({"variables": variables} if variables else {}),
                      "steps": [
                {"checkout": "self"},
                *_python_steps(local=False),
                {"script": install_cli, "displayName": "Install the Databricks CLI"},
                azure_cli("Generate, upload and deploy the bundle (runs no job)",
                          ["set -euo pipefail", *databricks_deploy_lines(settings)]),
                azure_cli("Run the job asked for",
                          ["set -euo pipefail", "JOB='${{ parameters.job }}'",
                           *databricks_run_lines(settings)], condition=RUN_ASKED),
            ]}]}


# the AWS role, assumed with the Azure DevOps OIDC token of the ARM service connection
# (AzureCLI@2 addSpnToEnvironment puts it in $idToken when the connection uses workload
# identity federation); the role trusts an IAM OIDC provider for
# https://vstoken.dev.azure.com/<organization id>, audience api://AzureADTokenExchange
ASSUME_AWS_ROLE = [
    # botocore (`python -m sparkmlops.deploy.emr`) reads AWS_DEFAULT_REGION, not AWS_REGION
    'export AWS_DEFAULT_REGION="${AWS_REGION:?set the AWS_REGION pipeline variable}"',
    'read -r AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN < <(aws sts '
    'assume-role-with-web-identity --role-arn "$AWS_ROLE_ARN" --role-session-name '
    '"azure-devops-$BUILD_BUILDID" --web-identity-token "${idToken:?not set}" --query '
    "'Credentials.[AccessKeyId,SecretAccessKey,SessionToken]' --output text)",
    "export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN",
]


def _emr_stage(settings: Settings) -> dict[str, Any]:
    """EMR from Azure Pipelines: the AWS CLI with a role assumed by OIDC (ASSUME_AWS_ROLE).
    The AWS Toolkit's AWSShellScript@1 would do the same with an AWS service connection,
    but it is a marketplace task outside the published pipeline schema."""
    def aws_shell(name: str, lines: list[str], **extra: Any) -> dict[str, Any]:
        return {"task": "AzureCLI@2", "displayName": name, **extra, "inputs": {
            "azureSubscription": AZURE_CONNECTION, "scriptType": "bash",
            "scriptLocation": "inlineScript", "addSpnToEnvironment": True,
            "inlineScript": "\n".join(["set -euo pipefail", *ASSUME_AWS_ROLE, *lines]) + "\n"}}

    return {"stage": "deploy_emr", "dependsOn": "tests",
            "condition": ON_MAIN.format(branch=settings.deploy.github.branch),
            "jobs": [{"job": "deploy",
                      "variables": {"CONF_DIR": emr_conf_dir_of_commit(settings, COMMIT)},
                      "steps": [
                {"checkout": "self"},
                *_python_steps(local=False),
                aws_shell("Generate and upload the EMR files, update the schedules "
                          "(runs no job)", emr_deploy_lines(settings)),
                aws_shell("Run the job asked for",
                          ["JOB='${{ parameters.job }}'", *emr_run_lines(settings)],
                          condition=RUN_ASKED),
            ]}]}
