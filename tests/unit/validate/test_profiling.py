"""`sparkmlops profile`: a starter suite from a table, which loads and passes on that table."""

from __future__ import annotations

from datetime import date

import yaml

from sparkmlops.validate.profiling import profile_columns, propose_expectations, suite_yaml


def test_proposal_from_a_small_table(spark):
    df = spark.createDataFrame(
        [(1, "a", 2.5, date(2020, 1, 1), "x"), (2, "b", None, date(2020, 3, 1), "y"),
         (3, "a", 4.0, date(2020, 2, 1), None), (4, "a", 1.0, date(2020, 2, 1), "z"),
         (5, "b", 3.0, date(2020, 2, 1), "w"), (6, "b", 2.0, date(2020, 2, 1), "v"),
         (7, "a", 2.0, date(2020, 2, 1), "u"), (8, "a", 2.0, date(2020, 2, 1), "t"),
         (9, "a", 2.0, date(2020, 2, 1), "s"), (10, "a", 2.0, date(2020, 2, 1), "r")],
        "id int, kind string, size double, day date, tag string")

    proposed = [item for _, item in propose_expectations(
        profile_columns(df, max_set_size=3), keys=["id"])]

    assert proposed == [
        {"expectation": "expect_table_row_count_to_be_between",
         "kwargs": {"min_value": 1, "max_value": 100}, "severity": "critical"},
        {"expectation": "expect_compound_columns_to_be_unique",
         "kwargs": {"column_list": ["id"]}, "severity": "critical"},
        {"expectation": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"},
         "severity": "critical"},
        {"expectation": "expect_column_values_to_be_between",
         "kwargs": {"column": "id", "min_value": 1, "max_value": 10}, "severity": "warning"},
        {"expectation": "expect_column_values_to_not_be_null", "kwargs": {"column": "kind"},
         "severity": "critical"},
        {"expectation": "expect_column_values_to_be_in_set",
         "kwargs": {"column": "kind", "value_set": ["a", "b"]}, "severity": "warning"},
        # one null in ten: at least 89 % non-null, an aggregate warning
        {"expectation": "expect_column_proportion_of_non_null_values_to_be_between",
         "kwargs": {"column": "size", "min_value": 0.89}, "severity": "warning"},
        {"expectation": "expect_column_values_to_be_between",
         "kwargs": {"column": "size", "min_value": 1.0, "max_value": 4.0}, "severity": "warning"},
        {"expectation": "expect_column_values_to_not_be_null", "kwargs": {"column": "day"},
         "severity": "critical"},
        {"expectation": "expect_column_values_to_be_between",
         "kwargs": {"column": "day", "min_value": "2020-01-01", "max_value": "2020-03-01"},
         "severity": "warning"},
        {"expectation": "expect_column_proportion_of_non_null_values_to_be_between",
         "kwargs": {"column": "tag", "min_value": 0.89}, "severity": "warning"},
        # nine distinct tags: more than max_set_size, so no set and (text) no range
    ]


def test_suite_yaml_comments_each_item():
    text = suite_yaml([("3 rows now", {"expectation": "expect_table_row_count_to_be_between",
                                       "kwargs": {"min_value": 1, "max_value": 30},
                                       "severity": "critical"})], source="bronze.t v2")
    assert "    # 3 rows now\n    - expectation: expect_table_row_count_to_be_between\n" in text
    assert yaml.safe_load(text)["validate"]["gate"] == "enabled"
