"""No secret reaches MLflow: a token in ``$MLFLOW_TRACKING_URI``, an S3 secret key in
``spark.conf`` (the project's env file and the session) and a password in a URI of the
dataset file, through a real ingest run and a failed one, are found in neither the
SQLite store's bytes, nor any file under the state dir (artifacts, lake), nor the log;
nor is a secret a step logs through its tracker (params, tags, dicts, texts, the
registry's version tags and description)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from sparkmlops.config import load_settings
from sparkmlops.errors import MissingInputError
from sparkmlops.ingest.step import ingest_step
from sparkmlops.redact import REDACTED
from sparkmlops.spark import session_conf
from sparkmlops.tracking.runs import step_run

REPO = Path(__file__).resolve().parents[2]
S3A_SECRET_KEY = "spark.hadoop.fs.s3a.secret.key"  # pragma: allowlist secret


@pytest.fixture(autouse=True)
def tracking_uri_put_back(monkeypatch) -> Iterator[None]:
    """The process's MLflow tracking URI as it was before the test (a step sets it).

    ``mlflow.set_tracking_uri`` also exports ``$MLFLOW_TRACKING_URI``, which the next
    test's settings would take: the variable is put back as it was, too.
    """
    variable = os.environ.get("MLFLOW_TRACKING_URI")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    previous = mlflow.get_tracking_uri()
    yield
    mlflow.set_tracking_uri(previous)
    # set_tracking_uri exported `previous`; a test that never set the variable leaves
    # monkeypatch nothing to undo, so put it back here (it steered every later test)
    if variable is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = variable


def _files_holding(root: Path, secrets: list[str]) -> dict[str, list[str]]:
    """Every file under ``root`` that holds one of ``secrets``, with the ones it holds."""
    return {str(p.relative_to(root)): held for p in root.rglob("*") if p.is_file()
            if (held := [s for s in secrets if s.encode() in p.read_bytes()])}


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
    assert _files_holding(state, secrets) == {}
    logged = [r.getMessage() for r in caplog.records]
    assert [line for line in logged if any(s in line for s in secrets)] == []


def test_what_a_step_logs_through_its_tracker_and_the_registry_is_redacted(make_settings,
                                                                           tmp_path):
    secret = f"s-{uuid.uuid4().hex}"
    settings = make_settings()
    model = tmp_path / "model"
    model.mkdir()

    with step_run(settings, "train", "b1") as tracker:
        tracker.params({"spark.hadoop.fs.s3a.secret.key": secret, "search": "none"})
        tracker.tags({"sparkmlops.source": f"https://etl:{secret}@files.example.com/in"})
        tracker.log_dict({"options": {"password": secret, "header": "true"}}, "x/options.json")
        tracker.log_text(f"read wasbs://c@a.blob.core.windows.net/in?sig={secret}", "x/notes.txt")
        client = MlflowClient()
        client.create_registered_model("redacted_model")
        version = client.create_model_version("redacted_model", str(model), tracker.run_id)
        tracker.registry.tag_version("redacted_model", version.version,
                                     {"api_token": secret, "training_table": "gold.penguins"})
        tracker.registry.describe_version("redacted_model", version.version,
                                          f"trained on https://etl:{secret}@files.example.com")

    run = client.get_run(tracker.run_id)
    assert run.data.params == {"spark.hadoop.fs.s3a.secret.key": REDACTED, "search": "none"}
    assert run.data.tags["sparkmlops.source"] == \
        f"https://etl:{REDACTED}@files.example.com/in"
    artifacts = Path(client.download_artifacts(tracker.run_id, "x", str(tmp_path / "got")))
    assert json.loads((artifacts / "options.json").read_text()) == {
        "options": {"password": REDACTED, "header": "true"}}
    assert (artifacts / "notes.txt").read_text() == \
        f"read wasbs://c@a.blob.core.windows.net/in?sig={REDACTED}"
    logged = client.get_model_version("redacted_model", version.version)
    assert logged.tags == {"api_token": REDACTED, "training_table": "gold.penguins"}
    assert logged.description == f"trained on https://etl:{REDACTED}@files.example.com"
    assert _files_holding(tmp_path, [secret]) == {}
