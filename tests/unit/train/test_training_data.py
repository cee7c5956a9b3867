"""Data no model can be trained or judged on: one TrainingDataError line (exit 7), no model.

The pure checks are tested on numbers; the profile on the small toy gold of
test_training; the steps on one small gold table whose Delta versions each break
one thing (an all-null input, an Infinity, one class), so no test fits a model it
does not need: only the gate test trains (once).
"""

from __future__ import annotations

import math

import pyspark.sql.functions as F
import pytest

from sparkmlops.config import PromoteSettings
from sparkmlops.errors import TrainingDataError
from sparkmlops.features.mllib import LABEL_COLUMN
from sparkmlops.promote.promotion import decide
from sparkmlops.train.fitting import (
    DataProfile,
    check_training_data,
    fit_failures_named,
    named_fit_failure,
    profile_training_data,
    split_train_test,
    training_data_problems,
)

# ---------------------------------------------------------------- pure: the problems


def test_one_class_in_both_splits_names_the_counts_and_the_keys(make_settings):
    dataset = make_settings().dataset
    profile = DataProfile(train_rows=250, holdout_rows=91,
                          train_classes={"FEMALE": 0, "MALE": 250},
                          holdout_classes={"FEMALE": 0, "MALE": 91})

    assert training_data_problems(profile, dataset) == [
        "label sex has one value, MALE, in all 250 training rows; every class of "
        "label.classes needs at least 5 (model.data_checks.min_train_rows_per_class)",
        "label sex has one value, MALE, in all 91 holdout rows; every class of "
        "label.classes needs at least 1 (model.data_checks.min_holdout_rows_per_class)",
    ]


def test_a_rare_class_and_a_small_holdout_follow_the_configured_minimums(make_settings):
    dataset = make_settings("dataset.model.data_checks={min_train_rows_per_class: 10, "
                            "min_holdout_rows: 50}").dataset
    profile = DataProfile(train_rows=120, holdout_rows=40,
                          train_classes={"FEMALE": 9, "MALE": 111},
                          holdout_classes={"FEMALE": 20, "MALE": 20})

    assert training_data_problems(profile, dataset) == [
        "label sex in the 120 training rows: FEMALE 9, MALE 111; every class of "
        "label.classes needs at least 10 (model.data_checks.min_train_rows_per_class)",
        "the holdout has 40 rows; its metrics need at least 50 "
        "(model.data_checks.min_holdout_rows)",
    ]


def test_enough_of_every_class_is_no_problem(make_settings):
    profile = DataProfile(train_rows=250, holdout_rows=91,
                          train_classes={"FEMALE": 5, "MALE": 245},
                          holdout_classes={"FEMALE": 1, "MALE": 90})

    assert training_data_problems(profile, make_settings().dataset) == []


def test_a_minimum_below_one_is_a_config_error(make_settings):
    from sparkmlops.errors import ConfigError

    with pytest.raises(ConfigError, match="model.data_checks.min_holdout_rows_per_class"):
        make_settings("dataset.model.data_checks.min_holdout_rows_per_class=0")


# ---------------------------------------------------------------- the profile, on Spark


def _regression(make_settings):
    """Regression of flipper length on the rest (the toy gold's label is its target)."""
    return make_settings(
        "dataset.model.task=regression", "dataset.label.classes=null",
        "dataset.label.source=flipper_length_mm",
        "dataset.model.estimator={type: linear_regression}",
        "dataset.model.primary_metric=rmse", "dataset.promote.min_metrics={}",
        "dataset.features.numeric=[culmen_length_mm, culmen_depth_mm, body_mass_g]").dataset


def test_a_constant_regression_label_is_refused(spark, make_settings, toy_gold):
    dataset = _regression(make_settings)
    source_df = toy_gold(60).withColumn(LABEL_COLUMN, F.lit(190.0))
    train, holdout = split_train_test(source_df, dataset)
    n_train = train.count()

    with pytest.raises(TrainingDataError) as error:
        check_training_data(train, holdout, dataset, source="gold.toy v4")

    assert str(error.value) == (
        f"gold.toy v4 cannot train penguins_sex_classifier: label flipper_length_mm has one "
        f"value 190.0 in all {n_train} training rows: nothing to learn")


