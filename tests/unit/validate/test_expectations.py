from __future__ import annotations

from pathlib import Path

import pytest
from chispa import assert_df_equality

from sparkmlops.config import ExpectationSpec
from sparkmlops.errors import ConfigError
from sparkmlops.validate.expectations import (
    FAILED_COLUMN,
    REPEATED_COLUMN,
    WITHIN_COLUMN,
    ExpectationOutcome,
    RowActions,
    ValidationReport,
    build_suite,
    count_row_actions,
    expectation_class,
    flag_repeated_keys,
    flag_repeated_within,
    flag_rows,
    flagged_reason,
    gate_status,
    keys_repeated_within,
    needs_row_count,
    quarantined_as_counted,
    run_suite,
    split_flagged,
)

SPECS = [
    ExpectationSpec(expectation="expect_column_values_to_not_be_null", kwargs={"column": "id"}),
    ExpectationSpec(expectation="expect_column_values_to_be_between",
                    kwargs={"column": "mass", "min_value": 2000, "max_value": 7000}),
    ExpectationSpec(expectation="expect_column_values_to_be_in_set",
                    kwargs={"column": "sex", "value_set": ["MALE", "FEMALE"]},
                    severity="warning"),
    ExpectationSpec(expectation="expect_column_values_to_match_regex",
                    kwargs={"column": "study", "regex": "^PAL[0-9]{4}$"}),
    ExpectationSpec(expectation="expect_table_row_count_to_be_between",
                    kwargs={"min_value": 1, "max_value": 100}),
]
SCHEMA = "id int, mass double, sex string, study string"


def _outcome(success: bool, severity: str) -> ExpectationOutcome:
    return ExpectationOutcome("expect_x", "c", "{}", severity, success, None, 1, 0, 0.0)


def test_split_valid_rows_uses_gx_null_semantics(spark):
    source_df = spark.createDataFrame(
        [(1, 3000.0, "MALE", "PAL0708"),
         (2, None, None, None),            # nulls fail only not-null checks
         (None, 1500.0, "MALE", "PAL0708"),
         (4, 3000.0, ".", "X1")],
        SCHEMA,
    )

    passing, failing = split_flagged(flag_rows(source_df, SPECS))

    assert_df_equality(passing, spark.createDataFrame(
        [(1, 3000.0, "MALE", "PAL0708"), (2, None, None, None)], SCHEMA), ignore_row_order=True)
    # the sex in-set is a warning, so it keeps its failing rows: row 4 is quarantined for
    # the regex alone, and the reason does not name the sex check
    expected_df = spark.createDataFrame([
        (None, ["expect_column_values_to_not_be_null(id)",
                "expect_column_values_to_be_between(mass)"]),
        (4, ["expect_column_values_to_match_regex(study)"]),
    ], "id int, _failed_expectations array<string>")
    assert_df_equality(failing.select("id", "_failed_expectations"), expected_df,
                       ignore_row_order=True, ignore_nullable=True)


# one expectation per action, on the columns of SCHEMA; the last is not row-level
ACTION_SPECS = [
    ExpectationSpec(expectation="expect_column_values_to_be_in_set",
                    kwargs={"column": "sex", "value_set": ["MALE", "FEMALE"]},
                    severity="warning"),                                     # keep (default)
    ExpectationSpec(expectation="expect_column_values_to_be_between",
                    kwargs={"column": "mass", "min_value": 2000, "max_value": 7000}),
    ExpectationSpec(expectation="expect_column_values_to_match_regex",
                    kwargs={"column": "study", "regex": "^PAL[0-9]{4}$"}, action="keep"),
    ExpectationSpec(expectation="expect_column_values_to_not_be_null", kwargs={"column": "id"},
                    severity="warning", action="fail"),
    ExpectationSpec(expectation="expect_table_row_count_to_be_between",
                    kwargs={"min_value": 1, "max_value": 100}),
]
ACTION_ROWS = [
    (1, 3000.0, "MALE", "PAL0708"),   # fails nothing
    (2, 3000.0, ".", "PAL0708"),      # fails the keep in-set only: on to silver
    (3, 3000.0, ".", "X1"),           # fails both keep expectations: on to silver
    (4, 9000.0, ".", "PAL0708"),      # fails a keep and the quarantine between
    (5, 1500.0, "MALE", "PAL0708"),   # fails the quarantine between only
]


def test_keep_lets_a_failing_row_on_and_a_quarantine_reason_names_only_quarantine(spark):
    source_df = spark.createDataFrame(ACTION_ROWS, SCHEMA)

    passing, failing = split_flagged(flag_rows(source_df, ACTION_SPECS))

    assert sorted(r.id for r in passing.collect()) == [1, 2, 3]
    assert_df_equality(
        failing.select("id", flagged_reason().alias("reason")),
        spark.createDataFrame(
            [(4, "failed expectations: expect_column_values_to_be_between(mass)"),
             (5, "failed expectations: expect_column_values_to_be_between(mass)")],
            "id int, reason string"),
        ignore_row_order=True, ignore_nullable=True)


