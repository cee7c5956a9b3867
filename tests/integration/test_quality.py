from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from sparkmlops.errors import QualityGateFailed
from sparkmlops.ingest.step import ingest_step
from sparkmlops.tables import current_version, dataset_tables, read_table, table_exists
from sparkmlops.tracking.runs import configure_mlflow
from sparkmlops.validate.step import validate_step

# ---------------------------------------------------------------- the step, on real sample rows


def _ingest_sample(spark, make_settings, sample_landing, *overrides):
    settings = make_settings(
        f"dataset.source.path={sample_landing / 'penguins_raw_PAL0708.csv'}", *overrides)
    ingest_step(spark, settings, "b1")
    return settings


def test_validate_splits_rows_and_records_results(spark, make_settings, sample_landing):
    settings = _ingest_sample(spark, make_settings, sample_landing)

    result = validate_step(spark, settings, "b1")

    # PAL0708 has 110 rows; 1 bird without measurements fails the body-mass not-null check,
    # which passes as an expectation (mostly: 0.95) but still quarantines that row
    assert result.status == "passed"
    assert (result.silver_rows, result.quarantined) == (109, 1)
    quarantine = read_table(spark, dataset_tables(settings).quarantine).collect()
    assert [(q.step, q.reason) for q in quarantine] == [
        ("validate", "failed expectations: expect_column_values_to_not_be_null(body_mass_g)")]
    assert '"sample_number":4' in quarantine[0].record
    results = read_table(spark, dataset_tables(settings).validation_results)
    assert results.count() == len(settings.dataset.validate_.expectations)
    assert results.where("NOT success").count() == 0
    with_unexpected = [(r.expectation, r.column, r.severity, r.unexpected_count, r.table_version)
                       for r in results.where("unexpected_count > 0").collect()]
    assert with_unexpected == [
        ("expect_column_values_to_not_be_null", "body_mass_g", "warning", 1, 0)]
    # every row-level expectation of the sample quarantines: GX's counts, no extra pass
    assert sorted((r.action, r.rows_kept, r.rows_quarantined) for r in results.collect()) == [
        *[("keep", None, None)] * 3, *[("quarantine", 0, 0)] * 7, ("quarantine", 0, 1)]


def test_critical_failure_stops_before_silver_is_written(spark, make_settings, sample_landing):
    settings = _ingest_sample(
        spark, make_settings, sample_landing,
        "dataset.validate.expectations.0.kwargs.max_value=10")

    with pytest.raises(QualityGateFailed, match=r"expect_table_row_count_to_be_between"):
        validate_step(spark, settings, "b1")

    assert not table_exists(spark, dataset_tables(settings).silver)
    results = read_table(spark, dataset_tables(settings).validation_results)
    assert results.where("NOT success AND severity = 'critical'").count() == 1


def test_dry_run_records_the_failure_and_goes_on(spark, make_settings, sample_landing):
    settings = _ingest_sample(spark, make_settings, sample_landing, "dataset.validate.gate=dry_run",
                              "dataset.validate.expectations.0.kwargs.max_value=10")

    result = validate_step(spark, settings, "b1")

    assert result.status == "failed"
    assert result.silver_rows == 109


def test_a_failed_warning_passes_the_gate_and_is_recorded(spark, make_settings, sample_landing):
    # expectation 10: the mean culmen length between 50 and 55 (PAL0708: 43.7), a warning
    settings = _ingest_sample(spark, make_settings, sample_landing,
                              "dataset.validate.expectations.10.kwargs.min_value=50")

    result = validate_step(spark, settings, "b1")

    assert result.status == "passed_with_warnings"
    assert result.expectations_failed == [
        "expect_column_mean_to_be_between(culmen_length_mm) [warning]"]
    assert (result.silver_rows, result.quarantined) == (109, 1)
    configure_mlflow(settings)
    run = MlflowClient().get_run(result.run_id)
    assert run.data.tags["quality.status"] == "passed_with_warnings"
    assert {k: run.data.metrics[k] for k in ("quality.expectations", "quality.passed",
                                             "quality.failed_critical", "quality.failed_warning")
            } == {"quality.expectations": 11, "quality.passed": 10,
                  "quality.failed_critical": 0, "quality.failed_warning": 1}
    failed = read_table(spark, dataset_tables(settings).validation_results).where(
        "NOT success").collect()
    assert [(r.expectation, r.severity, r.gate_status, r.validation_id, round(
        float(r.observed_value), 2)) for r in failed] == [
        ("expect_column_mean_to_be_between", "warning", "passed_with_warnings", result.run_id,
         43.74)]


def test_each_validation_run_is_kept(spark, make_settings, sample_landing):
    settings = _ingest_sample(spark, make_settings, sample_landing)

    first = validate_step(spark, settings, "b1")
    second = validate_step(spark, settings, "b1")

    results = read_table(spark, dataset_tables(settings).validation_results)
    per_run = {r.validation_id: r["count"] for r in results.groupBy("validation_id").count()
               .collect()}
    assert per_run == {first.run_id: 11, second.run_id: 11}


