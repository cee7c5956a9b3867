"""Monitor's I/O edge: predictions + reference profile + labels → monitoring, retrain?"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import pyspark.sql.functions as F
from pyspark.sql import DataFrame, SparkSession

from sparkmlops.config import Settings
from sparkmlops.errors import MissingInputError
from sparkmlops.monitor import drift
from sparkmlops.monitor.drift import MonitoringRow
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
from sparkmlops.tracking.runs import StepOutcome, StepTracker, step_run
from sparkmlops.train.reference import (
    REFERENCE_ARTIFACT,
    Profile,
    batch_profile,
    with_prediction_columns,
)
from sparkmlops.writes import replace_batch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MonitorOutcome(StepOutcome):
    """The batch's drift status (its worst row), what was flagged and the report."""

    step: ClassVar[str] = "monitor"
    status: str = "ok"
    model_version: str = ""
    flagged: list[str] = field(default_factory=list)
    report: str = ""
    live: dict[str, float] = field(default_factory=dict)  # live metrics of this batch
    monitoring_version: int | None = None  # monitoring after the step

    @property
    def summary(self) -> dict[str, Any]:
        return {"status": self.status, "model_version": self.model_version,
                "flagged": self.flagged, "report": self.report, "live": self.live}


def monitor_step(
    spark: SparkSession, settings: Settings, batch_id: str, *, gold_version: int | None = None
) -> MonitorOutcome:
    """A scored batch against its model's reference profile → ``monitoring`` + report.

    The model and its reference come from the batch's prediction rows (the version
    that scored it, the profile its train run saved). Drift per feature and for the
    prediction, null and out-of-range rates, and live metrics of every scored batch
    whose labels are in gold now; each row judged ok / warn / alert by
    ``monitoring`` thresholds, the batch by its worst row.
    """
    dataset = settings.dataset
    tables = dataset_tables(settings)
    gold, predictions, target = tables.gold, tables.predictions, tables.monitoring
    with step_run(settings, MonitorOutcome.step, batch_id) as tracker:
        if current_version(spark, predictions) is None:
            raise MissingInputError(f"{predictions.fqn} does not exist; run predict first")
        scored_rows = read_table(spark, predictions)
        name, model_version, run_id = _scoring_model(scored_rows, batch_id)
        reference = Profile.from_dict(_run_artifact(tracker, run_id, REFERENCE_ARTIFACT))
        version = version_or_current(spark, gold, gold_version)
        batch = read_batch(spark, gold, batch_id, version)
        model = tracker.load_model(f"models:/{name}/{model_version}")
        # scored once: the profile reads it once per categorical column and once more
        profiled = with_prediction_columns(model.transform(batch), dataset.model.task)
        with persisted(profiled.select(*reference.numeric,
                                       *reference.categorical)) as (frame,):
            current = batch_profile(frame, reference)
        batch_rows = next(iter(current.numeric.values())).rows if current.numeric else None
        run = drift.MonitorRun(batch_id=batch_id, model_name=name,
                               model_version=model_version, model_run_id=run_id,
                               monitor_run_id=tracker.run_id,
                               monitored_at=datetime.now().replace(microsecond=0))
        rows = drift.judged(drift.compare(reference, current), dataset.monitor.drift, run,
                            rows=batch_rows)
        live = drift.judged_live(
            drift.live_metrics(scored_rows, read_table(spark, gold, version), dataset.keys,
                               dataset.model.task, same_batch=dataset.write.mode == "append"),
            dataset.monitor.live, run)
        live_now = [r for r in live if r.scored_batch == batch_id]
        status = drift.worst([r.status for r in rows + live_now])
        # merge_schema: a table written before a column of MonitoringRow (note) gains it
        written = replace_batch(_monitoring_frame(spark, rows + live), target, batch_id,
                                merge_schema=True)
        tracker.read(gold, version, batch_rows)
        tracker.wrote(written)
        report = _monitoring_report(
            spark, target, batch_id, rows, status, out=Path(settings.resolve_path(
                f"{settings.state_dir}/reports/monitoring/{dataset.name}/{batch_id}")))
        tracker.metrics({**{f"drift.{r.feature}.{r.metric}": r.value for r in rows
                            if not math.isnan(r.value)},
                         **{r.metric: r.value for r in live_now}})
        tracker.tags({"monitoring.status": status,
                      "monitoring.model_version": model_version})
        tracker.outcome(status)
        tracker.log_artifacts(str(report.parent), "monitoring")
        return MonitorOutcome(tracker.run_id, {target.fqn: written.version}, status=status,
                              model_version=model_version,
                              flagged=[r.described() for r in rows + live_now
                                       if r.status != "ok"],
                              report=str(report), live={r.metric: r.value for r in live_now},
                              monitoring_version=written.version)


def _scoring_model(predictions: DataFrame, batch_id: str) -> tuple[str, str, str]:
    """The model that scored the batch: its name, version and training run id."""
    models = (predictions.where(F.col(BATCH_COLUMN) == batch_id)
              .select("model_name", "model_version", "model_run_id").distinct().collect())
    if not models:
        raise MissingInputError(f"no predictions for batch {batch_id}; run predict first")
    name, version, run_id = models[0]
    return str(name), str(version), str(run_id)


def _monitoring_frame(spark: SparkSession, rows: list[MonitoringRow]) -> DataFrame:
    """The rows as a frame of ``monitoring.<dataset>`` (columns and types from the row)."""
    return spark.createDataFrame([r.record() for r in rows], drift.monitoring_schema())


def _monitoring_report(spark: SparkSession, target: TableRef, batch_id: str,
                       rows: list[MonitoringRow], status: str, *, out: Path) -> Path:
    """The batch's report in ``out``: its judged ``rows``, the drift of every monitored
    batch and the live metrics of each scored batch as its latest monitor run saw them."""
    from sparkmlops.monitor.report import write_report

    table = [MonitoringRow.from_row(r) for r in read_table(spark, target).collect()]
    history = [r for r in table if r.feature != drift.LIVE_FEATURE]
    latest: dict[tuple[str, str], MonitoringRow] = {}
    for r in sorted((r for r in table if r.feature == drift.LIVE_FEATURE),
                    key=lambda r: r.monitored_at):
        latest[(r.scored_batch, r.metric)] = r
    return write_report(out, batch_id, rows, history, list(latest.values()), status)


def _run_artifact(tracker: StepTracker, run_id: str, path: str) -> dict[str, Any]:
    try:
        return dict(tracker.run_json(run_id, path))
    except Exception:  # noqa: BLE001 - any store error means the same thing here
        raise MissingInputError(f"training run {run_id} has no {path}; retrain the model "
                                "to give monitoring a reference") from None