def test_count_row_actions_counts_what_each_action_does_in_one_pass(spark):
    source_df = spark.createDataFrame([*ACTION_ROWS, (None, 3000.0, "MALE", "PAL0708")], SCHEMA)

    actions = count_row_actions(source_df, ACTION_SPECS)

    # in-set: rows 2, 3 kept, row 4 quarantined by the between; regex: row 3 kept;
    # between: rows 4, 5 quarantined; not-null (fail): the null id; row count: none
    assert actions == RowActions(kept={0: 2, 1: 0, 2: 1}, quarantined={0: 1, 1: 2, 2: 0},
                                 failing={3: 1}, kept_rows=2)


def test_count_row_actions_without_row_level_expectations_is_empty(spark):
    source_df = spark.createDataFrame(ACTION_ROWS, SCHEMA)

    assert count_row_actions(source_df, ACTION_SPECS[4:]) == RowActions()


def test_a_suite_that_only_quarantines_is_counted_by_gx_without_a_pass():
    specs = [ACTION_SPECS[1], ACTION_SPECS[4]]  # the between (quarantine), the row count
    outcomes = [ExpectationOutcome(s.expectation, s.column, "{}", s.severity, False, None, 6, n,
                                   0.0, s.action) for s, n in zip(specs, (2, None), strict=True)]

    assert not needs_row_count(specs)
    assert needs_row_count(ACTION_SPECS)
    assert quarantined_as_counted(specs, outcomes) == RowActions(kept={0: 0},
                                                                 quarantined={0: 2})


def test_the_report_records_each_row_level_outcomes_counts():
    outcomes = [ExpectationOutcome(s.expectation, s.column, "{}", s.severity, True, None, 6, 0,
                                   0.0, s.action) for s in ACTION_SPECS]
    report = ValidationReport(outcomes, "passed", {}, None)

    counted = report.with_row_actions(RowActions(
        kept={0: 2, 1: 0, 2: 1}, quarantined={0: 1, 1: 2, 2: 0}, failing={3: 0}, kept_rows=2))

    assert [(o.action, o.rows_kept, o.rows_quarantined) for o in counted.outcomes] == [
        ("keep", 2, 1), ("quarantine", 0, 2), ("keep", 1, 0), ("fail", 0, 0), ("keep", None, None)]


@pytest.mark.parametrize(("spec", "action"), [
    ({"expectation": "expect_column_values_to_not_be_null", "kwargs": {"column": "c"}},
     "quarantine"),
    ({"expectation": "expect_column_values_to_not_be_null", "kwargs": {"column": "c"},
      "severity": "warning"}, "keep"),
    ({"expectation": "expect_column_values_to_be_in_set",
      "kwargs": {"column": "c", "value_set": [1]}, "severity": "warning", "action": None}, "keep"),
    ({"expectation": "expect_column_values_to_be_between", "kwargs": {"column": "c"}}, "keep"),
    ({"expectation": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}, "keep"),
    ({"expectation": "expect_column_values_to_match_regex",
      "kwargs": {"column": "c", "regex": "x"}, "severity": "warning", "action": "fail"}, "fail"),
    ({"expectation": "expect_column_values_to_be_null", "kwargs": {"column": "c"},
      "action": "keep"}, "keep"),
])
def test_action_defaults_to_quarantine_for_critical_row_level_and_keep_otherwise(spec, action):
    assert ExpectationSpec.model_validate(spec).action == action


@pytest.mark.parametrize(("override", "message"), [
    ("dataset.validate.expectations.0.action=quarantine",
     r"penguins.yml: validate.expectations.0: .*action 'quarantine' needs failing rows, and "
     r"expect_table_row_count_to_be_between does not name them"),
    ("dataset.validate.expectations.3.action=fail",
     r"validate.expectations.3: .*action 'fail' needs failing rows, and "
     r"expect_compound_columns_to_be_unique does not name them"),
    ("dataset.validate.expectations.1.action=drop",
     r"validate.expectations.1.action: .*'keep', 'quarantine' or 'fail'"),
])
def test_an_action_without_rows_to_act_on_fails_at_config_load(make_settings, override, message):
    with pytest.raises(ConfigError, match=message):
        make_settings(override)


def test_a_table_level_expectation_may_say_keep(make_settings):
    settings = make_settings("dataset.validate.expectations.0.action=keep")

    assert [s.action for s in settings.dataset.validate_.expectations] == [
        "keep", "quarantine", "quarantine", "keep", "quarantine", "quarantine", "quarantine",
        "quarantine", "quarantine", "quarantine", "keep"]


