"""One redaction of everything logged: credentials in URIs and the values of secret-looking
keys become the marker; column lists, tuning settings and references to secrets do not."""

from __future__ import annotations

import copy
import json
import logging

import pytest

from sparkmlops.cli import RedactingFormatter, one_line
from sparkmlops.config import Settings, load_settings
from sparkmlops.redact import REDACTED, is_secret_key, redact, redact_pair, redact_text


@pytest.mark.parametrize(("uri", "expected"), [
    ("https://alice:s3cr3t@mlflow.example.com/api",  # pragma: allowlist secret
     f"https://alice:{REDACTED}@mlflow.example.com/api"),
    # a password may hold ':' (only the first one ends the user)
    ("postgresql://mlflow:pa:ss@db:5432/mlflow", f"postgresql://mlflow:{REDACTED}@db:5432/mlflow"),
    # a token given as the user (git over https, some MLflow proxies)
    ("https://ghp_abc123@github.com/org/repo.git", f"https://{REDACTED}@github.com/org/repo.git"),
    # pragma: allowlist nextline secret
    ("s3a://AKIAXXXX:wJalrXUt@bucket/lake", f"s3a://AKIAXXXX:{REDACTED}@bucket/lake"),
])
def test_the_credentials_of_a_uri_are_replaced_and_its_host_and_path_kept(uri, expected):
    assert redact_text(uri) == expected


@pytest.mark.parametrize("uri", [
    # Azure storage: container@account names a place, not a credential
    "abfss://lake@myaccount.dfs.core.windows.net/bronze/penguins",
    "wasbs://lake@myaccount.blob.core.windows.net/bronze",
    "sqlite:////tmp/state/mlflow.db",
    "databricks",
    "models:/penguins@champion",
    "alice@example.com",
])
def test_a_uri_without_credentials_is_kept_as_it_is(uri):
    assert redact_text(uri) == uri


@pytest.mark.parametrize(("uri", "expected"), [
    ("http://mlflow:5000/api?token=t0k3n", f"http://mlflow:5000/api?token={REDACTED}"),
    ("https://acct.blob.core.windows.net/c/f.csv?sv=2024-01-01&sp=r&sig=abc%2Bdef",
     f"https://acct.blob.core.windows.net/c/f.csv?sv=2024-01-01&sp=r&sig={REDACTED}"),
    ("jdbc:postgresql://db/app?user=etl&password=hunter2&ssl=true",
     f"jdbc:postgresql://db/app?user=etl&password={REDACTED}&ssl=true"),
    ("jdbc:sqlserver://db;user=etl;password=hunter2;database=app",
     f"jdbc:sqlserver://db;user=etl;password={REDACTED};database=app"),
    ("https://s3.amazonaws.com/b/k?X-Amz-Credential=AKIA%2F20261206&X-Amz-Signature=f00d",
     f"https://s3.amazonaws.com/b/k?X-Amz-Credential={REDACTED}&X-Amz-Signature={REDACTED}"),
    ("sqlite:////tmp/mlflow.db?mode=ro&uri=true", "sqlite:////tmp/mlflow.db?mode=ro&uri=true"),
])
def test_secret_query_parameters_are_replaced_and_the_others_kept(uri, expected):
    assert redact_text(uri) == expected


def test_a_uri_inside_a_sentence_is_redacted_and_the_sentence_kept():
    # pragma: allowlist nextline secret
    message = "no landing files at https://bob:pw@files.example.com/in?key=k1 (checked twice)"

    assert redact_text(message) == (
        f"no landing files at https://bob:{REDACTED}@files.example.com/in?key={REDACTED} "
        "(checked twice)")


@pytest.mark.parametrize("key", [
    "password", "PASSWORD", "db_passwd", "token", "MLFLOW_TRACKING_TOKEN", "secret",
    "spark.hadoop.fs.s3a.secret.key", "spark.hadoop.fs.s3a.access.key",
    "fs.s3a.session.token", "fs.azure.account.key.myaccount.dfs.core.windows.net",
    "fs.azure.sas.lake.myaccount.blob.core.windows.net", "fs.azure.sas.fixed.token",
    "fs.azure.account.oauth2.client.secret", "spark.authenticate.secret",
    "secretAccessKey", "apiKey", "APIKey", "api-key", "AWS_SECRET_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID", "credentials", "Authorization", "sig", "auth",
])
def test_a_key_with_a_secret_word_names_a_secret(key):
    assert is_secret_key(key)


@pytest.mark.parametrize("key", [
    # column lists and policies: `keys` is not `key`
    "keys", "item_keys", "repeated_keys", "key_columns",
    "spark.sql.shuffle.partitions", "spark.authenticate", "spark.ui.enabled",
    # the value names or locates a secret, or says how one is used: not the secret itself
    "spark.hadoop.fs.s3a.aws.credentials.provider", "fs.azure.account.auth.type",
    "fs.azure.sas.token.provider.type", "kms_key_arn", "spark.authenticate.secret.file",
    "fs.azure.account.oauth2.client.id", "tracking_uri", "monkey", "tokenizer", "passage",
    "",
])
def test_a_key_without_a_secret_word_or_naming_a_reference_is_not_a_secret(key):
    assert not is_secret_key(key)


