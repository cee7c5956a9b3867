"""The metric catalogue: which way each metric is better, pure Python (no Spark)."""

from __future__ import annotations

import pytest

from sparkmlops.metrics import (
    LOWER_IS_BETTER,
    SPARK_METRICS,
    TASK_METRICS,
    is_better,
    meets_minimum,
    spark_metric,
)


@pytest.mark.parametrize(("metric", "candidate", "reference", "min_improvement", "better"), [
    ("areaUnderROC", 0.91, 0.90, 0.0, True),
    ("areaUnderROC", 0.91, 0.90, 0.02, False),   # better, not by enough
    ("areaUnderROC", 0.90, 0.90, 0.0, False),    # a tie is not better
    ("areaUnderROC", 0.89, 0.90, 0.0, False),
    ("rmse", 1.0, 1.2, 0.1, True),               # lower is better
    ("rmse", 1.15, 1.2, 0.1, False),             # lower, not by enough
    ("rmse", 1.3, 1.2, 0.0, False),              # higher error is worse
    ("logLoss", 0.4, 0.5, 0.0, True),
    ("logLoss", 0.5, 0.4, 0.0, False),
])
def test_is_better_knows_the_direction_of_each_metric(
        metric, candidate, reference, min_improvement, better):
    assert is_better(metric, candidate, reference, min_improvement) is better


@pytest.mark.parametrize(("metric", "value", "threshold", "meets"), [
    ("accuracy", 0.8, 0.8, True),    # a floor: reaching it is enough
    ("accuracy", 0.79, 0.8, False),
    ("accuracy", 0.95, 0.8, True),
    ("logLoss", 0.4, 0.4, True),     # a ceiling for error metrics
    ("logLoss", 0.5, 0.4, False),
    ("rmse", 0.3, 0.4, True),
    ("rmse", 0.41, 0.4, False),
])
def test_a_minimum_is_a_floor_for_scores_and_a_ceiling_for_errors(
        metric, value, threshold, meets):
    assert meets_minimum(metric, value, threshold) is meets


def test_every_task_metric_has_an_evaluator_and_a_direction():
    reported = {m for names in TASK_METRICS.values() for m in names}

    assert reported <= set(SPARK_METRICS)
    assert sorted(reported & LOWER_IS_BETTER) == ["logLoss", "mae", "rmse"]
    assert [spark_metric(m) for m in TASK_METRICS["binary_classification"]] == [
        ("binary", "areaUnderROC"), ("binary", "areaUnderPR"), ("multiclass", "accuracy"),
        ("multiclass", "f1"), ("multiclass", "weightedPrecision"),
        ("multiclass", "weightedRecall"), ("multiclass", "logLoss")]
    assert [spark_metric(m) for m in TASK_METRICS["regression"]] == [
        ("regression", "rmse"), ("regression", "mae"), ("regression", "r2")]
