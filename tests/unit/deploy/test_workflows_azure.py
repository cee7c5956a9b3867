"""``init --ci azure-devops``: azure-pipelines.yml, checked against the Azure Pipelines
schema vendored by check-jsonschema; tests on pull requests, deploy on main, a job run
only when the pipeline is started with ``job`` set. No network."""

from __future__ import annotations

import json
from importlib import resources

import jsonschema
import pytest

from sparkmlops import __version__
from sparkmlops.config import load_settings
from sparkmlops.deploy.azure import azure_pipelines

RUN_ASKED = "and(succeeded(), ne('${{ parameters.job }}', 'none'))"
ON_MAIN = ("and(succeeded(), eq(variables['Build.SourceBranch'], 'refs/heads/main'), "
           "ne(variables['Build.Reason'], 'PullRequest'))")


def _pipeline(tmp_path) -> dict:
    emr = load_settings("emr", "penguins", overrides=[
        f"project_dir={tmp_path}", "dataset.source.path=s3a://acme-ml/landing/penguins",
        "storage.root=s3a://acme-ml/lake", "tracking.tracking_uri=http://mlflow:5000",
        "deploy.wheel=s3://acme-ml/sparkmlops/sparkmlops-{version}-py3-none-any.whl",
        "deploy.emr.cluster_id=j-2AXXXXXXGAPLF", "deploy.emr.serverless=null"])
    databricks = load_settings("databricks", "penguins", overrides=[
        f"project_dir={tmp_path}", "dataset.source.path=/Volumes/main/ml/landing/penguins",
        "deploy.wheel=/Volumes/main/ml/wheels/sparkmlops-{version}-py3-none-any.whl"])
    return azure_pipelines({"emr": emr, "databricks": databricks})["azure-pipelines.yml"]


def _validator() -> jsonschema.Draft7Validator:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    return jsonschema.Draft7Validator(
        json.loads((vendor / "azure-pipelines.json").read_text()))


def test_the_pipeline_validates_against_the_azure_pipelines_schema(tmp_path):
    assert [e.message[:200] for e in _validator().iter_errors(_pipeline(tmp_path))] == []


def test_the_schema_check_rejects_a_task_azure_pipelines_does_not_have(tmp_path):
    pipeline = _pipeline(tmp_path)
    pipeline["stages"][1]["jobs"][0]["steps"][-1]["task"] = "AWSShellScript@1"

    assert list(_validator().iter_errors(pipeline))


def test_tests_on_pull_requests_deploy_on_main_and_a_job_runs_only_when_asked(tmp_path):
    pipeline = _pipeline(tmp_path)

    assert pipeline["pr"] == pipeline["trigger"] == {"branches": {"include": ["main"]}}
    assert pipeline["parameters"] == [{
        "name": "job", "displayName": "Run this job once after deploying", "type": "string",
        "default": "none", "values": ["none", "batch", "continuous", "maintain"]}]
    tests, emr, databricks = pipeline["stages"]
    assert [s.get("script") for s in tests["jobs"][0]["steps"]][-2:] == [
        "python -m pip install -r requirements.txt -c constraints.txt\n",
        "python -m pytest tests"]
    for stage, starts in ((emr, "python -m sparkmlops.deploy.emr emr add_job_flow_steps"),
                          (databricks, "databricks bundle run")):
        assert stage["condition"] == ON_MAIN
        steps = [s for s in stage["jobs"][0]["steps"] if "task" in s and "inputs" in s
                 and "inlineScript" in s["inputs"]]
        assert [s.get("condition") for s in steps] == [None, RUN_ASKED]
        assert starts not in steps[0]["inputs"]["inlineScript"]
        assert starts in steps[1]["inputs"]["inlineScript"]
    assert emr["jobs"][0]["variables"] == {
        "CONF_DIR": "s3://acme-ml/sparkmlops/conf/$(Build.SourceVersion)"}


@pytest.mark.parametrize("stage", [1, 2])
def test_both_clouds_sign_in_through_the_service_connection_without_stored_keys(tmp_path,
                                                                                 stage):
    steps = _pipeline(tmp_path)["stages"][stage]["jobs"][0]["steps"]
    tasks = [s for s in steps if s.get("task") == "AzureCLI@2"]

    assert len(tasks) == 2
    text = json.dumps(steps)
    for stored in ("DATABRICKS_TOKEN", "AWS_SECRET_ACCESS_KEY: ", "servicePrincipalKey"):
        assert stored not in text
    if stage == 1:  # EMR: an AWS role trusting the connection's OIDC token
        assert all(t["inputs"]["addSpnToEnvironment"] is True for t in tasks)
        assert "aws sts assume-role-with-web-identity" in tasks[0]["inputs"]["inlineScript"]
    else:
        assert all(t["env"]["DATABRICKS_AUTH_TYPE"] == "azure-cli" for t in tasks)
    assert f"'sparkmlops[aws]=={__version__}' -c constraints.txt" in text


def test_the_emr_tasks_give_botocore_the_region_of_the_aws_region_variable(tmp_path):
    # botocore (python -m sparkmlops.deploy.emr) reads AWS_DEFAULT_REGION, not AWS_REGION
    steps = _pipeline(tmp_path)["stages"][1]["jobs"][0]["steps"]
    scripts = [s["inputs"]["inlineScript"].splitlines() for s in steps
               if s.get("task") == "AzureCLI@2"]

    assert len(scripts) == 2
    for lines in scripts:
        assert lines[1] == ('export AWS_DEFAULT_REGION="${AWS_REGION:?set the AWS_REGION '
                            'pipeline variable}"')
    assert any("python -m sparkmlops.deploy.emr" in line for line in scripts[1])


def test_the_service_connection_is_the_configured_one(tmp_path):
    # the committed pipeline must equal deploy's output, so its name comes from config
    emr = load_settings("emr", "penguins", overrides=[
        f"project_dir={tmp_path}", "dataset.source.path=s3a://acme-ml/landing/penguins",
        "storage.root=s3a://acme-ml/lake", "tracking.tracking_uri=http://mlflow:5000",
        "deploy.wheel=s3://acme-ml/sparkmlops/sparkmlops-{version}-py3-none-any.whl",
        "deploy.emr.cluster_id=j-2AXXXXXXGAPLF", "deploy.github.azure_service_connection=ml-arm"])

    steps = azure_pipelines({"emr": emr})["azure-pipelines.yml"]["stages"][1]["jobs"][0][
        "steps"]
    assert [s["inputs"]["azureSubscription"] for s in steps if s.get("task") == "AzureCLI@2"
            ] == ["ml-arm", "ml-arm"]
