"""Drift statistics: a reference profile saved at training time, compared per batch.

``reference_profile`` summarises the training rows once (one quantile job, one
grouped pass over the numeric columns, one small group-by per categorical column),
so monitoring never re-reads the training data. ``batch_profile`` summarises a
scored batch against those same bins and quantile points in one grouped pass;
``compare`` turns the two into one row per feature and metric:

- numeric features: PSI over the reference's decile bins, the Kolmogorov-Smirnov
  statistic (the largest gap between the two CDFs, read at the reference's
  percentiles) with its asymptotic p-value, null rate and the share of values
  outside the reference's [min, max];
- categorical features: PSI and a chi-square test over the reference categories
  (unseen values pooled into one bucket), and the null rate.

Example::

    ref = reference_profile(train, numeric=["x"], categorical=["island"])
    rows = compare(ref, batch_profile(batch, ref))
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import pyspark.sql.functions as F
from pyspark.sql import DataFrame

NULL_BUCKET = "__null__"
UNSEEN_BUCKET = "__unseen__"
# PSI of an empty bin would be infinite: empty shares count as this much
PSI_FLOOR = 1e-4


@dataclass(frozen=True)
class NumericProfile:
    """Bins, percentiles and rates of one numeric column."""

    column: str
    rows: int
    edges: list[float]         # interior bin edges; len(edges) + 1 bins
    bin_shares: list[float]    # share of non-null values per bin
    points: list[float]        # the reference's percentiles, where the CDFs are compared
    cdf: list[float]           # share of non-null values <= each point
    null_rate: float
    minimum: float | None
    maximum: float | None
    out_of_range_rate: float = 0.0


@dataclass(frozen=True)
class CategoricalProfile:
    """Category shares of one categorical column (nulls and unseen values as buckets)."""

    column: str
    rows: int
    shares: dict[str, float]
    null_rate: float


@dataclass
class Profile:
    numeric: dict[str, NumericProfile] = field(default_factory=dict)
    categorical: dict[str, CategoricalProfile] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"numeric": {c: asdict(p) for c, p in self.numeric.items()},
                "categorical": {c: asdict(p) for c, p in self.categorical.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        return cls({c: NumericProfile(**p) for c, p in data.get("numeric", {}).items()},
                   {c: CategoricalProfile(**p) for c, p in data.get("categorical", {}).items()})


@dataclass(frozen=True)
class DriftMetric:
    """One feature's value of one drift metric for a batch."""

    feature: str
    metric: str
    value: float
    p_value: float | None = None


SCORE_COLUMN = "_score"
PREDICTED_COLUMN = "_predicted"


def with_prediction_columns(scored: DataFrame, task: str) -> DataFrame:
    """Add ``_score`` (positive-class or top probability; the value for regression)
    and ``_predicted`` (the predicted class index as text; null for regression)."""
    from pyspark.ml.functions import vector_to_array

    if task == "regression":
        return scored.withColumn(SCORE_COLUMN, F.col("prediction").cast("double")) \
            .withColumn(PREDICTED_COLUMN, F.lit(None).cast("string"))
    probabilities = vector_to_array(F.col("probability"))
    score = probabilities[1] if task == "binary_classification" else F.array_max(probabilities)
    return scored.withColumn(SCORE_COLUMN, score) \
        .withColumn(PREDICTED_COLUMN, F.col("prediction").cast("int").cast("string"))


def model_reference(scored: DataFrame, numeric: list[str], categorical: list[str],
                    task: str) -> Profile:
    """The reference of a model: its input features and its predictions, as scored."""
    frame = with_prediction_columns(scored, task)
    predicted = [] if task == "regression" else [PREDICTED_COLUMN]
    return reference_profile(frame, numeric=[*numeric, SCORE_COLUMN],
                             categorical=[*categorical, *predicted])


def reference_profile(
    df: DataFrame, *, numeric: list[str], categorical: list[str], bins: int = 10,
    points: int = 100, max_categories: int = 50,
) -> Profile:
    """Summarise the reference rows: decile edges, percentiles, category shares."""
    probabilities = [i / points for i in range(1, points)]
    edge_probabilities = [i / bins for i in range(1, bins)]
    quantiles = (df.approxQuantile(numeric, sorted(set(probabilities + edge_probabilities)),
                                   1e-3) if numeric else [])
    grid = sorted(set(probabilities + edge_probabilities))
    profile = Profile()
    cuts = {}
    for column, values in zip(numeric, quantiles, strict=True):
        by_p = dict(zip(grid, values, strict=False)) if values else {}
        edges = _strictly_increasing([by_p[p] for p in edge_probabilities if p in by_p])
        cuts[column] = (edges, _strictly_increasing([by_p[p] for p in probabilities
                                                     if p in by_p]))
    summary = _numeric_summary(df, cuts) if numeric else {}
    for column in numeric:
        edges, grid_points = cuts[column]
        profile.numeric[column] = _numeric_profile(column, edges, grid_points, summary)
    for column in categorical:
        profile.categorical[column] = _categorical_profile(df, column, None, max_categories)
    return profile


