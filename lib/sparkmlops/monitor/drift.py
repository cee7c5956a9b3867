"""Drift statistics: a batch's profile against its model's reference, per feature.

``compare`` turns a reference profile (``sparkmlops.train.reference``, saved by
the train run) and a batch's profile on the same bins into one row per feature and
metric:

- numeric features: PSI over the reference's decile bins, the Kolmogorov-Smirnov
  statistic (the largest gap between the two CDFs, read at the reference's
  percentiles) with its asymptotic p-value, null rate and the share of values
  outside the reference's [min, max];
- categorical features: PSI and a chi-square test over the reference categories
  (unseen values pooled into one bucket), and the null rate.

Each accounts for the size of the two samples, so a small batch is not drift by
chance alone:

- PSI merges adjacent bins (categories: the rarest ones, in order of their reference
  share) until each holds at least ``MIN_BIN_ROWS`` rows of the smaller side as the
  reference expects them. Ten deciles of a 60-row batch hold 6 rows each, and such a
  batch drawn from the reference itself has a PSI of about 9/60 = 0.15, over the
  default warn level; with 25 rows a bin it is about 1/25 = 0.04 whatever the size.
  Bins that still come out empty count as ``PSI_FLOOR`` (a real shift can empty them).
  Fewer rows than two bins need: PSI is not computed (NaN, with the reason).
- KS and chi-square are computed only when both sides have ``MIN_TEST_ROWS`` rows
  (below, their asymptotic p-values are rough, and 60 rows drawn from the reference
  itself reach the default KS warn level of 0.1 more often than not): else the metric
  is NaN with the reason, recorded and never judged. A statistic over its level whose
  p-value is at least ``SIGNIFICANCE`` (a gap that chance alone makes at these sizes)
  is ``ok``, with a note saying so.

``judged`` gives each metric its warn/alert levels and status as a ``MonitoringRow``,
the one declaration of a row of ``monitoring.<dataset>`` (its Spark schema is derived
from it); ``judged_live`` does the same for the live metrics of scored batches.

Example::

    rows = judged(compare(ref, batch_profile(batch, ref)), monitoring.drift, run, rows=n)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import astuple, dataclass, fields
from datetime import datetime
from typing import Any

import pyspark.sql.functions as F
from pyspark.sql import DataFrame, Row

from sparkmlops.config import Levels
from sparkmlops.tables import record_column, record_schema
from sparkmlops.train.reference import (
    UNSEEN_BUCKET,
    Profile,
)

# PSI of an empty bin would be infinite: empty shares count as this much
PSI_FLOOR = 1e-4
# the fewest rows of the smaller side a PSI bin holds, as the reference expects them
MIN_BIN_ROWS = 25
# the fewest rows on each side for a KS or chi-square test (and its p-value)
MIN_TEST_ROWS = 100
# a statistic over its level with a p-value at least this is chance, not drift
SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class DriftMetric:
    """One feature's value of one drift metric for a batch; ``note``: why it is not
    computed (NaN) or not judged."""

    feature: str
    metric: str
    value: float
    p_value: float | None = None
    note: str | None = None


def compare(reference: Profile, batch: Profile) -> list[DriftMetric]:
    """PSI, KS, chi-square, null and out-of-range rates, per feature."""
    rows: list[DriftMetric] = []
    for column, ref in reference.numeric.items():
        cur = batch.numeric[column]
        present = (_present(ref.rows, ref.null_rate), _present(cur.rows, cur.null_rate))
        rows += [
            _psi_metric(column, ref.bin_shares, cur.bin_shares, present),
            _test_metric(column, "ks", present, ks_statistic, ref.cdf, cur.cdf, *present),
            DriftMetric(column, "null_rate", cur.null_rate),
            DriftMetric(column, "null_rate_increase", cur.null_rate - ref.null_rate),
            DriftMetric(column, "out_of_range_rate", cur.out_of_range_rate),
        ]
    for column, ref_cat in reference.categorical.items():
        cur_cat = batch.categorical[column]
        # the commonest categories first: merging sparse bins pools the rarest ones
        buckets = sorted(set(ref_cat.shares) | set(cur_cat.shares),
                         key=lambda b: (-ref_cat.shares.get(b, 0.0), b))
        expected = [ref_cat.shares.get(b, 0.0) for b in buckets]
        actual = [cur_cat.shares.get(b, 0.0) for b in buckets]
        sizes = (ref_cat.rows, cur_cat.rows)
        rows += [
            _psi_metric(column, expected, actual, sizes),
            _test_metric(column, "chi_square", sizes, chi_square, expected, actual,
                         cur_cat.rows),
            DriftMetric(column, "null_rate", cur_cat.null_rate),
            DriftMetric(column, "null_rate_increase", cur_cat.null_rate - ref_cat.null_rate),
            DriftMetric(column, "unseen_rate", cur_cat.shares.get(UNSEEN_BUCKET, 0.0)),
        ]
    return rows


def _present(rows: int, null_rate: float) -> int:
    """The non-null values of a numeric column (its shares are of these)."""
    return round(rows * (1.0 - null_rate))


def _psi_metric(feature: str, expected: list[float], actual: list[float],
                sizes: tuple[int, int]) -> DriftMetric:
    """PSI over the bins merged to ``MIN_BIN_ROWS`` of the smaller side; NaN with the
    reason when not even two bins hold that many."""
    merged = merged_bins(expected, actual, min(sizes))
    if merged is None:
        return DriftMetric(feature, "psi", math.nan, note=(
            f"not computed: {min(sizes)} rows, PSI needs at least {MIN_BIN_ROWS} in each "
            "of two bins"))
    return DriftMetric(feature, "psi", psi(*merged))


def _test_metric(feature: str, metric: str, sizes: tuple[int, int],
                 test: Callable[..., tuple[float, float | None]], *args: Any) -> DriftMetric:
    """A KS or chi-square test when both sides have ``MIN_TEST_ROWS``; else NaN with
    the reason (never judged)."""
    if min(sizes) < MIN_TEST_ROWS:
        return DriftMetric(feature, metric, math.nan, note=(
            f"not computed: {sizes[0]} reference and {sizes[1]} batch rows, the test "
            f"needs at least {MIN_TEST_ROWS} on each side"))
    statistic, p_value = test(*args)
    return DriftMetric(feature, metric, statistic, p_value)


def merged_bins(expected: list[float], actual: list[float], rows: int,
                min_rows: int = MIN_BIN_ROWS) -> tuple[list[float], list[float]] | None:
    """The shares of adjacent bins merged, in order, until each bin's ``expected`` share
    of ``rows`` is at least ``min_rows`` (a short last group joins the one before);
    None when fewer than two such bins can be made.

    Only the expected (reference) shares decide the merging, so a batch that piles its
    values into one bin still shows it: the bins do not bend to the batch.
    """
    groups: list[tuple[float, float]] = []
    e_sum = a_sum = 0.0
    for e, a in zip(expected, actual, strict=True):
        e_sum, a_sum = e_sum + e, a_sum + a
        if e_sum * rows >= min_rows:
            groups.append((e_sum, a_sum))
            e_sum = a_sum = 0.0
    if groups and (e_sum or a_sum):
        last_e, last_a = groups.pop()
        groups.append((last_e + e_sum, last_a + a_sum))
    if len(groups) < 2:
        return None
    return [e for e, _ in groups], [a for _, a in groups]


def psi(expected: list[float], actual: list[float]) -> float:
    """Population stability index: sum of (a - e) * ln(a / e) over the bins."""
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, PSI_FLOOR), max(a, PSI_FLOOR)
        total += (a - e) * math.log(a / e)
    return total


def ks_statistic(
    reference_cdf: list[float], batch_cdf: list[float], n: int, m: int
) -> tuple[float, float | None]:
    """Largest CDF gap at the reference percentiles, and its asymptotic p-value.

    Reading both CDFs at the reference's percentiles gives the two-sample KS
    statistic to within one percentile step (never more than the exact one).
    """
    if not reference_cdf or n == 0 or m == 0:
        return 0.0, None
    statistic = max(abs(r - b) for r, b in zip(reference_cdf, batch_cdf, strict=True))
    from scipy.stats import kstwobign

    effective = math.sqrt(n * m / (n + m))
    return statistic, float(kstwobign.sf(statistic * effective))


def chi_square(expected: list[float], actual: list[float], rows: int) -> tuple[float, float | None]:
    """Pearson's chi-square of the batch counts against the reference shares."""
    cells = [(e, a) for e, a in zip(expected, actual, strict=True) if e > 0 or a > 0]
    if rows == 0 or len(cells) < 2:
        return 0.0, None
    statistic = sum((a * rows - max(e, PSI_FLOOR) * rows) ** 2 / (max(e, PSI_FLOOR) * rows)
                    for e, a in cells)
    from scipy.stats import chi2

    return statistic, float(chi2.sf(statistic, len(cells) - 1))


