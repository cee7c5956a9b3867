from __future__ import annotations

import random

import pytest

from sparkmlops.config import EstimatorSettings
from sparkmlops.errors import ConfigError
from sparkmlops.preflight import check_settings
from sparkmlops.train.fitting import evaluate, split_train_test
from sparkmlops.train.tuning import FOLD_COLUMN, automl, search, with_folds


def _disc(n=400, seed=3):
    """label = 1 inside a disc around the origin: no line separates it, a tree does."""
    rng = random.Random(seed)
    for _ in range(n):
        x, y = rng.uniform(-1, 1), rng.uniform(-1, 1)
        label = 1.0 if x * x + y * y < 0.4 else 0.0
        yield x, y, "MALE" if label else "FEMALE", label


def test_folds_come_from_the_keys_not_the_partitioning(spark):
    df = spark.range(300).selectExpr("'S1' as study_name", "'A' as species",
                                     "cast(id as int) as sample_number")
    keys = ["study_name", "species", "sample_number"]

    a = {r.sample_number: r[FOLD_COLUMN] for r in with_folds(df, keys, 7, 3).collect()}
    b = {r.sample_number: r[FOLD_COLUMN] for r in with_folds(df.repartition(5), keys, 7, 3)
         .collect()}

    assert a == b
    assert sorted(set(a.values())) == [0, 1, 2]
    assert all(60 <= list(a.values()).count(f) <= 140 for f in range(3))


def test_automl_picks_a_tree_where_no_line_separates_the_classes(
    two_feature_settings, two_feature_gold
):
    settings = two_feature_settings(
        "dataset.model.automl.families=[logistic_regression, decision_tree_classifier]",
        "dataset.model.automl.grids={logistic_regression: {regParam: [0.0, 0.1]}, "
        "decision_tree_classifier: {maxDepth: [2, 4]}}", "dataset.model.automl.folds=2")
    dataset = settings.dataset
    train, test = split_train_test(two_feature_gold(_disc()), dataset)

    trained = automl(train, dataset, time_budget_s=600)

    board = {row["family"]: row for row in trained.leaderboard}
    assert trained.estimator.type == "decision_tree_classifier"
    assert trained.estimator.params == {"maxDepth": 4}
    assert board["decision_tree_classifier"]["validation_areaUnderROC"] > 0.9
    assert board["logistic_regression"]["validation_areaUnderROC"] < 0.7
    assert trained.reason.startswith("decision_tree_classifier {'maxDepth': 4} has the highest "
                                     "validation areaUnderROC")
    assert "logistic_regression 0." in trained.reason
    assert evaluate(trained.model.transform(test), "binary_classification")["accuracy"] > 0.9


def test_automl_stops_starting_families_when_the_budget_is_spent(
    two_feature_settings, two_feature_gold
):
    settings = two_feature_settings(
        "dataset.model.automl.families=[logistic_regression, decision_tree_classifier]",
        "dataset.model.automl.grids={logistic_regression: {regParam: [0.0]}}")
    train, _ = split_train_test(two_feature_gold(_disc(n=120)), settings.dataset)
    ticks = iter(range(0, 10_000, 100))  # every clock reading is 100 s later

    trained = automl(train, settings.dataset, time_budget_s=50, clock=lambda: next(ticks))

    assert trained.estimator.type == "logistic_regression"
    assert trained.leaderboard[1] == {"family": "decision_tree_classifier", "status": "skipped",
                                      "why": "time budget 50 s used up (400 s)"}
    assert "not tried for lack of time: decision_tree_classifier" in trained.reason


@pytest.mark.parametrize(("override", "message"), [
    ("dataset.model.estimator.params={maxIterr: 3}",
     "model.estimator.params: logistic_regression has no parameter 'maxIterr'; "
     "did you mean 'maxIter'?"),
    ("dataset.model.tuning={method: cross_validator, grid: {numTrees: [10]}}",
     "model.tuning.grid: logistic_regression has no parameter 'numTrees'"),
    ("dataset.model.automl.grids={gbt_classifier: {maxDepht: [3]}}",
     "model.automl.grids.gbt_classifier: gbt_classifier has no parameter 'maxDepht'; "
     "did you mean 'maxDepth'?"),
    ("dataset.model.automl.families=[gbt_regressor]",
     "model.automl.families.0: gbt_regressor does not fit the task binary_classification"),
])
def test_search_config_is_checked_by_preflight(make_settings, override, message):
    settings = make_settings(override)  # config alone does not know the estimators

    with pytest.raises(ConfigError) as caught:
        check_settings(settings)

    assert str(caught.value) == (
        f"invalid config: {settings.project_dir}/conf/datasets/penguins.yml: {message}")


