"""Append mode: a key that an earlier batch already put in silver, or that two rows of one
batch bring, follows write.repeated_keys.

Two landing files in two batches; the second repeats keys 2 and 3 of the first with
other values (a re-upload with corrections, a copied file) and brings a new key 4.
A third batch of two files repeats keys inside itself (see ``_REPEATS_INSIDE``).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from sparkmlops.cli import main
from sparkmlops.config import load_settings
from sparkmlops.errors import QualityGateFailed, RepeatedKeysError
from sparkmlops.features.step import features_step
from sparkmlops.ingest.step import ingest_step
from sparkmlops.tables import current_version, dataset_tables, read_table
from sparkmlops.tracking.runs import configure_mlflow
from sparkmlops.validate.step import ValidateOutcome, validate_step

REASON = "key already in silver from batch b1 (write.repeated_keys: quarantine)"
ADELIE = "Adelie Penguin (Pygoscelis adeliae)"
# uniqueness (expectation 3) a warning: before write.repeated_keys applied inside a
# batch, this let b3's repeated keys into silver
UNIQUE_AS_WARNING = "dataset.validate.expectations.3.severity=warning"


@pytest.fixture(scope="module")
def landed(spark, tmp_path_factory, landing_csv) -> Path:
    """A state dir where batch b1 (keys 1-3) went through validate and features, and batch
    b2 (keys 2, 3 again with other values; key 4) is ingested: built once, copied per test."""
    state_dir = tmp_path_factory.mktemp("repeated_keys")
    landing = state_dir / "landing"
    settings = load_settings("local", "penguins", overrides=[
        f"state_dir={state_dir}", f"dataset.source.path={landing}"])
    landing_csv.write(landing, "part1.csv", landing_csv.birds(1, 2, 3))
    ingest_step(spark, settings, "b1")
    validate_step(spark, settings, "b1")
    features_step(spark, settings, "b1")
    landing_csv.write(landing, "part2.csv", [landing_csv.line(2, mass="4000"),
                                             landing_csv.line(3, mass="4100"),
                                             landing_csv.line(4)])
    ingest_step(spark, settings, "b2")
    _land_repeats_inside_one_batch(landing_csv, landing)
    ingest_step(spark, settings, "b3")
    return state_dir


def _land_repeats_inside_one_batch(landing_csv, landing: Path) -> None:
    """Batch b3: two files whose rows repeat keys among themselves.

    key 2: twice, and silver holds it from b1; key 5: the same record in both files;
    key 6: in both files with different masses; key 7: once, plus a copy that fails the
    sex in-set expectation; key 8: the same record twice in part3.csv; key 9: once.
    """
    bad_sex = landing_csv.line(7).replace(",MALE,", ",UNKNOWN,")
    landing_csv.write(landing, "part3.csv", [
        landing_csv.line(2, mass="4200"), landing_csv.line(5), landing_csv.line(6, mass="3800"),
        landing_csv.line(8), landing_csv.line(8), bad_sex])
    landing_csv.write(landing, "part4.csv", [
        landing_csv.line(2, mass="4200"), landing_csv.line(5), landing_csv.line(6, mass="3900"),
        landing_csv.line(7), landing_csv.line(9)])


def _two_batches(landed: Path, tmp_path: Path) -> Path:
    """This test's copy of the landed tables (its own MLflow store starts empty)."""
    shutil.copytree(landed / "lake", tmp_path / "lake")
    return tmp_path


def _rerun_of(first: ValidateOutcome, again: ValidateOutcome, **changed: Any) -> ValidateOutcome:
    """``first`` as a re-run reports it: with the re-run's own MLflow run and table versions."""
    return replace(first, run_id=again.run_id, outputs=again.outputs,
                   silver_version=again.silver_version, **changed)


def _rows(df, *columns):
    return sorted(tuple(r[c] for c in columns) for r in df.collect())


def _tables(spark, settings):
    silver = read_table(spark, dataset_tables(settings).silver)
    gold = read_table(spark, dataset_tables(settings).gold)
    quarantine = read_table(spark, dataset_tables(settings).quarantine)
    return (_rows(silver, "_batch_id", "sample_number", "body_mass_g"),
            _rows(gold, "_batch_id", "sample_number", "body_mass_g"),
            sorted((q.step, q.reason, q._batch_id, json.loads(q.record)["sample_number"],
                    json.loads(q.record)["body_mass_g"]) for q in quarantine.collect()))


