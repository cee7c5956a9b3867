"""Per-batch quality metrics, and their anomalies against the recent history of batches.

Great Expectations judges one batch against fixed bounds; nothing in it looks across
batches, so a batch with half the usual rows, or a column whose null share jumps from
1 % to 30 % while staying under a ``mostly``, passes. Deequ keeps a metrics repository
and detects anomalies on it; this is that, on a Delta table:

- :func:`measure` reads a batch's metrics in one aggregation (one Spark job, whatever
  the number of columns): its row count; per column (audit columns ``_*`` left out) the
  share of nulls and the distinct count (``approx_count_distinct``, HyperLogLog++ with
  Spark's default 5 % relative error: exact-ish below a few hundred values, close enough
  to see a jump above); min, max and mean of the numeric columns (as doubles);
- :func:`judge` gives each metric the verdict of its ``validate.anomalies`` rule against
  the same metric of the previous batches (:func:`previous_batches`): ``ok``,
  ``anomaly``, ``no_history`` (too few previous batches: no verdict, never a false
  alarm), ``no_value`` (the metric has no value, e.g. the mean of an all-null column) or
  ``not_judged`` (no rule);
- :class:`QualityMetricRow` is the one declaration of a row of
  ``quality_metrics.<dataset>`` (long and narrow: one row per batch, metric and column);
  :func:`quality_metrics_schema` derives the Spark schema from it.

Example::

    rows = judge(measure(batch), history, settings.dataset.validate_, run)
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import astuple, dataclass, fields, replace
from datetime import datetime
from typing import Any

import pyspark.sql.functions as F
from pyspark.sql import DataFrame, Row
from pyspark.sql.types import NumericType

from sparkmlops.config import AnomalyRule, ValidateSettings
from sparkmlops.tables import record_column, record_schema
from sparkmlops.validate.expectations import GateStatus

# a deviation this small (relative to the expected value, or absolute near 0) is float
# noise of the mean, never an anomaly: the same batch twice must come out ``ok``
EPSILON = 1e-9
# statuses of a metric; only ``anomaly`` is a finding
OK, ANOMALY, NO_HISTORY, NO_VALUE, NOT_JUDGED = (
    "ok", "anomaly", "no_history", "no_value", "not_judged")
# a batch whose validation status this is (its gate stopped it, or would have in
# dry_run) is not history: its metrics are what the gate refused
REFUSED = "failed"


@dataclass(frozen=True)
class Measured:
    """One metric of a batch: of the batch (``column`` None: ``row_count``) or a column."""

    metric: str
    column: str | None
    value: float | None


def measure(batch: DataFrame) -> list[Measured]:
    """The batch's metrics, in one aggregation over it.

    Row count; per column (``_*`` audit columns skipped) null share and approximate
    distinct count; min, max and mean of numeric columns. An empty batch has no null
    share (None).
    """
    columns = [f for f in batch.schema.fields if not f.name.startswith("_")]
    numeric = {f.name for f in columns if isinstance(f.dataType, NumericType)}
    aggregates = [F.count(F.lit(1)).alias("rows")]
    # positional aliases: a column name may hold any character
    for i, f in enumerate(columns):
        col = F.col(f"`{f.name}`")
        aggregates += [F.count(col).alias(f"n{i}"), F.approx_count_distinct(col).alias(f"d{i}")]
        if f.name in numeric:
            aggregates += [F.min(col).cast("double").alias(f"lo{i}"),
                           F.max(col).cast("double").alias(f"hi{i}"),
                           F.avg(col).cast("double").alias(f"mean{i}")]
    stats = batch.agg(*aggregates).first()
    assert stats is not None  # an aggregation without grouping has one row
    rows = int(stats["rows"])
    measured = [Measured("row_count", None, float(rows))]
    for i, f in enumerate(columns):
        nulls = rows - int(stats[f"n{i}"])
        measured += [Measured("null_share", f.name, nulls / rows if rows else None),
                     Measured("distinct_count", f.name, float(stats[f"d{i}"]))]
        if f.name in numeric:
            measured += [Measured("min", f.name, _float(stats[f"lo{i}"])),
                         Measured("max", f.name, _float(stats[f"hi{i}"])),
                         Measured("mean", f.name, _float(stats[f"mean{i}"]))]
    return measured


def row_count(measured: list[Measured]) -> int:
    """The batch's rows, as :func:`measure` counted them."""
    return next(int(m.value or 0) for m in measured if m.metric == "row_count")


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class QualityRun:
    """Who measured a batch: its validate run, the bronze version read and when."""

    batch_id: str
    validation_id: str  # the validate step's MLflow run id
    table_version: int | None
    measured_at: datetime


@dataclass(frozen=True)
class QualityMetricRow:
    """One row of ``quality_metrics.<dataset>``: a metric of a batch and its verdict.

    The table's columns are these fields, in this order (``batch_id`` is the column
    ``_batch_id``): ``quality_metrics_schema()`` derives the Spark schema from them.
    ``expected`` is the mean over the ``history`` previous batches read, ``low`` and
    ``high`` the accepted band; all three are null without a verdict.
    """

    batch_id: str
    metric: str  # row_count, null_share, distinct_count, min, max, mean
    column_name: str | None  # None: a metric of the batch (row_count)
    value: float | None
    status: str  # ok, anomaly, no_history, no_value, not_judged
    severity: str | None  # the rule's: critical or warning
    rule: str | None  # the rule, as ``max_change 0.3 of last 5``
    history: int  # previous batches with a value of this metric, read by the rule
    expected: float | None
    low: float | None
    high: float | None
    gate_status: str  # the validation's status, anomalies included
    validation_id: str
    table_version: int | None
    measured_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> QualityMetricRow:
        """The row as read back from the table."""
        values: dict[str, Any] = row.asDict()
        return cls(**{f.name: values[record_column(f.name)] for f in fields(cls)})

    def record(self) -> tuple[Any, ...]:
        """The row's values in the table's column order."""
        return astuple(self)

    @property
    def label(self) -> str:
        """``row_count`` / ``null_share(body_mass_g)``."""
        return f"{self.metric}({self.column_name})" if self.column_name else self.metric

    @property
    def is_anomaly(self) -> bool:
        return self.status == ANOMALY

    def described(self) -> str:
        """``null_share(body_mass_g)=0.3 outside [0, 0.06] (expected 0.01 from 3 batches;
        k 3 std of last 10) [warning]``, as the outcome and the log name an anomaly."""
        return (f"{self.label}={_g(self.value)} outside [{_g(self.low)}, {_g(self.high)}] "
                f"(expected {_g(self.expected)} from {self.history} batches; {self.rule}) "
                f"[{self.severity}]")


