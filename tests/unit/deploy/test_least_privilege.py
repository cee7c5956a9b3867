"""Issue 24, part 4: least privilege and encryption in what `sparkmlops deploy` writes.

EMR: the job role's IAM policy names only the configured S3 prefixes, the TLS
certificates' object, the KMS key and (catalog mode) the Glue database and its tables,
linted by parliament (an IAM policy linter) and botocore's IAM model; the security
configuration encrypts with the configured key and is checked against botocore's EMR
model and the documented JSON keys. Databricks: prod runs as the service principal, and
the schema grants it only what the jobs need, against the CLI's bundle schema.
"""

from __future__ import annotations

import fnmatch
import importlib.resources
import json
import sys
import types
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from sparkmlops.config import load_settings
from sparkmlops.deploy import databricks_bundle, render
from sparkmlops.deploy.databricks import schema_grants
from sparkmlops.deploy.emr import (
    emr_cluster_configurations,
    emr_iam_policy,
    emr_run_job_flow,
    emr_security_configuration,
    emr_start_job_run,
)
from tests.unit.deploy.test_bundle_schema import _validator
from tests.unit.deploy.test_deploy import (
    DATABRICKS_PROJECT,
    EMR_SETTINGS,
    _deploy,
    _validate,
    _validate_job_role_policy,
)

KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
CERTS = "s3://acme-security/emr/tls/certs.zip"
ENCRYPTION = [f"deploy.emr.kms_key_arn={KEY}", f"deploy.emr.tls_certificates={CERTS}"]
# tables in the Glue Data Catalog (EMR's metastore), registered at storage.root
CATALOG = ["storage.catalog=spark_catalog", "storage.schema=ml", "storage.external=true"]
ARTIFACTS = ["tracking.artifact_location=s3://acme-ml/sparkmlops/mlflow"]
SP = "6a1f0c2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
# what the policy's S3 data actions may name: the configured prefixes, each exactly
CONFIGURED = ["arn:aws:s3:::acme-ml/sparkmlops/*",          # wheel folder, jobs, conf dir
              "arn:aws:s3:::acme-ml/landing/penguins/*",    # landing files
              "arn:aws:s3:::acme-ml/sparkmlops/lake/*",     # storage.root
              "arn:aws:s3:::acme-ml/sparkmlops/mlflow/*",   # tracking.artifact_location
              "arn:aws:s3:::acme-ml/logs/*",                # Serverless logs
              "arn:aws:s3:::acme-security/emr/tls/certs.zip"]


def _emr(tmp_path: Path, *extra: str):
    return load_settings("emr", "penguins",
                         overrides=[f"project_dir={tmp_path}", *EMR_SETTINGS, *extra])


@cache
def _parliament() -> types.ModuleType:
    """parliament 1.6.4 (the latest) reads its IAM data with ``pkg_resources``, which
    setuptools 82 removed (duo-labs/parliament#247); its one call, ``resource_filename``,
    is ``importlib.resources`` on an installed package."""
    try:
        import pkg_resources  # noqa: F401
    except ModuleNotFoundError:
        stand_in = types.ModuleType("pkg_resources")
        stand_in.resource_filename = (  # type: ignore[attr-defined]
            lambda package, name: str(importlib.resources.files(package) / name))
        # only while parliament imports (it calls it at import time): left in sys.modules,
        # the stand-in would be the pkg_resources every later import in the session gets
        sys.modules["pkg_resources"] = stand_in
        try:
            import parliament
        finally:
            del sys.modules["pkg_resources"]
    import parliament

    return parliament


def _findings(policy: dict[str, Any]) -> list[tuple[str, Any]]:
    analyzed = _parliament().analyze_policy_string(json.dumps(policy))
    return [(finding.issue, finding.detail) for finding in analyzed.findings]


def _resources(statement: dict[str, Any]) -> list[str]:
    resource = statement["Resource"]
    return [resource] if isinstance(resource, str) else resource


# ---------------------------------------------------------------- EMR: the job role's policy


