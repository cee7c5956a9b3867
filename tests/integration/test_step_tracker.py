"""The step tracker records exactly what a step read and wrote: its params, metrics and lineage.

Each test runs the tracker inside a run of a throwaway MLflow store in tmp_path (a SQLite file:
MLflow 3 refuses the ./mlruns file store unless MLFLOW_ALLOW_FILE_STORE is set), with no
settings, no Spark and no Delta, then reads the run back.
"""

from __future__ import annotations

from collections.abc import Iterator

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from sparkmlops.tables import TableRef, TableWrite
from sparkmlops.tracking.runs import StepTracker

GOLD = TableRef(layer="gold", name="penguins_features", path="/lake/gold/penguins_features")
PREDICTIONS = TableRef(layer="predictions", name="penguins", path=None,
                       table_name="main.ml.predictions_penguins")


@pytest.fixture
def local_store(tmp_path, monkeypatch) -> Iterator[str]:
    """An MLflow store of this test's own; the tracking URI is put back after."""
    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    # an experiment of this store: the one an earlier test made active lives in another
    mlflow.set_experiment("step_tracker")
    try:
        yield uri
    finally:
        mlflow.set_tracking_uri(previous)


def _tracked(step: str, record) -> tuple[StepTracker, dict, dict]:
    """Run ``record(tracker)`` in a fresh run: (tracker, the run's params, its metrics)."""
    with mlflow.start_run() as run:
        tracker = StepTracker(step=step, run_id=run.info.run_id)
        record(tracker)
    data = MlflowClient().get_run(run.info.run_id).data
    return tracker, data.params, data.metrics


def test_read_records_the_table_version_as_a_param_and_its_rows_as_a_count(local_store):
    tracker, params, metrics = _tracked("train", lambda t: t.read(GOLD, 3, 120))

    assert tracker.inputs == [{"table": "gold.penguins_features",
                               "path": "/lake/gold/penguins_features", "table_name": None,
                               "version": 3, "rows": 120}]
    assert tracker.counts == {"rows_in.gold.penguins_features": 120}
    assert params == {"input.gold.penguins_features.version": "3"}
    assert metrics == {"rows_in.gold.penguins_features": 120.0}


def test_read_without_rows_records_the_version_and_counts_nothing(local_store):
    tracker, params, metrics = _tracked("monitor", lambda t: t.read(GOLD, None))

    assert tracker.inputs == [{"table": "gold.penguins_features",
                               "path": "/lake/gold/penguins_features", "table_name": None,
                               "version": None, "rows": None}]
    assert tracker.counts == {}
    assert params == {"input.gold.penguins_features.version": "None"}
    assert metrics == {}


def test_wrote_records_the_committed_version_and_the_rows_of_the_write(local_store):
    tracker, params, metrics = _tracked(
        "predict", lambda t: t.wrote(TableWrite(PREDICTIONS, version=7, rows=42)))

    assert tracker.outputs == [{"table": "predictions.penguins", "path": None,
                                "table_name": "main.ml.predictions_penguins",
                                "version": 7, "rows": 42}]
    assert tracker.counts == {"rows_out.predictions.penguins": 42}
    assert params == {"output.predictions.penguins.version": "7"}
    assert metrics == {"rows_out.predictions.penguins": 42.0}


def test_wrote_with_rows_given_counts_those_rows_not_the_writes(local_store):
    # a MERGE reports the rows it touched; the step knows how many rows the batch holds
    tracker, _, metrics = _tracked(
        "features", lambda t: t.wrote(TableWrite(GOLD, version=2, rows=5), rows=342))

    assert [o["rows"] for o in tracker.outputs] == [342]
    assert metrics == {"rows_out.gold.penguins_features": 342.0}


def test_a_table_committed_twice_in_a_run_is_one_entry_with_its_last_version(local_store):
    # promote appends to the audit trail once per judged version; MLflow params cannot
    # change, so the param keeps the first commit and lineage.json the last
    def record(t: StepTracker) -> None:
        t.wrote(TableWrite(PREDICTIONS, version=3, rows=2))
        t.wrote(TableWrite(PREDICTIONS, version=4, rows=1))

    tracker, params, metrics = _tracked("promote", record)

    assert tracker.outputs == [{"table": "predictions.penguins", "path": None,
                                "table_name": "main.ml.predictions_penguins",
                                "version": 4, "rows": 3, "commits": 2}]
    assert params == {"output.predictions.penguins.version": "3"}
    assert metrics == {"rows_out.predictions.penguins": 3.0}


def test_count_keeps_an_int_and_logs_it_as_a_metric(local_store):
    tracker, params, metrics = _tracked("ingest", lambda t: t.count("quarantined", 2.0))

    assert tracker.counts == {"quarantined": 2}
    assert type(tracker.counts["quarantined"]) is int
    assert params == {}
    assert metrics == {"quarantined": 2.0}


def test_lineage_is_the_step_its_run_and_what_it_read_wrote_and_counted(local_store):
    def record(t: StepTracker) -> None:
        t.read(GOLD, 3, 120)
        t.wrote(TableWrite(PREDICTIONS, version=7, rows=42))
        t.count("unscorable", 1)

    tracker, _, _ = _tracked("predict", record)

    assert tracker.lineage() == {
        "step": "predict",
        "run_id": tracker.run_id,
        "inputs": [{"table": "gold.penguins_features", "path": "/lake/gold/penguins_features",
                    "table_name": None, "version": 3, "rows": 120}],
        "outputs": [{"table": "predictions.penguins", "path": None,
                     "table_name": "main.ml.predictions_penguins", "version": 7, "rows": 42}],
        "counts": {"rows_in.gold.penguins_features": 120,
                   "rows_out.predictions.penguins": 42, "unscorable": 1},
    }
