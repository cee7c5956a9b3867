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
"""

from __future__ import annotations

import logging
from typing import Any, cast

import pyspark.sql.functions as F
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import (
    DecisionTreeClassifier,
    GBTClassifier,
    LogisticRegression,
    RandomForestClassifier,
)
from pyspark.ml.evaluation import (
    BinaryClassificationEvaluator,
    MulticlassClassificationEvaluator,
    RegressionEvaluator,
)
from pyspark.ml.regression import (
    DecisionTreeRegressor,
    GBTRegressor,
    LinearRegression,
    RandomForestRegressor,
)
from pyspark.sql import Column, DataFrame

from sparkmlops.config import DatasetSettings, EstimatorSettings, FeatureSettings
from sparkmlops.errors import ConfigError
from sparkmlops.features import (
    FEATURES_VECTOR,
    LABEL_COLUMN,
    feature_stages,
    resolve_scaling,
)

log = logging.getLogger(__name__)

ESTIMATORS: dict[str, Any] = {
    "logistic_regression": LogisticRegression,
    "random_forest_classifier": RandomForestClassifier,
    "gbt_classifier": GBTClassifier,
    "decision_tree_classifier": DecisionTreeClassifier,
    "linear_regression": LinearRegression,
    "decision_tree_regressor": DecisionTreeRegressor,
    "random_forest_regressor": RandomForestRegressor,
    "gbt_regressor": GBTRegressor,
}
LOWER_IS_BETTER = frozenset({"rmse", "mse", "mae", "logLoss", "hammingLoss"})


def holdout_flag(keys: list[str], seed: int, test_fraction: float) -> Column:
    """True for rows in the holdout: a hash of the keys and seed, not of row order."""
    bucket = F.pmod(F.xxhash64(*[F.col(k) for k in keys], F.lit(seed)), F.lit(10_000))
    return bucket < F.lit(int(round(test_fraction * 10_000)))


def split_train_test(df: DataFrame, dataset: DatasetSettings) -> tuple[DataFrame, DataFrame]:
    """(train, test) rows with a known label, split deterministically by key hash."""
    labelled = df.where(F.col(LABEL_COLUMN).isNotNull())
    flag = holdout_flag(dataset.keys, dataset.model.split.seed, dataset.model.split.test_fraction)
    return labelled.where(~flag), labelled.where(flag)


def build_estimator(settings: EstimatorSettings, seed: int) -> Any:
    cls = ESTIMATORS[settings.type]
    params = dict(settings.params)
    if cls().hasParam("seed"):
        params.setdefault("seed", seed)
    try:
        return cls(featuresCol=FEATURES_VECTOR, labelCol=LABEL_COLUMN, **params)
    except TypeError as exc:
        raise ConfigError(f"model.estimator.params: {exc}") from None


def build_pipeline(features: FeatureSettings, estimator: Any) -> Pipeline:
    """The configured feature stages (see ``sparkmlops.features``), then ``estimator``.

    ``features.scale: auto`` looks at the estimator: standardized features for linear
    models, none for trees.
    """
    scale = resolve_scaling(features, estimator)
    return Pipeline(stages=[*feature_stages(features, scale=scale), estimator])


def fit_model(train: DataFrame, dataset: DatasetSettings) -> PipelineModel:
    estimator = build_estimator(dataset.model.estimator, dataset.model.split.seed)
    return build_pipeline(dataset.features, estimator).fit(train)


def evaluate(predictions: DataFrame, task: str) -> dict[str, float]:
    """Holdout metrics for the task, from a DataFrame scored by the pipeline model."""
    metrics: dict[str, float] = {}
    evaluator: Any
    if task == "regression":
        for name in ("rmse", "mae", "r2"):
            evaluator = RegressionEvaluator(labelCol=LABEL_COLUMN, metricName=name)
            metrics[name] = float(evaluator.evaluate(predictions))
        return metrics
    if task == "binary_classification":
        for name in ("areaUnderROC", "areaUnderPR"):
            evaluator = BinaryClassificationEvaluator(labelCol=LABEL_COLUMN,
                                                      metricName=cast(Any, name))
            metrics[name] = float(evaluator.evaluate(predictions))
    names = {"accuracy": "accuracy", "f1": "f1", "weightedPrecision": "precision",
             "weightedRecall": "recall", "logLoss": "logLoss"}
    for spark_name, name in names.items():
        evaluator = MulticlassClassificationEvaluator(labelCol=LABEL_COLUMN,
                                                      metricName=cast(Any, spark_name))
        metrics[name] = float(evaluator.evaluate(predictions))
    return metrics


def is_better(metric: str, candidate: float, reference: float, min_improvement: float) -> bool:
    """Whether ``candidate`` strictly beats ``reference`` by at least ``min_improvement``."""
    gain = reference - candidate if metric in LOWER_IS_BETTER else candidate - reference
    return gain > 0 and gain >= min_improvement


def meets_minimum(metric: str, value: float, threshold: float) -> bool:
    """A floor for higher-is-better metrics, a ceiling for error metrics (rmse, logLoss)."""
    return value <= threshold if metric in LOWER_IS_BETTER else value >= threshold
