"""Per-batch quality metrics and their anomalies against the previous batches: measured on
tiny inline frames, judged on planted histories. No Delta, no MLflow."""

from __future__ import annotations

from datetime import datetime

import pyspark.sql.functions as F
import pytest

from sparkmlops.config import AnomalyRule, ValidateSettings, load_settings
from sparkmlops.errors import ConfigError
from sparkmlops.validate.quality_metrics import (
    Measured,
    QualityMetricRow,
    QualityRun,
    gate_status,
    history_values,
    judge,
    measure,
    previous_batches,
    quality_metrics_schema,
    row_count,
    verdict,
)

RUN = QualityRun(batch_id="b4", validation_id="run4", table_version=3,
                 measured_at=datetime(2026, 12, 6, 12, 0))
DEFAULTS = ValidateSettings()


def test_one_aggregation_measures_rows_nulls_distinct_and_numeric_ranges(spark):
    source_df = spark.createDataFrame(
        [("Biscoe", 3, 4000.0, "b1"), ("Dream", None, 3500.0, "b1"),
         ("Biscoe", 5, None, "b1"), (None, 5, 4500.0, "b1")],
        "island string, clutch int, body_mass_g double, _batch_id string")

    measured = measure(source_df)

    # the audit column _batch_id is not measured; island is text: no min, max or mean
    assert measured == [
        Measured("row_count", None, 4.0),
        Measured("null_share", "island", 0.25), Measured("distinct_count", "island", 2.0),
        Measured("null_share", "clutch", 0.25), Measured("distinct_count", "clutch", 2.0),
        Measured("min", "clutch", 3.0), Measured("max", "clutch", 5.0),
        Measured("mean", "clutch", 13 / 3),
        Measured("null_share", "body_mass_g", 0.25),
        Measured("distinct_count", "body_mass_g", 3.0),
        Measured("min", "body_mass_g", 3500.0), Measured("max", "body_mass_g", 4500.0),
        Measured("mean", "body_mass_g", 4000.0),
    ]
    assert row_count(measured) == 4  # what validate records as the rows it read


def _jobs(spark, group: str, action) -> int:
    spark.sparkContext.setJobGroup(group, group)
    try:
        action()
    finally:
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
    return len(spark.sparkContext.statusTracker().getJobIdsForGroup(group))


def test_the_metrics_cost_what_one_count_costs_whatever_the_columns(spark):
    source_df = spark.createDataFrame(
        [(i, f"s{i}", float(i), i % 3, None if i % 4 else "x", 2.0 * i) for i in range(20)],
        "a int, b string, c double, d long, e string, f double")

    # one aggregation (with adaptive execution, its partial and final stages are two
    # jobs, as for a plain count), not one per column
    counted = _jobs(spark, "quality-count", lambda: source_df.agg(F.count(F.lit(1))).first())
    measured = _jobs(spark, "quality-measure", lambda: measure(source_df))

    assert measured == counted


def test_a_batch_with_half_the_rows_is_an_anomaly_of_the_row_count():
    rows = judge([Measured("row_count", None, 50.0)],
                 {("row_count", None): [98.0, 100.0, 102.0]}, DEFAULTS, RUN)

    # default rule: max_change 0.3 of the mean of the last 5 batches
    assert [(r.label, r.value, r.status, r.severity, r.expected, r.low, r.high, r.history)
            for r in rows] == [
        ("row_count", 50.0, "anomaly", "warning", 100.0, 70.0, 130.0, 3)]
    assert rows[0].rule == "max_change 0.3 of last 5"
    assert rows[0].described() == ("row_count=50 outside [70, 130] (expected 100 from 3 "
                                   "batches; max_change 0.3 of last 5) [warning]")