# ---------------------------------------------------------------- thresholds and live metrics

STATUS_ORDER = {"ok": 0, "warn": 1, "alert": 2}


# the feature of the live model metrics' rows (the drift rows name a model input)
LIVE_FEATURE = "_model"


@dataclass(frozen=True)
class MonitorRun:
    """What every row one monitor run writes shares: the batch, its model, the run."""

    batch_id: str  # the monitored batch
    model_name: str  # the model version that scored it
    model_version: str
    model_run_id: str  # that version's training run
    monitor_run_id: str
    monitored_at: datetime


@dataclass(frozen=True)
class MonitoringRow:
    """One row of ``monitoring.<dataset>``: a metric of a batch, judged, and who judged it.

    The table's columns are these fields, in this order (``batch_id`` is the column
    ``_batch_id``): ``monitoring_schema()`` derives the Spark schema from them.
    """

    batch_id: str  # the monitored batch
    scored_batch: str  # the batch the metric is of: the monitored one, or a live metric's
    feature: str  # a model input, ``_score`` / ``_predicted``, or ``_model`` (live)
    metric: str
    value: float
    p_value: float | None
    warn: float | None
    alert: float | None
    status: str  # ok / warn / alert
    rows: int | None  # rows the metric is over: the batch's, or a live metric's labelled ones
    model_name: str
    model_version: str
    model_run_id: str
    monitor_run_id: str
    monitored_at: datetime
    # why the metric is not computed (NaN) or not judged; last, so that a table written
    # before it gains the column (``merge_schema``)
    note: str | None = None

    @classmethod
    def of(cls, run: MonitorRun, *, scored_batch: str, feature: str, metric: str,
               value: float, p_value: float | None, level: Levels | None, status: str,
               rows: int | None, note: str | None = None) -> MonitoringRow:
        """A row of ``run``: the metric with its levels (none: not judged) and status."""
        return cls(run.batch_id, scored_batch, feature, metric, value, p_value,
                   None if level is None else level.warn,
                   None if level is None else level.alert, status,
                   rows, run.model_name, run.model_version, run.model_run_id,
                   run.monitor_run_id, run.monitored_at, note)

    @classmethod
    def from_row(cls, row: Row) -> MonitoringRow:
        """The row as read back from the table (one written before ``note``: none)."""
        values: dict[str, Any] = row.asDict()
        return cls(**{f.name: values[record_column(f.name)] for f in fields(cls)
                      if record_column(f.name) in values})

    def record(self) -> tuple[Any, ...]:
        """The row's values in the table's column order."""
        return astuple(self)

    def described(self) -> str:
        """``feature.metric=value (status)``, as the outcome lists flagged rows."""
        return f"{self.feature}.{self.metric}={self.value:.3g} ({self.status})"