def test_the_job_role_policy_names_the_prefixes_the_certificates_the_key_and_the_database(
        tmp_path):
    policy = emr_iam_policy(_emr(tmp_path, *ENCRYPTION, *CATALOG, *ARTIFACTS))

    _validate_job_role_policy(policy)
    glue = "arn:aws:glue:eu-west-1:123456789012"
    assert policy == {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadArtifactsConfAndLanding", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": ["arn:aws:s3:::acme-ml/sparkmlops/*",
                      "arn:aws:s3:::acme-ml/landing/penguins/*"]},
        {"Sid": "ReadWriteLake", "Effect": "Allow",
         "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
         "Resource": ["arn:aws:s3:::acme-ml/sparkmlops/lake/*",
                      "arn:aws:s3:::acme-ml/sparkmlops/mlflow/*"]},
        {"Sid": "WriteLogs", "Effect": "Allow", "Action": ["s3:PutObject"],
         "Resource": ["arn:aws:s3:::acme-ml/logs/*"]},
        {"Sid": "List0", "Effect": "Allow", "Action": ["s3:ListBucket"],
         "Resource": "arn:aws:s3:::acme-ml",
         "Condition": {"StringLike": {"s3:prefix": [
             "sparkmlops", "sparkmlops/*", "landing/penguins", "landing/penguins/*",
             "logs", "logs/*"]}}},
        {"Sid": "ReadTlsCertificates", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": "arn:aws:s3:::acme-security/emr/tls/certs.zip"},
        {"Sid": "UseKmsKey", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
         "Resource": KEY},
        {"Sid": "ReadWriteCatalogTables", "Effect": "Allow",
         "Action": ["glue:GetDatabase", "glue:GetTable", "glue:GetTables", "glue:CreateTable",
                    "glue:UpdateTable"],
         "Resource": [f"{glue}:catalog", f"{glue}:database/ml", f"{glue}:table/ml/*"]},
    ]}


def test_no_data_action_of_the_policy_reaches_past_the_configured_prefixes(tmp_path):
    policy = emr_iam_policy(_emr(tmp_path, *ENCRYPTION, *CATALOG, *ARTIFACTS))

    for statement in policy["Statement"]:
        assert "*" not in _resources(statement), statement["Sid"]
        assert "NotResource" not in statement and "NotAction" not in statement
        for resource in _resources(statement):
            if resource.startswith("arn:aws:s3:::") and "/" in resource:
                # an object ARN is one of the configured prefixes, never a wider one
                assert resource in CONFIGURED, resource
            elif resource.startswith("arn:aws:s3:::"):
                # a bucket is only listed, under the configured prefixes
                assert statement["Action"] == ["s3:ListBucket"]
                prefixes = statement["Condition"]["StringLike"]["s3:prefix"]
                assert all(any(fnmatch.fnmatchcase(f"{resource}/{p}", c) or
                               f"{resource}/{p}/*" == c for c in CONFIGURED)
                           for p in prefixes), prefixes
    assert {r for s in policy["Statement"] for r in _resources(s)
            if r.startswith("arn:aws:s3:::") and "/" in r} == set(CONFIGURED)


def test_parliament_finds_nothing_in_the_policy_of_every_configuration(tmp_path):
    for extra in ([], ENCRYPTION, [*ENCRYPTION, *CATALOG, *ARTIFACTS], CATALOG):
        policy = emr_iam_policy(_emr(tmp_path, *extra))

        assert _findings(policy) == [], extra


def test_parliament_reports_a_data_action_on_every_resource():
    # the linter is live: the policy a hand-written role often has is a finding
    wide = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"], "Resource": "*"}]}

    assert [issue for issue, _ in _findings(wide)] == ["RESOURCE_STAR"]