def test_a_null_share_jumping_from_1_to_30_percent_is_an_anomaly():
    history = {("null_share", "body_mass_g"): [0.01, 0.0125, 0.0075, 0.01]}

    [row] = judge([Measured("null_share", "body_mass_g", 0.3)], history, DEFAULTS, RUN)

    # default rule: k 3 std of the last 10, a deviation under 0.05 never counted
    assert (row.status, row.severity, row.expected, row.history) == ("anomaly", "warning",
                                                                     0.01, 4)
    assert (row.low, row.high) == pytest.approx((0.01 - 0.05, 0.01 + 0.05))
    assert row.rule == "k 3 std of last 10, min_change 0.05"


def test_a_stable_batch_is_not_an_anomaly():
    history = {("row_count", None): [98.0, 100.0, 102.0],
               ("null_share", "body_mass_g"): [0.01, 0.0125, 0.0075, 0.01],
               ("mean", "body_mass_g"): [4000.0, 4100.0, 4050.0]}

    rows = judge([Measured("row_count", None, 104.0),
                  Measured("null_share", "body_mass_g", 0.0125),
                  Measured("mean", "body_mass_g", 9000.0)], history, DEFAULTS, RUN)

    # the mean has no default rule: recorded, not judged
    assert [(r.label, r.status) for r in rows] == [
        ("row_count", "ok"), ("null_share(body_mass_g)", "ok"),
        ("mean(body_mass_g)", "not_judged")]


def test_the_same_value_as_every_previous_batch_is_ok_even_with_no_spread():
    rule = AnomalyRule(metric="null_share", k=3)

    assert verdict(rule, 0.1, [0.1, 0.1, 0.1])[0] == "ok"
    assert verdict(rule, 0.1000001, [0.1, 0.1, 0.1])[0] == "anomaly"


def test_too_little_history_gives_no_verdict():
    rows = judge([Measured("row_count", None, 10.0), Measured("null_share", "sex", 0.9),
                  Measured("null_share", "island", None)],
                 {("row_count", None): [100.0, 100.0], ("null_share", "sex"): [0.0]},
                 DEFAULTS, RUN)

    assert [(r.label, r.status, r.history, r.expected) for r in rows] == [
        ("row_count", "no_history", 2, None), ("null_share(sex)", "no_history", 1, None),
        ("null_share(island)", "no_value", 0, None)]
    assert gate_status("passed", rows, "enabled") == "passed"


def test_a_rule_on_one_column_wins_and_last_1_compares_with_the_previous_batch():
    quality = ValidateSettings(anomalies=[
        {"metric": "max", "max_change": 0.5, "min_history": 2},
        {"metric": "max", "column": "body_mass_g", "max_change": 0.1, "last": 1,
         "severity": "critical"}])
    history = {("max", "body_mass_g"): [9000.0, 5000.0], ("max", "flipper"): [200.0, 210.0]}

    rows = judge([Measured("max", "body_mass_g", 6000.0), Measured("max", "flipper", 220.0)],
                 history, quality, RUN)

    assert [(r.label, r.status, r.severity, r.expected, r.history) for r in rows] == [
        ("max(body_mass_g)", "anomaly", "critical", 5000.0, 1),
        ("max(flipper)", "ok", "warning", 205.0, 2)]
    assert gate_status("passed", rows, "enabled") == "failed"
    assert gate_status("passed", rows, "disabled") == "passed"


def test_a_warning_anomaly_makes_a_passed_validation_passed_with_warnings():
    rows = judge([Measured("row_count", None, 50.0)],
                 {("row_count", None): [100.0, 100.0, 100.0]}, DEFAULTS, RUN)

    assert gate_status("passed", rows, "enabled") == "passed_with_warnings"
    assert gate_status("not_run", rows, "dry_run") == "passed_with_warnings"
    assert gate_status("failed", rows, "enabled") == "failed"