def test_between_respects_strict_bounds(spark):
    spec = ExpectationSpec(expectation="expect_column_values_to_be_between",
                           kwargs={"column": "mass", "min_value": 1, "strict_min": True})
    source_df = spark.createDataFrame([(1, 1.0, None, None), (2, 2.0, None, None)], SCHEMA)

    passing, failing = split_flagged(flag_rows(source_df, [spec]))

    assert_df_equality(passing.select("id"), spark.createDataFrame([(2,)], "id int"),
                       ignore_nullable=True)
    assert_df_equality(failing.select("id"), spark.createDataFrame([(1,)], "id int"),
                       ignore_nullable=True)


def test_flag_repeated_keys_names_the_batch_that_holds_the_key_null_safely(spark):
    source_df = spark.createDataFrame(
        [("a", 1, "x"), (None, 2, "y"), ("b", 3, "z"), (None, None, "w")],
        "site string, n int, v string")
    existing_keys_df = spark.createDataFrame(
        [("a", 1, "b1"), (None, 2, "b3"), (None, 2, "b0"), ("c", 9, "b1"), ("b", None, "b1")],
        "site string, n int, _batch_id string")

    actual_df = flag_repeated_keys(source_df, existing_keys_df, ["site", "n"])

    # a null key part matches only a null (<=>); of two batches the smallest id is named
    expected_df = spark.createDataFrame(
        [("a", 1, "x", "b1"), (None, 2, "y", "b0"), ("b", 3, "z", None), (None, None, "w", None)],
        f"site string, n int, v string, {REPEATED_COLUMN} string")
    assert_df_equality(actual_df, expected_df, ignore_row_order=True, ignore_nullable=True)


def test_a_repeated_key_is_quarantined_unless_an_expectation_already_failed(spark):
    source_df = spark.createDataFrame(
        [(1, [], None), (2, [], "b1"), (3, ["expect_x(mass)"], "b1"),
         (4, ["expect_x(mass)"], None)],
        f"id int, {FAILED_COLUMN} array<string>, {REPEATED_COLUMN} string")

    passing, failing = split_flagged(source_df)
    actual_df = failing.select("id", flagged_reason().alias("reason"))

    expected_df = spark.createDataFrame(
        [(2, "key already in silver from batch b1 (write.repeated_keys: quarantine)"),
         (3, "failed expectations: expect_x(mass)"), (4, "failed expectations: expect_x(mass)")],
        "id int, reason string")
    assert_df_equality(actual_df, expected_df, ignore_row_order=True, ignore_nullable=True)
    assert_df_equality(passing, spark.createDataFrame([(1,)], "id int"), ignore_nullable=True)


# rows of one batch: site/n the key, v a value, where each row came from, and the flags
# of the earlier checks (a failed expectation; another batch holding the key)
WITHIN_SCHEMA = (f"site string, n int, v string, _source_file string, "
                 f"{FAILED_COLUMN} array<string>, {REPEATED_COLUMN} string")
KEPT = "key repeated within batch b2: an identical copy of the row kept from f1.csv " \
       "(write.repeated_keys: quarantine)"


def _batch_with_repeats(spark):
    return spark.createDataFrame([
        ("a", 1, "x", "f2.csv", [], None),            # a/1: the same record in two files
        ("a", 1, "x", "f1.csv", [], None),
        ("a", 2, "x", "f1.csv", [], None),            # a/2: two values
        ("a", 2, "y", "f1.csv", [], None),
        (None, 3, "z", "f1.csv", [], None),           # null/3: one file, twice, same record
        (None, 3, "z", "f1.csv", [], None),
        ("b", 4, "x", "f1.csv", [], None),            # b/4: the other copy failed a check
        ("b", 4, "q", "f1.csv", ["expect_x(v)"], None),
        ("c", 5, "x", "f1.csv", [], "b1"),            # c/5: silver holds it from b1
        ("c", 5, "x", "f2.csv", [], "b1"),
        ("d", 6, "x", "f1.csv", [], None),            # d/6: once
    ], WITHIN_SCHEMA)


def test_keys_repeated_within_count_only_the_rows_that_would_reach_silver(spark):
    source_df = _batch_with_repeats(spark)

    actual_df = keys_repeated_within(source_df, ["site", "n"])

    expected_df = spark.createDataFrame([("a", 1, 2), ("a", 2, 2), (None, 3, 2)],
                                        "site string, n int, _copies long")
    assert_df_equality(actual_df, expected_df, ignore_row_order=True, ignore_nullable=True)


