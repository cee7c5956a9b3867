"""The GitHub Actions workflows of a project that uses sparkmlops: they install the
released wheel (no sparkmlops checkout), deploy on main without running a job, declare
their permissions, and authenticate without a stored token. No network."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml

from sparkmlops import __version__
from sparkmlops.config import load_settings
from sparkmlops.deploy import github_workflows

WHEEL = f"sparkmlops-{__version__}-py3-none-any.whl"
EMR = ["dataset.source.path=s3a://acme-ml/landing/penguins",
       "storage.root=s3a://acme-ml/sparkmlops/lake",
       "tracking.tracking_uri=http://mlflow.internal:5000",
       "deploy.wheel=s3://acme-ml/sparkmlops/sparkmlops-{version}-py3-none-any.whl",
       "deploy.emr.cluster_id=j-2AXXXXXXGAPLF",
       "deploy.emr.scheduler_role_arn=arn:aws:iam::123456789012:role/sparkmlops-scheduler"]
DATABRICKS = ["dataset.source.path=/Volumes/main/sparkmlops/landing/penguins",
              "deploy.wheel=/Volumes/main/sparkmlops/wheels/sparkmlops-{version}-py3-none-any.whl"]
RUN_ASKED = "github.event_name == 'workflow_dispatch' && inputs.job != 'none'"
# what starts a job: never on a push
RUNS_A_JOB = ("add-steps", "start-job-run", "bundle run")


def _workflows(tmp_path: Path, platform: str, *extra: str) -> dict[str, dict]:
    overrides = EMR if platform == "emr" else DATABRICKS
    settings = load_settings(platform, "penguins",
                             overrides=[f"project_dir={tmp_path}", *overrides, *extra])
    return github_workflows(settings, [platform], out_dir=tmp_path)


def _deploy(tmp_path: Path, platform: str, *extra: str) -> dict:
    return _workflows(tmp_path, platform, *extra)[
        f".github/workflows/sparkmlops-penguins-deploy-{platform}.yml"]


def _runs(workflow: dict) -> list[dict]:
    return workflow["jobs"]["deploy"]["steps"]


@pytest.mark.parametrize("platform", ["emr", "databricks"])
def test_a_push_to_main_deploys_and_runs_a_job_only_when_dispatched_with_one(tmp_path, platform):
    workflow = _deploy(tmp_path, platform, *(
        ["deploy.emr.serverless=null"] if platform == "emr" else []))

    assert workflow["on"] == {
        "push": {"branches": ["main"]},
        "workflow_dispatch": {"inputs": {"job": {
            "description": "run this job once after deploying (none: deploy only)",
            "type": "choice", "options": ["none", "batch", "continuous", "maintain"],
            "default": "none"}}}}
    on_push = [s.get("run", "") for s in _runs(workflow) if "if" not in s]
    assert [cmd for run in on_push for cmd in RUNS_A_JOB if cmd in run] == []
    asked = [s for s in _runs(workflow) if "if" in s]
    assert [(s["if"], s["env"]) for s in asked] == [(RUN_ASKED, {"JOB": "${{ inputs.job }}"})]
    expected = {"emr": "python -m sparkmlops.deploy.emr emr add_job_flow_steps "
                       "run/emr/add-steps.json",
                "databricks": 'databricks bundle run -t prod --no-wait '
                              '"sparkmlops_penguins_$JOB"'}[platform]
    assert asked[0]["run"].splitlines()[-1] == expected


@pytest.mark.parametrize("platform", ["emr", "databricks"])
def test_the_workflows_install_the_released_wheel_not_a_sparkmlops_checkout(tmp_path, platform):
    workflows = _workflows(tmp_path, platform)
    text = json.dumps(workflows)

    for checkout_only in ("pip wheel", "make test", "deps/", " jobs ", "python -m build"):
        assert checkout_only not in text
    tests = workflows[".github/workflows/sparkmlops-penguins-tests.yml"]
    assert [s.get("run") for s in tests["jobs"]["tests"]["steps"]][-2:] == [
        "python -m pip install -r requirements.txt -c constraints.txt\n",
        "python -m pytest tests"]
    deploy = _runs(workflows[f".github/workflows/sparkmlops-penguins-deploy-{platform}.yml"])
    assert deploy[2]["run"] == (f"python -m pip install 'sparkmlops[aws]=={__version__}' "
                                "-c constraints.txt\n")
    run = deploy[-2]["run"].splitlines()
    assert f"python -m pip download --no-deps --dest dist sparkmlops=={__version__}" in run


def test_the_emr_workflow_uploads_the_wheel_job_scripts_lock_and_a_conf_dir_per_commit(tmp_path):
    workflow = _deploy(tmp_path, "emr", "deploy.emr.serverless=null",
                       "deploy.emr.failure_topic_arn=arn:aws:sns:eu-west-1:123456789012:oncall")

    assert workflow["jobs"]["deploy"]["env"]["CONF_DIR"] == (
        "s3://acme-ml/sparkmlops/conf/${{ github.sha }}")
    job_script = ("python -c 'import sys; from sparkmlops.deploy.common import job_script; "
                  "sys.stdout.write(job_script(sys.argv[1]))' {0} > dist/jobs/{0}.py")
    assert _runs(workflow)[-2]["run"].splitlines() == [
        "sparkmlops deploy --env emr --dataset penguins --conf-dir conf --target emr --out . "
        '--set "deploy.conf_dir=$CONF_DIR"',
        f"python -m pip download --no-deps --dest dist sparkmlops=={__version__}",
        "mkdir -p dist/jobs",
        job_script.format("maintain"), job_script.format("pipeline"),
        'aws s3 sync --only-show-errors --delete conf "${CONF_DIR/#s3a:/s3:}"',
        f"aws s3 cp --only-show-errors dist/{WHEEL} s3://acme-ml/sparkmlops/{WHEEL}",
        "aws s3 cp --only-show-errors constraints.txt "
        f"s3://acme-ml/sparkmlops/sparkmlops-{__version__}-constraints.txt",
        "aws s3 cp --only-show-errors --recursive dist/jobs s3://acme-ml/sparkmlops/jobs",
        "aws s3 cp --only-show-errors emr/bootstrap.sh s3://acme-ml/sparkmlops/bootstrap.sh",
        *[f"aws scheduler update-schedule --cli-input-json file://emr/schedule-{job}.json || "
          f"aws scheduler create-schedule --cli-input-json file://emr/schedule-{job}.json"
          for job in ("continuous", "maintain")],
        "aws events put-rule --cli-input-json file://emr/failure-rule.json",
        "aws events put-targets --cli-input-json file://emr/failure-targets.json"]


def test_the_serverless_venv_is_packed_from_the_wheel_and_the_projects_constraints(tmp_path):
    workflow = _deploy(tmp_path, "emr", "deploy.emr.serverless={application_id: 00fabc, "
                       "execution_role_arn: 'arn:aws:iam::123456789012:role/job'}")

    run = _runs(workflow)[-2]["run"]
    assert (f"/opt/venv/bin/pip install -q -c constraints.txt venv-pack==0.2.0 "
            f"dist/{WHEEL}") in run
    assert (f"aws s3 cp --only-show-errors dist/sparkmlops-venv.tar.gz "
            f"s3://acme-ml/sparkmlops/sparkmlops-{__version__}-venv.tar.gz") in run


@pytest.mark.parametrize("platform", ["emr", "databricks"])
def test_every_workflow_declares_its_permissions(tmp_path, platform):
    workflows = _workflows(tmp_path, platform)

    assert {name.rsplit("/", 1)[1]: w["permissions"] for name, w in workflows.items()} == {
        "sparkmlops-penguins-tests.yml": {"contents": "read"},
        f"sparkmlops-penguins-deploy-{platform}.yml": {"contents": "read",
                                                        "id-token": "write"}}


def test_databricks_ci_signs_in_with_oidc_of_a_service_principal_not_a_token(tmp_path):
    workflow = _deploy(tmp_path, "databricks")

    env = workflow["jobs"]["deploy"]["env"]
    assert {k: env[k] for k in ("DATABRICKS_HOST", "DATABRICKS_AUTH_TYPE",
                                "DATABRICKS_CLIENT_ID")} == {
        "DATABRICKS_HOST": "${{ vars.DATABRICKS_HOST }}",
        "DATABRICKS_AUTH_TYPE": "github-oidc",
        "DATABRICKS_CLIENT_ID": "${{ vars.DATABRICKS_CLIENT_ID }}"}
    assert "TOKEN" not in json.dumps(workflow)
    assert {"uses": "databricks/setup-cli@v0.298.0"} in _runs(workflow)
    assert _runs(workflow)[-2]["run"].splitlines()[-4:] == [
        f"databricks fs cp --overwrite dist/{WHEEL} dbfs:/Volumes/main/sparkmlops/wheels/{WHEEL}",
        "cd databricks", "databricks bundle validate -t prod",
        "databricks bundle deploy -t prod"]


def test_a_databricks_conf_dir_outside_the_bundle_gets_a_folder_per_commit(tmp_path):
    workflow = _deploy(tmp_path, "databricks", "deploy.conf_dir=/Volumes/main/ml/conf")

    assert workflow["jobs"]["deploy"]["env"]["CONF_DIR"] == (
        "/Volumes/main/ml/conf/${{ github.sha }}")
    run = _runs(workflow)[-2]["run"].splitlines()
    assert run[0].endswith('--set "deploy.conf_dir=$CONF_DIR"')
    # `databricks fs cp` would take a bare /Volumes/... for a local folder
    assert 'databricks fs cp --recursive --overwrite conf "dbfs:$CONF_DIR"' in run


def test_a_private_index_comes_from_repository_variables(tmp_path):
    for workflow in _workflows(tmp_path, "emr").values():
        job = next(iter(workflow["jobs"].values()))
        assert {k: job["env"][k] for k in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL")} == {
            "PIP_INDEX_URL": "${{ vars.PIP_INDEX_URL || 'https://pypi.org/simple' }}",
            "PIP_EXTRA_INDEX_URL": "${{ vars.PIP_EXTRA_INDEX_URL }}"}


@pytest.mark.parametrize("platform", ["emr", "databricks"])
def test_the_workflows_validate_against_the_github_workflow_schema(tmp_path, platform):
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    validator = jsonschema.Draft7Validator(
        json.loads((vendor / "github-workflows.json").read_text()))

    for name, workflow in _workflows(tmp_path, platform).items():
        loaded = yaml.safe_load(yaml.safe_dump(workflow))
        assert [e.message for e in validator.iter_errors(loaded)] == [], name


def test_the_serverless_venv_has_the_releases_delta_module_without_pyspark(tmp_path):
    workflow = _deploy(tmp_path, "emr",
                       "deploy.emr.serverless={application_id: 00fabcdefg123456, "
                       "execution_role_arn: 'arn:aws:iam::123456789012:role/job'}")

    run = "\n".join(s.get("run", "") for s in _runs(workflow))
    pack = next(line for line in run.splitlines() if "venv-pack -p" in line)
    # EMR's Spark is the image's: delta-spark's pyspark requirement must not replace it
    assert "/opt/venv/bin/pip install -q --no-deps delta-spark==4.0.0 &&" in pack
    assert pack.index("--no-deps delta-spark") < pack.index("venv-pack -p")