def test_without_a_key_the_policy_allows_no_kms_and_glue_only_in_catalog_mode(tmp_path):
    plain = emr_iam_policy(_emr(tmp_path))
    in_catalog = emr_iam_policy(_emr(tmp_path, *CATALOG))

    assert [s["Sid"] for s in plain["Statement"]] == [
        "ReadArtifactsConfAndLanding", "ReadWriteLake", "WriteLogs", "List0"]
    # the region is any (no key names it), the account the env's ARNs'
    assert in_catalog["Statement"][-1]["Resource"] == [
        "arn:aws:glue:*:123456789012:catalog", "arn:aws:glue:*:123456789012:database/ml",
        "arn:aws:glue:*:123456789012:table/ml/*"]


# ---------------------------------------------------------------- EMR: the security configuration

# the documented keys of an EMR security configuration's encryption (Amazon EMR Management
# Guide, "Create a security configuration ... with the AWS CLI"), for the options written
_DOCUMENTED = {
    "type": "object", "additionalProperties": False, "required": ["EncryptionConfiguration"],
    "properties": {"EncryptionConfiguration": {
        "type": "object", "additionalProperties": False,
        "required": ["EnableInTransitEncryption", "EnableAtRestEncryption"],
        "properties": {
            "EnableInTransitEncryption": {"type": "boolean"},
            "EnableAtRestEncryption": {"type": "boolean"},
            "InTransitEncryptionConfiguration": {
                "type": "object", "additionalProperties": False,
                "properties": {"TLSCertificateConfiguration": {
                    "type": "object", "additionalProperties": False,
                    "required": ["CertificateProviderType"],
                    "properties": {"CertificateProviderType": {"enum": ["PEM", "Custom"]},
                                   "S3Object": {"type": "string", "pattern": "^s3://"}}}}},
            "AtRestEncryptionConfiguration": {
                "type": "object", "additionalProperties": False,
                "properties": {
                    "S3EncryptionConfiguration": {
                        "type": "object", "additionalProperties": False,
                        "required": ["EncryptionMode"],
                        "properties": {
                            "EncryptionMode": {"enum": ["SSE-S3", "SSE-KMS", "CSE-KMS",
                                                        "CSE-Custom"]},
                            "AwsKmsKey": {"type": "string"}}},
                    "LocalDiskEncryptionConfiguration": {
                        "type": "object", "additionalProperties": False,
                        "required": ["EncryptionKeyProviderType"],
                        "properties": {
                            "EncryptionKeyProviderType": {"enum": ["AwsKms", "Custom"]},
                            "AwsKmsKey": {"type": "string"},
                            "EnableEbsEncryption": {"type": "boolean"}}}}}}}}}


def test_the_security_configuration_encrypts_with_the_configured_key_and_certificates(
        tmp_path):
    document = emr_security_configuration(_emr(tmp_path, *ENCRYPTION))

    assert document is not None
    jsonschema.Draft202012Validator(_DOCUMENTED).validate(document)
    _validate("emr", "CreateSecurityConfiguration", {
        "Name": "sparkmlops-penguins-security", "SecurityConfiguration": json.dumps(document)})
    encryption = document["EncryptionConfiguration"]
    assert encryption["EnableAtRestEncryption"] is True
    assert encryption["EnableInTransitEncryption"] is True
    at_rest = encryption["AtRestEncryptionConfiguration"]
    assert at_rest["S3EncryptionConfiguration"] == {"EncryptionMode": "SSE-KMS",
                                                    "AwsKmsKey": KEY}
    assert at_rest["LocalDiskEncryptionConfiguration"] == {
        "EncryptionKeyProviderType": "AwsKms", "AwsKmsKey": KEY, "EnableEbsEncryption": True}
    assert encryption["InTransitEncryptionConfiguration"] == {"TLSCertificateConfiguration": {
        "CertificateProviderType": "PEM", "S3Object": CERTS}}


