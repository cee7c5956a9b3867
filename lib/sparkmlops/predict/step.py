"""Predict's I/O edge: a gold batch scored with @champion → predictions."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import pyspark.sql.functions as F
from pyspark.sql import SparkSession

from sparkmlops.config import Settings
from sparkmlops.errors import ReconciliationError
from sparkmlops.features import mllib
from sparkmlops.predict import scoring
from sparkmlops.quarantine import to_quarantine, write_quarantine
from sparkmlops.tables import (
    BATCH_COLUMN,
    TableRef,
    current_version,
    dataset_tables,
    read_batch,
    read_table,
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
    gold, predictions, quarantine = tables.gold, tables.predictions, tables.quarantine
    with step_run(settings, "predict", batch_id) as tracker:
        resolved = tracker.registry.require(dataset.model.name, model.lstrip("@"))
        uri = f"models:/{dataset.model.name}/{resolved.version}"
        pipeline_model = tracker.load_model(uri)
        version = gold_version if gold_version is not None else current_version(spark, gold)
        batch = read_batch(spark, gold, batch_id, version)
        shape: dict[str, Any] = {
            "model_name": dataset.model.name, "model_version": str(resolved.version),
            "model_run_id": str(resolved.run_id), "batch_id": batch_id,
            "scored_at": datetime.now().replace(microsecond=0)}
        missing = scoring.missing_inputs(_model_inputs(tracker, uri, dataset), batch.columns)
        # scored once, read by the count and both writes
        flagged, good = scoring.score_with_reasons(
            pipeline_model, batch, dataset.model.task, missing,
            model_label=f"model {dataset.model.name} v{resolved.version}")
        # cache only what the two writes read, not the model's feature vectors (at 10M
        # rows the whole scored frame spilled past a 4 GB driver)
        outputs = [c for c in ("prediction", "probability") if c in flagged.columns]
        flagged = flagged.select(*batch.columns, *outputs, scoring.UNSCORABLE_COLUMN).persist()
        try:
            rows = flagged.count()
            tracker.read(gold, version, rows)
            if not missing:
                good = flagged.where(F.col(scoring.UNSCORABLE_COLUMN).isNull())
            bad = flagged.where(F.col(scoring.UNSCORABLE_COLUMN).isNotNull())
            record = F.to_json(F.struct(*[c for c in batch.columns if c != BATCH_COLUMN]))
            unscorable = to_quarantine(bad, "predict", F.col(scoring.UNSCORABLE_COLUMN),
                                       record)
            quarantined = 0
            if not bad.isEmpty() or _has_rows(spark, quarantine, batch_id, "predict"):
                q_write = write_quarantine(unscorable, quarantine, batch_id, "predict")
                tracker.wrote(q_write)
                quarantined = q_write.rows
            written = write_batch(scoring.shape_predictions(good, dataset, **shape),
                                  predictions, dataset.write, dataset.keys, batch_id)
        finally:
            flagged.unpersist()
        tracker.wrote(written)
        if rows != written.rows + quarantined:
            raise ReconciliationError(
                f"predict batch {batch_id}: {rows} gold rows but {written.rows} predictions "
                f"and {quarantined} quarantined")
        tracker.params({"model_uri": uri, "model_alias": model,
                        "model_version": str(resolved.version)})
        return PredictOutcome(tracker.run_id, {predictions.fqn: written.version},
                              model_version=str(resolved.version), model_uri=uri,
                              rows=written.rows, quarantined=quarantined)


def _has_rows(spark: SparkSession, ref: TableRef, batch_id: str, step: str) -> bool:
    """Whether ``ref`` exists and holds rows of ``step`` for the batch (to be replaced)."""
    if current_version(spark, ref) is None:
        return False
    table = read_table(spark, ref)
    return not table.where((F.col(BATCH_COLUMN) == batch_id) & (F.col("step") == step)) \
        .isEmpty()


def _model_inputs(tracker: StepTracker, uri: str, dataset: Any) -> list[str]:
    """The input columns in the model's MLflow signature (else what the config implies)."""
    signature = tracker.model_info(uri).signature
    if signature is not None and signature.inputs is not None:
        return list(signature.inputs.input_names())
    return mllib.model_input_columns(dataset)


