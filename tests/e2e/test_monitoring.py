"""Monitoring on the sample: the scored batch as trained on, then a drifted copy of it.

The run is in catalog mode (managed tables of ``spark_catalog``, a schema of its own,
the session's temp warehouse dir), so the same run also proves the pipeline finds every
table by name; path mode is the default of every other e2e run.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pyspark.sql.functions as F
import pytest
from mlflow.tracking import MlflowClient

from sparkmlops.config import Settings, load_settings
from sparkmlops.ingest.step import default_batch_id
from sparkmlops.monitor.step import MonitorOutcome, monitor_step
from sparkmlops.pipeline.step import PipelineResult, run_pipeline
from sparkmlops.pipeline.summary import pipeline_summary
from sparkmlops.predict.step import PredictOutcome, predict_step
from sparkmlops.tables import BATCH_COLUMN, dataset_tables, read_batch, read_table
from sparkmlops.tracking.registry import ModelRegistry
from sparkmlops.train.step import TrainOutcome
from sparkmlops.writes import replace_batch
from tests.e2e.conftest import QUALITY_METRICS_ROWS

pytestmark = pytest.mark.e2e


@dataclass
class Monitored:
    settings: Settings
    batch_id: str
    same: MonitorOutcome
    scored_drifted: PredictOutcome
    drifted: MonitorOutcome
    pipeline: PipelineResult
    state_dir: Path


@pytest.fixture(scope="module")
def monitored(spark, tmp_path_factory, sample_landing) -> Monitored:
    schema = f"e2e_monitoring_{uuid.uuid4().hex[:8]}"
    spark.sql(f"CREATE SCHEMA spark_catalog.{schema}")
    state_dir = tmp_path_factory.mktemp("monitoring")
    settings = load_settings("local", "penguins", overrides=[
        f"state_dir={state_dir}", "storage.catalog=spark_catalog", f"storage.schema={schema}",
        "dataset.monitor.live={accuracy: {warn: 0.8, alert: 0.65}}"])
    batch_id = default_batch_id(spark, settings)
    # batch mode monitors the batch it trained on as its last step
    pipeline = run_pipeline(spark, settings, batch_id)
    same = pipeline.step(MonitorOutcome)
    # the same birds again, each 3 kg heavier: a covariate shift the model never saw
    gold = dataset_tables(settings).gold
    heavier = (read_batch(spark, gold, batch_id)
               .withColumn("body_mass_g", F.col("body_mass_g") + 3000)
               .withColumn(BATCH_COLUMN, F.lit("drifted")))
    replace_batch(heavier, gold, "drifted")
    scored_drifted = predict_step(spark, settings, "drifted")
    drifted = monitor_step(spark, settings, "drifted")
    return Monitored(settings, batch_id, same, scored_drifted, drifted, pipeline, state_dir)


def _rows(spark, monitored: Monitored, batch: str) -> dict[tuple[str, str, str], dict]:
    table = read_table(spark, dataset_tables(monitored.settings).monitoring)
    return {(r.scored_batch, r.feature, r.metric): r.asDict()
            for r in table.where(F.col(BATCH_COLUMN) == batch).collect()}


def test_the_batch_trained_on_raises_no_alert(spark, monitored):
    rows = _rows(spark, monitored, monitored.batch_id)
    batch = monitored.batch_id

    # the reference is the training data as scored: the batch against it drifts nowhere
    assert monitored.same.status == "ok" and monitored.same.flagged == []
    assert monitored.same.monitoring_version == 0  # the first monitor run creates the table
    assert [k for k, r in rows.items() if r["status"] != "ok"] == []
    assert max(r["value"] for k, r in rows.items() if k[2] == "psi") < 0.02
    # 7 numeric (6 inputs + the score) and 3 categorical (2 inputs + the class), 5 each
    assert len([k for k in rows if k[1] != "_model"]) == 50
    assert rows[(batch, "body_mass_g", "psi")]["value"] < 0.1
    assert rows[(batch, "body_mass_g", "out_of_range_rate")]["value"] < 0.05
    live = rows[(batch, "_model", "live_accuracy")]
    # 333 of the 342 birds have a known sex
    assert live["value"] > 0.85 and live["rows"] == 333 and live["status"] == "ok"
    assert monitored.same.live == {"live_accuracy": live["value"]}


def test_batch_mode_monitors_as_its_last_step_and_says_so(spark, monitored):
    result = monitored.pipeline
    run = MlflowClient().get_run(monitored.same.run_id)

    assert result.steps[-1] is monitored.same
    assert run.data.tags["mlflow.parentRunId"] == result.parent_run_id
    assert run.data.tags["monitoring.status"] == "ok"
    assert monitored.same.model_version == result.step(PredictOutcome).model_version
    summary = pipeline_summary(spark, monitored.settings, result)
    assert (f"Monitoring: ok (batch against v{monitored.same.model_version}'s reference)\n"
            in summary)
    assert f"  Monitoring: file://{monitored.same.report}\n" in summary


def test_a_shifted_batch_alerts_on_the_feature_and_the_model(spark, monitored):
    rows = _rows(spark, monitored, "drifted")
    mass = {m: rows[("drifted", "body_mass_g", m)] for m in ("psi", "ks", "out_of_range_rate")}

    assert monitored.drifted.status == "alert"
    assert monitored.drifted.monitoring_version == 1
    # the drifted copy is scored whole by the champion: a new predictions version
    assert (monitored.scored_drifted.predictions_version, monitored.scored_drifted.rows,
            monitored.scored_drifted.quarantined) == (1, 342, 0)
    assert monitored.drifted.model_version == monitored.scored_drifted.model_version
    assert mass["psi"]["value"] > 0.25 and mass["psi"]["status"] == "alert"
    assert mass["ks"]["value"] > 0.9 and mass["ks"]["p_value"] < 1e-6
    # above the largest reference mass (the heaviest bird trained on), but for the birds
    # that were lighter than it less 3 kg
    gold = read_batch(spark, dataset_tables(monitored.settings).gold, monitored.batch_id)
    heaviest = gold.agg(F.max("body_mass_g")).first()[0]
    masses = [r[0] for r in gold.select("body_mass_g").dropna().collect()]
    assert mass["out_of_range_rate"]["value"] == pytest.approx(
        sum(m + 3000 > heaviest for m in masses) / len(masses))
    assert mass["out_of_range_rate"]["value"] > 0.85
    assert rows[("drifted", "culmen_length_mm", "psi")]["status"] == "ok"
    # heavier birds look male: the prediction drifts and live accuracy falls
    assert rows[("drifted", "_predicted", "psi")]["status"] == "alert"
    live = rows[("drifted", "_model", "live_accuracy")]
    assert live["value"] < 0.65 and live["status"] == "alert"
    # the live metric of the earlier batch is recomputed by the later run too
    assert rows[(monitored.batch_id, "_model", "live_accuracy")]["value"] > 0.85
    assert "body_mass_g.psi=" in " ".join(monitored.drifted.flagged)
    assert f"_model.live_accuracy={live['value']:.3g} (alert)" in monitored.drifted.flagged
    assert monitored.drifted.live == {"live_accuracy": live["value"]}


def test_monitor_run_and_report_show_the_alert(monitored):
    run = MlflowClient().get_run(monitored.drifted.run_id).data
    report = Path(monitored.drifted.report)

    assert run.tags["monitoring.status"] == "alert"
    assert run.metrics["drift.body_mass_g.psi"] > 0.25
    assert run.metrics["live_accuracy"] < 0.65
    assert report.name == "index.html"
    page = report.read_text()
    assert "Batch drifted: <span style='color:#c62828'>alert</span>" in page
    for image in ("drift.png", "history.png"):
        assert (report.parent / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    artifacts = {a.path for a in MlflowClient().list_artifacts(monitored.drifted.run_id,
                                                               "monitoring")}
    assert {"monitoring/index.html", "monitoring/drift.png",
            "monitoring/history.png"} <= artifacts


def test_every_table_is_a_managed_catalog_table_found_by_name(spark, monitored):
    settings = monitored.settings
    schema = f"spark_catalog.{settings.storage.schema_}"
    listed = spark.catalog.listTables(schema)
    counts = {t.name: spark.table(f"{schema}.{t.name}").count() for t in listed}
    monitoring_rows = len(_rows(spark, monitored, monitored.batch_id)) + len(
        _rows(spark, monitored, "drifted"))

    assert counts == {
        "bronze_penguins": 344, "silver_penguins": 342, "quarantine_penguins": 2,
        # the sample's batch and its drifted copy
        "gold_penguins_features": 684, "predictions_penguins": 684,
        "validation_results_penguins": len(settings.dataset.validate_.expectations),
        "quality_metrics_penguins": QUALITY_METRICS_ROWS,
        # the three landing files; one ingest_log row for the batch
        "manifest_penguins": 3, "ingest_log_penguins": 1,
        "monitoring_penguins": monitoring_rows,
        # registered, @challenger moved, the gate's decision, @champion moved
        "model_events_penguins": 4,
    }
    assert all(spark.catalog.tableExists(f"{schema}.{name}") for name in counts)
    assert {t.tableType for t in listed} == {"MANAGED"}
    assert not (monitored.state_dir / "lake").exists(), "a catalog table was written by path"


def test_lineage_and_model_tags_name_the_catalog_tables(spark, monitored):
    settings, result = monitored.settings, monitored.pipeline
    schema = f"spark_catalog.{settings.storage.schema_}"
    client = MlflowClient()
    train = result.step(TrainOutcome)

    champion = client.get_model_version_by_alias(settings.dataset.model.name, "champion")
    lineage = mlflow.artifacts.load_dict(
        f"{client.get_run(train.run_id).info.artifact_uri}/lineage.json")

    card = ModelRegistry(client).model_card(champion)
    assert card["training_table_name"] == f"{schema}.gold_penguins_features"
    assert "training_table_path" not in card
    assert [(i["table"], i["table_name"], i["path"], i["version"]) for i in lineage["inputs"]] \
        == [("gold.penguins_features", f"{schema}.gold_penguins_features", None, 0)]
    # step outputs and MLflow params keep the logical names, as in path mode
    assert result.step(PredictOutcome).outputs == {"predictions.penguins": 0}
    assert result.step(PredictOutcome).predictions_version == 0
    assert client.get_run(train.run_id).data.params[
        "input.gold.penguins_features.version"] == "0"
    summary = pipeline_summary(spark, settings, result)
    assert f"Delta tables in {schema}:" in summary
    assert f"  bronze.penguins                  v0    {schema}.bronze_penguins\n" in summary
    # the audit trail too: train's commit (v0), then promote's (v1)
    assert f"  model_events.penguins            v1    {schema}.model_events_penguins\n" in summary


def test_reproduce_time_travels_the_training_table_by_name(spark, monitored):
    from sparkmlops.train.step import reproduce_step

    schema = f"spark_catalog.{monitored.settings.storage.schema_}"
    train = monitored.pipeline.step(TrainOutcome)

    # gold has moved on since training (the drifted batch is v1)
    reproduced = reproduce_step(spark, monitored.settings, train.run_id)

    assert (reproduced.table_path, reproduced.table_version) == (
        f"{schema}.gold_penguins_features", 0)
    assert reproduced.max_abs_difference <= 1e-9
