"""Train: an MLlib Pipeline from config on a seeded, reproducible split; holdout metrics.

The whole model is one ``PipelineModel``: the feature stages from config (date
parts, derived SQL, Python transforms, buckets, imputation, indexing with unseen
and null categories in their own bucket, one-hot, assembly, scaling; see
``features.feature_stages``), then the configured estimator. Scoring with it
therefore applies exactly the training-time transformations. Search and AutoML
over this pipeline live in ``tuning``.

The split hashes the business keys with the seed, so it does not depend on how
the data happens to be partitioned: the same table version, config and seed give
the same split and the same metrics.

Before any fit, :func:`check_training_data` refuses data no model can be trained or
judged on (a class missing or rare in the training rows or the holdout, a constant
label, a holdout too small, a numeric input with no value or with ±Infinity, a bucket
input outside its splits) with one ``TrainingDataError`` line naming the table
version, the counts and the columns; one Spark job computes every number it judges.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import pyspark.sql.functions as F
from pyspark.ml import Estimator, Pipeline
from pyspark.ml.evaluation import (
    BinaryClassificationEvaluator,
    Evaluator,
    MulticlassClassificationEvaluator,
    RegressionEvaluator,
)
from pyspark.ml.feature import Bucketizer
from pyspark.sql import Column, DataFrame

from sparkmlops.config import DatasetSettings, FeatureSettings
from sparkmlops.errors import SparkmlopsError, TrainingDataError
from sparkmlops.features.mllib import (
    BUCKET_INPUT,
    LABEL_COLUMN,
    feature_stages,
    resolve_scaling,
)
from sparkmlops.metrics import TASK_METRICS, spark_metric

log = logging.getLogger(__name__)


def holdout_flag(keys: list[str], seed: int, test_fraction: float) -> Column:
    """True for rows in the holdout: a hash of the keys and seed, not of row order."""
    bucket = F.pmod(F.xxhash64(*[F.col(k) for k in keys], F.lit(seed)), F.lit(10_000))
    return bucket < F.lit(int(round(test_fraction * 10_000)))


def split_train_test(df: DataFrame, dataset: DatasetSettings) -> tuple[DataFrame, DataFrame]:
    """(train, test) rows with a known label, split deterministically by key hash."""
    labelled = df.where(F.col(LABEL_COLUMN).isNotNull())
    flag = holdout_flag(dataset.keys, dataset.model.split.seed, dataset.model.split.test_fraction)
    return labelled.where(~flag), labelled.where(flag)


def build_pipeline(features: FeatureSettings, estimator: Any) -> Pipeline:
    """The configured feature stages (see ``sparkmlops.features``), then ``estimator``.

    ``features.scale: auto`` looks at the estimator: standardized features for linear
    models, none for trees.
    """
    scale = resolve_scaling(features, estimator)
    return Pipeline(stages=[*feature_stages(features, scale=scale), estimator])


# what the evaluators read of a scored frame (rawPrediction: the binary ones)
EVALUATED_COLUMNS = (LABEL_COLUMN, "prediction", "rawPrediction", "probability")


def evaluate(predictions: DataFrame, task: str) -> dict[str, float]:
    """Holdout metrics for the task, from a DataFrame scored by the pipeline model.

    Each of the (up to seven) evaluators is a Spark job of its own: a frame that is not
    cached is scored once into a cache of the columns they read, not once per metric.
    """
    if predictions.is_cached:
        return _evaluate(predictions, task)
    scored = predictions.select(
        *[c for c in EVALUATED_COLUMNS if c in predictions.columns]).persist()
    try:
        return _evaluate(scored, task)
    finally:
        scored.unpersist()


def _evaluate(predictions: DataFrame, task: str) -> dict[str, float]:
    return {name: float(evaluator_for(name).evaluate(predictions))
            for name in TASK_METRICS[task]}


def evaluator_for(metric: str) -> Evaluator:
    """The spark.ml evaluator computing the platform's ``metric`` on scored rows."""
    kind, name = spark_metric(metric)
    if kind == "binary":
        return BinaryClassificationEvaluator(labelCol=LABEL_COLUMN, metricName=cast(Any, name))
    if kind == "multiclass":
        return MulticlassClassificationEvaluator(labelCol=LABEL_COLUMN,
                                                 metricName=cast(Any, name))
    return RegressionEvaluator(labelCol=LABEL_COLUMN, metricName=cast(Any, name))