def test_nested_config_keeps_its_shape_with_only_the_secrets_replaced():
    logged = {
        "tracking": {"tracking_uri": "https://alice:pw@mlflow.example.com",
                     "experiment": "sparkmlops-penguins"},
        "spark": {"conf": {"spark.hadoop.fs.s3a.secret.key": "wJalrXUt",
                           "spark.hadoop.fs.s3a.access.key": "AKIAXXXX",
                           "spark.sql.shuffle.partitions": "2",
                           "spark.hadoop.fs.s3a.aws.credentials.provider": "org.x.Provider"}},
        "dataset": {"keys": ["study_name", "sample_number"],
                    "crowd": {"item_keys": ["study_name", "sample_number"]},
                    "source": {"path": "s3a://lake/in?token=t0k3n",
                               # pragma: allowlist nextline secret
                               "options": {"header": "true", "password": "hunter2"}}},
        # a reference to a secret is walked: only its texts under secret keys would go
        "deploy": {"secrets": {"MLFLOW_TRACKING_TOKEN": {"databricks": "mlops/mlflow-token",
                                                         "aws_secret_arn": None}}},
        # a list of secrets under a secret key; numbers and booleans are never secrets
        "api_tokens": ["t1", "t2"],
        "profile": {"token": 0.25, "key": True},
        "batches": [{"url": "https://u:p@h/x"}, "plain"],
        "window": ("b1", "b2"),
    }
    original = copy.deepcopy(logged)

    assert redact(logged) == {
        "tracking": {"tracking_uri": f"https://alice:{REDACTED}@mlflow.example.com",
                     "experiment": "sparkmlops-penguins"},
        "spark": {"conf": {"spark.hadoop.fs.s3a.secret.key": REDACTED,
                           "spark.hadoop.fs.s3a.access.key": REDACTED,
                           "spark.sql.shuffle.partitions": "2",
                           "spark.hadoop.fs.s3a.aws.credentials.provider": "org.x.Provider"}},
        "dataset": {"keys": ["study_name", "sample_number"],
                    "crowd": {"item_keys": ["study_name", "sample_number"]},
                    "source": {"path": f"s3a://lake/in?token={REDACTED}",
                               "options": {"header": "true", "password": REDACTED}}},
        "deploy": {"secrets": {"MLFLOW_TRACKING_TOKEN": {"databricks": "mlops/mlflow-token",
                                                         "aws_secret_arn": None}}},
        "api_tokens": [REDACTED, REDACTED],
        "profile": {"token": 0.25, "key": True},
        "batches": [{"url": f"https://u:{REDACTED}@h/x"}, "plain"],
        "window": ["b1", "b2"],
    }
    assert logged == original  # the caller's value is not changed


def test_a_setting_logged_as_key_equals_value_hides_a_secret_value():
    assert redact_pair("spark.hadoop.fs.s3a.secret.key", "wJalrXUt") == REDACTED
    assert redact_pair("spark.sql.shuffle.partitions", "2") == "2"
    assert redact_pair("spark.eventLog.dir", "s3a://k:s@logs/") == f"s3a://k:{REDACTED}@logs/"


def test_the_redacted_effective_config_still_loads_as_settings_with_only_secrets_changed(
        tmp_path, monkeypatch):
    # `reproduce` reads the logged effective config back as Settings
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://alice:pw@mlflow.example.com")
    settings = load_settings("local", "penguins", overrides=[
        f"state_dir={tmp_path}", "dataset.source.options.password=hunter2"])
    dumped = json.loads(settings.model_dump_json(by_alias=True))

    logged = Settings.model_validate(redact(dumped))

    assert logged.tracking.tracking_uri == f"https://alice:{REDACTED}@mlflow.example.com"
    assert logged.dataset.source.options["password"] == REDACTED
    assert logged.dataset.model_copy(update={"source": settings.dataset.source}) == \
        settings.dataset
    assert logged.spark == settings.spark
    assert logged.storage == settings.storage


def test_the_cli_error_line_and_log_lines_hide_the_credentials_of_a_uri():
    error = "cannot reach https://alice:pw@mlflow.example.com\n  retried ?token=t0k3n"
    record = logging.LogRecord("sparkmlops.x", logging.INFO, __file__, 1,
                               "tracking at %s", ("https://alice:pw@mlflow.example.com",), None)

    assert one_line(error) == (f"cannot reach https://alice:{REDACTED}@mlflow.example.com | "
                               f"retried ?token={REDACTED}")
    assert RedactingFormatter("%(name)s: %(message)s").format(record) == \
        f"sparkmlops.x: tracking at https://alice:{REDACTED}@mlflow.example.com"