def test_keys_already_in_silver_are_quarantined_naming_the_earlier_batch(spark, make_settings,
                                                                         tmp_path, landed):
    settings = make_settings(state_dir=_two_batches(landed, tmp_path))

    result = validate_step(spark, settings, "b2")
    features_step(spark, settings, "b2")

    # silver and gold hold each key once; quarantine holds b2's records of keys 2 and 3
    expected = (
        [("b1", 1, 3750.0), ("b1", 2, 3750.0), ("b1", 3, 3750.0), ("b2", 4, 3750.0)],
        [("b1", 1, 3750.0), ("b1", 2, 3750.0), ("b1", 3, 3750.0), ("b2", 4, 3750.0)],
        [("validate", REASON, "b2", 2, 4000.0), ("validate", REASON, "b2", 3, 4100.0)],
    )
    assert _tables(spark, settings) == expected
    # bronze b2 (3 rows) = silver 1 + quarantined 2
    assert (result.silver_rows, result.quarantined, result.repeated_keys) == (1, 2, 2)
    configure_mlflow(settings)
    metrics = MlflowClient().get_run(result.run_id).data.metrics
    assert (metrics["rows_repeated_keys"], metrics["rows_out.quarantine.penguins"]) == (2, 2)

    # validating either batch again finds its own rows, not repeats: nothing changes
    again = validate_step(spark, settings, "b2")
    features_step(spark, settings, "b2")
    validate_step(spark, settings, "b1")
    features_step(spark, settings, "b1")
    assert again == _rerun_of(result, again, expectations_failed=[])
    assert _tables(spark, settings) == expected


def test_repeated_keys_fail_exits_4_with_one_line_and_writes_nothing(spark, make_settings,
                                                                    tmp_path, capsys, landed):
    settings = make_settings(state_dir=_two_batches(landed, tmp_path))
    silver, quarantine = dataset_tables(settings).silver, dataset_tables(settings).quarantine
    before = (current_version(spark, silver), current_version(spark, quarantine))
    capsys.readouterr()

    code = main(["validate", "--env", "local", "--batch-id", "b2",
                 "--set", f"state_dir={tmp_path}",
                 "--set", "dataset.write.repeated_keys=fail"])

    err = [line for line in capsys.readouterr().err.splitlines()
           if line.startswith("sparkmlops ")]
    assert code == 4
    assert issubclass(RepeatedKeysError, QualityGateFailed)
    assert err == [
        "sparkmlops validate: RepeatedKeysError: batch b2: 2 row(s) bring a key that silver "
        f"already holds from batch b1, e.g. {{study_name=PAL0708, species={ADELIE}, "
        f"sample_number=2}}, {{study_name=PAL0708, species={ADELIE}, sample_number=3}}; "
        "silver and quarantine left as they were (write.repeated_keys: fail)"]
    # stopped before either write: silver and quarantine at their versions, b1's rows only
    assert (current_version(spark, silver), current_version(spark, quarantine)) == before
    assert _rows(read_table(spark, silver), "_batch_id", "sample_number") == [
        ("b1", 1), ("b1", 2), ("b1", 3)]


def test_repeated_keys_allow_keeps_both_records(spark, make_settings, tmp_path, landed):
    settings = make_settings("dataset.write.repeated_keys=allow",
                             state_dir=_two_batches(landed, tmp_path))

    result = validate_step(spark, settings, "b2")
    features_step(spark, settings, "b2")

    assert (result.silver_rows, result.quarantined) == (3, 0)
    both = [("b1", 1, 3750.0), ("b1", 2, 3750.0), ("b1", 3, 3750.0),
            ("b2", 2, 4000.0), ("b2", 3, 4100.0), ("b2", 4, 3750.0)]
    assert _tables(spark, settings) == (both, both, [])


# ---------------------------------------------------------------- a key repeated inside one batch

WITHIN = "key repeated within batch b3"
FAILED_SEX = "failed expectations: expect_column_values_to_be_in_set(sex)"


def _key(n: int) -> str:
    return f"{{study_name=PAL0708, species={ADELIE}, sample_number={n}}}"


def _b3(spark, settings):
    """b3's silver (sample, mass, file) and quarantine (reason, sample, mass, file) rows."""
    tables = dataset_tables(settings)
    silver = read_table(spark, tables.silver).where("_batch_id = 'b3'")
    quarantine = read_table(spark, tables.quarantine).where("_batch_id = 'b3'")
    return (
        sorted((r.sample_number, r.body_mass_g, Path(r._source_file).name)
               for r in silver.collect()),
        sorted((q.reason, json.loads(q.record)["sample_number"],
                json.loads(q.record)["body_mass_g"], Path(q._source_file).name)
               for q in quarantine.collect()))


