"""Issue 21, faults 1 and 3: the cluster sees the project's conf dir, a path of this
machine is refused at deploy, and secrets travel by reference (never by value)."""

from __future__ import annotations

import json
from pathlib import Path

import botocore.session
import pytest
from botocore.stub import Stubber

from sparkmlops.cli import main
from sparkmlops.config import load_settings
from sparkmlops.deploy import databricks_bundle, emr_add_steps, emr_start_job_run, render
from sparkmlops.secrets import (
    AWS_SECRETS_ENV,
    SecretUnavailableError,
    parse_aws_secrets,
    resolve_aws_secrets,
)
from tests.unit.deploy.test_deploy import (
    DATABRICKS_PROJECT,
    EMR_SETTINGS,
    _bundle_jobs,
    _deploy,
    _error_line,
)

ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mlflow-token-AbCdEf"
TOKEN_VALUE = "s3cr3t-value-never-in-a-file"
SECRETS = ("deploy.secrets={MLFLOW_TRACKING_TOKEN: {databricks: ml-scope/mlflow-token, "
           f"aws_secret_arn: '{ARN}'}}}}")


def _emr(tmp_path: Path, *extra: str):
    return load_settings("emr", "penguins",
                         overrides=[f"project_dir={tmp_path}", *EMR_SETTINGS, *extra])


def _databricks(tmp_path: Path, *extra: str):
    return load_settings("databricks", "penguins", overrides=[
        f"project_dir={tmp_path}", *DATABRICKS_PROJECT, *extra])


# ---------------------------------------------------------------- the conf dir travels


def test_every_emr_job_names_the_conf_dir_beside_the_wheel(tmp_path):
    settings = _emr(tmp_path)

    steps = emr_add_steps(settings, ["batch", "continuous", "maintain"])["Steps"]
    runs = [emr_start_job_run(settings, job) for job in ("batch", "maintain")]

    for args in [s["HadoopJarStep"]["Args"] for s in steps[1:]] + [
            r["jobDriver"]["sparkSubmit"]["entryPointArguments"] for r in runs]:
        assert args[-2:] == ["--conf-dir", "s3://acme-ml/sparkmlops/conf"], args


def test_every_databricks_task_names_the_conf_dir(tmp_path):
    jobs = _bundle_jobs(databricks_bundle(_databricks(tmp_path), out_dir=tmp_path))

    assert {key: job["tasks"][0]["python_wheel_task"]["parameters"][-2:]
            for key, job in jobs.items()} == {
        f"sparkmlops_penguins_{job}": ["--conf-dir", "${workspace.file_path}/conf"]
        for job in ("batch", "continuous", "maintain")}


def test_an_explicit_conf_dir_wins(tmp_path):
    settings = _emr(tmp_path, "deploy.conf_dir=s3://acme-ml/shared/conf")

    args = emr_add_steps(settings, ["batch"])["Steps"][1]["HadoopJarStep"]["Args"]

    assert args[-2:] == ["--conf-dir", "s3://acme-ml/shared/conf"]


@pytest.mark.parametrize(("target", "extra", "expected"), [
    ("emr", ["dataset.source.path=data/sample/penguins/landing"],
     "sparkmlops deploy: ConfigError: --target emr: dataset.source.path "
     "'data/sample/penguins/landing' is relative (on emr the project dir is the conf dir's "
     "parent, s3://acme-ml/sparkmlops, where nothing uploads data); set them in "
     "conf/emr.yml (a URI where the data is, or project_dir: the project's root in the lake)"),
    ("emr", ["state_dir=state"],
     "sparkmlops deploy: ConfigError: --target emr: state_dir '{tmp}/state' is not a folder "
     "the emr driver has (set an absolute path, e.g. /mnt/tmp/sparkmlops); set them in "
     "conf/emr.yml (a URI where the data is, or project_dir: the project's root in the lake)"),
    ("databricks", ["dataset.source.path='{project_dir}/landing'", "storage.catalog=null",
                    "storage.schema=null", "storage.root=lake",
                    "tracking.registry_uri=databricks"],
     "sparkmlops deploy: ConfigError: --target databricks: dataset.source.path "
     "'{tmp}/landing' is a path of this machine's project; storage.root 'lake' is relative "
     "(on databricks the project dir is the conf dir's parent, ${workspace.file_path}, "
     "where nothing uploads data); set them in conf/databricks.yml (a URI where the data "
     "is, or project_dir: the project's root in the lake)"),
])
def test_a_path_that_cannot_exist_on_the_cluster_is_one_line_at_deploy(
        tmp_path, capsys, target, extra, expected):
    sets = [a for s in extra for a in ("--set", s)]
    if target == "emr":
        sets = [a for s in EMR_SETTINGS for a in ("--set", s)] + sets

    code = _deploy(tmp_path, target, "--target", target, *sets)

    assert code == 2
    assert _error_line(capsys) == expected.replace("{tmp}", str(tmp_path))
    assert not list(tmp_path.rglob("*.json")) and not list(tmp_path.rglob("*.yml"))


def test_relative_data_paths_resolve_in_the_lake_when_project_dir_is_a_uri(tmp_path):
    settings = load_settings("emr", "penguins", overrides=[
        *EMR_SETTINGS, "dataset.source.path=landing/penguins",
        "project_dir=s3a://acme-ml/penguins-project"])

    files = render(settings, ["emr"], out_dir=tmp_path)

    assert tmp_path / "emr/add-steps.json" in files


# ---------------------------------------------------------------- secrets by reference


