"""Issue 21, fault 8 on EMR: the IAM policy of the instance profile (secrets by exact ARN),
the SNS topic policy EventBridge needs to publish failures, and EMR Serverless opt-in.
Checked with botocore's IAM and SNS models."""

from __future__ import annotations

import json
from pathlib import Path

import botocore.session
import pytest
from botocore.stub import Stubber

from sparkmlops import __version__
from sparkmlops.config import load_settings
from sparkmlops.deploy import render
from sparkmlops.deploy.emr import (
    call_aws,
    emr_ci_role_policy,
    emr_iam_policy,
    emr_scheduler_role_policy,
    emr_sns_topic_policy,
)
from tests.unit.deploy.test_deploy import (
    EMR_PROJECT,
    EMR_SETTINGS,
    _validate,
    _validate_job_role_policy,
)

ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mlflow-token-AbCdEf"
OTHER_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-password-XyZ123"
SECRETS = (f"deploy.secrets={{MLFLOW_TRACKING_TOKEN: {{aws_secret_arn: '{ARN}'}}, "
           f"DB_PASSWORD: {{aws_secret_arn: '{OTHER_ARN}'}}}}")


def _emr(tmp_path: Path, *extra: str):
    return load_settings("emr", "penguins",
                         overrides=[f"project_dir={tmp_path}", *EMR_SETTINGS, *extra])


def test_the_iam_policy_grants_the_artifacts_the_lake_the_logs_and_exactly_the_secrets(
        tmp_path):
    policy = emr_iam_policy(_emr(tmp_path, SECRETS,
                                 "deploy.emr.cluster.log_uri=s3://acme-logs/emr/"))

    _validate_job_role_policy(policy)
    assert policy == {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadArtifactsConfAndLanding", "Effect": "Allow", "Action": ["s3:GetObject"],
         # the conf dir (<wheel folder>/conf) is inside the artifacts folder
         "Resource": ["arn:aws:s3:::acme-ml/sparkmlops/*",
                      "arn:aws:s3:::acme-ml/landing/penguins/*"]},
        {"Sid": "ReadWriteLake", "Effect": "Allow",
         "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
         "Resource": ["arn:aws:s3:::acme-ml/sparkmlops/lake/*"]},
        {"Sid": "WriteLogs", "Effect": "Allow", "Action": ["s3:PutObject"],
         "Resource": ["arn:aws:s3:::acme-logs/emr/*", "arn:aws:s3:::acme-ml/logs/*"]},
        {"Sid": "List0", "Effect": "Allow", "Action": ["s3:ListBucket"],
         "Resource": "arn:aws:s3:::acme-ml",
         "Condition": {"StringLike": {"s3:prefix": [
             "sparkmlops", "sparkmlops/*", "landing/penguins", "landing/penguins/*",
             "logs", "logs/*"]}}},
        {"Sid": "List1", "Effect": "Allow", "Action": ["s3:ListBucket"],
         "Resource": "arn:aws:s3:::acme-logs",
         "Condition": {"StringLike": {"s3:prefix": ["emr", "emr/*"]}}},
        {"Sid": "ReadSecrets", "Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"],
         "Resource": [OTHER_ARN, ARN]},
    ]}


def test_without_secrets_the_policy_grants_no_secret(tmp_path):
    policy = emr_iam_policy(_emr(tmp_path))

    assert [s["Sid"] for s in policy["Statement"]] == [
        "ReadArtifactsConfAndLanding", "ReadWriteLake", "WriteLogs", "List0"]