def test_the_cluster_names_the_security_configuration_and_s3a_writes_with_the_key(tmp_path):
    settings = _emr(tmp_path, *ENCRYPTION)
    body = emr_run_job_flow(settings)

    _validate("emr", "RunJobFlow", body)
    assert body["SecurityConfiguration"] == "sparkmlops-penguins-security"
    # S3A (the connector of every S3 scheme since EMR 7.10) writes SSE-KMS by its own settings
    assert emr_cluster_configurations(settings)[-1] == {"Classification": "core-site",
                                                        "Properties": {
        "fs.s3a.encryption.algorithm": "SSE-KMS", "fs.s3a.encryption.key": KEY}}
    assert body["Configurations"] == emr_cluster_configurations(settings)


def test_an_emr_serverless_run_encrypts_its_disks_logs_and_writes_with_the_key(tmp_path):
    body = emr_start_job_run(_emr(tmp_path, *ENCRYPTION), "batch")

    _validate("emr-serverless", "StartJobRun", body)
    assert body["configurationOverrides"] == {
        "monitoringConfiguration": {"s3MonitoringConfiguration": {
            "logUri": "s3://acme-ml/logs/", "encryptionKeyArn": KEY}},
        "diskEncryptionConfiguration": {"encryptionKeyArn": KEY}}
    parameters = body["jobDriver"]["sparkSubmit"]["sparkSubmitParameters"].split()
    assert "spark.hadoop.fs.s3a.encryption.algorithm=SSE-KMS" in parameters
    assert f"spark.hadoop.fs.s3a.encryption.key={KEY}" in parameters


def test_deploy_writes_the_security_configuration_and_says_to_create_it_first(tmp_path):
    files = render(_emr(tmp_path, *ENCRYPTION), ["emr"], out_dir=tmp_path)

    assert json.loads(files[tmp_path / "emr/security-configuration.json"]) == \
        emr_security_configuration(_emr(tmp_path, *ENCRYPTION))
    assert json.loads(files[tmp_path / "emr/iam-policy.json"])["Statement"][-1] == {
        "Sid": "UseKmsKey", "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
        "Resource": KEY}
    assert ("Before creating the cluster, once: `aws emr create-security-configuration --name "
            "sparkmlops-penguins-security --security-configuration "
            "file://emr/security-configuration.json`") in files[tmp_path / "emr/README.md"]


@pytest.mark.parametrize(("given", "missing"), [
    ([], "deploy.emr.kms_key_arn, deploy.emr.tls_certificates"),
    ([f"deploy.emr.kms_key_arn={KEY}"], "deploy.emr.tls_certificates"),
])
def test_without_both_keys_no_security_configuration_is_written_and_deploy_says_so(
        tmp_path, capsys, given, missing):
    overrides = [a for pair in (("--set", s) for s in [*EMR_SETTINGS, *given]) for a in pair]

    assert _deploy(tmp_path, "emr", "--target", "emr", *overrides) == 0

    lines = capsys.readouterr().out.splitlines()
    assert ("  no EMR encryption (no emr/security-configuration.json): set "
            f"{missing}") in lines
    assert not (tmp_path / "emr/security-configuration.json").exists()
    assert "SecurityConfiguration" not in json.loads(
        (tmp_path / "emr/run-job-flow.json").read_text())
    policy = json.loads((tmp_path / "emr/iam-policy.json").read_text())
    assert ("UseKmsKey" in [s["Sid"] for s in policy["Statement"]]) == bool(given)


def test_with_both_keys_deploy_prints_no_encryption_line(tmp_path, capsys):
    overrides = [a for pair in (("--set", s) for s in [*EMR_SETTINGS, *ENCRYPTION])
                 for a in pair]

    assert _deploy(tmp_path, "emr", "--target", "emr", *overrides) == 0

    assert "no EMR encryption" not in capsys.readouterr().out
    assert (tmp_path / "emr/security-configuration.json").is_file()


@pytest.mark.parametrize("bad", [
    "deploy.emr.kms_key_arn=alias/sparkmlops",
    "deploy.emr.kms_key_arn=arn:aws:kms:eu-west-1:123456789012:alias/sparkmlops",
    "deploy.emr.tls_certificates=s3://acme-security/emr/tls/certificate.pem",
])
def test_a_key_alias_or_a_certificate_that_is_not_a_zip_on_s3_is_refused(tmp_path, bad):
    with pytest.raises(Exception, match=bad.split("=")[0].rsplit(".", 1)[-1]):
        _emr(tmp_path, bad)