def _g(value: float | None) -> str:
    return "null" if value is None else f"{value:.4g}"


def quality_metrics_schema() -> str:
    """The Spark schema (DDL) of ``quality_metrics.<dataset>``, from ``QualityMetricRow``."""
    return record_schema(QualityMetricRow)


def previous_batches(
    order: list[str], batch_id: str, recorded: dict[str, datetime], depth: int
) -> list[str]:
    """The last ``depth`` batches before ``batch_id`` that have metrics (``recorded``: batch
    → when it was first measured), oldest first.

    "Before" is ingest ``order`` (re-validating an old batch judges it against the ones
    ingested before it, not after); a batch ingest order does not know (bronze written
    by other means) is judged against every recorded batch measured before it, by time.
    """
    if batch_id in order:
        before = order[:order.index(batch_id)]
        return [b for b in before if b in recorded][-depth:] if depth else []
    earlier = sorted((when, b) for b, when in recorded.items() if b != batch_id)
    return [b for _, b in earlier][-depth:] if depth else []


def history_values(
    rows: Iterable[QualityMetricRow], batches: list[str]
) -> dict[tuple[str, str | None], list[float]]:
    """Each metric's values over ``batches`` (oldest first), nulls and NaN left out."""
    position = {b: i for i, b in enumerate(batches)}
    by_metric: dict[tuple[str, str | None], list[tuple[int, float]]] = {}
    for r in rows:
        if r.batch_id in position and r.value is not None and math.isfinite(r.value):
            by_metric.setdefault((r.metric, r.column_name), []).append(
                (position[r.batch_id], r.value))
    return {key: [v for _, v in sorted(values)] for key, values in by_metric.items()}


def judge(
    measured: list[Measured], history: dict[tuple[str, str | None], list[float]],
    quality: ValidateSettings, run: QualityRun,
) -> list[QualityMetricRow]:
    """Each metric with the verdict of its rule (``quality.anomaly_rule``) against its
    ``history`` (values of the previous batches, oldest first); ``gate_status`` is left
    empty for :func:`with_gate_status`."""
    judged = []
    for m in measured:
        rule = quality.anomaly_rule(m.metric, m.column)
        past = history.get((m.metric, m.column), [])
        status, expected, low, high, used = verdict(rule, m.value, past)
        judged.append(QualityMetricRow(
            batch_id=run.batch_id, metric=m.metric, column_name=m.column, value=m.value,
            status=status, severity=rule.severity if rule else None,
            rule=rule.described if rule else None, history=used, expected=expected, low=low,
            high=high, gate_status="", validation_id=run.validation_id,
            table_version=run.table_version, measured_at=run.measured_at))
    return judged


def verdict(
    rule: AnomalyRule | None, value: float | None, past: list[float]
) -> tuple[str, float | None, float | None, float | None, int]:
    """(status, expected, low, high, previous batches used) of ``value`` under ``rule``.

    The expected value is the mean of the last ``rule.last`` values of ``past``; the band
    around it is ``max_change``·|expected| or ``k``·std (sample std), at least
    ``min_change``; outside it is an anomaly.
    """
    if rule is None:
        return NOT_JUDGED, None, None, None, 0
    window = past[-rule.last:]
    if value is None or not math.isfinite(value):
        return NO_VALUE, None, None, None, len(window)
    if len(window) < rule.needed:
        return NO_HISTORY, None, None, None, len(window)
    expected = statistics.fmean(window)
    if rule.max_change is not None:
        spread = rule.max_change * abs(expected)
    else:
        assert rule.k is not None  # AnomalyRule requires one of the two
        spread = rule.k * statistics.stdev(window)
    spread = max(spread, rule.min_change, EPSILON * max(abs(expected), 1.0))
    low, high = expected - spread, expected + spread
    return (ANOMALY if not low <= value <= high else OK), expected, low, high, len(window)


def anomalies(rows: list[QualityMetricRow], severity: str | None = None
              ) -> list[QualityMetricRow]:
    """The rows found anomalous (of ``severity`` when given)."""
    return [r for r in rows if r.is_anomaly and (severity is None or r.severity == severity)]


def gate_status(status: GateStatus, rows: list[QualityMetricRow], gate: str) -> GateStatus:
    """The validation's status with the anomalies counted in: a critical one fails it as a
    failing critical expectation does, a warning one makes ``passed`` (or ``not_run``,
    no suite) ``passed_with_warnings``. The gate ``disabled`` judges nothing."""
    if gate == "disabled":
        return status
    if anomalies(rows, "critical"):
        return "failed"
    if anomalies(rows) and status in ("passed", "not_run"):
        return "passed_with_warnings"
    return status


def with_gate_status(rows: list[QualityMetricRow], status: str) -> list[QualityMetricRow]:
    return [replace(r, gate_status=status) for r in rows]
