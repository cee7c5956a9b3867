"""`sparkmlops deploy`: the generated definitions, checked offline against each service's
own schema (botocore's EMR / EMR Serverless models, databricks-sdk's JobSettings, the
GitHub workflow schema vendored by check-jsonschema). No Spark, no network."""

from __future__ import annotations

import copy
import json
import subprocess
from importlib import resources
from pathlib import Path

import botocore.handlers
import botocore.session
import botocore.validate
import jsonschema
import pytest
import yaml
from databricks.sdk.service.jobs import JobSettings

from sparkmlops import __version__
from sparkmlops.cli import main
from sparkmlops.config import load_settings
from sparkmlops.deploy import (
    aws_cron,
    databricks_bundle,
    emr_add_steps,
    emr_failure_rule,
    emr_schedules,
    emr_start_job_run,
    github_workflows,
    render,
)
from sparkmlops.errors import ConfigError

WHEEL = f"sparkmlops-{__version__}-py3-none-any.whl"
# what a project's own conf/emr.yml sets before anything can run on EMR (the packaged
# emr.yml refuses its CHANGE-ME bucket and tracking on the driver's disk)
EMR_PROJECT = ["storage.root=s3a://acme-ml/sparkmlops/lake",
               "tracking.tracking_uri=http://mlflow.internal:5000",
               "dataset.source.path=s3a://acme-ml/landing/penguins"]
# and before it can on Databricks: landing files the cluster can read
DATABRICKS_PROJECT = ["dataset.source.path=/Volumes/main/sparkmlops/landing/penguins"]
EMR_CONF_DIR = ["--conf-dir", "s3://acme-ml/sparkmlops/conf"]
DATABRICKS_CONF_DIR = ["--conf-dir", "${workspace.file_path}/conf"]
# the bundle target's catalog, schema, experiment and model (bundle variables)
DATABRICKS_VARIABLES = ["--set", "storage.catalog=${var.catalog}",
                        "--set", "storage.schema=${var.schema}",
                        "--set", "tracking.experiment=${var.experiment}",
                        "--set",
                        "dataset.model.name=${var.catalog}.${var.schema}.${var.model_name}"]
EMR_SETTINGS = [*EMR_PROJECT,
    "deploy.wheel=s3://acme-ml/sparkmlops/sparkmlops-{version}-py3-none-any.whl",
    "deploy.emr.cluster_id=j-2AXXXXXXGAPLF",
    "deploy.emr.serverless.application_id=00fabcdefg123456",
    "deploy.emr.serverless.execution_role_arn=arn:aws:iam::123456789012:role/sparkmlops-job",
    "deploy.emr.serverless.log_uri=s3://acme-ml/logs/",
    "deploy.env={MLFLOW_TRACKING_URI: 'http://mlflow.internal:5000'}",
    "deploy.emr.scheduler_role_arn=arn:aws:iam::123456789012:role/sparkmlops-scheduler",
    "deploy.emr.failure_topic_arn=arn:aws:sns:eu-west-1:123456789012:ml-oncall",
]


def _emr(tmp_path: Path, *extra: str):
    return load_settings("emr", "penguins",
                         overrides=[f"project_dir={tmp_path}", *EMR_SETTINGS, *extra])


def _databricks(tmp_path: Path, *extra: str):
    return load_settings("databricks", "penguins", overrides=[
        f"project_dir={tmp_path}", *DATABRICKS_PROJECT, "deploy.schedule.batch=0 30 1 ? * MON",
        "deploy.notifications.on_failure=[ml-oncall@example.com]",
        "deploy.permissions=[{level: CAN_MANAGE_RUN, group_name: ml-team},"
        " {level: CAN_VIEW, user_name: ana@example.com}]", *extra])


def _validate(service: str, operation: str, body: dict) -> None:
    model = botocore.session.get_session().get_service_model(service).operation_model(operation)
    params = copy.deepcopy(body)
    # what botocore does before every call: fill an idempotency token left out
    botocore.handlers.generate_idempotent_uuid(params=params, model=model)
    botocore.validate.validate_parameters(params, model.input_shape)