# ---------------------------------------------------------------- Databricks: run_as and grants


def _databricks(tmp_path: Path, *extra: str):
    return load_settings("databricks", "penguins", overrides=[
        f"project_dir={tmp_path}", *DATABRICKS_PROJECT,
        f"deploy.databricks.run_as_service_principal={SP}", *extra])


def test_prod_runs_as_the_principal_and_the_schema_grants_it_only_what_the_jobs_need(tmp_path):
    settings = _databricks(tmp_path)
    prod = databricks_bundle(settings, out_dir=tmp_path)["databricks/databricks.yml"][
        "targets"]["prod"]

    assert prod["run_as"] == {"service_principal_name": SP}
    # the packaged databricks env: tables and the model (Unity Catalog's registry) in
    # main.sparkmlops; landing files in a volume of that schema
    assert prod["resources"] == {"schemas": {"prod_schema": {
        "catalog_name": "${var.catalog}", "name": "${var.schema}",
        "comment": "sparkmlops penguins: the prod tables and model",
        "grants": [{"principal": SP, "privileges": [
            "USE_SCHEMA", "SELECT", "MODIFY", "CREATE_TABLE", "CREATE_MODEL", "EXECUTE",
            "READ_VOLUME"]}]}}}


def test_the_grants_follow_what_the_jobs_use(tmp_path):
    elsewhere = "dataset.source.path=/Volumes/main/landing/files/penguins"
    no_uc_model = "tracking.registry_uri=databricks"  # the workspace registry

    assert schema_grants(_databricks(tmp_path, elsewhere)) == [
        "USE_SCHEMA", "SELECT", "MODIFY", "CREATE_TABLE", "CREATE_MODEL", "EXECUTE"]
    assert schema_grants(_databricks(tmp_path, elsewhere, no_uc_model)) == [
        "USE_SCHEMA", "SELECT", "MODIFY", "CREATE_TABLE"]
    assert schema_grants(_databricks(
        tmp_path, elsewhere, "state_dir=/Volumes/main/sparkmlops/state/penguins")) == [
        "USE_SCHEMA", "SELECT", "MODIFY", "CREATE_TABLE", "CREATE_MODEL", "EXECUTE",
        "READ_VOLUME", "WRITE_VOLUME"]
    # the packaged relative landing path resolves under project_dir: a volume of the schema
    # or of another one
    for project, reads in (("/Volumes/main/sparkmlops/files", True),
                           ("/Volumes/main/churn/files", False)):
        settings = load_settings("databricks", "penguins", overrides=[
            f"project_dir={project}", f"deploy.databricks.run_as_service_principal={SP}"])
        assert ("READ_VOLUME" in schema_grants(settings)) == reads, project


def test_tables_by_path_declare_no_schema_and_grant_nothing(tmp_path):
    settings = _databricks(tmp_path, "storage.catalog=null", "storage.schema=null",
                           "storage.root=s3://acme-ml/sparkmlops/lake",
                           "tracking.registry_uri=databricks")
    prod = databricks_bundle(settings, out_dir=tmp_path)["databricks/databricks.yml"][
        "targets"]["prod"]

    assert "resources" not in prod
    assert prod["run_as"] == {"service_principal_name": SP}


def test_the_bundle_with_grants_fits_the_cli_schema(tmp_path):
    files = render(_databricks(tmp_path), ["databricks"], out_dir=tmp_path)
    root = yaml.safe_load(files[tmp_path / "databricks/databricks.yml"])

    assert not sorted(_validator().iter_errors(root), key=str)
    # a privilege the CLI does not know is refused: the check is live
    root["targets"]["prod"]["resources"]["schemas"]["prod_schema"]["grants"][0][
        "privileges"].append("READ_EVERYTHING")
    assert [error.message for error in _validator().iter_errors(root)]