@pytest.mark.parametrize(("override", "message"), [
    ("dataset.model.primary_metric=rmse",
     "model.primary_metric: 'rmse' is not a binary_classification"),
    ("dataset.model.tuning.grid={regParam: []}", "no values to try for \\['regParam'\\]"),
])
def test_search_config_is_checked_at_load(make_settings, override, message):
    with pytest.raises(ConfigError, match=message):
        make_settings(override)


def test_multiclass_rejects_the_binary_only_gbt(make_settings):
    settings = make_settings("dataset.model.task=multiclass_classification",
                             "dataset.label.classes=[A, B, C]",
                             "dataset.model.estimator.type=gbt_classifier",
                             "dataset.model.estimator.params={}",
                             "dataset.model.primary_metric=accuracy")

    with pytest.raises(ConfigError, match=r"penguins.yml: model.estimator.type: MLlib's "
                                          r"gbt_classifier is for binary classification only$"):
        check_settings(settings)


def test_estimator_settings_take_known_params_only():
    assert EstimatorSettings(type="gbt_classifier", params={"maxDepth": 3}).params == {
        "maxDepth": 3}


def _blobs(n=300, seed=11):
    """Three classes around three centres; label index = class position."""
    rng = random.Random(seed)
    centres = [(-1.0, -1.0), (1.0, -1.0), (0.0, 1.2)]
    for i in range(n):
        k = i % 3
        x, y = centres[k][0] + rng.gauss(0, 0.35), centres[k][1] + rng.gauss(0, 0.35)
        yield x, y, "ABC"[k], float(k)


def test_multiclass_search_scores_three_classes(two_feature_settings, two_feature_gold):
    settings = two_feature_settings(
        "dataset.model.task=multiclass_classification",
        "dataset.label.classes=[A, B, C]", "dataset.model.primary_metric=f1",
        "dataset.model.estimator.type=decision_tree_classifier",
        "dataset.model.estimator.params={}",
        "dataset.model.tuning.method=train_validation_split",
        "dataset.model.tuning.grid={maxDepth: [1, 4]}")
    dataset = settings.dataset
    train, test = split_train_test(two_feature_gold(_blobs()), dataset)

    trained = search(train, dataset)
    metrics = evaluate(trained.model.transform(test), dataset.model.task)

    # one split cannot tell three classes apart; four levels can
    assert [c.params for c in trained.candidates] == [{"maxDepth": 1}, {"maxDepth": 4}]
    assert trained.candidates[0].metric < 0.7  # at most two of the three classes
    assert trained.candidates[1].metric > 0.9
    assert trained.estimator.params == {"maxDepth": 4}
    assert set(metrics) == {"accuracy", "f1", "precision", "recall", "logLoss"}
    assert metrics["accuracy"] > 0.9


def _plane(n=300, seed=2):
    """target = 3x - 2y plus a little noise."""
    rng = random.Random(seed)
    for _ in range(n):
        x, y = rng.uniform(-1, 1), rng.uniform(-1, 1)
        target = 3.0 * x - 2.0 * y + rng.gauss(0, 0.05)
        yield x, y, str(target), target


def test_regression_automl_chooses_the_linear_model_for_a_linear_target(two_feature_settings,
                                                                         two_feature_gold):
    gold = two_feature_gold(_plane())
    settings = two_feature_settings(
        "dataset.model.task=regression", "dataset.label.classes=null",
        "dataset.model.estimator.type=linear_regression", "dataset.model.estimator.params={}",
        "dataset.model.primary_metric=rmse", "dataset.promote.min_metrics={}",
        "dataset.model.automl.families=[linear_regression, decision_tree_regressor]",
        "dataset.model.automl.grids={linear_regression: {regParam: [0.0]}, "
        "decision_tree_regressor: {maxDepth: [5]}}")
    train, test = split_train_test(gold, settings.dataset)

    trained = automl(train, settings.dataset, time_budget_s=600)
    metrics = evaluate(trained.model.transform(test), "regression")

    assert trained.estimator.type == "linear_regression"
    assert "has the lowest validation rmse" in trained.reason
    assert metrics["rmse"] < 0.1 and metrics["r2"] > 0.99


def test_a_grid_left_over_from_another_estimator_is_ignored_while_search_is_off(make_settings):
    settings = make_settings("dataset.model.estimator.type=gbt_classifier",
                             "dataset.model.estimator.params={maxDepth: 3}",
                             "dataset.model.tuning={method: none, grid: {regParam: [0.1]}}")

    assert settings.dataset.model.tuning.grid == {"regParam": [0.1]}
