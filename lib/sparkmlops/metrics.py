"""The metric catalogue: which metrics each task reports, which way each one is better,
and which spark.ml evaluator computes it. Pure Python: no Spark.

Example::

    TASK_METRICS["regression"]                     # ('rmse', 'mae', 'r2')
    is_better("rmse", 1.0, 1.2, min_improvement=0.1)  # True: lower is better for rmse
    meets_minimum("logLoss", 0.5, 0.4)             # False: a ceiling for error metrics
"""

from __future__ import annotations

from typing import Literal

Task = Literal["binary_classification", "multiclass_classification", "regression"]
EvaluatorKind = Literal["binary", "multiclass", "regression"]

# what the holdout evaluation reports per task, in this order
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "binary_classification": ("areaUnderROC", "areaUnderPR", "accuracy", "f1", "precision",
                              "recall", "logLoss"),
    "multiclass_classification": ("accuracy", "f1", "precision", "recall", "logLoss"),
    "regression": ("rmse", "mae", "r2"),
}
# error metrics: smaller is better, and a promotion minimum is a ceiling
LOWER_IS_BETTER = frozenset({"rmse", "mse", "mae", "logLoss", "hammingLoss"})
# the platform's name → (the spark.ml evaluator that computes it, its metricName there);
# the ranking metrics need the binary evaluator (rawPrediction), the rest the label
SPARK_METRICS: dict[str, tuple[EvaluatorKind, str]] = {
    "areaUnderROC": ("binary", "areaUnderROC"),
    "areaUnderPR": ("binary", "areaUnderPR"),
    "accuracy": ("multiclass", "accuracy"),
    "f1": ("multiclass", "f1"),
    "precision": ("multiclass", "weightedPrecision"),
    "recall": ("multiclass", "weightedRecall"),
    "logLoss": ("multiclass", "logLoss"),
    "hammingLoss": ("multiclass", "hammingLoss"),
    "rmse": ("regression", "rmse"),
    "mse": ("regression", "mse"),
    "mae": ("regression", "mae"),
    "r2": ("regression", "r2"),
}


def lower_is_better(metric: str) -> bool:
    """True for error metrics (rmse, logLoss, ...), False for scores (accuracy, AUC, ...)."""
    return metric in LOWER_IS_BETTER


def spark_metric(metric: str) -> tuple[EvaluatorKind, str]:
    """(evaluator kind, spark.ml metricName) of the platform's ``metric``; an unknown
    name is passed to the regression evaluator as is, which rejects what it lacks."""
    return SPARK_METRICS.get(metric, ("regression", metric))


def is_better(
    metric: str, candidate: float, reference: float, min_improvement: float = 0.0
) -> bool:
    """Whether ``candidate`` strictly beats ``reference`` by at least ``min_improvement``."""
    gain = reference - candidate if lower_is_better(metric) else candidate - reference
    return gain > 0 and gain >= min_improvement


def meets_minimum(metric: str, value: float, threshold: float) -> bool:
    """A floor for higher-is-better metrics, a ceiling for error metrics (rmse, logLoss)."""
    return value <= threshold if lower_is_better(metric) else value >= threshold
