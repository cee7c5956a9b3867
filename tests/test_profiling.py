"""`sparkmlops profile`: a starter suite from a table, which loads and passes on that table."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import yaml

from sparkmlops.cli import main
from sparkmlops.config import load_settings
from sparkmlops.ingest.step import ingest_step
from sparkmlops.quality.profiling import profile_columns, propose_expectations, suite_yaml
from sparkmlops.quality.step import validate_step

PROJECT = Path(__file__).resolve().parents[1]
SAMPLE = PROJECT / "data/sample/penguins/landing/penguins_raw_PAL0708.csv"


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


def test_profile_command_writes_a_suite_that_loads_and_passes(spark, make_settings, tmp_path,
                                                              capsys):
    settings = make_settings(f"dataset.source.path={SAMPLE}")
    ingest_step(spark, settings, "b1")
    out = tmp_path / "suite.yml"

    code = main(["profile", "--set", f"state_dir={tmp_path}", "--out", str(out)])

    assert code == 0
    assert f"written to {out}" in capsys.readouterr().out
    text = out.read_text()
    assert text.startswith(
        "# Starter suite proposed by `sparkmlops profile` from bronze.penguins v0")
    proposal = yaml.safe_load(text)["quality"]
    by_name = {(e["expectation"], e["kwargs"].get("column")): e for e in proposal["expectations"]}
    assert by_name[("expect_column_values_to_be_in_set", "island")]["kwargs"]["value_set"] == [
        "Biscoe", "Dream", "Torgersen"]
    assert by_name[("expect_table_row_count_to_be_between", None)]["kwargs"] == {
        "min_value": 1, "max_value": 1100}

    # the proposal, put in a dataset config, loads and passes on the table it came from
    conf = tmp_path / "conf"
    shutil.copytree(PROJECT / "conf", conf)
    dataset_file = conf / "datasets" / "penguins.yml"
    dataset = yaml.safe_load(dataset_file.read_text())
    dataset["quality"] = proposal
    dataset_file.write_text(yaml.safe_dump(dataset, sort_keys=False))
    profiled = load_settings("local", "penguins", conf_dir=conf,
                             overrides=[f"state_dir={tmp_path}", f"dataset.source.path={SAMPLE}"])
    result = validate_step(spark, profiled, "b1")

    assert result.summary["status"] == "passed"
    assert result.summary["expectations_failed"] == []
    # the proposal quarantines nothing of the data it came from (PAL0708's unmeasured
    # bird only lowers the share of non-null measurements)
    assert (result.summary["silver_rows"], result.summary["quarantined"]) == (110, 0)


def test_suite_yaml_comments_each_item():
    text = suite_yaml([("3 rows now", {"expectation": "expect_table_row_count_to_be_between",
                                       "kwargs": {"min_value": 1, "max_value": 30},
                                       "severity": "critical"})], source="bronze.t v2")
    assert "    # 3 rows now\n    - expectation: expect_table_row_count_to_be_between\n" in text
    assert yaml.safe_load(text)["quality"]["gate"] == "enabled"
