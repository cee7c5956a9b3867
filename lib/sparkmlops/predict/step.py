"""Predict's I/O edge: a gold batch scored with @champion → predictions."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import pyspark.sql.functions as F
from pyspark.sql import DataFrame, SparkSession

from sparkmlops.config import Settings
from sparkmlops.errors import check_reconciled
from sparkmlops.features import mllib
from sparkmlops.predict import scoring
from sparkmlops.quarantine import to_quarantine, write_quarantine
from sparkmlops.spark import persisted
from sparkmlops.tables import (
    BATCH_COLUMN,
    TableRef,
    current_version,
    dataset_tables,
    read_batch,
    read_table,
    version_or_current,
)
from sparkmlops.tracking.registry import CHAMPION
from sparkmlops.tracking.runs import StepOutcome, StepTracker, step_run
from sparkmlops.writes import write_batch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictOutcome(StepOutcome):
    """The model version that scored the batch and where the rows went."""

    step: ClassVar[str] = "predict"
    model_version: str = ""
    model_uri: str = ""
    predictions_version: int | None = None  # predictions after the step
    rows: int = 0
    quarantined: int = 0

    @property
    def summary(self) -> dict[str, Any]:
        return {"model_version": self.model_version, "rows": self.rows,
                "quarantined": self.quarantined, "model_uri": self.model_uri}


def predict_step(
    spark: SparkSession, settings: Settings, batch_id: str,
    *, model: str = CHAMPION, gold_version: int | None = None,
) -> PredictOutcome:
    """Score the batch's gold rows with the model ``@alias`` (or version) → predictions.

    Rows the model cannot score go to quarantine (step ``predict``) with the reason:
    all of them when the batch lacks an input column the model was trained on, else
    each row that gets a null or NaN prediction. Gold batch = predictions +
    quarantined, or ReconciliationError.
    """
    dataset = settings.dataset
    tables = dataset_tables(settings)
    gold, predictions = tables.gold, tables.predictions
    step = PredictOutcome.step
    with step_run(settings, step, batch_id) as tracker:
        resolved = tracker.registry.require(dataset.model.name, model.lstrip("@"))
        uri = f"models:/{dataset.model.name}/{resolved.version}"
        pipeline_model = tracker.load_model(uri)
        version = version_or_current(spark, gold, gold_version)
        batch = read_batch(spark, gold, batch_id, version)
        scored_at = datetime.now().replace(microsecond=0)
        missing = scoring.missing_inputs(
            _model_inputs(tracker, uri, configured=mllib.model_input_columns(dataset)),
            batch.columns)
        flagged, good = scoring.score_with_reasons(
            pipeline_model, batch, dataset.model.task, missing,
            model_label=f"model {dataset.model.name} v{resolved.version}")
        # cache only what the count and both writes read, not the model's feature vectors
        # (at 10M rows the whole scored frame spilled past a 4 GB driver)
        outputs = [c for c in ("prediction", "probability") if c in flagged.columns]
        with persisted(flagged.select(*batch.columns, *outputs,
                                      scoring.UNSCORABLE_COLUMN)) as (flagged,):
            rows = flagged.count()
            tracker.read(gold, version, rows, context="scoring")
            if not missing:
                good = flagged.where(F.col(scoring.UNSCORABLE_COLUMN).isNull())
            quarantined = _quarantine_unscorable(spark, tracker, flagged, tables.quarantine,
                                                 batch_id, record_columns=batch.columns)
            scored = scoring.shape_predictions(
                good, dataset, model_name=dataset.model.name,
                model_version=str(resolved.version), model_run_id=str(resolved.run_id),
                batch_id=batch_id, scored_at=scored_at)
            written = write_batch(scored, predictions, dataset.write, dataset.keys, batch_id)
        tracker.wrote(written)
        check_reconciled(f"predict batch {batch_id}: {rows} gold rows", rows,
                         predictions=written.rows, quarantined=quarantined)
        tracker.params({"model_uri": uri, "model_alias": model,
                        "model_version": str(resolved.version)})
        return PredictOutcome(tracker.run_id, {predictions.fqn: written.version},
                              model_version=str(resolved.version), model_uri=uri,
                              predictions_version=written.version, rows=written.rows,
                              quarantined=quarantined)


def _quarantine_unscorable(
    spark: SparkSession, tracker: StepTracker, flagged: DataFrame, quarantine: TableRef,
    batch_id: str, *, record_columns: list[str],
) -> int:
    """Write the flagged rows to quarantine (step ``predict``) and return how many.

    Written when some row is unscorable, and also when none is but an earlier run of
    the batch quarantined rows: the write replaces them, so a rerun that now scores
    every row leaves no stale quarantine rows behind.
    """
    step = PredictOutcome.step
    bad = flagged.where(F.col(scoring.UNSCORABLE_COLUMN).isNotNull())
    if bad.isEmpty() and not _has_rows(spark, quarantine, batch_id, step):
        return 0
    record = F.to_json(F.struct(*[c for c in record_columns if c != BATCH_COLUMN]))
    unscorable = to_quarantine(bad, step, F.col(scoring.UNSCORABLE_COLUMN), record)
    written = write_quarantine(unscorable, quarantine, batch_id, step)
    tracker.wrote(written)
    return written.rows


def _has_rows(spark: SparkSession, ref: TableRef, batch_id: str, step: str) -> bool:
    """Whether ``ref`` exists and holds rows of ``step`` for the batch (to be replaced)."""
    if current_version(spark, ref) is None:
        return False
    table = read_table(spark, ref)
    return not table.where((F.col(BATCH_COLUMN) == batch_id) & (F.col("step") == step)) \
        .isEmpty()


def _model_inputs(tracker: StepTracker, uri: str, *, configured: list[str]) -> list[str]:
    """The input columns in the model's MLflow signature, else ``configured`` (what the
    dataset's config implies: a model logged without a signature)."""
    signature = tracker.model_info(uri).signature
    if signature is not None and signature.inputs is not None:
        return list(signature.inputs.input_names())
    return configured