def monitoring_schema() -> str:
    """The Spark schema (DDL) of ``monitoring.<dataset>``, from ``MonitoringRow``."""
    return record_schema(MonitoringRow)


def judged(metrics: list[DriftMetric], levels: dict[str, Levels], run: MonitorRun, *,
           rows: int | None) -> list[MonitoringRow]:
    """Each drift metric of the batch (over ``rows`` rows) with its warn/alert levels
    and status (``ok`` where none apply, where it is not computed, and where its
    p-value says chance alone makes such a value: noted)."""
    judged_rows = []
    for m in metrics:
        level = levels.get(m.metric)
        finite = m.value is not None and not math.isnan(m.value)
        status = level.status(m.value) if level is not None and finite else "ok"
        note = m.note
        if status != "ok" and m.p_value is not None and m.p_value >= SIGNIFICANCE:
            status, note = "ok", (f"{status} level reached, but p={m.p_value:.3g} >= "
                                  f"{SIGNIFICANCE}: within chance at these sample sizes")
        judged_rows.append(MonitoringRow.of(
            run, scored_batch=run.batch_id, feature=m.feature, metric=m.metric,
            value=float(m.value), p_value=m.p_value, level=level, status=status, rows=rows,
            note=note))
    return judged_rows


def judged_live(metrics: DataFrame, levels: dict[str, Levels],
                run: MonitorRun) -> list[MonitoringRow]:
    """Each live metric of ``live_metrics`` per scored batch, with its levels (keyed
    without the ``live_`` prefix) and status, over the batch's labelled rows."""
    rows = []
    for r in metrics.collect():
        for metric, value in r.asDict().items():
            if metric in ("scored_batch", "labelled_rows") or value is None:
                continue
            level = levels.get(metric.removeprefix("live_"))
            rows.append(MonitoringRow.of(
                run, scored_batch=r["scored_batch"], feature=LIVE_FEATURE, metric=metric,
                value=float(value), p_value=None, level=level,
                status=level.status(value) if level is not None else "ok",
                rows=int(r["labelled_rows"])))
    return rows


def worst(statuses: list[str]) -> str:
    """The batch's status: its worst row's (``ok`` when there are none)."""
    return max(statuses, key=lambda s: STATUS_ORDER[s], default="ok")


def live_metrics(predictions: DataFrame, labels: DataFrame, keys: list[str],
                 task: str, *, same_batch: bool = False) -> DataFrame:
    """Per scored batch: rows with a known label and the model's live metric on them.

    ``labels`` holds the keys and ``label`` (the class index or value). With
    ``same_batch`` (append mode, where a key may recur in later batches) a
    prediction takes the label of its own batch's row; otherwise the key's label
    (upsert mode: one row per key, labels may arrive in a later batch), a key
    labelled twice counting once. Classification gives ``live_accuracy``,
    regression ``live_rmse`` and ``live_mae``.
    """
    on = [*keys, "_batch_id"] if same_batch else keys
    known = labels.where(F.col("label").isNotNull()).select(*on, "label").dropDuplicates(on)
    joined = predictions.join(known, on)
    batch = F.col("_batch_id").alias("scored_batch")
    if task == "regression":
        error = F.col("prediction") - F.col("label")
        return joined.groupBy(batch).agg(
            F.count(F.lit(1)).alias("labelled_rows"),
            F.sqrt(F.avg(error * error)).alias("live_rmse"),
            F.avg(F.abs(error)).alias("live_mae"))
    hit = (F.col("prediction") == F.col("label")).cast("double")
    return joined.groupBy(batch).agg(F.count(F.lit(1)).alias("labelled_rows"),
                                     F.avg(hit).alias("live_accuracy"))