def _validate_job_role_policy(policy: dict) -> None:
    """``policy`` as IAM's PutRolePolicy takes it for the nodes' role."""
    _validate("iam", "PutRolePolicy", {"RoleName": "EMR_EC2_DefaultRole",
                                       "PolicyName": "sparkmlops-penguins-access",
                                       "PolicyDocument": json.dumps(policy)})


# ---------------------------------------------------------------- EMR


def test_add_steps_body_is_valid_for_emr_and_runs_each_job_in_order(tmp_path):
    body = emr_add_steps(_emr(tmp_path))

    _validate("emr", "AddJobFlowSteps", body)
    assert body["JobFlowId"] == "j-2AXXXXXXGAPLF"
    assert [s["Name"] for s in body["Steps"]] == ["sparkmlops-penguins-check-dependencies",
                                                 "sparkmlops-penguins-batch",
                                                 "sparkmlops-penguins-maintain"]
    assert body["Steps"][1] == {
        "Name": "sparkmlops-penguins-batch",
        "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": [
            "spark-submit", "--deploy-mode", "cluster",
            "--py-files", f"s3://acme-ml/sparkmlops/{WHEEL}",
            "--conf", "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension",
            "--conf", "spark.sql.catalog.spark_catalog="
                      "org.apache.spark.sql.delta.catalog.DeltaCatalog",
            "--conf", "spark.yarn.appMasterEnv.PYSPARK_PYTHON=/usr/bin/python3.11",
            "--conf", "spark.executorEnv.PYSPARK_PYTHON=/usr/bin/python3.11",
            "--conf", "spark.yarn.appMasterEnv.MLFLOW_TRACKING_URI=http://mlflow.internal:5000",
            "--conf", "spark.executorEnv.MLFLOW_TRACKING_URI=http://mlflow.internal:5000",
            "--num-executors", "2", "--executor-cores", "4", "--executor-memory", "8g",
            "s3://acme-ml/sparkmlops/jobs/pipeline.py",
            "--mode", "batch", "--env", "emr", "--dataset", "penguins", *EMR_CONF_DIR]},
    }
    assert body["Steps"][2]["HadoopJarStep"]["Args"][-7:] == [
        "s3://acme-ml/sparkmlops/jobs/maintain.py", "--env", "emr", "--dataset", "penguins",
        *EMR_CONF_DIR]


def test_an_invalid_add_steps_body_is_caught_by_the_validator(tmp_path):
    body = emr_add_steps(_emr(tmp_path))
    body["Steps"][1]["ActionOnFailure"] = 7  # the check this test suite relies on must bite

    with pytest.raises(botocore.exceptions.ParamValidationError, match="ActionOnFailure"):
        _validate("emr", "AddJobFlowSteps", body)


def test_start_job_run_body_is_valid_for_emr_serverless(tmp_path):
    body = emr_start_job_run(_emr(tmp_path, "deploy.emr.steps=[continuous]"), "continuous")

    _validate("emr-serverless", "StartJobRun", body)
    assert "clientToken" not in body  # each submission is a new run
    assert body["applicationId"] == "00fabcdefg123456"
    assert body["executionRoleArn"] == "arn:aws:iam::123456789012:role/sparkmlops-job"
    driver = body["jobDriver"]["sparkSubmit"]
    assert driver["entryPoint"] == "s3://acme-ml/sparkmlops/jobs/pipeline.py"
    assert driver["entryPointArguments"] == ["--mode", "continuous", "--env", "emr",
                                             "--dataset", "penguins", *EMR_CONF_DIR]
    params = driver["sparkSubmitParameters"].split(" ")
    assert params[:2] == ["--py-files", f"s3://acme-ml/sparkmlops/{WHEEL}"]
    assert (f"spark.archives=s3://acme-ml/sparkmlops/sparkmlops-{__version__}-venv.tar.gz"
            "#environment") in params
    assert "spark.emr-serverless.driverEnv.MLFLOW_TRACKING_URI=http://mlflow.internal:5000" \
        in params
    assert "spark.executor.instances=2" in params
    assert body["configurationOverrides"] == {"monitoringConfiguration": {
        "s3MonitoringConfiguration": {"logUri": "s3://acme-ml/logs/"}}}