# ---------------------------------------------------------------- expectation actions
# expectation 6: body mass not null (mostly 0.95), a warning; PAL0708's bird 4 has no
# measurements and is the one row failing it


def test_a_keep_expectation_lets_its_failing_row_on_to_silver(spark, make_settings,
                                                              sample_landing):
    settings = _ingest_sample(spark, make_settings, sample_landing,
                              "dataset.validate.expectations.6.action=keep")
    tables = dataset_tables(settings)

    result = validate_step(spark, settings, "b1")

    assert result.status == "passed"
    assert (result.silver_rows, result.quarantined, result.kept_failing) == (110, 0, 1)
    assert read_table(spark, tables.silver).where(
        "sample_number = 4 AND body_mass_g IS NULL").count() == 1
    assert read_table(spark, tables.quarantine).count() == 0
    results = read_table(spark, tables.validation_results)
    assert sorted((r.expectation, r.column, r.action, r.rows_kept, r.rows_quarantined)
                  for r in results.collect()) == sorted([
        ("expect_table_row_count_to_be_between", None, "keep", None, None),
        ("expect_column_values_to_not_be_null", "study_name", "quarantine", 0, 0),
        ("expect_column_values_to_match_regex", "study_name", "quarantine", 0, 0),
        ("expect_compound_columns_to_be_unique", None, "keep", None, None),
        ("expect_column_values_to_be_in_set", "species", "quarantine", 0, 0),
        ("expect_column_values_to_be_in_set", "island", "quarantine", 0, 0),
        ("expect_column_values_to_not_be_null", "body_mass_g", "keep", 1, 0),
        ("expect_column_values_to_be_between", "body_mass_g", "quarantine", 0, 0),
        ("expect_column_values_to_be_between", "flipper_length_mm", "quarantine", 0, 0),
        ("expect_column_values_to_be_in_set", "sex", "quarantine", 0, 0),
        ("expect_column_mean_to_be_between", "culmen_length_mm", "keep", None, None)])
    configure_mlflow(settings)
    assert MlflowClient().get_run(result.run_id).data.metrics["rows_kept_failing"] == 1


def test_a_row_failing_keep_and_quarantine_goes_to_quarantine_for_the_quarantine_one(
        spark, make_settings, sample_landing):
    # expectation 1 made a quarantining warning on culmen length: bird 4 fails it too
    settings = _ingest_sample(
        spark, make_settings, sample_landing, "dataset.validate.expectations.6.action=keep",
        "dataset.validate.expectations.1.kwargs.column=culmen_length_mm",
        "dataset.validate.expectations.1.severity=warning",
        "dataset.validate.expectations.1.action=quarantine")
    tables = dataset_tables(settings)

    result = validate_step(spark, settings, "b1")

    assert (result.silver_rows, result.quarantined, result.kept_failing) == (109, 1, 0)
    assert [(q.reason, '"sample_number":4' in q.record)
            for q in read_table(spark, tables.quarantine).collect()] == [
        ("failed expectations: expect_column_values_to_not_be_null(culmen_length_mm)", True)]
    counts = {(r.column, r.action): (r.rows_kept, r.rows_quarantined)
              for r in read_table(spark, tables.validation_results)
              .where("expectation = 'expect_column_values_to_not_be_null'").collect()}
    assert counts == {("culmen_length_mm", "quarantine"): (0, 1),
                      ("body_mass_g", "keep"): (0, 1)}


def test_a_fail_expectation_stops_the_batch_before_silver_and_quarantine(
        spark, make_settings, sample_landing):
    settings = _ingest_sample(spark, make_settings, sample_landing)
    tables = dataset_tables(settings)
    validate_step(spark, settings, "b1")
    before = (current_version(spark, tables.silver), current_version(spark, tables.quarantine))
    failing = make_settings(f"dataset.source.path={sample_landing / 'penguins_raw_PAL0708.csv'}",
                            "dataset.validate.expectations.6.action=fail")

    with pytest.raises(QualityGateFailed, match=(
            r"batch b1: expectation\(s\) with action fail failed: "
            r"expect_column_values_to_not_be_null\(body_mass_g\) on 1 row\(s\); "
            r"silver and quarantine left as they were")) as raised:
        validate_step(spark, failing, "b1")

    assert raised.value.exit_code == 4
    assert (current_version(spark, tables.silver),
            current_version(spark, tables.quarantine)) == before
    results = read_table(spark, tables.validation_results)
    assert results.select("validation_id").distinct().count() == 2
    assert [(r.action, r.success, r.unexpected_count, r.rows_kept, r.rows_quarantined)
            for r in results.where("action = 'fail'").collect()] == [("fail", True, 1, 0, 0)]