def test_a_key_repeated_within_a_batch_keeps_one_identical_copy_and_no_differing_one(spark):
    source_df = _batch_with_repeats(spark)

    passing, failing = split_flagged(flag_repeated_within(source_df, ["site", "n"], "b2"))

    differ = ("key repeated within batch b2: 2 rows with different values, none kept "
              "(write.repeated_keys: quarantine)")
    held = "key already in silver from batch b1 (write.repeated_keys: quarantine)"
    expected_passing = spark.createDataFrame(
        [("a", 1, "x", "f1.csv"), (None, 3, "z", "f1.csv"), ("b", 4, "x", "f1.csv"),
         ("d", 6, "x", "f1.csv")], "site string, n int, v string, _source_file string")
    expected_failing = spark.createDataFrame([
        ("a", 1, "f2.csv", KEPT), ("a", 2, "f1.csv", differ), ("a", 2, "f1.csv", differ),
        (None, 3, "f1.csv", KEPT), ("b", 4, "f1.csv", "failed expectations: expect_x(v)"),
        ("c", 5, "f1.csv", held), ("c", 5, "f2.csv", held)],
        "site string, n int, _source_file string, reason string")
    assert_df_equality(passing, expected_passing, ignore_row_order=True, ignore_nullable=True)
    assert_df_equality(failing.select("site", "n", "_source_file",
                                      flagged_reason().alias("reason")),
                       expected_failing, ignore_row_order=True, ignore_nullable=True)
    assert WITHIN_COLUMN not in passing.columns


@pytest.mark.parametrize(("outcomes", "status"), [
    ([_outcome(True, "critical"), _outcome(True, "warning")], "passed"),
    ([_outcome(True, "critical"), _outcome(False, "warning")], "passed_with_warnings"),
    ([_outcome(False, "critical"), _outcome(True, "warning")], "failed"),
])
def test_gate_status(outcomes, status):
    assert gate_status(outcomes) == status


def test_unknown_expectation_name_fails_at_config_load(make_settings):
    with pytest.raises(ConfigError, match=r"penguins.yml: validate.expectations.1: "
                       r".*unknown Great Expectations expectation 'expect_column_values_to_be_nul'"
                       r"; did you mean 'expect_column_values_to_be_null'\?"):
        make_settings("dataset.validate.expectations.1.expectation=expect_column_values_to_be_nul")


def test_a_column_the_schema_lacks_fails_at_config_load(make_settings):
    with pytest.raises(ConfigError, match=r"validate.expectations.3 "
                       r"\(expect_compound_columns_to_be_unique\) kwargs: unknown column\(s\) "
                       r"\['sampel_number'\]"):
        make_settings("dataset.validate.expectations.3.kwargs.column_list="
                      "[study_name, species, sampel_number]")


def test_gx_names_map_to_their_classes():
    # KL, not Kl: the class names are read from GX, not derived from the snake_case
    spec = ExpectationSpec(expectation="expect_column_kl_divergence_to_be_less_than",
                           kwargs={"column": "c", "partition_object": None})
    assert expectation_class(spec).__name__ == "ExpectColumnKLDivergenceToBeLessThan"


def test_invalid_expectation_arguments_are_a_config_error():
    spec = ExpectationSpec(expectation="expect_column_values_to_be_between",
                           kwargs={"column": "c", "min_value": "low", "colour": 3})

    with pytest.raises(ConfigError, match=r"validate.expectations.0 .*invalid kwargs"):
        build_suite([spec], "s")


def test_run_suite_reports_each_expectation_and_writes_data_docs(spark, tmp_path):
    df = spark.createDataFrame(
        [(1, 3000.0, "MALE", "PAL0708"), (2, 9000.0, ".", "PAL0708"), (3, 3500.0, None, "PAL0809")],
        SCHEMA,
    )

    outcomes, gx_json, index = run_suite(df, SPECS, suite_name="unit_suite", asset_name="unit",
                                         data_docs_dir=str(tmp_path / "docs"))

    summary = [(o.expectation, o.column, o.severity, o.success, o.unexpected_count)
               for o in outcomes]
    assert summary == [
        ("expect_column_values_to_not_be_null", "id", "critical", True, 0),
        ("expect_column_values_to_be_between", "mass", "critical", False, 1),
        ("expect_column_values_to_be_in_set", "sex", "warning", False, 1),
        ("expect_column_values_to_match_regex", "study", "critical", True, 0),
        ("expect_table_row_count_to_be_between", None, "critical", True, None),
    ]
    assert outcomes[4].observed_value == "3"
    assert gx_json["suite_name"] == "unit_suite"
    assert gx_json["success"] is False
    assert index == str(tmp_path / "docs" / "index.html")
    assert "unit_suite" in Path(index).read_text()