@pytest.mark.parametrize(("quartz", "expected"), [
    ("0 0 3 * * ?", "cron(0 3 * * ? *)"),
    ("0 30 1 ? * MON", "cron(30 1 ? * MON *)"),
    ("0 */15 * * * ?", "cron(*/15 * * * ? *)"),
    ("0 0 12 ? * 2-6 2027", "cron(0 12 ? * 2-6 2027)"),
])
def test_quartz_crons_become_eventbridge_crons(quartz, expected):
    assert aws_cron(quartz) == expected


def test_a_schedule_firing_on_a_second_is_refused():
    with pytest.raises(ConfigError, match="fires at second 30; EventBridge schedules run on "
                                          "whole minutes"):
        aws_cron("30 0 3 * * ?")


def test_schedules_start_one_step_per_scheduled_job_on_the_cluster(tmp_path):
    settings = _emr(tmp_path, "deploy.schedule.timezone=Europe/Berlin")
    schedules = emr_schedules(settings)

    # base.yml schedules continuous hourly and maintain nightly; batch is on demand
    assert sorted(schedules) == ["continuous", "maintain"]
    for job, body in schedules.items():
        _validate("scheduler", "CreateSchedule", body)
        _validate("scheduler", "UpdateSchedule", body)
        request = json.loads(body["Target"]["Input"])
        _validate("emr", "AddJobFlowSteps", request)
        assert request == emr_add_steps(settings, [job])
        assert [s["Name"] for s in request["Steps"]] == [
            "sparkmlops-penguins-check-dependencies", f"sparkmlops-penguins-{job}"]
    maintain = schedules["maintain"]
    assert {k: v for k, v in maintain.items() if k not in ("Target", "Description")} == {
        "Name": "sparkmlops-penguins-maintain", "ScheduleExpression": "cron(0 3 * * ? *)",
        "ScheduleExpressionTimezone": "Europe/Berlin", "FlexibleTimeWindow": {"Mode": "OFF"},
        "State": "ENABLED"}
    assert maintain["Target"]["Arn"] == "arn:aws:scheduler:::aws-sdk:emr:addJobFlowSteps"
    assert maintain["Target"]["RoleArn"] == ("arn:aws:iam::123456789012:role/"
                                             "sparkmlops-scheduler")


def test_serverless_schedules_start_job_runs_with_the_invocation_as_client_token(tmp_path):
    settings = _emr(tmp_path, "deploy.emr.schedule_on=serverless",
                    "deploy.schedule.continuous=null")
    schedules = emr_schedules(settings)

    assert sorted(schedules) == ["maintain"]
    target = schedules["maintain"]["Target"]
    assert target["Arn"] == "arn:aws:scheduler:::aws-sdk:emrserverless:startJobRun"
    request = json.loads(target["Input"])
    _validate("emr-serverless", "StartJobRun", request)
    assert request == {**emr_start_job_run(settings, "maintain"),
                       "clientToken": "<aws.scheduler.execution-id>"}


def test_no_scheduler_role_no_schedules(tmp_path):
    settings = _emr(tmp_path, "deploy.emr.scheduler_role_arn=null")
    files = render(settings, ["emr"], out_dir=tmp_path)

    assert emr_schedules(settings) == {}
    assert not [p for p in files if p.name.startswith("schedule-")]
    assert ("6. No schedules: set `deploy.emr.scheduler_role_arn` to have EventBridge "
            "Scheduler run the jobs of `deploy.schedule`.") in files[tmp_path / "emr/README.md"]