# ---------------------------------------------------------------- can this data train a model?

HOLDOUT_COLUMN = "__holdout"
# What MLlib says when the data, not the code, makes a fit impossible: a safety net
# for a path the checks below miss (a cross-validation fold, say)
MLLIB_DATA_FAILURES = (
    re.compile(r"surrogate cannot be computed[^\n]*"),
    # (not the vector it quotes: the values of one row, after scaling)
    re.compile(r"Vector values MUST NOT be NaN or Infinity"),
    re.compile(r"Feature value \S+ out of Bucketizer bounds[^\n]*"),
)


@dataclass(frozen=True)
class DataProfile:
    """The numbers the training-data checks judge, from one aggregate over both splits.

    Pairs are (training rows, holdout rows). Classes map each of ``label.classes`` to
    its row count (empty for regression).
    """

    train_rows: int
    holdout_rows: int
    train_classes: dict[str, int] = field(default_factory=dict)
    holdout_classes: dict[str, int] = field(default_factory=dict)
    # regression: the (min, max) finite label of the training rows; None when there is none
    label_range: tuple[float, float] | None = None
    label_non_finite: tuple[int, int] = (0, 0)
    # numeric inputs the imputer gets with no value (all null or NaN) in the training rows
    empty_numeric: list[str] = field(default_factory=list)
    # numeric input → rows holding ±Infinity, which the imputer passes on to the model
    infinite: dict[str, tuple[int, int]] = field(default_factory=dict)
    # bucket → rows outside its splits, which MLlib's Bucketizer fails on
    out_of_bounds: dict[str, tuple[int, int]] = field(default_factory=dict)


def imputed_columns(features: FeatureSettings) -> list[str]:
    """The Imputer's input columns (bucket indexes listed as numeric are never missing)."""
    buckets = {b.name for b in features.buckets}
    return [c for c in features.numeric_inputs if c not in buckets]


def before_imputation(df: DataFrame, features: FeatureSettings) -> DataFrame:
    """``df`` through the feature stages that precede the first fitted one (the Imputer
    or StringIndexer): date parts, derived SQL, Python transforms, bucket inputs.

    The Bucketizer itself is left out: it fails on a value outside its splits, which
    is what the profile counts instead.
    """
    for stage in feature_stages(features, scale="none"):
        if isinstance(stage, Estimator):
            break
        if not isinstance(stage, Bucketizer):
            df = stage.transform(df)
    return df


def _finite(column: Column) -> Column:
    return ~F.isnan(column) & (F.abs(column) != F.lit(math.inf))


def _profile_columns(dataset: DatasetSettings) -> dict[str, Column]:
    """Name → aggregate: every count the checks need, for one ``agg`` (one Spark job)."""
    holdout, label = F.col(HOLDOUT_COLUMN), F.col(LABEL_COLUMN)
    splits = {"train": ~holdout, "holdout": holdout}
    columns: dict[str, Column] = {
        f"{split}.rows": F.count(F.when(rows, True)) for split, rows in splits.items()}
    for i, cls in enumerate(dataset.label.classes or []):
        for split, rows in splits.items():
            columns[f"{split}.class.{cls}"] = F.count(F.when(rows & (label == i), True))
    if not dataset.label.classes:
        columns["label.min"] = F.min(F.when(~holdout & _finite(label), label))
        columns["label.max"] = F.max(F.when(~holdout & _finite(label), label))
        for split, rows in splits.items():
            columns[f"{split}.label_non_finite"] = F.count(F.when(rows & ~_finite(label), True))
    for name in imputed_columns(dataset.features):
        value = F.col(name).cast("double")
        columns[f"valued.{name}"] = F.count(
            F.when(~holdout & value.isNotNull() & ~F.isnan(value), True))
        for split, rows in splits.items():
            columns[f"{split}.infinite.{name}"] = F.count(
                F.when(rows & (F.abs(value) == F.lit(math.inf)), True))
    for bucket in dataset.features.buckets:
        value = F.col(f"{bucket.name}{BUCKET_INPUT}")
        outside = ~F.isnan(value) & ((value < bucket.splits[0]) | (value > bucket.splits[-1]))
        for split, rows in splits.items():
            columns[f"{split}.outside.{bucket.name}"] = F.count(F.when(rows & outside, True))
    return columns


