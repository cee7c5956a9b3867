"""The estimator catalogue: every name a config may use builds, its grid is made of its
own params, and a wrong name or param is one ConfigError line with its key path."""

from __future__ import annotations

import pytest

from sparkmlops.config import EstimatorSettings
from sparkmlops.errors import ConfigError
from sparkmlops.features.mllib import FEATURES_VECTOR, LABEL_COLUMN
from sparkmlops.preflight import check_settings
from sparkmlops.train.estimators import (
    ESTIMATORS,
    build_estimator,
    default_families,
    family_problem,
    param_names,
)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_every_catalogued_estimator_builds_seeded_on_the_pipeline_columns(spark, name):
    grid = ESTIMATORS[name].grid

    estimator = build_estimator(
        EstimatorSettings(type=name, params={k: v[0] for k, v in grid.items()}), seed=7)

    assert type(estimator) is ESTIMATORS[name].cls
    assert (estimator.getFeaturesCol(), estimator.getLabelCol()) == (FEATURES_VECTOR,
                                                                     LABEL_COLUMN)
    assert {p: estimator.getOrDefault(p) for p in grid} == {k: v[0] for k, v in grid.items()}
    if estimator.hasParam("seed"):
        assert estimator.getSeed() == 7


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_every_built_in_grid_searches_params_of_its_own_estimator(name):
    assert set(ESTIMATORS[name].grid) <= param_names(name)
    assert ESTIMATORS[name].grid


def test_the_platform_sets_the_column_params_itself():
    assert not {"featuresCol", "labelCol", "predictionCol"} & param_names("logistic_regression")


def test_default_families_fit_the_task_cheapest_first():
    assert default_families("binary_classification") == [
        "logistic_regression", "decision_tree_classifier", "random_forest_classifier",
        "gbt_classifier"]
    assert default_families("multiclass_classification") == [
        "logistic_regression", "decision_tree_classifier", "random_forest_classifier"]
    assert default_families("regression") == [
        "linear_regression", "decision_tree_regressor", "random_forest_regressor",
        "gbt_regressor"]


def test_family_problem_names_what_is_wrong():
    assert family_problem("gbt_classifier", "binary_classification") is None
    assert family_problem("gbt_classifier", "multiclass_classification") == (
        "MLlib's gbt_classifier is for binary classification only")
    assert family_problem("linear_regression", "binary_classification") == (
        "linear_regression does not fit the task binary_classification")
    assert family_problem("random_forest", "regression") == (
        "unknown estimator 'random_forest'; did you mean 'random_forest_regressor'? (one of "
        f"{', '.join(ESTIMATORS)})")


def test_a_wrong_param_name_is_a_config_error_with_its_key_path(make_settings):
    settings = make_settings("dataset.model.estimator.params={regParm: 0.1}")

    with pytest.raises(ConfigError) as caught:
        check_settings(settings)

    assert str(caught.value) == (
        f"invalid config: {settings.project_dir}/conf/datasets/penguins.yml: "
        "model.estimator.params: logistic_regression has no parameter 'regParm'; "
        "did you mean 'regParam'?")


def test_a_wrong_param_value_is_a_config_error_when_mllib_sees_it(spark):
    with pytest.raises(ConfigError, match=r"^model\.estimator\.params: .*many"):
        build_estimator(EstimatorSettings(type="logistic_regression",
                                          params={"maxIter": "many"}), 1)