def test_failed_steps_and_job_runs_are_published_to_the_topic(tmp_path):
    rule, targets = emr_failure_rule(_emr(tmp_path))

    _validate("events", "PutRule", rule)
    _validate("events", "PutTargets", targets)
    assert rule["Name"] == targets["Rule"] == "sparkmlops-penguins-failures"
    assert json.loads(rule["EventPattern"]) == {
        "source": ["aws.emr", "aws.emr-serverless"],
        "detail-type": ["EMR Step Status Change", "EMR Serverless Job Run State Change"],
        "detail": {"state": ["FAILED"], "$or": [
            {"clusterId": ["j-2AXXXXXXGAPLF"], "name": [{"prefix": "sparkmlops-penguins-"}]},
            {"applicationId": ["00fabcdefg123456"]}]}}
    assert targets["Targets"] == [{"Id": "sns",
                                   "Arn": "arn:aws:sns:eu-west-1:123456789012:ml-oncall"}]


def test_without_serverless_the_rule_matches_the_clusters_steps_only(tmp_path):
    rule, _ = emr_failure_rule(_emr(tmp_path, "deploy.emr.serverless=null"))

    assert json.loads(rule["EventPattern"]) == {
        "source": ["aws.emr"], "detail-type": ["EMR Step Status Change"],
        "detail": {"state": ["FAILED"], "clusterId": ["j-2AXXXXXXGAPLF"],
                   "name": [{"prefix": "sparkmlops-penguins-"}]}}


def test_bootstrap_installs_the_wheel_with_the_lock_as_constraints(tmp_path):
    files = render(_emr(tmp_path), ["emr"], out_dir=tmp_path)
    script = files[tmp_path / "emr" / "bootstrap.sh"]

    (tmp_path / "b.sh").write_text(script)
    assert subprocess.run(["bash", "-n", str(tmp_path / "b.sh")]).returncode == 0
    assert f"WHEEL=s3://acme-ml/sparkmlops/{WHEEL}\n" in script
    assert (f"CONSTRAINTS=s3://acme-ml/sparkmlops/sparkmlops-{__version__}-constraints.txt\n"
            in script)
    assert f"WHEEL_FILE={WHEEL}\n" in script
    assert ('sudo "$PYTHON" -m pip install --quiet -c "$work/constraints.txt" '
            '"$work/${WHEEL_FILE}[aws]"' in script)


# ---------------------------------------------------------------- Databricks


def _bundle_jobs(files: dict) -> dict[str, dict]:
    return {key: job for name, doc in files.items() if name.startswith("databricks/resources/")
            for key, job in doc["resources"]["jobs"].items()}


def test_every_bundle_job_round_trips_through_databricks_job_settings(tmp_path):
    jobs = _bundle_jobs(databricks_bundle(_databricks(tmp_path), out_dir=tmp_path))

    assert sorted(jobs) == ["sparkmlops_penguins_batch", "sparkmlops_penguins_continuous",
                            "sparkmlops_penguins_maintain"]
    for key, job in jobs.items():
        job = copy.deepcopy(job)
        # a bundle key (the Permissions API), not a field of the Jobs API's settings
        assert job.pop("permissions") == [
            {"level": "CAN_MANAGE_RUN", "group_name": "ml-team"},
            {"level": "CAN_VIEW", "user_name": "ana@example.com"}], key
        assert JobSettings.from_dict(job).as_dict() == job, key