def batch_profile(df: DataFrame, reference: Profile) -> Profile:
    """Summarise a batch on the reference's bins, percentiles and categories."""
    cuts = {c: (p.edges, p.points) for c, p in reference.numeric.items()}
    summary = _numeric_summary(df, cuts, ranges={c: (p.minimum, p.maximum)
                                                 for c, p in reference.numeric.items()})
    profile = Profile()
    for column, (edges, grid_points) in cuts.items():
        profile.numeric[column] = _numeric_profile(column, edges, grid_points, summary)
    for column, ref in reference.categorical.items():
        profile.categorical[column] = _categorical_profile(df, column, ref.shares, None)
    return profile


def compare(reference: Profile, batch: Profile) -> list[DriftMetric]:
    """PSI, KS, chi-square, null and out-of-range rates, per feature."""
    rows: list[DriftMetric] = []
    for column, ref in reference.numeric.items():
        cur = batch.numeric[column]
        statistic, p_value = ks_statistic(ref.cdf, cur.cdf, ref.rows, cur.rows)
        rows += [
            DriftMetric(column, "psi", psi(ref.bin_shares, cur.bin_shares)),
            DriftMetric(column, "ks", statistic, p_value),
            DriftMetric(column, "null_rate", cur.null_rate),
            DriftMetric(column, "null_rate_increase", cur.null_rate - ref.null_rate),
            DriftMetric(column, "out_of_range_rate", cur.out_of_range_rate),
        ]
    for column, ref_cat in reference.categorical.items():
        cur_cat = batch.categorical[column]
        buckets = sorted(set(ref_cat.shares) | set(cur_cat.shares))
        expected = [ref_cat.shares.get(b, 0.0) for b in buckets]
        actual = [cur_cat.shares.get(b, 0.0) for b in buckets]
        statistic, p_value = chi_square(expected, actual, cur_cat.rows)
        rows += [
            DriftMetric(column, "psi", psi(expected, actual)),
            DriftMetric(column, "chi_square", statistic, p_value),
            DriftMetric(column, "null_rate", cur_cat.null_rate),
            DriftMetric(column, "null_rate_increase", cur_cat.null_rate - ref_cat.null_rate),
            DriftMetric(column, "unseen_rate", cur_cat.shares.get(UNSEEN_BUCKET, 0.0)),
        ]
    return rows


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


# ---------------------------------------------------------------- Spark side


def _numeric_summary(
    df: DataFrame, cuts: dict[str, tuple[list[float], list[float]]],
    ranges: dict[str, tuple[float | None, float | None]] | None = None,
) -> dict[str, dict[str, Any]]:
    """One grouped pass: per column, its rows, nulls, min/max, out-of-range values and
    the values in each interval between its cut points (bin edges and percentiles).

    Each value is placed in its interval by a binary search of the column's cut points
    (a few comparisons), and one group-by counts the (column, interval) pairs, so the
    plan stays small: counting ``value <= point`` per point and ``bucket == b`` per bin
    made hundreds of aggregates, whose planning and code generation cost seconds per
    call whatever the number of rows.
    """
    if not cuts:
        return {}
    splits = {c: sorted(set(edges) | set(points)) for c, (edges, points) in cuts.items()}
    cells = []
    for i, (column, cut) in enumerate(splits.items()):
        value = F.col(column).cast("double")
        low, high = (ranges or {}).get(column, (None, None))
        outside = ((value < low) | (value > high)) if low is not None and high is not None \
            else F.lit(None).cast("boolean")
        cells.append(F.struct(F.lit(i).alias("c"),
                              F.when(value.isNotNull(), _interval(value, cut)).alias("k"),
                              value.alias("v"), outside.alias("o")))
    cell = df.select(F.explode(F.array(*cells)).alias("cell")).select("cell.*")
    grouped = cell.groupBy("c", "k").agg(
        F.count(F.lit(1)).alias("rows"), F.count("v").alias("n"), F.min("v").alias("min"),
        F.max("v").alias("max"), F.count(F.when(F.col("o"), 1)).alias("o")).collect()
    by_column: dict[int, list[Any]] = {}
    for r in grouped:
        by_column.setdefault(r["c"], []).append(r)
    summary = {}
    for i, (column, (edges, points)) in enumerate(cuts.items()):
        groups = by_column.get(i, [])
        counts = {r["k"]: int(r["n"]) for r in groups if r["k"] is not None}
        valued = [r for r in groups if r["n"]]
        cut = splits[column]
        # interval k holds (cut[k-1], cut[k]]: <= point p is every interval up to p's,
        # bin b of the edges is every interval whose values have b edges below them
        in_interval = [counts.get(k, 0) for k in range(len(cut) + 1)]
        cumulative = list(itertools.accumulate(in_interval))
        position = {point: k for k, point in enumerate(cut)}
        bins = [0] * (len(edges) + 1)
        for k, n in enumerate(in_interval):
            bins[bisect.bisect_right(edges, cut[k - 1]) if k else 0] += n
        summary[column] = {
            "rows": sum(int(r["rows"]) for r in groups), "present": sum(counts.values()),
            # as Spark's min and max: NaN is above every number
            "min": min((r["min"] for r in valued), key=_nan_last, default=None),
            "max": max((r["max"] for r in valued), key=_nan_last, default=None),
            "outside": sum(int(r["o"]) for r in groups),
            "bins": bins, "at_or_below": [cumulative[position[p]] for p in points]}
    return summary