def profile_training_data(
    train: DataFrame, holdout: DataFrame, dataset: DatasetSettings
) -> DataProfile:
    """Count what :func:`training_data_problems` judges, in one Spark job over both splits."""
    both = train.withColumn(HOLDOUT_COLUMN, F.lit(False)).unionByName(
        holdout.withColumn(HOLDOUT_COLUMN, F.lit(True)))
    columns = _profile_columns(dataset)
    names = list(columns)
    # positional aliases: column and class names may hold characters agg aliases dislike
    row = before_imputation(both, dataset.features).agg(
        *[column.alias(f"c{i}") for i, column in enumerate(columns.values())]).first()
    got = {name: row[f"c{i}"] for i, name in enumerate(names)}  # type: ignore[index]

    def pair(kind: str, name: str) -> tuple[int, int]:
        return int(got[f"train.{kind}.{name}"]), int(got[f"holdout.{kind}.{name}"])

    classes = dataset.label.classes or []
    imputed = imputed_columns(dataset.features)
    low, high = got.get("label.min"), got.get("label.max")
    return DataProfile(
        train_rows=int(got["train.rows"]),
        holdout_rows=int(got["holdout.rows"]),
        train_classes={c: int(got[f"train.class.{c}"]) for c in classes},
        holdout_classes={c: int(got[f"holdout.class.{c}"]) for c in classes},
        label_range=None if low is None or high is None else (float(low), float(high)),
        label_non_finite=(int(got.get("train.label_non_finite", 0)),
                          int(got.get("holdout.label_non_finite", 0))),
        empty_numeric=[c for c in imputed if got[f"valued.{c}"] == 0],
        infinite={c: pair("infinite", c) for c in imputed if any(pair("infinite", c))},
        out_of_bounds={b.name: pair("outside", b.name) for b in dataset.features.buckets
                       if any(pair("outside", b.name))},
    )


def class_count_problem(
    label: str, counts: dict[str, int], where: str, minimum: int, *, key: str
) -> str | None:
    """Why ``counts`` (class → rows) is too thin to train or judge on, or None."""
    if all(n >= minimum for n in counts.values()):
        return None
    rows = sum(counts.values())
    present = [c for c, n in counts.items() if n > 0]
    if len(present) == 1:
        head = f"label {label} has one value, {present[0]}, in all {rows} {where} rows"
    else:
        head = (f"label {label} in the {rows} {where} rows: "
                + ", ".join(f"{c} {n}" for c, n in counts.items()))
    return f"{head}; every class of label.classes needs at least {minimum} ({key})"


def class_counts(df: DataFrame, dataset: DatasetSettings) -> dict[str, int]:
    """Rows per class of ``label.classes`` (0 for an absent one); empty for regression."""
    classes = dataset.label.classes or []
    if not classes:
        return {}
    found = {int(r[0]): int(r[1]) for r in df.groupBy(LABEL_COLUMN).count().collect()
             if r[0] is not None}
    return {cls: found.get(i, 0) for i, cls in enumerate(classes)}