def test_bundle_jobs_carry_schedule_cluster_wheel_and_cli_args(tmp_path):
    jobs = _bundle_jobs(databricks_bundle(_databricks(tmp_path), out_dir=tmp_path))
    batch, maintain = jobs["sparkmlops_penguins_batch"], jobs["sparkmlops_penguins_maintain"]
    wheel = f"/Volumes/CHANGE-ME/sparkmlops/wheels/{WHEEL}"

    assert batch["schedule"] == {"quartz_cron_expression": "0 30 1 ? * MON",
                                 "timezone_id": "UTC"}
    assert maintain["schedule"]["quartz_cron_expression"] == "0 0 3 * * ?"
    assert batch["job_clusters"] == [{"job_cluster_key": "sparkmlops", "new_cluster": {
        "spark_version": "18.0.x-cpu-ml-scala2.13", "node_type_id": "i3.xlarge",
        "data_security_mode": "SINGLE_USER", "num_workers": 2}}]
    assert batch["tasks"] == [{
        "task_key": "pipeline", "job_cluster_key": "sparkmlops",
        "python_wheel_task": {"package_name": "sparkmlops", "entry_point": "sparkmlops",
                              "parameters": ["pipeline", "--mode", "batch", "--env",
                                             "databricks", "--dataset", "penguins",
                                             *DATABRICKS_VARIABLES, *DATABRICKS_CONF_DIR]},
        "libraries": [{"requirements": "../requirements.txt"}, {"whl": wheel}]}]
    assert jobs["sparkmlops_penguins_continuous"]["tasks"][0]["python_wheel_task"][
        "parameters"][:3] == ["pipeline", "--mode", "continuous"]
    assert maintain["tasks"][0]["python_wheel_task"]["parameters"] == [
        "maintain", "--env", "databricks", "--dataset", "penguins", *DATABRICKS_VARIABLES,
        *DATABRICKS_CONF_DIR]
    assert batch["email_notifications"] == {"on_failure": ["ml-oncall@example.com"]}


def test_autoscale_and_a_local_wheel_in_the_bundle(tmp_path):
    settings = _databricks(tmp_path, "deploy.databricks.num_workers=null",
                           "deploy.databricks.autoscale={min_workers: 1, max_workers: 4}",
                           "deploy.wheel=dist/sparkmlops-{version}-py3-none-any.whl",
                           "deploy.conf_dir=dbfs:/Volumes/main/ml/conf")
    job = _bundle_jobs(databricks_bundle(settings, out_dir=tmp_path))["sparkmlops_penguins_batch"]

    cluster = job["job_clusters"][0]["new_cluster"]
    assert cluster["autoscale"] == {"min_workers": 1, "max_workers": 4}
    assert "num_workers" not in cluster
    # relative to the resource file: `databricks bundle deploy` uploads it
    assert job["tasks"][0]["libraries"] == [{"requirements": "../requirements.txt"},
                                            {"whl": f"../../dist/{WHEEL}"}]
    assert job["tasks"][0]["python_wheel_task"]["parameters"][-2:] == [
        "--conf-dir", "dbfs:/Volumes/main/ml/conf"]
    job.pop("permissions")
    assert JobSettings.from_dict(job).as_dict() == job


def test_bundle_root_has_dev_and_prod_targets_and_no_host(tmp_path):
    settings = _databricks(tmp_path, "deploy.databricks.run_as_service_principal=6a1f-sp")
    root = databricks_bundle(settings, out_dir=tmp_path)["databricks/databricks.yml"]

    assert root["bundle"] == {"name": "sparkmlops_penguins"}
    assert root["include"] == ["resources/*.yml"]
    assert root["targets"]["dev"]["mode"] == "development"
    assert root["targets"]["prod"]["mode"] == "production"
    assert root["targets"]["prod"]["run_as"] == {"service_principal_name": "6a1f-sp"}
    assert "host" not in json.dumps(root)


# ---------------------------------------------------------------- GitHub Actions


def _workflow_schema() -> dict:
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads((vendor / "github-workflows.json").read_text())


def _secrets_only_referenced(document: dict) -> None:
    text = json.dumps(document)
    assert "DATABRICKS_TOKEN" not in text  # OIDC, no personal token
    for name in ("DATABRICKS_HOST", "AWS_ROLE_ARN"):
        if name in text:
            assert f"${{{{ vars.{name} }}}}" in text


