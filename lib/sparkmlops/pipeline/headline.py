"""The batch's headline numbers, as the parent run's metrics and tags.

The MLflow runs table lists parent runs first; without metrics of its own a pipeline run
says nothing there until one opens its nested runs. These are the numbers a user compares
batch by batch: rows in, rows quarantined (and let on while failing a ``keep``
expectation), the holdout value of the metric the promotion gate judges by, whether the
challenger was promoted, the monitoring status. Read from the typed outcomes of the
steps that ran, so a pipeline that failed part-way records what it knew.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from sparkmlops.ingest.step import IngestOutcome
from sparkmlops.monitor.drift import STATUS_ORDER
from sparkmlops.monitor.step import MonitorOutcome
from sparkmlops.predict.step import PredictOutcome
from sparkmlops.promote.step import PromoteOutcome
from sparkmlops.tracking.runs import StepOutcome
from sparkmlops.train.step import TrainOutcome
from sparkmlops.validate.step import ValidateOutcome

# the parent run's tag of the monitoring status, the same key as the monitor run's
MONITORING_TAG = "monitoring.status"

OutcomeT = TypeVar("OutcomeT", bound=StepOutcome)


def headline_metrics(steps: Sequence[StepOutcome], primary_metric: str) -> dict[str, float]:
    """The parent run's metrics from the outcomes of the steps that ran (the last of each).

    ``rows_in`` landing rows read (bronze's rows of the batch when ingest skipped a batch
    it had ingested), ``rows_quarantined`` by ingest and by expectations,
    ``rows_kept_failing``, ``rows_predicted``, ``holdout.<primary metric>`` of the model
    trained, ``promoted`` 1/0, ``monitoring_status`` 0 ok / 1 warn / 2 alert. A step that
    did not run leaves its numbers out: absent, not zero.
    """
    metrics: dict[str, float] = {}
    if (ingest := _last(steps, IngestOutcome)) is not None:
        metrics["rows_in"] = ingest.bronze_rows if ingest.skipped else ingest.rows_in
        metrics["rows_quarantined"] = ingest.quarantined
    if (validate := _last(steps, ValidateOutcome)) is not None:
        metrics["rows_quarantined"] = metrics.get("rows_quarantined", 0) + validate.quarantined
        metrics["rows_kept_failing"] = validate.kept_failing
    if (train := _last(steps, TrainOutcome)) is not None and primary_metric in train.metrics:
        metrics[f"holdout.{primary_metric}"] = train.metrics[primary_metric]
    if (promote := _last(steps, PromoteOutcome)) is not None and promote.decision is not None:
        metrics["promoted"] = int(promote.promoted)
    if (predict := _last(steps, PredictOutcome)) is not None:
        metrics["rows_predicted"] = predict.rows
    if (monitor := _last(steps, MonitorOutcome)) is not None:
        metrics["monitoring_status"] = STATUS_ORDER[monitor.status]
    return metrics


def headline_tags(steps: Sequence[StepOutcome]) -> dict[str, str]:
    """The monitoring status in words (``ok`` / ``warn`` / ``alert``), when monitor ran."""
    monitor = _last(steps, MonitorOutcome)
    return {MONITORING_TAG: monitor.status} if monitor is not None else {}


def _last(steps: Sequence[StepOutcome], kind: type[OutcomeT]) -> OutcomeT | None:
    """The last outcome of ``kind`` (continuous mode may train twice), or None."""
    return next((s for s in reversed(steps) if isinstance(s, kind)), None)
