"""Issue 21, fault 2: Delta on EMR as AWS documents it for emr-spark-8.0.0 (Spark 4.0.2,
Delta 4.0.0): the cluster's classifications, the steps' and Serverless' settings and
jars, and the ``delta`` Python module on the nodes. Checked with botocore's EMR model."""

from __future__ import annotations

import json
from pathlib import Path

from sparkmlops.config import load_settings
from sparkmlops.deploy import emr_add_steps, emr_start_job_run, render
from sparkmlops.deploy.emr import (
    delta_python_requirement,
    emr_cluster_configurations,
    emr_run_job_flow,
)
from tests.unit.deploy.test_deploy import EMR_SETTINGS, _deploy, _error_line, _validate

DELTA_SQL = ["spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension",
             "spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog"]


def _emr(tmp_path: Path, *extra: str):
    return load_settings("emr", "penguins",
                         overrides=[f"project_dir={tmp_path}", *EMR_SETTINGS, *extra])


def test_the_cluster_enables_delta_with_the_classifications_aws_documents(tmp_path):
    assert emr_cluster_configurations(_emr(tmp_path)) == [
        {"Classification": "delta-defaults", "Properties": {"delta.enabled": "true"}},
        {"Classification": "spark-defaults", "Properties": {
            "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
            "spark.sql.catalog.spark_catalog":
                "org.apache.spark.sql.delta.catalog.DeltaCatalog"}},
        {"Classification": "spark-env", "Properties": {}, "Configurations": [
            {"Classification": "export",
             "Properties": {"PYSPARK_PYTHON": "/usr/bin/python3.11"}}]},
    ]


def test_run_job_flow_is_a_valid_request_for_a_long_running_delta_cluster(tmp_path):
    settings = _emr(tmp_path, "deploy.emr.cluster.log_uri=s3://acme-ml/logs/cluster/",
                    "deploy.emr.cluster.subnet_id=subnet-0abc")
    body = emr_run_job_flow(settings)

    _validate("emr", "RunJobFlow", body)
    assert body == {
        "Name": "sparkmlops-penguins-cluster",
        "ReleaseLabel": "emr-spark-8.0.0",
        "Applications": [{"Name": "Spark"}],
        "Configurations": emr_cluster_configurations(settings),
        "Instances": {
            "InstanceGroups": [
                {"Name": "primary", "InstanceRole": "MASTER", "InstanceCount": 1,
                 "InstanceType": "m5.xlarge"},
                {"Name": "core", "InstanceRole": "CORE", "InstanceCount": 2,
                 "InstanceType": "m5.xlarge"}],
            "KeepJobFlowAliveWhenNoSteps": True,
            "TerminationProtected": False,
            "Ec2SubnetId": "subnet-0abc"},
        "BootstrapActions": [{"Name": "sparkmlops", "ScriptBootstrapAction": {
            "Path": "s3://acme-ml/sparkmlops/bootstrap.sh", "Args": []}}],
        "JobFlowRole": "EMR_EC2_DefaultRole",
        "ServiceRole": "EMR_DefaultRole_V2",
        "VisibleToAllUsers": True,
        "Tags": [{"Key": "sparkmlops_dataset", "Value": "penguins"}],
        "LogUri": "s3://acme-ml/logs/cluster/",
    }


def test_deploy_writes_the_cluster_files(tmp_path):
    settings = _emr(tmp_path)
    files = render(settings, ["emr"], out_dir=tmp_path)

    assert json.loads(files[tmp_path / "emr/cluster-configurations.json"]) == \
        emr_cluster_configurations(settings)
    assert json.loads(files[tmp_path / "emr/run-job-flow.json"]) == emr_run_job_flow(settings)
    readme = files[tmp_path / "emr/README.md"]
    assert ("3. Cluster: `python -m sparkmlops.deploy.emr emr run_job_flow "
            "emr/run-job-flow.json` prints its `JobFlowId`") in readme
    assert "Release `emr-spark-8.0.0` (Delta 4.0.0)" in readme


def test_every_step_sets_deltas_extension_and_catalog(tmp_path):
    steps = emr_add_steps(_emr(tmp_path), ["batch", "continuous", "maintain"])["Steps"][1:]

    for step in steps:
        args = step["HadoopJarStep"]["Args"]
        assert args[5:9] == ["--conf", DELTA_SQL[0], "--conf", DELTA_SQL[1]], args


def test_serverless_runs_name_emrs_delta_jars_and_settings(tmp_path):
    body = emr_start_job_run(_emr(tmp_path), "batch")

    _validate("emr-serverless", "StartJobRun", body)
    params = body["jobDriver"]["sparkSubmit"]["sparkSubmitParameters"].split(" ")
    assert params[2:8] == [
        "--conf", "spark.jars=/usr/share/aws/delta/lib/delta-spark.jar,"
                  "/usr/share/aws/delta/lib/delta-storage.jar",
        "--conf", DELTA_SQL[0], "--conf", DELTA_SQL[1]]


def test_bootstrap_installs_deltas_python_api_at_the_releases_version(tmp_path):
    settings = _emr(tmp_path)
    script = render(settings, ["emr"], out_dir=tmp_path)[tmp_path / "emr/bootstrap.sh"]

    assert delta_python_requirement(settings) == "delta-spark==4.0.0"
    assert "\nDELTA=delta-spark==4.0.0\n" in script
    # after the wheel, without the lock (it pins the suite's Delta 4.4) and without
    # dependencies (delta-spark requires pyspark)
    assert script.index('-m pip install --quiet --no-deps "$DELTA"') > script.index(
        '-m pip install --quiet -c "$work/constraints.txt" "$work/${WHEEL_FILE}[aws]"')
    assert [line for line in script.splitlines() if "pip install" in line] == [
        'sudo "$PYTHON" -m pip install --quiet -c "$work/constraints.txt" '
        '"$work/${WHEEL_FILE}[aws]"',
        'sudo "$PYTHON" -m pip install --quiet --no-deps "$DELTA"']


def test_a_release_whose_delta_is_unknown_needs_delta_version(tmp_path, capsys):
    code = _deploy(tmp_path, "emr", "--target", "emr",
                   *[a for s in EMR_SETTINGS for a in ("--set", s)],
                   "--set", "deploy.emr.release_label=emr-spark-9.0.0")

    assert code == 2
    line = _error_line(capsys)
    assert line.startswith("sparkmlops deploy: ConfigError: invalid config: ")
    assert line.endswith(
        "deploy.emr: Value error, release_label "
        "'emr-spark-9.0.0': its Delta version is not known here (known: emr-spark-8.0.0); "
        "set delta_version to the release's Delta Lake version")


def test_delta_version_follows_the_setting(tmp_path):
    settings = _emr(tmp_path, "deploy.emr.release_label=emr-spark-9.0.0",
                    "deploy.emr.delta_version=4.1.0")

    assert delta_python_requirement(settings) == "delta-spark==4.1.0"
    assert emr_run_job_flow(settings)["ReleaseLabel"] == "emr-spark-9.0.0"
