"""A second real public dataset brought in through config only: US flights (2001, BTS).

``conf/datasets/flights.yml`` and the unchanged landing file of ``data/sample/flights``,
nothing else: a JSON array with a timestamp in a format of its own, no natural key (the
departure time and route), the label derived by ``label.expr`` (more than 15 minutes
late), and a warning expectation (the usual distance range) whose failing rows are kept,
trained on and scored. The expected values come from the file itself, read here with
Python's ``json``, not from the pipeline.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import mlflow
import pytest
from deltalake import DeltaTable

from sparkmlops.config import load_settings
from sparkmlops.ingest.step import IngestOutcome, default_batch_id
from sparkmlops.monitor.step import MonitorOutcome
from sparkmlops.pipeline.step import run_pipeline
from sparkmlops.pipeline.summary import pipeline_summary
from sparkmlops.predict.step import PredictOutcome
from sparkmlops.promote.step import PromoteOutcome
from sparkmlops.tracking.runs import configure_mlflow
from sparkmlops.train.step import TrainOutcome
from sparkmlops.validate.step import ValidateOutcome

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
FLIGHTS = json.loads((REPO / "data/sample/flights/landing/flights-2k.json").read_text())
DISTANCE = "expect_column_values_to_be_between(distance_miles)"


def _key(flight: dict[str, object]) -> tuple[datetime, str, str]:
    return (datetime.strptime(str(flight["date"]), "%Y/%m/%d %H:%M"),
            str(flight["origin"]), str(flight["destination"]))


def _rows(lake: Path, table: str) -> list[dict[str, object]]:
    return DeltaTable(str(lake / table)).to_pyarrow_table().to_pylist()


@pytest.fixture(scope="module")
def flights(spark, tmp_path_factory):
    state = tmp_path_factory.mktemp("flights")
    settings = load_settings("local", "flights", overrides=[f"state_dir={state}"])
    result = run_pipeline(spark, settings, default_batch_id(spark, settings))
    return settings, result, state / "lake"


def test_every_flight_lands_and_is_scored_the_long_ones_kept(spark, flights):
    settings, result, lake = flights
    long_haul = {_key(f) for f in FLIGHTS if float(f["distance"]) > 2000}
    assert len(long_haul) == 8  # the file's flights over the usual range

    validate = result.step(ValidateOutcome)
    assert (result.step(IngestOutcome).rows_in, result.step(IngestOutcome).quarantined) == (
        len(FLIGHTS), 0)
    assert (validate.status, validate.silver_rows, validate.quarantined,
            validate.kept_failing) == ("passed", len(FLIGHTS), 0, len(long_haul))
    assert result.step(PredictOutcome).rows == len(FLIGHTS)
    predictions = _rows(lake, "predictions/flights")
    scored = {(r["departure"].replace(tzinfo=None), r["origin"], r["destination"])
              for r in predictions if r["prediction"] is not None}
    assert len(predictions) == len(scored) == len(FLIGHTS)
    assert long_haul <= scored
    [distance] = [r for r in _rows(lake, "validation_results/flights")
                  if r["expectation"] == DISTANCE.split("(")[0]
                  and r["column"] == "distance_miles"]
    assert (distance["severity"], distance["action"], distance["success"],
            distance["rows_kept"], distance["rows_quarantined"]) == (
        "warning", "keep", True, len(long_haul), 0)
    assert ("Rows: landing 2000 -> bronze 2000 (+0 quarantined at ingest) -> silver 2000 "
            "(+0 quarantined by expectations; 8 kept failing a keep expectation) -> "
            "predictions 2000") in pipeline_summary(spark, settings, result).splitlines()


def test_the_batch_trained_on_monitors_ok_against_its_own_reference(flights):
    _, result, lake = flights
    monitored = result.step(MonitorOutcome)
    assert (monitored.status, monitored.flagged, monitored.model_version) == ("ok", [], "1")
    rows = _rows(lake, "monitoring/flights")
    # every input and the prediction, judged on the whole training window: no drift at all
    psi = {r["feature"]: r["value"] for r in rows if r["metric"] == "psi"}
    assert {"distance_miles", "departure_hour", "origin", "_score"} <= set(psi)
    assert max(psi.values()) < 1e-9
    assert {r["status"] for r in rows} == {"ok"}


def test_the_label_is_derived_from_the_delay_and_logged_with_the_training_run(flights):
    settings, result, lake = flights
    delayed = {_key(f) for f in FLIGHTS if float(f["delay"]) > 15}
    gold = _rows(lake, "gold/flights_features")
    labelled = {(r["departure"].replace(tzinfo=None), r["origin"], r["destination"]):
                r["label_raw"] for r in gold}
    assert len(gold) == len(labelled) == len(FLIGHTS)
    assert {k for k, v in labelled.items() if v == "delayed"} == delayed
    assert {v for k, v in labelled.items() if k not in delayed} == {"on_time"}
    # the positive class is the second of label.classes
    assert {(r["label_raw"], r["label"]) for r in gold} == {("on_time", 0.0), ("delayed", 1.0)}

    train = result.step(TrainOutcome)
    assert train.rows_train + train.rows_test == len(FLIGHTS)
    configure_mlflow(settings)
    run = mlflow.get_run(train.run_id)
    assert run.data.params["label.expr"] == settings.dataset.label.expr
    assert run.data.metrics["rows_without_label"] == 0
    decision = result.step(PromoteOutcome).decision
    assert decision is not None and decision.promoted
    assert result.step(PromoteOutcome).champion == train.model_version == "1"
