"""Append mode: a key that an earlier batch already put in silver follows write.repeated_keys.

Two landing files in two batches; the second repeats keys 2 and 3 of the first with
other values (a re-upload with corrections, a copied file) and brings a new key 4.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from sparkmlops.cli import main
from sparkmlops.config import load_settings
from sparkmlops.errors import QualityGateFailed, RepeatedKeysError
from sparkmlops.features.step import features_step
from sparkmlops.ingest.step import ingest_step
from sparkmlops.quality.step import validate_step
from sparkmlops.tables import current_version, dataset_tables, read_table
from sparkmlops.tracking import configure_mlflow

REASON = "key already in silver from batch b1 (write.repeated_keys: quarantine)"
ADELIE = "Adelie Penguin (Pygoscelis adeliae)"


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
    return state_dir


def _two_batches(landed: Path, tmp_path: Path) -> Path:
    """This test's copy of the landed tables (its own MLflow store starts empty)."""
    shutil.copytree(landed / "lake", tmp_path / "lake")
    return tmp_path


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
    assert {k: result.summary[k] for k in ("silver_rows", "quarantined", "repeated_keys")} == {
        "silver_rows": 1, "quarantined": 2, "repeated_keys": 2}
    configure_mlflow(settings)
    metrics = MlflowClient().get_run(result.run_id).data.metrics
    assert (metrics["rows_repeated_keys"], metrics["rows_out.quarantine.penguins"]) == (2, 2)

    # validating either batch again finds its own rows, not repeats: nothing changes
    again = validate_step(spark, settings, "b2")
    features_step(spark, settings, "b2")
    validate_step(spark, settings, "b1")
    features_step(spark, settings, "b1")
    assert again.summary == {**result.summary, "expectations_failed": []}
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

    assert (result.summary["silver_rows"], result.summary["quarantined"]) == (3, 0)
    both = [("b1", 1, 3750.0), ("b1", 2, 3750.0), ("b1", 3, 3750.0),
            ("b2", 2, 4000.0), ("b2", 3, 4100.0), ("b2", 4, 3750.0)]
    assert _tables(spark, settings) == (both, both, [])