def test_the_sns_policy_lets_only_the_failure_rule_publish(tmp_path):
    body = emr_sns_topic_policy(_emr(tmp_path))

    _validate("sns", "SetTopicAttributes", body)
    assert {k: v for k, v in body.items() if k != "AttributeValue"} == {
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:ml-oncall", "AttributeName": "Policy"}
    assert json.loads(body["AttributeValue"]) == {"Version": "2012-10-17", "Statement": [{
        "Sid": "FailureRulePublishes", "Effect": "Allow",
        "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sns:Publish", "Resource": "arn:aws:sns:eu-west-1:123456789012:ml-oncall",
        "Condition": {"ArnEquals": {"aws:SourceArn":
            "arn:aws:events:eu-west-1:123456789012:rule/sparkmlops-penguins-failures"}}}]}


def test_deploy_writes_the_policies_and_says_how_to_apply_them(tmp_path):
    files = render(_emr(tmp_path, SECRETS), ["emr"], out_dir=tmp_path)

    assert json.loads(files[tmp_path / "emr/iam-policy.json"]) == emr_iam_policy(
        _emr(tmp_path, SECRETS))
    assert json.loads(files[tmp_path / "emr/sns-topic-policy.json"]) == emr_sns_topic_policy(
        _emr(tmp_path))
    readme = files[tmp_path / "emr/README.md"]
    assert ("2. Permissions: `aws iam put-role-policy --role-name <the role of instance "
            "profile EMR_EC2_DefaultRole> --policy-name sparkmlops-penguins-access "
            "--policy-document file://emr/iam-policy.json` (and the same on the EMR "
            "Serverless execution role).") in readme
    assert ("`aws sns set-topic-attributes --cli-input-json file://emr/sns-topic-policy.json`"
            in readme)
    assert f"`MLFLOW_TRACKING_TOKEN` ← `{ARN}`" in readme


def test_without_a_topic_there_is_no_sns_policy(tmp_path):
    files = render(_emr(tmp_path, "deploy.emr.failure_topic_arn=null"), ["emr"],
                   out_dir=tmp_path)

    assert tmp_path / "emr/sns-topic-policy.json" not in files


def test_emr_serverless_is_off_unless_configured(tmp_path):
    settings = load_settings("emr", "penguins", overrides=[
        f"project_dir={tmp_path}", *EMR_PROJECT, "deploy.emr.cluster_id=j-2AXXXXXXGAPLF",
        "deploy.wheel=s3://acme-ml/sparkmlops/sparkmlops-{version}-py3-none-any.whl"])

    assert settings.deploy.emr is not None and settings.deploy.emr.serverless is None
    files = render(settings, ["emr"], out_dir=tmp_path)
    assert not [p for p in files if p.name.startswith("start-job-run")]
    assert ("5. EMR Serverless is off: to use it, set `deploy.emr.serverless` "
            "(`application_id`, `execution_role_arn`, `log_uri`) and deploy again."
            ) in files[tmp_path / "emr/README.md"]


def test_call_aws_sends_a_generated_body_through_botocore(tmp_path, monkeypatch):
    request = {"JobFlowId": "j-1", "Steps": []}
    (tmp_path / "add-steps.json").write_text(json.dumps(request))
    client = botocore.session.get_session().create_client(
        "emr", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    monkeypatch.setattr(botocore.session.Session, "create_client", lambda self, name: client)

    with Stubber(client) as stub:
        stub.add_response("add_job_flow_steps", {"StepIds": ["s-1"]}, request)
        assert call_aws("emr", "add_job_flow_steps", str(tmp_path / "add-steps.json")) == {
            "StepIds": ["s-1"]}


@pytest.mark.parametrize(("environ", "region"), [
    ({"AWS_REGION": "eu-central-1"}, "eu-central-1"),
    ({"AWS_REGION": "eu-central-1", "AWS_DEFAULT_REGION": "us-east-2"}, "us-east-2"),
])
def test_call_aws_takes_the_region_of_aws_region_when_aws_default_region_is_unset(
        tmp_path, monkeypatch, environ, region):
    # botocore itself reads only AWS_DEFAULT_REGION; the CI actions set AWS_REGION
    (tmp_path / "add-steps.json").write_text(json.dumps({"JobFlowId": "j-1", "Steps": []}))
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    clients = []
    original = botocore.session.Session.create_client

    def create_client(self, name):
        client = original(self, name, aws_access_key_id="x", aws_secret_access_key="x")
        clients.append(client)
        stub = Stubber(client)
        stub.add_response("add_job_flow_steps", {"StepIds": ["s-1"]})
        stub.activate()
        return client

    monkeypatch.setattr(botocore.session.Session, "create_client", create_client)
    assert call_aws("emr", "add_job_flow_steps", str(tmp_path / "add-steps.json")) == {
        "StepIds": ["s-1"]}
    assert clients[0].meta.region_name == region


def test_the_readme_upload_step_is_the_workflows_from_a_project(tmp_path):
    # a project has constraints.txt and no jobs/ folder; the workflow syncs conf/ to a
    # folder per commit, which a by-hand sync --delete into <wheel folder>/conf would delete
    readme = render(_emr(tmp_path), ["emr"], out_dir=tmp_path)[tmp_path / "emr/README.md"]
    in_ci = render(_emr(tmp_path, "deploy.conf_dir=s3://acme-ml/sparkmlops/conf/abc123"),
                   ["emr"], out_dir=tmp_path)[tmp_path / "emr/README.md"]

    a = "s3://acme-ml/sparkmlops"
    upload = (
        "1. Upload (the deploy workflow does this on every push): the wheel (`pip download "
        f"--no-deps sparkmlops=={__version__}`) to `{a}/sparkmlops-{__version__}-py3-none-any"
        f".whl`, the project's `constraints.txt` to `{a}/sparkmlops-{__version__}-constraints"
        ".txt`, the job scripts written from the installed wheel (`for c in maintain pipeline;"
        " do python -c 'import sys; from sparkmlops.deploy.common import job_script; "
        "sys.stdout.write(job_script(sys.argv[1]))' $c > jobs/$c.py; done`) to "
        f"`{a}/jobs/`, `emr/bootstrap.sh` to `{a}/bootstrap.sh`, and ")
    assert upload + (
        f"the project's `conf/` to a folder of its own per commit, `aws s3 sync conf {a}/conf/"
        f"<commit>`, then deploy again with `--set deploy.conf_dir={a}/conf/<commit>` so the "
        f"jobs read it (never `sync --delete` into `{a}/conf` itself: it holds the older "
        "commits' folders you roll back to).") in readme
    assert upload + (f"the project's `conf/` to `{a}/conf/abc123`, the conf dir these files "
                     "name.") in in_ci
    assert "requirements.lock" not in readme and "jobs/*.py" not in readme


def test_the_policy_of_an_init_project_grants_its_lake_and_landing_in_its_partition(
        tmp_path):
    # `sparkmlops init` writes project_dir: s3a://<bucket>/<project>, storage.root: lake and
    # dataset.source.path: data/landing/<dataset>; the jobs resolve them under project_dir
    china = "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:mlflow-token-AbCdEf"
    settings = load_settings("emr", "penguins", overrides=[
        "project_dir=s3a://acme-ml/churn", "storage.root=lake",
        "dataset.source.path=data/landing/penguins",
        "tracking.tracking_uri=http://mlflow.internal:5000",
        "deploy.wheel=s3://acme-ml/churn/artifacts/sparkmlops-{version}-py3-none-any.whl",
        "deploy.emr.cluster_id=j-2AXXXXXXGAPLF",
        f"deploy.secrets={{MLFLOW_TRACKING_TOKEN: {{aws_secret_arn: '{china}'}}}}"])

    policy = emr_iam_policy(settings)

    _validate_job_role_policy(policy)
    assert policy["Statement"][:3] == [
        {"Sid": "ReadArtifactsConfAndLanding", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": ["arn:aws-cn:s3:::acme-ml/churn/artifacts/*",
                      "arn:aws-cn:s3:::acme-ml/churn/data/landing/penguins/*"]},
        {"Sid": "ReadWriteLake", "Effect": "Allow",
         "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
         "Resource": ["arn:aws-cn:s3:::acme-ml/churn/lake/*"]},
        {"Sid": "List0", "Effect": "Allow", "Action": ["s3:ListBucket"],
         "Resource": "arn:aws-cn:s3:::acme-ml",
         "Condition": {"StringLike": {"s3:prefix": [
             "churn/artifacts", "churn/artifacts/*", "churn/data/landing/penguins",
             "churn/data/landing/penguins/*", "churn/lake", "churn/lake/*"]}}},
    ]


def test_the_ci_and_scheduler_roles_get_the_policies_of_the_commands_they_run(tmp_path):
    files = render(_emr(tmp_path), ["emr"], out_dir=tmp_path)
    ci = json.loads(files[tmp_path / "emr/ci-role-policy.json"])
    scheduler = json.loads(files[tmp_path / "emr/scheduler-role-policy.json"])
    trust = json.loads(files[tmp_path / "emr/scheduler-role-trust.json"])

    _validate("iam", "PutRolePolicy", {"RoleName": "github-deploy", "PolicyName": "deploy",
                                       "PolicyDocument": json.dumps(ci)})
    _validate("iam", "PutRolePolicy", {"RoleName": "sparkmlops-scheduler", "PolicyName": "run",
                                       "PolicyDocument": json.dumps(scheduler)})
    _validate("iam", "CreateRole", {"RoleName": "sparkmlops-scheduler",
                                    "AssumeRolePolicyDocument": json.dumps(trust)})
    cluster = "arn:aws:elasticmapreduce:*:123456789012:cluster/j-2AXXXXXXGAPLF"
    assert ci == {"Version": "2012-10-17", "Statement": [
        # aws s3 cp of the wheel, constraints, jobs, bootstrap; aws s3 sync --delete of conf/
        {"Sid": "UploadArtifacts", "Effect": "Allow",
         "Action": ["s3:PutObject", "s3:DeleteObject"],
         "Resource": ["arn:aws:s3:::acme-ml/sparkmlops/*"]},
        {"Sid": "ListArtifacts0", "Effect": "Allow", "Action": ["s3:ListBucket"],
         "Resource": "arn:aws:s3:::acme-ml",
         "Condition": {"StringLike": {"s3:prefix": ["sparkmlops", "sparkmlops/*"]}}},
        {"Sid": "UpdateSchedules", "Effect": "Allow",
         "Action": ["scheduler:CreateSchedule", "scheduler:UpdateSchedule"],
         "Resource": [
             "arn:aws:scheduler:*:123456789012:schedule/default/sparkmlops-penguins-continuous",
             "arn:aws:scheduler:*:123456789012:schedule/default/sparkmlops-penguins-maintain"]},
        {"Sid": "PassSchedulerRole", "Effect": "Allow", "Action": ["iam:PassRole"],
         "Resource": "arn:aws:iam::123456789012:role/sparkmlops-scheduler",
         "Condition": {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}},
        {"Sid": "PutFailureRule", "Effect": "Allow",
         "Action": ["events:PutRule", "events:PutTargets"],
         "Resource": "arn:aws:events:eu-west-1:123456789012:rule/sparkmlops-penguins-failures"},
        {"Sid": "ManualRunSteps", "Effect": "Allow",
         "Action": ["elasticmapreduce:AddJobFlowSteps"], "Resource": cluster},
    ]}
    assert scheduler == {"Version": "2012-10-17", "Statement": [
        {"Sid": "ScheduledSteps", "Effect": "Allow",
         "Action": ["elasticmapreduce:AddJobFlowSteps"], "Resource": cluster}]}
    assert trust == {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "scheduler.amazonaws.com"},
         "Action": "sts:AssumeRole",
         "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}}}]}


def test_on_serverless_the_roles_start_job_runs_and_pass_the_execution_role(tmp_path):
    settings = _emr(tmp_path, "deploy.emr.schedule_on=serverless")

    run = [{"Sid": "{}JobRuns", "Effect": "Allow", "Action": ["emr-serverless:StartJobRun"],
            "Resource": "arn:aws:emr-serverless:*:123456789012:/applications/00fabcdefg123456"},
           {"Sid": "{}PassExecutionRole", "Effect": "Allow", "Action": ["iam:PassRole"],
            "Resource": "arn:aws:iam::123456789012:role/sparkmlops-job",
            "Condition": {"StringEquals": {
                "iam:PassedToService": "emr-serverless.amazonaws.com"}}}]
    assert emr_scheduler_role_policy(settings)["Statement"] == [
        {**s, "Sid": s["Sid"].format("Scheduled")} for s in run]
    assert emr_ci_role_policy(settings)["Statement"][-2:] == [
        {**s, "Sid": s["Sid"].format("ManualRun")} for s in run]
