"""Monitoring on the sample: the scored batch as trained on, then a drifted copy of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyspark.sql.functions as F
import pytest
from mlflow.tracking import MlflowClient

from sparkmlops.config import Settings, load_settings
from sparkmlops.ingest import landing_batch_id
from sparkmlops.pipeline import run_pipeline
from sparkmlops.steps import StepResult, monitor_step, predict_step
from sparkmlops.tables import (
    BATCH_COLUMN,
    features_table_name,
    read_batch,
    read_table,
    replace_batch,
    table_ref,
)
from tests.conftest import SAMPLE_LANDING

pytestmark = pytest.mark.e2e


@dataclass
class Monitored:
    settings: Settings
    batch_id: str
    same: StepResult
    drifted: StepResult


@pytest.fixture(scope="module")
def monitored(spark, tmp_path_factory) -> Monitored:
    settings = load_settings("local", "penguins", overrides=[
        f"state_dir={tmp_path_factory.mktemp('monitoring')}",
        "dataset.monitoring.live={accuracy: {warn: 0.8, alert: 0.65}}"])
    batch_id = landing_batch_id(spark, str(SAMPLE_LANDING))
    run_pipeline(spark, settings, batch_id)
    same = monitor_step(spark, settings, batch_id)
    # the same birds again, each 3 kg heavier: a covariate shift the model never saw
    gold = table_ref(settings, "gold", features_table_name(settings))
    heavier = (read_batch(spark, gold, batch_id)
               .withColumn("body_mass_g", F.col("body_mass_g") + 3000)
               .withColumn(BATCH_COLUMN, F.lit("drifted")))
    replace_batch(heavier, gold, "drifted")
    predict_step(spark, settings, "drifted")
    drifted = monitor_step(spark, settings, "drifted")
    return Monitored(settings, batch_id, same, drifted)


def _rows(spark, monitored: Monitored, batch: str) -> dict[tuple[str, str, str], dict]:
    table = read_table(spark, table_ref(monitored.settings, "monitoring"))
    return {(r.scored_batch, r.feature, r.metric): r.asDict()
            for r in table.where(F.col(BATCH_COLUMN) == batch).collect()}


def test_the_batch_trained_on_raises_no_alert(spark, monitored):
    rows = _rows(spark, monitored, monitored.batch_id)
    batch = monitored.batch_id

    assert monitored.same.summary["status"] in ("ok", "warn")
    assert [k for k, r in rows.items() if r["status"] == "alert"] == []
    # 7 numeric (6 inputs + the score) and 3 categorical (2 inputs + the class), 5 each
    assert len([k for k in rows if k[1] != "_model"]) == 50
    assert rows[(batch, "body_mass_g", "psi")]["value"] < 0.1
    assert rows[(batch, "body_mass_g", "out_of_range_rate")]["value"] < 0.05
    live = rows[(batch, "_model", "live_accuracy")]
    # 333 of the 342 birds have a known sex
    assert live["value"] > 0.85 and live["rows"] == 333 and live["status"] == "ok"


def test_a_shifted_batch_alerts_on_the_feature_and_the_model(spark, monitored):
    rows = _rows(spark, monitored, "drifted")
    mass = {m: rows[("drifted", "body_mass_g", m)] for m in ("psi", "ks", "out_of_range_rate")}

    assert monitored.drifted.summary["status"] == "alert"
    assert mass["psi"]["value"] > 0.25 and mass["psi"]["status"] == "alert"
    assert mass["ks"]["value"] > 0.9 and mass["ks"]["p_value"] < 1e-6
    # above the largest reference mass, but for the lightest birds (2.7 kg + 3 kg)
    assert mass["out_of_range_rate"]["value"] > 0.9
    assert rows[("drifted", "culmen_length_mm", "psi")]["status"] == "ok"
    # heavier birds look male: the prediction drifts and live accuracy falls
    assert rows[("drifted", "_predicted", "psi")]["status"] == "alert"
    live = rows[("drifted", "_model", "live_accuracy")]
    assert live["value"] < 0.65 and live["status"] == "alert"
    # the live metric of the earlier batch is recomputed by the later run too
    assert rows[(monitored.batch_id, "_model", "live_accuracy")]["value"] > 0.85
    assert "body_mass_g.psi=" in " ".join(monitored.drifted.summary["flagged"])


def test_monitor_run_and_report_show_the_alert(monitored):
    run = MlflowClient().get_run(monitored.drifted.run_id).data
    report = Path(monitored.drifted.summary["report"])

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