def test_a_key_repeated_inside_one_batch_keeps_one_identical_copy_or_none(spark, make_settings,
                                                                           tmp_path, landed):
    settings = make_settings(UNIQUE_AS_WARNING, state_dir=_two_batches(landed, tmp_path))
    part3 = next(r._source_file for r in read_table(spark, dataset_tables(settings).bronze)
                 .where("_batch_id = 'b3'").collect() if r._source_file.endswith("/part3.csv"))
    kept = f"{WITHIN}: an identical copy of the row kept from {part3} " \
           "(write.repeated_keys: quarantine)"
    differ = f"{WITHIN}: 2 rows with different values, none kept (write.repeated_keys: quarantine)"

    result = validate_step(spark, settings, "b3")

    # one copy of 5 and of 8 (identical copies: part3's), none of 6 (they differ), 7 whose
    # other copy failed an expectation, 9; key 2 is silver's from b1
    expected = (
        [(5, 3750.0, "part3.csv"), (7, 3750.0, "part4.csv"), (8, 3750.0, "part3.csv"),
         (9, 3750.0, "part4.csv")],
        sorted([(REASON, 2, 4200.0, "part3.csv"), (REASON, 2, 4200.0, "part4.csv"),
                (kept, 5, 3750.0, "part4.csv"), (differ, 6, 3800.0, "part3.csv"),
                (differ, 6, 3900.0, "part4.csv"), (FAILED_SEX, 7, 3750.0, "part3.csv"),
                (kept, 8, 3750.0, "part3.csv")]))
    assert _b3(spark, settings) == expected
    assert result.status == "passed_with_warnings"
    assert "expect_compound_columns_to_be_unique() [warning]" in result.expectations_failed
    # bronze b3 (11 rows) = silver 4 + quarantined 7 (2 held by b1, 4 repeated inside b3)
    assert (result.silver_rows, result.quarantined, result.repeated_keys,
            result.repeated_in_batch) == (4, 7, 2, 4)
    configure_mlflow(settings)
    metrics = MlflowClient().get_run(result.run_id).data.metrics
    assert {k: metrics[k] for k in ("rows_in.bronze.penguins", "rows_out.silver.penguins",
                                    "rows_out.quarantine.penguins", "rows_repeated_keys",
                                    "rows_repeated_in_batch")} == {
        "rows_in.bronze.penguins": 11, "rows_out.silver.penguins": 4,
        "rows_out.quarantine.penguins": 7, "rows_repeated_keys": 2, "rows_repeated_in_batch": 4}

    # the same bronze gives the same silver and quarantine
    again = validate_step(spark, settings, "b3")
    assert again == _rerun_of(result, again)
    assert _b3(spark, settings) == expected


def test_a_key_repeated_inside_one_batch_with_fail_exits_4_naming_the_keys(spark, make_settings,
                                                                          tmp_path, capsys,
                                                                          landed):
    settings = make_settings(state_dir=_two_batches(landed, tmp_path))
    silver, quarantine = dataset_tables(settings).silver, dataset_tables(settings).quarantine
    before = (current_version(spark, silver), current_version(spark, quarantine))
    capsys.readouterr()

    code = main(["validate", "--env", "local", "--batch-id", "b3",
                 "--set", f"state_dir={tmp_path}", "--set", UNIQUE_AS_WARNING,
                 "--set", "dataset.write.repeated_keys=fail"])

    err = [line for line in capsys.readouterr().err.splitlines()
           if line.startswith("sparkmlops ")]
    assert code == 4
    assert err == [
        "sparkmlops validate: RepeatedKeysError: batch b3: 2 row(s) bring a key that silver "
        f"already holds from batch b1, e.g. {_key(2)}; 3 key(s) repeated within the "
        f"batch on 6 rows, e.g. {_key(5)} (2 rows), {_key(6)} (2 rows); "
        "silver and quarantine left as they were (write.repeated_keys: fail)"]
    assert (current_version(spark, silver), current_version(spark, quarantine)) == before
    assert _b3(spark, settings) == ([], [])


def test_a_key_repeated_inside_one_batch_with_allow_keeps_every_copy(spark, make_settings,
                                                                     tmp_path, landed):
    settings = make_settings(UNIQUE_AS_WARNING, "dataset.write.repeated_keys=allow",
                             state_dir=_two_batches(landed, tmp_path))

    result = validate_step(spark, settings, "b3")

    assert _b3(spark, settings) == (
        [(2, 4200.0, "part3.csv"), (2, 4200.0, "part4.csv"), (5, 3750.0, "part3.csv"),
         (5, 3750.0, "part4.csv"), (6, 3800.0, "part3.csv"), (6, 3900.0, "part4.csv"),
         (7, 3750.0, "part4.csv"), (8, 3750.0, "part3.csv"), (8, 3750.0, "part3.csv"),
         (9, 3750.0, "part4.csv")],
        [(FAILED_SEX, 7, 3750.0, "part3.csv")])
    assert (result.silver_rows, result.quarantined, result.repeated_keys,
            result.repeated_in_batch) == (10, 1, 0, 0)
