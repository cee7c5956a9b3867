"""``label.expr``: the label computed from the silver row by ``features``, checked against
the batch's columns first; a row it gives no class (null, or a value not in ``classes``)
stays in gold with a null ``label`` and is left out of training."""

from __future__ import annotations

from datetime import date

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame

from sparkmlops.errors import ConfigError
from sparkmlops.features.mllib import build_feature_table
from sparkmlops.train.fitting import split_train_test

FIRST_LETTER = "dataset.label={expr: 'substr(sex, 1, 1)', classes: [F, M]}"
REGRESSION = ("dataset.model.task=regression", "dataset.model.primary_metric=rmse",
              "dataset.model.estimator={type: linear_regression}",
              "dataset.promote.min_metrics={}")


def _silver(spark, dataset, rows: list[dict[str, object]]) -> DataFrame:
    """Silver rows of ``dataset``'s schema (every other column null), batch b1."""
    schema = ", ".join(f"`{c.name}` {c.type}" for c in dataset.schema_)
    values = {c.name: None for c in dataset.schema_}
    return spark.createDataFrame(
        [(*{**values, "study_name": "PAL0708", "species": "Adelie", **row}.values(), "b1")
         for row in rows], f"{schema}, _batch_id string")


def _labels(gold: DataFrame) -> DataFrame:
    return gold.select("sample_number", "label_raw", "label")


def test_a_label_expression_is_computed_per_row_and_a_row_without_a_class_keeps_a_null_label(
        spark, make_settings):
    dataset = make_settings(FIRST_LETTER).dataset
    source_df = _silver(spark, dataset, [
        {"sample_number": 1, "sex": "MALE", "date_egg": date(2007, 11, 11)},
        {"sample_number": 2, "sex": "FEMALE"},
        {"sample_number": 3, "sex": "."},   # 'substr' gives '.', not a class
        {"sample_number": 4, "sex": None},  # the expression gives null
    ])

    actual_df = build_feature_table(source_df, dataset)

    expected_df = spark.createDataFrame(
        [(1, "M", 1.0), (2, "F", 0.0), (3, ".", None), (4, None, None)],
        "sample_number int, label_raw string, label double")
    assert_df_equality(_labels(actual_df), expected_df, ignore_nullable=True)
    # sex is no label column here: gold keeps it, as any schema column the model may read
    assert "sex" in actual_df.columns


def test_a_boolean_label_expression_gives_the_classes_false_and_true(spark, make_settings):
    dataset = make_settings(
        "dataset.label={expr: 'delta_15_n > 9', classes: [false, true]}").dataset
    source_df = _silver(spark, dataset, [{"sample_number": 1, "delta_15_n": 9.5},
                                         {"sample_number": 2, "delta_15_n": 8.0},
                                         {"sample_number": 3, "delta_15_n": None}])

    actual_df = build_feature_table(source_df, dataset)

    expected_df = spark.createDataFrame(
        [(1, "true", 1.0), (2, "false", 0.0), (3, None, None)],
        "sample_number int, label_raw string, label double")
    assert_df_equality(_labels(actual_df), expected_df, ignore_nullable=True)


def test_a_regression_label_expression_is_its_number(spark, make_settings):
    dataset = make_settings(*REGRESSION, "dataset.label={expr: 'delta_15_n * 2'}").dataset
    source_df = _silver(spark, dataset, [{"sample_number": 1, "delta_15_n": 9.5},
                                         {"sample_number": 2, "delta_15_n": None}])

    actual_df = build_feature_table(source_df, dataset)

    expected_df = spark.createDataFrame([(1, 19.0, 19.0), (2, None, None)],
                                        "sample_number int, label_raw double, label double")
    assert_df_equality(_labels(actual_df), expected_df, ignore_nullable=True)


def test_rows_without_a_label_are_left_out_of_training_and_holdout_only(spark, make_settings):
    dataset = make_settings(FIRST_LETTER).dataset
    sexes = ["MALE", "FEMALE", ".", None]
    gold = build_feature_table(_silver(spark, dataset, [
        {"sample_number": n, "sex": sexes[n % 4]} for n in range(40)]), dataset)

    train, holdout = split_train_test(gold, dataset)

    used = sorted(r.sample_number for r in train.union(holdout).collect())
    assert used == [n for n in range(40) if n % 4 in (0, 1)]
    assert gold.count() == 40


@pytest.mark.parametrize(("overrides", "message"), [
    (("dataset.label={expr: 'substr(gender, 1, 1)', classes: [F, M]}",),
     "label.expr: 'substr(gender, 1, 1)': [UNRESOLVED_COLUMN.WITH_SUGGESTION] A column, "
     "variable, or function parameter with name `gender` cannot be resolved."),
    (("dataset.label={expr: 'substr(sex, 1', classes: [F, M]}",),
     "label.expr: 'substr(sex, 1': [PARSE_SYNTAX_ERROR] Syntax error at or near end of "
     "input. SQLSTATE: 42601"),
    (("dataset.label={expr: 'array(sex)', classes: [F, M]}",),
     "label.expr: 'array(sex)' gives a array<string>; a label of classes ['F', 'M'] is one "
     "value"),
    (("dataset.label={expr: 'delta_15_n > 9', classes: ['no', 'yes']}",),
     "label.expr: 'delta_15_n > 9' gives a boolean, whose classes are false and true, not "
     "['no', 'yes']; set label.classes: [false, true]"),
    ((*REGRESSION, "dataset.label={expr: 'sex'}"),
     "label.expr: 'sex' gives a string; a regression label is a number (or give "
     "label.classes for a classification task)"),
])
def test_a_label_expression_that_does_not_analyse_against_the_batch_is_one_line(
        spark, make_settings, overrides, message):
    dataset = make_settings(*overrides).dataset
    source_df = _silver(spark, dataset, [])

    with pytest.raises(ConfigError) as error:
        build_feature_table(source_df, dataset)

    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)
