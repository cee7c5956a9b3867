"""Monitor's I/O edge: predictions + reference profile + labels → monitoring, retrain?"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import pyspark.sql.functions as F
from pyspark.sql import SparkSession

from sparkmlops.config import Settings
from sparkmlops.errors import MissingInputError
from sparkmlops.monitor import drift
from sparkmlops.tables import (
    BATCH_COLUMN,
    TableRef,
    current_version,
    dataset_tables,
    read_batch,
    read_table,
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
    with step_run(settings, "monitor", batch_id) as tracker:
        if current_version(spark, predictions) is None:
            raise MissingInputError(f"{predictions.fqn} does not exist; run predict first")
        scored_rows = read_table(spark, predictions)
        model_rows = (scored_rows.where(F.col(BATCH_COLUMN) == batch_id)
                      .select("model_name", "model_version", "model_run_id").distinct().collect())
        if not model_rows:
            raise MissingInputError(f"no predictions for batch {batch_id}; run predict first")
        name, model_version, run_id = model_rows[0]
        reference = Profile.from_dict(_run_artifact(tracker, run_id, REFERENCE_ARTIFACT))
        version = gold_version if gold_version is not None else current_version(spark, gold)
        batch = read_batch(spark, gold, batch_id, version)
        model = tracker.load_model(f"models:/{name}/{model_version}")
        # scored once: the profile reads it once per categorical column and once more
        frame = with_prediction_columns(model.transform(batch), dataset.model.task)
        frame = frame.select(*reference.numeric, *reference.categorical).persist()
        try:
            current = batch_profile(frame, reference)
        finally:
            frame.unpersist()
        rows = drift.judged(drift.compare(reference, current), dataset.monitor.drift)
        live = _live_rows(spark, scored_rows, read_table(spark, gold, version), dataset)
        status = drift.worst([r["status"] for r in rows] +
                             [r["status"] for r in live if r["scored_batch"] == batch_id])
        context = {"model_name": name, "model_version": str(model_version),
                   "model_run_id": run_id, "monitor_run_id": tracker.run_id,
                   "monitored_at": datetime.now().replace(microsecond=0),
                   "batch_rows": next(iter(current.numeric.values())).rows
                   if current.numeric else None}
        written = replace_batch(_monitoring_frame(spark, batch_id, rows, live, context), target,
                                batch_id)
        tracker.read(gold, version, context["batch_rows"])
        tracker.wrote(written)
        report = _monitoring_report(spark, settings, target, batch_id, rows, status)
        tracker.metrics({
            **{f"drift.{r['feature']}.{r['metric']}": r["value"] for r in rows},
            **{r["metric"]: r["value"] for r in live if r["scored_batch"] == batch_id}})
        tracker.tags({"monitoring.status": status,
                      "monitoring.model_version": str(model_version)})
        tracker.outcome(status)
        tracker.log_artifacts(str(report.parent), "monitoring")
        flagged = [f"{r['feature']}.{r['metric']}={r['value']:.3g} ({r['status']})"
                   for r in rows + live if r["status"] != "ok"
                   and r.get("scored_batch", batch_id) == batch_id]
        return MonitorOutcome(tracker.run_id, {target.fqn: written.version}, status=status,
                              model_version=str(model_version), flagged=flagged,
                              report=str(report),
                              live={r["metric"]: r["value"] for r in live
                                    if r["scored_batch"] == batch_id})


def _live_rows(spark: SparkSession, scored: Any, gold: Any, dataset: Any) -> list[dict[str, Any]]:
    """Live metric rows (scored batch, metric, value, status) where labels are known."""
    levels = dataset.monitor.live
    rows = []
    same_batch = dataset.write.mode == "append"
    for r in drift.live_metrics(scored, gold, dataset.keys, dataset.model.task,
                                same_batch=same_batch).collect():
        for metric, value in r.asDict().items():
            if metric in ("scored_batch", "labelled_rows") or value is None:
                continue
            name = metric.removeprefix("live_")
            level = levels.get(name)
            rows.append({"scored_batch": r["scored_batch"], "feature": "_model",
                         "metric": metric, "value": float(value), "p_value": None,
                         "warn": getattr(level, "warn", None),
                         "alert": getattr(level, "alert", None),
                         "status": level.status(value) if level else "ok",
                         "labelled_rows": int(r["labelled_rows"])})
    return rows


def _monitoring_frame(spark: SparkSession, batch_id: str, rows: list[dict[str, Any]],
                      live: list[dict[str, Any]], context: dict[str, Any]) -> Any:
    schema = ("_batch_id string, scored_batch string, feature string, metric string, "
              "value double, p_value double, warn double, alert double, status string, "
              "rows long, model_name string, model_version string, model_run_id string, "
              "monitor_run_id string, monitored_at timestamp")
    records = [
        (batch_id, r.get("scored_batch", batch_id), r["feature"], r["metric"], r["value"],
         r["p_value"], r["warn"], r["alert"], r["status"],
         r.get("labelled_rows", context["batch_rows"]), context["model_name"],
         context["model_version"], context["model_run_id"], context["monitor_run_id"],
         context["monitored_at"])
        for r in [*rows, *live]]
    return spark.createDataFrame(records, schema)


def _monitoring_report(spark: SparkSession, settings: Settings, target: TableRef,
                       batch_id: str, rows: list[dict[str, Any]], status: str) -> Path:
    from sparkmlops.monitor.report import write_report

    table = read_table(spark, target)
    history = [{"batch": r[BATCH_COLUMN], "monitored_at": r["monitored_at"],
                "feature": r["feature"], "metric": r["metric"], "value": r["value"]}
               for r in table.where(F.col("feature") != "_model").collect()]
    # live metrics of each scored batch as its latest monitor run saw them
    latest: dict[tuple[str, str], Any] = {}
    for r in table.where(F.col("feature") == "_model").orderBy("monitored_at").collect():
        latest[(r["scored_batch"], r["metric"])] = r
    live = [{"scored_batch": b, "metric": m, "value": r["value"]}
            for (b, m), r in latest.items()]
    out = Path(settings.resolve_path(f"{settings.state_dir}/reports/monitoring/"
                                     f"{settings.dataset.name}/{batch_id}"))
    return write_report(out, batch_id, rows, history, live, status)


def _run_artifact(tracker: StepTracker, run_id: str, path: str) -> dict[str, Any]:
    try:
        return dict(tracker.run_json(run_id, path))
    except Exception:  # noqa: BLE001 - any store error means the same thing here
        raise MissingInputError(f"training run {run_id} has no {path}; retrain the model "
                                "to give monitoring a reference") from None