@pytest.mark.parametrize("env", ["emr", "databricks"])
def test_workflows_validate_against_the_github_workflow_schema(tmp_path, env):
    settings = _emr(tmp_path) if env == "emr" else _databricks(tmp_path)
    workflows = github_workflows(settings, [env], out_dir=tmp_path)
    validator = jsonschema.Draft7Validator(_workflow_schema())

    assert sorted(workflows) == [f".github/workflows/sparkmlops-penguins-deploy-{env}.yml",
                                 ".github/workflows/sparkmlops-penguins-tests.yml"]
    for name, workflow in workflows.items():
        # through YAML and back, as GitHub reads it ('on' must stay a key, not True)
        loaded = yaml.safe_load(yaml.safe_dump(workflow))
        assert list(validator.iter_errors(loaded)) == [], name
        _secrets_only_referenced(workflow)
    tests = workflows[".github/workflows/sparkmlops-penguins-tests.yml"]
    assert tests["on"]["pull_request"] == {"branches": ["main"]}
    assert tests["jobs"]["tests"]["steps"][-1] == {"name": "Run the tests",
                                                   "run": "python -m pytest tests"}


def test_the_schema_check_rejects_a_broken_workflow(tmp_path):
    workflow = github_workflows(_emr(tmp_path), ["emr"], out_dir=tmp_path)[
        ".github/workflows/sparkmlops-penguins-deploy-emr.yml"]
    del workflow["jobs"]["deploy"]["runs-on"]

    assert list(jsonschema.Draft7Validator(_workflow_schema()).iter_errors(workflow))


# ---------------------------------------------------------------- the command and its errors


def _deploy(tmp_path: Path, env: str, *args: str) -> int:
    project = [a for s in (EMR_PROJECT if env == "emr" else DATABRICKS_PROJECT)
               for a in ("--set", s)]
    return main(["deploy", "--env", env, "--out", str(tmp_path), "--set",
                 f"project_dir={tmp_path}", *project, *args])


def test_deploy_command_writes_every_target_of_the_env(tmp_path, capsys):
    overrides = [a for pair in (("--set", s) for s in EMR_SETTINGS) for a in pair]

    code = _deploy(tmp_path, "emr", "--target", "all", *overrides)

    out = capsys.readouterr().out
    assert code == 0
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == [".github/workflows/sparkmlops-penguins-deploy-emr.yml",
                       ".github/workflows/sparkmlops-penguins-tests.yml",
                       "emr/README.md", "emr/add-steps.json", "emr/bootstrap.sh",
                       "emr/ci-role-policy.json", "emr/cluster-configurations.json",
                       "emr/failure-rule.json", "emr/failure-targets.json",
                       "emr/iam-policy.json", "emr/run-job-flow.json",
                       "emr/schedule-continuous.json", "emr/schedule-maintain.json",
                       "emr/scheduler-role-policy.json", "emr/scheduler-role-trust.json",
                       "emr/sns-topic-policy.json",
                       "emr/start-job-run-maintain.json", "emr/start-job-run.json"]
    assert "targets emr, github" in out
    assert "CHANGE-ME" not in out
    steps = json.loads((tmp_path / "emr/add-steps.json").read_text())["Steps"]
    assert [s["HadoopJarStep"]["Args"][-9:] for s in steps[1:]] == [
        ["s3://acme-ml/sparkmlops/jobs/pipeline.py", "--mode", "batch", "--env", "emr",
         "--dataset", "penguins", *EMR_CONF_DIR],
        ["--executor-memory", "8g", "s3://acme-ml/sparkmlops/jobs/maintain.py", "--env", "emr",
         "--dataset", "penguins", *EMR_CONF_DIR]]
    assert (tmp_path / "emr/bootstrap.sh").stat().st_mode & 0o111


