"""No secret reaches MLflow: a token in ``$MLFLOW_TRACKING_URI``, an S3 secret key in
``spark.conf`` (the project's env file and the session) and a password in a URI of the
dataset file, through a real ingest run and a failed one, are found in neither the
SQLite store's bytes, nor any file under the state dir (artifacts, lake), nor the log."""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from sparkmlops.config import load_settings
from sparkmlops.errors import MissingInputError
from sparkmlops.ingest.step import ingest_step
from sparkmlops.redact import REDACTED
from sparkmlops.spark import session_conf

REPO = Path(__file__).resolve().parents[2]
S3A_SECRET_KEY = "spark.hadoop.fs.s3a.secret.key"


def test_no_secret_of_the_config_reaches_the_mlflow_store_its_artifacts_or_the_log(
        spark, tmp_path, monkeypatch, caplog):
    # unique, so a hit can only be this test's secret
    token, s3_secret, session_secret, wiki_password, path_token = (
        f"{what}-{uuid.uuid4().hex}" for what in ("tok", "s3key", "session", "wikipw", "ptok"))
    secrets = [token, s3_secret, session_secret, wiki_password, path_token]
    state = tmp_path / "state"
    # a sqlite store takes no user:password, but a query parameter (SQLAlchemy ignores it)
    db = state / "mlflow.db"
    tracking_uri = f"sqlite:///{db}?token={token}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    # the project's env file puts the S3 key in spark.conf, as a user would
    conf = tmp_path / "project" / "conf"
    (conf / "datasets").mkdir(parents=True)
    shutil.copy(REPO / "conf" / "datasets" / "penguins.yml", conf / "datasets")
    (conf / "local.yml").write_text(f'spark:\n  conf:\n    {S3A_SECRET_KEY}: "{s3_secret}"\n')
    wiki = f"https://reader:{wiki_password}@wiki.example.com/penguins"
    sample = REPO / "data" / "sample" / "penguins" / "landing"

    def settings(*overrides: str):
        return load_settings("local", "penguins", conf_dir=str(conf), overrides=[
            f"state_dir={state}", f"dataset.source.path={sample}",
            f"dataset.description=field notes at {wiki}", *overrides])

    missing = tmp_path / "missing"
    with caplog.at_level(logging.INFO), session_conf(spark, S3A_SECRET_KEY, session_secret):
        ingested = ingest_step(spark, settings(), "b1")
        failed_settings = settings(f"dataset.source.path={missing}?token={path_token}")
        with pytest.raises(MissingInputError):
            ingest_step(spark, failed_settings, "b2")

    # the runs were logged, with the secrets' places redacted and the rest as it was
    assert ingested.bronze_rows > 0
    client = MlflowClient(tracking_uri)
    runs = {r.data.tags["sparkmlops.batch_id"]: r for r in client.search_runs(
        [client.get_experiment_by_name("sparkmlops-penguins").experiment_id])}
    assert sorted(runs) == ["b1", "b2"]
    assert runs["b1"].info.run_id == ingested.run_id
    assert runs["b2"].data.tags["sparkmlops.error"] == \
        f"input path does not exist: {missing}?token={REDACTED}"
    config = json.loads(Path(client.download_artifacts(
        ingested.run_id, "config/effective_config.json", str(tmp_path))).read_text())
    assert config["tracking"]["tracking_uri"] == f"sqlite:///{db}?token={REDACTED}"
    assert config["spark"]["conf"][S3A_SECRET_KEY] == REDACTED
    assert config["spark"]["conf"]["spark.sql.shuffle.partitions"] == "2"
    assert config["dataset"]["description"] == \
        f"field notes at https://reader:{REDACTED}@wiki.example.com/penguins"
    assert config["dataset"]["keys"] == ["study_name", "species", "sample_number"]

    # and no byte of the store, the artifacts or the lake holds a secret
    files = [p for p in state.rglob("*") if p.is_file()]
    assert db in files
    assert len([p for p in files if "mlartifacts" in p.parts]) >= 4  # 2 configs, 2 lineages
    assert ingested.run_id.encode() in db.read_bytes()  # the real store, not an empty file
    found = {str(p.relative_to(state)): held for p in files
             if (held := [s for s in secrets if s.encode() in p.read_bytes()])}
    assert found == {}
    logged = [r.getMessage() for r in caplog.records]
    assert [line for line in logged if any(s in line for s in secrets)] == []
