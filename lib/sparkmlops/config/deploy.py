"""The ``deploy:`` section of an env file: what ``sparkmlops deploy`` writes into the
Databricks bundle, the EMR request bodies and the GitHub workflows."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from sparkmlops.config.base import StrictModel
from sparkmlops.secrets import ENV_NAME, SECRET_ARN

PermissionLevel = Literal["CAN_VIEW", "CAN_MANAGE_RUN", "CAN_MANAGE", "IS_OWNER"]
DeployJob = Literal["batch", "continuous", "maintain"]
# deploy.env is written into job definitions in plain text: names that hold a
# credential belong in the platform's secret store instead
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|ACCESS_KEY",
                          re.IGNORECASE)


def check_quartz_cron(expression: str) -> str:
    """A Quartz cron expression (seconds first, 6 or 7 fields, one day field ``?``)."""
    fields = expression.split()
    if len(fields) not in (6, 7):
        raise ValueError(f"{expression!r} is not a Quartz cron expression: expected 6 or 7 "
                         f"fields (sec min hour day-of-month month day-of-week [year]), "
                         f"got {len(fields)}")
    if "?" not in (fields[3], fields[5]):
        raise ValueError(f"{expression!r}: Quartz needs '?' in day-of-month or day-of-week")
    return expression


class ScheduleSettings(StrictModel):
    # Quartz cron per job (Databricks' syntax); null: the job runs on demand only
    batch: str | None = None
    continuous: str | None = "0 0 * * * ?"
    maintain: str | None = "0 0 3 * * ?"
    timezone: str = "UTC"

    @field_validator("batch", "continuous", "maintain")
    @classmethod
    def _quartz(cls, value: str | None) -> str | None:
        return None if value is None else check_quartz_cron(value)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        import zoneinfo

        if value not in zoneinfo.available_timezones():
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as "
                             f"'UTC' or 'Europe/Berlin')")
        return value


class NotificationSettings(StrictModel):
    on_failure: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]] = (
        Field(default_factory=list))


class PermissionSpec(StrictModel):
    """One Databricks job permission: a level for exactly one principal."""

    level: PermissionLevel
    user_name: str | None = None
    group_name: str | None = None
    service_principal_name: str | None = None

    @model_validator(mode="after")
    def _one_principal(self) -> PermissionSpec:
        named = [k for k in ("user_name", "group_name", "service_principal_name")
                 if getattr(self, k) is not None]
        if len(named) != 1:
            raise ValueError("name exactly one of user_name, group_name, "
                             f"service_principal_name (got {named or 'none'})")
        return self


class AutoscaleSettings(StrictModel):
    min_workers: int = Field(ge=1)
    max_workers: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> AutoscaleSettings:
        if self.max_workers < self.min_workers:
            raise ValueError(f"max_workers {self.max_workers} < min_workers {self.min_workers}")
        return self


class DatabricksDeploySettings(StrictModel):
    spark_version: str
    node_type_id: str
    num_workers: int | None = Field(None, ge=0)
    autoscale: AutoscaleSettings | None = None
    # a service principal's application id: the prod target runs as it, not as whoever
    # deployed, and its bundle lives in that principal's home (one copy, written by the CI
    # authenticated as it). Required: deploy refuses a bundle without it.
    run_as_service_principal: str | None = None

    @model_validator(mode="after")
    def _one_size(self) -> DatabricksDeploySettings:
        if (self.num_workers is None) == (self.autoscale is None):
            raise ValueError("set exactly one of num_workers and autoscale")
        return self


class ExecutorSettings(StrictModel):
    instances: int = Field(ge=1)
    cores: int = Field(ge=1)
    memory: str = Field(pattern=r"^[0-9]+[kmgtKMGT]?$")


class EmrServerlessSettings(StrictModel):
    application_id: str
    execution_role_arn: str = Field(pattern=r"^arn:aws[a-z-]*:iam::")
    # s3:// folder for the driver and executor logs; null: EMR Serverless keeps them
    log_uri: str | None = Field(None, pattern=r"^s3://")


def _default_emr_steps() -> list[DeployJob]:
    return ["batch", "maintain"]


# the Delta Lake each EMR release ships (its Python API is installed at that version):
# emr-spark-8.0.0 has Spark 4.0.2-amzn-0 and Delta 4.0.0-amzn-1 (AWS release guide)
EMR_RELEASE_DELTA = {"emr-spark-8.0.0": "4.0.0"}


class EmrClusterSettings(StrictModel):
    """The long-running cluster of emr/run-job-flow.json (RunJobFlow)."""

    # the EC2 instance profile of the nodes: attach emr/iam-policy.json to its role
    instance_profile: str = "EMR_EC2_DefaultRole"
    service_role: str = "EMR_DefaultRole_V2"
    # s3:// folder for the cluster's logs; null: no logs kept after the cluster ends
    log_uri: str | None = Field(None, pattern=r"^s3://")
    # null: the default VPC's subnet
    subnet_id: str | None = Field(None, pattern=r"^subnet-")
    primary_instance_type: str = "m5.xlarge"
    core_instance_type: str = "m5.xlarge"
    core_instances: int = Field(2, ge=1)


class EmrDeploySettings(StrictModel):
    cluster_id: str
    # the release of run-job-flow.json; Delta's jars and Python API follow its Delta version
    release_label: str = "emr-spark-8.0.0"
    # the Delta version of release_label; null: looked up (EMR_RELEASE_DELTA)
    delta_version: str | None = Field(None, pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$")
    cluster: EmrClusterSettings = Field(default_factory=EmrClusterSettings)
    steps: list[DeployJob] = Field(default_factory=_default_emr_steps, min_length=1)
    action_on_failure: Literal["TERMINATE_CLUSTER", "CANCEL_AND_WAIT", "CONTINUE"] = "CONTINUE"
    python: str = "/usr/bin/python3.11"
    executors: ExecutorSettings | None = None
    serverless: EmrServerlessSettings | None = None
    # EventBridge Scheduler runs each job that has a deploy.schedule cron, assuming this
    # role (it may call elasticmapreduce:AddJobFlowSteps or emr-serverless:StartJobRun);
    # null: no schedules are written
    scheduler_role_arn: str | None = Field(None, pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/")
    # what a schedule starts: a step on cluster_id, or an EMR Serverless job run
    schedule_on: Literal["cluster", "serverless"] = "cluster"
    # SNS topic that a failed step or job run is published to (subscribe the addresses of
    # deploy.notifications.on_failure to it); null: no failure rule is written
    failure_topic_arn: str | None = Field(None, pattern=r"^arn:aws[a-z-]*:sns:")
    # the KMS key (a key ARN: IAM authorizes kms:Decrypt on keys, not aliases) that
    # encrypts what the jobs write to S3 (SSE-KMS) and the nodes' local disks:
    # security-configuration.json names it, iam-policy.json allows it; null: no security
    # configuration is written and deploy says so
    kms_key_arn: str | None = Field(
        None, pattern=r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$")
    # in-transit TLS between the nodes: the S3 object EMR's PEM certificate provider
    # reads, a zip of privateKey.pem, certificateChain.pem and trustedCertificates.pem;
    # null: no security configuration is written and deploy says so
    tls_certificates: str | None = Field(None, pattern=r"^s3://[^/]+/.+\.zip$")

    @model_validator(mode="after")
    def _serverless_schedules_need_serverless(self) -> EmrDeploySettings:
        if self.schedule_on == "serverless" and self.serverless is None:
            raise ValueError("schedule_on: serverless needs the serverless section")
        return self

    @model_validator(mode="after")
    def _known_delta(self) -> EmrDeploySettings:
        if self.delta_version is None and self.release_label not in EMR_RELEASE_DELTA:
            raise ValueError(f"release_label {self.release_label!r}: its Delta version is not "
                             f"known here (known: {', '.join(EMR_RELEASE_DELTA)}); set "
                             "delta_version to the release's Delta Lake version")
        return self

    @property
    def delta(self) -> str:
        """The Delta Lake version of the cluster's release."""
        return self.delta_version or EMR_RELEASE_DELTA[self.release_label]