def test_previous_batches_follow_ingest_order_and_skip_unrecorded_ones():
    first = {"b1": datetime(2026, 1, 1), "b2": datetime(2026, 1, 2),
             "b4": datetime(2026, 1, 4), "b5": datetime(2026, 1, 5)}

    # re-validating b4 judges it against b1 and b2 (b3 has no metrics, b5 came later)
    assert previous_batches(["b1", "b2", "b3", "b4", "b5"], "b4", first, 5) == ["b1", "b2"]
    assert previous_batches(["b1", "b2", "b3", "b4", "b5"], "b5", first, 2) == ["b2", "b4"]
    # a batch ingest order does not know: every other recorded batch, by when measured
    assert previous_batches([], "x", first, 3) == ["b2", "b4", "b5"]
    assert previous_batches(["b1"], "b1", first, 0) == []


def test_history_values_are_in_batch_order_without_nulls():
    def row(batch: str, value: float | None) -> QualityMetricRow:
        return QualityMetricRow(batch, "row_count", None, value, "ok", None, None, 0, None,
                                None, None, "passed", "r", 0, datetime(2026, 1, 1))

    values = history_values([row("b2", 20.0), row("b1", 10.0), row("b3", None),
                             row("b9", 90.0)], ["b1", "b2", "b3"])

    assert values == {("row_count", None): [10.0, 20.0]}


def test_the_row_declares_the_table_schema():
    assert quality_metrics_schema() == (
        "_batch_id string, metric string, column_name string, value double, status string, "
        "severity string, rule string, history long, expected double, low double, "
        "high double, gate_status string, validation_id string, table_version long, "
        "measured_at timestamp")


@pytest.mark.parametrize(("override", "message"), [
    ("dataset.validate.anomalies=[{metric: rows, max_change: 0.3}]",
     "validate.anomalies.0.metric: Input should be 'row_count', 'null_share', "
     "'distinct_count', 'min', 'max' or 'mean'"),
    ("dataset.validate.anomalies=[{metric: null_share, k: 0}]",
     "validate.anomalies.0.k: Input should be greater than 0"),
    ("dataset.validate.anomalies=[{metric: row_count, k: 3, max_change: 0.3}]",
     "give exactly one of max_change"),
    ("dataset.validate.anomalies=[{metric: row_count}]", "give exactly one of max_change"),
    ("dataset.validate.anomalies=[{metric: row_count, column: sex, max_change: 0.3}]",
     "it is a metric of the batch, not of a column"),
    ("dataset.validate.anomalies=[{metric: null_share, k: 3, last: 1}]",
     "k needs a std, so last must be at least 2"),
    ("dataset.validate.anomalies=[{metric: row_count, max_change: 0.3, last: 2, "
     "min_history: 3}]", "min_history (3) cannot exceed last (2)"),
    ("dataset.validate.anomalies=[{metric: null_share, k: 3}, {metric: null_share, k: 2}]",
     "two anomaly rules for null_share: give one"),
    ("dataset.validate.anomalies=[{metric: mean, column: species, k: 3}]",
     "validate.anomalies.0: mean is recorded for numeric columns only, and species is string"),
    ("dataset.validate.anomalies=[{metric: mean, column: wingspan, k: 3}]",
     "validate.anomalies.0 (mean) column: unknown column(s) ['wingspan']"),
])
def test_a_bad_anomaly_rule_is_refused_at_load_in_one_line(tmp_path, override, message):
    with pytest.raises(ConfigError) as caught:
        load_settings("local", "penguins", overrides=[f"state_dir={tmp_path}", override])

    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_no_anomaly_config_gets_the_default_rules(tmp_path):
    quality = load_settings("local", "penguins",
                            overrides=[f"state_dir={tmp_path}"]).dataset.validate_

    assert [(r.metric, r.column, r.max_change, r.k, r.last, r.needed, r.min_change,
             r.severity) for r in quality.anomalies] == [
        ("row_count", None, 0.3, None, 5, 3, 0.0, "warning"),
        ("null_share", None, None, 3.0, 10, 3, 0.05, "warning")]