def test_a_secret_is_a_reference_in_every_generated_file(tmp_path):
    code = _deploy(tmp_path, "emr", "--target", "emr",
                   *[a for s in EMR_SETTINGS for a in ("--set", s)], "--set", SECRETS)
    assert code == 0
    code = _deploy(tmp_path / "dbx", "databricks", "--target", "databricks", "--set", SECRETS)
    assert code == 0

    texts = {p: p.read_text() for p in tmp_path.rglob("*") if p.is_file()}
    assert not [p for p, text in texts.items() if TOKEN_VALUE in text]
    steps = json.loads((tmp_path / "emr/add-steps.json").read_text())["Steps"]
    assert (f"spark.yarn.appMasterEnv.{AWS_SECRETS_ENV}=MLFLOW_TRACKING_TOKEN={ARN}"
            in steps[1]["HadoopJarStep"]["Args"])
    run = json.loads((tmp_path / "emr/start-job-run.json").read_text())
    assert (f"spark.emr-serverless.driverEnv.{AWS_SECRETS_ENV}=MLFLOW_TRACKING_TOKEN={ARN}"
            in run["jobDriver"]["sparkSubmit"]["sparkSubmitParameters"].split(" "))
    import yaml
    job = yaml.safe_load((tmp_path / "dbx/databricks/resources/batch-job.yml").read_text())
    cluster = job["resources"]["jobs"]["sparkmlops_penguins_batch"]["job_clusters"][0]
    assert cluster["new_cluster"]["spark_env_vars"]["MLFLOW_TRACKING_TOKEN"] == \
        "{{secrets/ml-scope/mlflow-token}}"


@pytest.mark.parametrize(("value", "expected"), [
    ("deploy.secrets={MLFLOW_TRACKING_TOKEN: {aws_secret_arn: 'arn:aws:s3:::bucket'}}",
     "deploy.secrets.MLFLOW_TRACKING_TOKEN.aws_secret_arn: String should match pattern"),
    ("deploy.secrets={mlflow-token: {databricks: a/b}}",
     "deploy.secrets.mlflow-token.[key]: String should match pattern"),
    ("deploy.secrets={MLFLOW_TRACKING_TOKEN: {databricks: 'no-key'}}",
     "deploy.secrets.MLFLOW_TRACKING_TOKEN.databricks: String should match pattern"),
])
def test_a_malformed_secret_reference_is_refused_at_load(tmp_path, capsys, value, expected):
    code = _deploy(tmp_path, "databricks", "--target", "databricks", "--set", value)

    assert code == 2
    assert expected in _error_line(capsys)


def test_a_secret_without_a_reference_for_the_target_is_refused(tmp_path, capsys):
    code = _deploy(tmp_path, "databricks", "--target", "databricks", "--set",
                   f"deploy.secrets={{MLFLOW_TRACKING_TOKEN: {{aws_secret_arn: '{ARN}'}}}}")

    assert code == 2
    assert _error_line(capsys) == (
        "sparkmlops deploy: ConfigError: --target databricks: deploy.secrets "
        "['MLFLOW_TRACKING_TOKEN'] name no databricks (where the databricks job reads them)")


def _stubbed(replies: list[dict]):
    client = botocore.session.get_session().create_client(
        "secretsmanager", region_name="eu-west-1", aws_access_key_id="x",
        aws_secret_access_key="x")
    stubber = Stubber(client)
    for reply in replies:
        if "error" in reply:
            stubber.add_client_error("get_secret_value", service_error_code=reply["error"],
                                     service_message="not allowed",
                                     expected_params={"SecretId": ARN})
        else:
            stubber.add_response("get_secret_value", reply, {"SecretId": ARN})
    stubber.activate()
    regions: list[str] = []
    return client, regions, lambda region: regions.append(region) or client


def test_the_job_reads_each_referenced_secret_at_start():
    client, regions, client_for = _stubbed([{"ARN": ARN, "Name": "mlflow-token",
                                             "SecretString": TOKEN_VALUE}])
    env = {AWS_SECRETS_ENV: f"MLFLOW_TRACKING_TOKEN={ARN}"}

    assert resolve_aws_secrets(env, client_for=client_for) == ["MLFLOW_TRACKING_TOKEN"]

    assert env["MLFLOW_TRACKING_TOKEN"] == TOKEN_VALUE
    assert regions == ["eu-west-1"]


def test_a_variable_already_set_is_not_read_again():
    env = {AWS_SECRETS_ENV: f"MLFLOW_TRACKING_TOKEN={ARN}", "MLFLOW_TRACKING_TOKEN": "mine"}

    assert resolve_aws_secrets(env, client_for=lambda region: pytest.fail("read")) == []
    assert env["MLFLOW_TRACKING_TOKEN"] == "mine"


def test_an_unreadable_secret_stops_the_job_with_one_line(monkeypatch, capsys):
    _, _, client_for = _stubbed([{"error": "AccessDeniedException"}])
    monkeypatch.setenv(AWS_SECRETS_ENV, f"MLFLOW_TRACKING_TOKEN={ARN}")
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    monkeypatch.setattr("sparkmlops.secrets._botocore_client", client_for)

    code = main(["deploy", "--target", "emr", "--out", "unused"])

    assert code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == [
        f"sparkmlops deploy: SecretUnavailableError: secret MLFLOW_TRACKING_TOKEN: cannot "
        f"read {ARN}: ClientError: An error occurred (AccessDeniedException) when calling "
        "the GetSecretValue operation: not allowed"]


def test_a_malformed_reference_list_is_refused():
    with pytest.raises(SecretUnavailableError.__mro__[1], match="is not NAME=<Secrets"):
        parse_aws_secrets("MLFLOW_TRACKING_TOKEN=s3://bucket/token")