def holdout_problems(
    classes: dict[str, int], rows: int, dataset: DatasetSettings
) -> list[str]:
    """Why a holdout (class → rows, empty for regression) cannot judge a model."""
    checks = dataset.model.data_checks
    problems = []
    if rows < checks.min_holdout_rows:
        problems.append(f"the holdout has {rows} rows; its metrics need at least "
                        f"{checks.min_holdout_rows} (model.data_checks.min_holdout_rows)")
    if classes:
        problem = class_count_problem(
            dataset.label.described, classes, "holdout", checks.min_holdout_rows_per_class,
            key="model.data_checks.min_holdout_rows_per_class")
        problems += [problem] if problem else []
    return problems


def _in_splits(pairs: dict[str, tuple[int, int]]) -> str:
    return ", ".join(f"{name} in {t} training and {h} holdout rows"
                     for name, (t, h) in pairs.items())


def training_data_problems(profile: DataProfile, dataset: DatasetSettings) -> list[str]:
    """Why the profiled data cannot train (or judge) a model; empty when it can."""
    label, checks = dataset.label.described, dataset.model.data_checks
    problems: list[str] = []
    if dataset.label.classes:
        problem = class_count_problem(label, profile.train_classes, "training",
                                      checks.min_train_rows_per_class,
                                      key="model.data_checks.min_train_rows_per_class")
        problems += [problem] if problem else []
    elif profile.label_range is not None and profile.label_range[0] == profile.label_range[1]:
        problems.append(f"label {label} has one value {profile.label_range[0]} in all "
                        f"{profile.train_rows} training rows: nothing to learn")
    if any(profile.label_non_finite):
        t, h = profile.label_non_finite
        problems.append(f"label {label} is NaN or ±Infinity in {t} training and {h} holdout rows")
    problems += holdout_problems(profile.holdout_classes, profile.holdout_rows, dataset)
    if profile.empty_numeric:
        problems.append(
            f"numeric inputs with no value (all null or NaN) in the {profile.train_rows} "
            f"training rows, which the {dataset.features.impute} imputer cannot fill: "
            + ", ".join(profile.empty_numeric))
    if profile.infinite:
        problems.append("numeric inputs holding ±Infinity, which no model can fit: "
                        + _in_splits(profile.infinite))
    if profile.out_of_bounds:
        bounds = {f"{b.name} ({b.column} outside [{b.splits[0]}, {b.splits[-1]}])": pair
                  for b in dataset.features.buckets
                  if (pair := profile.out_of_bounds.get(b.name))}
        problems.append("bucket inputs outside their splits, which MLlib's Bucketizer "
                        "rejects: " + _in_splits(bounds))
    return problems


def check_training_data(
    train: DataFrame, holdout: DataFrame, dataset: DatasetSettings, *, source: str
) -> DataProfile:
    """Profile both splits; raise ``TrainingDataError`` (one line) when they cannot train.

    ``source`` names the data in the message, e.g. ``gold.penguins_features v3``.
    """
    profile = profile_training_data(train, holdout, dataset)
    problems = training_data_problems(profile, dataset)
    if problems:
        raise TrainingDataError(
            f"{source} cannot train {dataset.model.name}: {'; '.join(problems)}")
    return profile


def named_fit_failure(exc: BaseException, source: str) -> TrainingDataError | None:
    """MLlib's own words when ``exc`` is a fit failing on the data (see
    ``MLLIB_DATA_FAILURES``), as a ``TrainingDataError``; None for anything else."""
    text = str(exc)
    for pattern in MLLIB_DATA_FAILURES:
        found = pattern.search(text)
        if found:
            return TrainingDataError(
                f"{source}: MLlib cannot fit the data: {found.group(0).strip()[:500]}")
    return None


@contextmanager
def fit_failures_named(source: str) -> Iterator[None]:
    """Turn an MLlib fit failure caused by the data into a ``TrainingDataError``."""
    try:
        yield
    except SparkmlopsError:
        raise
    except Exception as exc:
        named = named_fit_failure(exc, source)
        if named is None:
            raise
        raise named from exc
