"""``label``: exactly one origin (``source``, ``expr`` or ``from: crowd``), and a label
expression checked at load as far as the YAML allows: not blank, no ``pii: drop`` column,
no column it is computed from fed to the model, no classes for a regression. Each refusal
is one ConfigError line. No Spark, no MLflow."""

from __future__ import annotations

import pytest

from sparkmlops.config import LabelSettings
from sparkmlops.config.train import expression_columns
from sparkmlops.errors import ConfigError

# the penguins file's features read neither delta_15_n nor sex
NITROGEN = "CASE WHEN delta_15_n > 9 THEN 'high' WHEN delta_15_n <= 9 THEN 'low' END"
REGRESSION = ("dataset.model.task=regression", "dataset.model.primary_metric=rmse",
              "dataset.model.estimator={type: linear_regression}",
              "dataset.promote.min_metrics={}")


def _refusal(make_settings, *overrides: str) -> str:
    with pytest.raises(ConfigError) as error:
        make_settings(*overrides)
    return str(error.value)


def test_a_label_expression_with_its_classes_loads(make_settings):
    label = make_settings(f'dataset.label={{expr: "{NITROGEN}", classes: [low, high]}}'
                          ).dataset.label

    assert (label.source, label.expr, label.classes, label.crowd) == (
        None, NITROGEN, ["low", "high"], False)
    assert label.columns(["sex", "delta_15_n"]) == ["delta_15_n"]
    assert label.described == repr(NITROGEN)


def test_yaml_booleans_and_numbers_as_classes_are_the_text_spark_gives_them(make_settings):
    label = make_settings("dataset.label={expr: 'delta_15_n > 9', classes: [false, true]}"
                          ).dataset.label
    numbers = LabelSettings(expr="stage", classes=[0, 1])  # type: ignore[list-item]

    assert label.classes == ["false", "true"]
    assert numbers.classes == ["0", "1"]


def test_a_regression_label_expression_has_no_classes(make_settings):
    settings = make_settings(*REGRESSION, "dataset.label={expr: 'delta_15_n * 1000'}")

    assert settings.dataset.label.classes is None
    assert settings.dataset.label.expr == "delta_15_n * 1000"


@pytest.mark.parametrize(("label", "message"), [
    ("{expr: '  ', classes: [low, high]}",
     "label.expr: Value error, empty; give a Spark SQL expression over the dataset's columns, "
     "e.g. 'arr_delay > 15'"),
    ("{source: sex, expr: 'sex', classes: [FEMALE, MALE]}",
     "label: Value error, label.source: 'sex' and label.expr: 'sex' each name the label; "
     "keep one"),
    ("{expr: 'sex', from: crowd, classes: [FEMALE, MALE]}",
     "label: Value error, label.expr: 'sex' and label.from: crowd each name the label; "
     "keep one"),
    ("{classes: [FEMALE, MALE]}",
     "label: Value error, label.source: required (the column holding the label), or "
     "label.expr (a Spark SQL expression over the columns), or set label.from: crowd to take "
     "the crowd's consensus label"),
    ("{expr: 'body_mass_g > 4000', classes: [false, true]}",
     "Value error, features: body_mass_g read what label.expr 'body_mass_g > 4000' computes "
     "the label from; the model would be given its own label"),
    # culmen_ratio is the derived culmen_length_mm / culmen_depth_mm
    ("{expr: 'CULMEN_DEPTH_MM > 18', classes: [false, true]}",
     "Value error, features: culmen_depth_mm, culmen_ratio (culmen_depth_mm) read what "
     "label.expr 'CULMEN_DEPTH_MM > 18' computes the label from; the model would be given "
     "its own label"),
])
def test_a_label_that_cannot_hold_is_refused_at_load_with_one_line(make_settings, label,
                                                                    message):
    text = _refusal(make_settings, f"dataset.label={label}")

    assert text.endswith(f"penguins.yml: {message}")
    assert "\n" not in text


def test_a_pii_drop_column_in_the_label_expression_fails_like_its_other_uses(make_settings):
    # schema 16 is comments
    text = _refusal(make_settings, "dataset.schema.16.pii=drop",
                    "dataset.label={expr: \"comments LIKE '%Nest never%'\", classes: "
                    "[false, true]}")

    assert text.endswith("penguins.yml: Value error, label.expr: comments is pii: drop and "
                         "never reaches bronze; use pii: hash to keep a usable column")


def test_a_regression_label_expression_with_classes_is_refused(make_settings):
    text = _refusal(make_settings, *REGRESSION,
                    "dataset.label={expr: 'delta_15_n * 1000', classes: [a, b]}")

    assert text.endswith("penguins.yml: Value error, label.classes: a regression label is "
                         "the number label.expr yields; leave label.classes out")


@pytest.mark.parametrize(("expr", "columns"), [
    ("arr_delay > 15", ["arr_delay"]),
    # Spark matches names case-insensitively; back quotes name any column
    ("ARR_DELAY + `dep delay`", ["arr_delay", "dep delay"]),
    # words in quoted text, function names and struct fields are no columns
    ("CASE WHEN upper(carrier) = 'arr_delay' THEN s.arr_delay ELSE \"x\" END",
     ["carrier"]),
    ("coalesce(arr_delay, dep_delay, arr_delay)", ["arr_delay", "dep_delay"]),
    ("year(flight_date) < 2020", ["flight_date"]),
])
def test_the_columns_of_an_expression_are_found_without_spark(expr, columns):
    known = ["arr_delay", "dep delay", "dep_delay", "carrier", "flight_date", "year"]

    assert expression_columns(expr, known) == columns