def test_deploy_command_writes_the_bundle_and_lists_placeholders(tmp_path, capsys):
    code = _deploy(tmp_path, "databricks", "--target", "databricks,github",
                   "--set", "deploy.schedule.continuous=0 */15 * * * ?",
                   "--set", "deploy.databricks.num_workers=6")

    out = capsys.readouterr().out
    assert code == 0
    assert ("  fill before deploying (CHANGE-ME): deploy.wheel, "
            "deploy.databricks.run_as_service_principal") in out.splitlines()
    job = yaml.safe_load((tmp_path / "databricks/resources/continuous-job.yml").read_text())[
        "resources"]["jobs"]["sparkmlops_penguins_continuous"]
    assert job["schedule"]["quartz_cron_expression"] == "0 */15 * * * ?"
    assert job["job_clusters"][0]["new_cluster"]["num_workers"] == 6
    root_text = (tmp_path / "databricks/databricks.yml").read_text()
    assert "# The workspace host comes from DATABRICKS_HOST" in root_text
    assert (tmp_path / ".github/workflows/sparkmlops-penguins-deploy-databricks.yml").is_file()
    assert not (tmp_path / "emr").exists()


def _error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize(("args", "expected"), [
    (["--target", "databricks", "--set", "deploy.schedule.maintain=0 3 * * *"],
     "deploy.schedule.maintain: Value error, '0 3 * * *' is not a Quartz cron expression: "
     "expected 6 or 7 fields (sec min hour day-of-month month day-of-week [year]), got 5"),
    (["--target", "databricks", "--set", "deploy.schedule.timezone=Mars/Olympus"],
     "deploy.schedule.timezone: Value error, unknown time zone 'Mars/Olympus'"),
    (["--target", "databricks", "--set",
      "deploy.databricks.autoscale={min_workers: 1, max_workers: 3}"],
     "deploy.databricks: Value error, set exactly one of num_workers and autoscale"),
    (["--target", "databricks", "--set", "deploy.env={DATABRICKS_TOKEN: x}"],
     "deploy.env: Value error, ['DATABRICKS_TOKEN'] look like credentials"),
    (["--target", "databricks", "--set", "deploy.permissions=[{level: CAN_RUN, user_name: a}]"],
     "deploy.permissions.0.level: Input should be 'CAN_VIEW', 'CAN_MANAGE_RUN', "
     "'CAN_MANAGE' or 'IS_OWNER'"),
    (["--target", "databricks", "--set", "deploy.notifications.on_failure=[oncall]"],
     "deploy.notifications.on_failure.0: String should match pattern"),
    (["--target", "databricks", "--set", "deploy.databricks.nodes=3"],
     "deploy.databricks.nodes: unknown key"),
    (["--target", "emr"],
     "sparkmlops deploy: ConfigError: deploy.emr: not set for env 'databricks'; "
     "--target emr needs it (see conf/emr.yml)"),
    (["--target", "emr", "--set", "deploy.emr={cluster_id: j-1, schedule_on: serverless}"],
     "deploy.emr: Value error, schedule_on: serverless needs the serverless section"),
    (["--target", "emr", "--set", "deploy.emr={cluster_id: j-1, scheduler_role_arn: admin}"],
     "deploy.emr.scheduler_role_arn: String should match pattern"),
    (["--target", "aws"],
     "sparkmlops deploy: ConfigError: --target: unknown target(s) ['aws']; choose from "
     "databricks, emr, github, azure-devops or all (comma-separated or repeated)"),
])
def test_deploy_config_errors_exit_2_with_one_line(tmp_path, capsys, args, expected):
    code = _deploy(tmp_path, "databricks", *args)

    line = _error_line(capsys)
    assert code == 2
    assert line.startswith("sparkmlops deploy: ConfigError: ")
    assert expected in line
    assert not any(tmp_path.iterdir())


def test_emr_needs_the_wheel_on_s3(tmp_path, capsys):
    code = _deploy(tmp_path, "emr", "--target", "emr", "--set", "deploy.wheel=dist/x.whl")

    assert code == 2
    assert _error_line(capsys) == (
        "sparkmlops deploy: ConfigError: deploy.wheel: EMR installs the wheel from S3; got "
        "'dist/x.whl' (set deploy.wheel to s3://... in conf/emr.yml)")