class GithubDeploySettings(StrictModel):
    """The CI of the project (GitHub Actions or Azure Pipelines)."""

    branch: str = "main"
    test_command: str = "python -m pytest tests"
    # Azure Pipelines: the Azure Resource Manager service connection (workload identity
    # federation) every deploy task signs in with; None: a CHANGE-ME name in the file
    azure_service_connection: str | None = None


class SecretRef(StrictModel):
    """Where a job's secret lives on each platform: never its value."""

    # a Databricks secret scope and key, "<scope>/<key>": the job cluster's env gets
    # {{secrets/<scope>/<key>}}, which Databricks resolves at cluster start
    databricks: str | None = Field(None, pattern=r"^[A-Za-z0-9_.@-]+/[A-Za-z0-9_.@-]+$")
    # an AWS Secrets Manager secret (its SecretString), read by the job at start
    aws_secret_arn: str | None = Field(None, pattern=f"^{SECRET_ARN}$")


class DeploySettings(StrictModel):
    wheel: str = "dist/sparkmlops-{version}-py3-none-any.whl"
    # where the jobs read the project's conf dir on the platform; null: beside the wheel on
    # EMR (<wheel folder>/conf, uploaded by the deploy workflow), in the bundle's synced
    # files on Databricks. Every generated job passes it as --conf-dir.
    conf_dir: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    # env variables that hold credentials, by reference (e.g. MLFLOW_TRACKING_TOKEN)
    secrets: dict[Annotated[str, Field(pattern=f"^{ENV_NAME}$")], SecretRef] = Field(
        default_factory=dict)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)
    permissions: list[PermissionSpec] = Field(default_factory=list)
    databricks: DatabricksDeploySettings | None = None
    emr: EmrDeploySettings | None = None
    github: GithubDeploySettings = Field(default_factory=GithubDeploySettings)

    @field_validator("env")
    @classmethod
    def _no_credentials(cls, env: dict[str, str]) -> dict[str, str]:
        secret = sorted(name for name in env if _SECRET_NAME.search(name))
        if secret:
            raise ValueError(f"{secret} look like credentials: they would be written in "
                             "plain text into the job definitions; use the platform's "
                             "secret store (deploy.secrets)")
        return env

    @model_validator(mode="after")
    def _secrets_are_not_plain_env(self) -> DeploySettings:
        both = sorted(set(self.env) & set(self.secrets))
        if both:
            raise ValueError(f"{both} are in both deploy.env and deploy.secrets: a secret "
                             "goes in deploy.secrets only")
        return self