def _nan_last(value: float) -> tuple[bool, float]:
    return math.isnan(value), value


def _interval(value: Any, cut: list[float], lo: int = 0, hi: int | None = None) -> Any:
    """How many of the sorted ``cut`` points are below ``value`` (a binary search:
    ``value`` lies in (cut[k-1], cut[k]]); NaN, above every point, gets len(cut)."""
    hi = len(cut) if hi is None else hi
    if lo == hi:
        return F.lit(lo)
    mid = (lo + hi) // 2
    return F.when(value > F.lit(cut[mid]), _interval(value, cut, mid + 1, hi)) \
        .otherwise(_interval(value, cut, lo, mid))


def _numeric_profile(
    column: str, edges: list[float], points: list[float], summary: dict[str, Any]
) -> NumericProfile:
    counts = summary[column]
    rows, present = counts["rows"], counts["present"]
    share = (lambda k: k / present) if present else (lambda k: 0.0)
    return NumericProfile(
        column=column, rows=rows, edges=edges,
        bin_shares=[share(n) for n in counts["bins"]],
        points=points, cdf=[share(n) for n in counts["at_or_below"]],
        null_rate=(rows - present) / rows if rows else 0.0,
        minimum=counts["min"], maximum=counts["max"],
        out_of_range_rate=share(counts["outside"]),
    )


def _categorical_profile(
    df: DataFrame, column: str, known: dict[str, float] | None, max_categories: int | None
) -> CategoricalProfile:
    counts = {r[0]: int(r[1]) for r in df.groupBy(F.col(column).cast("string")).count().collect()}
    rows = sum(counts.values())
    nulls = counts.pop(None, 0)
    shares: dict[str, float] = {}
    if known is None:
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        limit = max_categories or len(ranked)
        kept, rest = ranked[:limit], ranked[limit:]
        shares = {k: v / rows for k, v in kept}
        if rest:
            shares[UNSEEN_BUCKET] = sum(v for _, v in rest) / rows
    else:
        for value, count in counts.items():
            bucket = value if value in known and value != NULL_BUCKET else UNSEEN_BUCKET
            shares[bucket] = shares.get(bucket, 0.0) + count / rows
    if nulls:
        shares[NULL_BUCKET] = nulls / rows
    return CategoricalProfile(column, rows, shares, nulls / rows if rows else 0.0)


def _strictly_increasing(values: list[float]) -> list[float]:
    out: list[float] = []
    for v in values:
        if v is not None and not math.isnan(v) and (not out or v > out[-1]):
            out.append(float(v))
    return out


# ---------------------------------------------------------------- thresholds and live metrics

STATUS_ORDER = {"ok": 0, "warn": 1, "alert": 2}


def judged(metrics: list[DriftMetric], levels: dict[str, Any]) -> list[dict[str, Any]]:
    """Each drift metric with its warn/alert levels and status (``ok`` where none apply)."""
    rows = []
    for m in metrics:
        level = levels.get(m.metric)
        finite = m.value is not None and not math.isnan(m.value)
        status = level.status(m.value) if level is not None and finite else "ok"
        rows.append({"feature": m.feature, "metric": m.metric, "value": float(m.value),
                     "p_value": m.p_value, "warn": getattr(level, "warn", None),
                     "alert": getattr(level, "alert", None), "status": status})
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