def test_profile_counts_missing_and_infinite_inputs_after_the_derived_stage(spark,
                                                                           make_settings, toy_gold):
    dataset = make_settings().dataset
    inf = F.lit(math.inf)
    source_df = (toy_gold()
                 .withColumn("body_mass_g", F.lit(None).cast("double"))
                 .withColumn("culmen_length_mm", F.when(F.col("sample_number") < 3, -inf)
                             .otherwise(F.col("culmen_length_mm")))
                 .withColumn("flipper_length_mm", F.lit(float("nan"))))
    train, holdout = split_train_test(source_df, dataset)
    in_holdout = {r.sample_number for r in holdout.collect()} & {0, 1, 2}

    actual = profile_training_data(train, holdout, dataset)

    n_train, n_holdout = train.count(), holdout.count()
    assert actual.train_rows + actual.holdout_rows == 200
    assert (actual.train_rows, actual.holdout_rows) == (n_train, n_holdout)
    assert actual.train_classes == {
        "FEMALE": train.where("label = 0").count(), "MALE": train.where("label = 1").count()}
    assert actual.empty_numeric == ["flipper_length_mm", "body_mass_g"]
    # culmen_ratio is derived from culmen_length_mm: -inf / x is -inf too
    pair = (3 - len(in_holdout), len(in_holdout))
    assert actual.infinite == {"culmen_length_mm": pair, "culmen_ratio": pair}
    assert actual.out_of_bounds == {}


def test_a_bucket_input_outside_its_splits_is_counted(spark, make_settings, toy_gold):
    dataset = make_settings(
        "dataset.features.buckets=[{name: mass_band, column: body_mass_g, "
        "splits: [0, 4000, 99000]}]").dataset
    source_df = toy_gold().withColumn(
        "body_mass_g", F.when(F.col("sample_number") == 7, 1e6).otherwise(F.col("body_mass_g")))
    train, holdout = split_train_test(source_df, dataset)
    pair = (train.where("sample_number = 7").count(), holdout.where("sample_number = 7").count())

    actual = profile_training_data(train, holdout, dataset)

    assert actual.out_of_bounds == {"mass_band": pair}
    assert training_data_problems(actual, dataset) == [
        "bucket inputs outside their splits, which MLlib's Bucketizer rejects: mass_band "
        f"(body_mass_g outside [0.0, 99000.0]) in {pair[0]} training and {pair[1]} holdout rows"]


# ---------------------------------------------------------------- the safety net


def test_mllib_data_failures_are_named_and_other_errors_pass_through():
    surrogate = RuntimeError(
        "An error occurred while calling o3155.fit.\n: org.apache.spark.SparkException: "
        "surrogate cannot be computed. All the values in body_mass_g are Null, Nan or "
        "missingValue(NaN)\n\tat org.apache.spark.ml.feature.Imputer.fit(Imputer.scala:1)")

    named = named_fit_failure(surrogate, "gold.x v2")

    assert str(named) == ("gold.x v2: MLlib cannot fit the data: surrogate cannot be computed. "
                          "All the values in body_mass_g are Null, Nan or missingValue(NaN)")
    with pytest.raises(TrainingDataError, match="Vector values MUST NOT be NaN or Infinity$"), \
            fit_failures_named("gold.x v2"):
        raise RuntimeError("[USER_RAISED_EXCEPTION] Vector values MUST NOT be NaN or "
                           "Infinity, but got [NaN,1.0] SQLSTATE: P0001")
    with pytest.raises(KeyError), fit_failures_named("gold.x v2"):
        raise KeyError("not about the data")


# ---------------------------------------------------------------- the gate


def test_decide_fails_a_non_finite_metric_with_the_reason():
    gate = PromoteSettings(min_metrics={"areaUnderROC": 0.8})

    passed, reasons = decide({"areaUnderROC": math.nan, "accuracy": 1.0}, None, gate,
                             "areaUnderROC")
    ranked, why = decide({"areaUnderROC": 0.9}, {"areaUnderROC": math.nan}, gate,
                         "areaUnderROC")

    assert passed is False
    assert reasons == ["the challenger's areaUnderROC=nan undefined on the holdout "
                       "(not a finite number)", "no champion yet"]
    assert ranked is False
    assert why[-1] == ("areaUnderROC is 0.9 for the challenger and nan for the champion: "
                       "models cannot be ranked on an undefined metric")


def test_decide_fails_on_a_holdout_problem_even_with_perfect_metrics():
    passed, reasons = decide({"areaUnderROC": 1.0}, None, PromoteSettings(), "areaUnderROC",
                             holdout_problems=["one class"])

    assert (passed, reasons) == (False, ["one class", "no champion yet"])
