"""A landing file is known by its bytes, not its mtime (issue 11, case 1): a touched file or a
byte-identical copy is not read again; a file whose bytes changed follows
``source.on_changed_file``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyspark.sql.functions as F
import pytest

from sparkmlops.cli import main
from sparkmlops.features.step import features_step
from sparkmlops.ingest import landing as landing_files
from sparkmlops.ingest.records import ChangedLandingFileError
from sparkmlops.ingest.step import IngestOutcome, default_batch_id, ingest_step, landing_plan
from sparkmlops.tables import (
    current_version,
    dataset_tables,
    read_table,
    table_exists,
    table_ref,
)
from sparkmlops.validate.step import validate_step

KEYS = ["study_name", "species", "sample_number"]
LAYERS = ("bronze", "quarantine", "manifest", "ingest_log")


def _outcome(result: IngestOutcome, **counts: int | bool) -> IngestOutcome:
    """``result`` as it should be: ``counts`` and every other count 0 (its run and versions
    as they are)."""
    return IngestOutcome(result.run_id, result.outputs, bronze_version=result.bronze_version,
                         **counts)


def _versions(spark, settings) -> dict[str, int | None]:
    return {layer: current_version(spark, table_ref(settings, layer)) for layer in LAYERS}


def _manifest(spark, settings) -> list[tuple]:
    rows = read_table(spark, dataset_tables(settings).manifest).collect()
    return sorted(((Path(r.path).name, r._batch_id, r.status, r.earlier_batch) for r in rows),
                  key=lambda row: tuple(str(v) for v in row))


def _duplicate_keys(df) -> int:
    return df.groupBy(*KEYS).count().where(F.col("count") > 1).count()


def test_touched_file_is_not_read_again_and_silver_and_gold_hold_each_key_once(
        spark, make_settings, tmp_path, sample_landing, touch):
    # the repro: ingest the sample, touch one file, run the batch again
    landing = tmp_path / "landing"
    shutil.copytree(sample_landing, landing)
    settings = make_settings(f"dataset.source.path={landing}")
    first = default_batch_id(spark, settings)
    for step in (ingest_step, validate_step, features_step):
        step(spark, settings, first)
    before = _versions(spark, settings)
    touch(landing / "penguins_raw_PAL0809.csv")

    second = default_batch_id(spark, settings)
    again = ingest_step(spark, settings, second)
    after = _versions(spark, settings)
    validate_step(spark, settings, second)
    features_step(spark, settings, second)

    silver = read_table(spark, dataset_tables(settings).silver)
    gold = read_table(spark, dataset_tables(settings).gold)
    assert (silver.count(), _duplicate_keys(silver)) == (342, 0)
    assert (gold.count(), _duplicate_keys(gold)) == (342, 0)
    assert second == first  # a touch is not new data: the default batch is the same one
    assert again == _outcome(again, skipped=True, bronze_rows=344, duplicates=1)
    assert {k: v for k, v in after.items() if k != "manifest"} == {
        k: v for k, v in before.items() if k != "manifest"}
    assert after["manifest"] == before["manifest"] + 1
    assert _manifest(spark, settings) == [
        ("penguins_raw_PAL0708.csv", first, "ingested", None),
        ("penguins_raw_PAL0809.csv", None, "duplicate", first),
        ("penguins_raw_PAL0809.csv", first, "ingested", None),
        ("penguins_raw_PAL0910.csv", first, "ingested", None),
    ]
    manifest = read_table(spark, dataset_tables(settings).manifest)
    hashes = {r.content_sha256 for r in manifest.where(F.col("path").endswith("PAL0809.csv"))
              .collect()}
    assert len(hashes) == 1


def test_a_touch_under_another_batch_id_writes_no_rows(
        spark, make_settings, tmp_path, landing_csv, touch):
    landing = tmp_path / "landing"
    landing_csv.write(landing, "a.csv", landing_csv.birds(1, 2))
    settings = make_settings(f"dataset.source.path={landing}")
    ingest_step(spark, settings, "b1")
    before = _versions(spark, settings)
    touch(landing / "a.csv")

    result = ingest_step(spark, settings, "b2")

    assert result == _outcome(result, skipped=True, bronze_rows=0, duplicates=1)
    assert current_version(spark, dataset_tables(settings).bronze) == before["bronze"]
    assert read_table(spark, dataset_tables(settings).bronze).count() == 2
    # recorded once: the next run knows the file by its listing and hashes nothing
    landing_files._HASHES.clear()
    assert landing_plan(spark, dataset_tables(settings).manifest, str(landing),
                        settings.dataset.source).read == []
    assert landing_files._HASHES == {}
    outcome = ingest_step(spark, settings, "b2")
    assert outcome == _outcome(outcome, skipped=True, bronze_rows=0)
    assert _versions(spark, settings)["manifest"] == before["manifest"] + 1


def test_byte_identical_copies_are_read_once(spark, make_settings, tmp_path, landing_csv):
    landing = tmp_path / "landing"
    landing_csv.write(landing, "a.csv", landing_csv.birds(1, 2))
    shutil.copy(landing / "a.csv", landing / "a_copy_same_batch.csv")
    settings = make_settings(f"dataset.source.path={landing}")
    first = default_batch_id(spark, settings)
    outcome = ingest_step(spark, settings, first)
    assert outcome == _outcome(outcome, rows_in=2, bronze_rows=2, quarantined=0, files=1,
                               duplicates=1)
    shutil.copy(landing / "a.csv", landing / "b_copy_later.csv")
    landing_csv.write(landing, "c.csv", landing_csv.birds(3))

    second = default_batch_id(spark, settings)
    result = ingest_step(spark, settings, second)

    assert result == _outcome(result, rows_in=1, bronze_rows=1, quarantined=0, files=1,
                              duplicates=1)
    bronze = read_table(spark, dataset_tables(settings).bronze)
    assert sorted((r.sample_number, Path(r._source_file).name, r._batch_id == second)
                  for r in bronze.collect()) == [
        (1, "a.csv", False), (2, "a.csv", False), (3, "c.csv", True)]
    assert _manifest(spark, settings) == [
        ("a.csv", first, "ingested", None),
        ("a_copy_same_batch.csv", None, "duplicate", first),
        ("b_copy_later.csv", None, "duplicate", first),
        ("c.csv", second, "ingested", None),
    ]


def _changed_landing(spark, make_settings, tmp_path, landing_csv, touch, *overrides: str):
    """a.csv ingested as b1, then rewritten with other rows (and a later mtime)."""
    landing = tmp_path / "landing"
    landing_csv.write(landing, "a.csv", landing_csv.birds(1, 2))
    settings = make_settings(f"dataset.source.path={landing}", *overrides)
    ingest_step(spark, settings, "b1")
    landing_csv.write(landing, "a.csv", landing_csv.birds(1, 2, 3))
    touch(landing / "a.csv", 10)
    return landing, settings


def test_changed_file_fails_by_default_with_one_line_and_exit_3(
        spark, make_settings, tmp_path, capsys, landing_csv, touch):
    landing, settings = _changed_landing(spark, make_settings, tmp_path, landing_csv, touch)
    before = _versions(spark, settings)
    with pytest.raises(ChangedLandingFileError) as failed:
        ingest_step(spark, settings, "b2")

    code = main(["ingest", "--env", "local", "--set", f"state_dir={tmp_path}",
                 "--set", f"dataset.source.path={landing}"])

    a = (landing / "a.csv").resolve().as_uri().replace("file:///", "file:/")
    message = (
        f"landing file(s) changed since they were ingested: {a} (ingested in batch b1); "
        "source.on_changed_file is 'fail': set it to 'skip' (keep the rows already read, "
        "ignore the new bytes) or 'reingest' (read the new bytes into a new batch); "
        "nothing was written")
    assert str(failed.value) == message
    assert failed.value.exit_code == 3
    assert code == 3
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("sparkmlops")]
    assert err == [f"sparkmlops ingest: ChangedLandingFileError: {message}"]
    assert _versions(spark, settings) == before


def test_changed_file_is_recorded_and_not_read_with_skip(
        spark, make_settings, tmp_path, landing_csv, touch):
    landing, settings = _changed_landing(spark, make_settings, tmp_path, landing_csv, touch,
                                         "dataset.source.on_changed_file=skip")
    before = _versions(spark, settings)

    result = ingest_step(spark, settings, default_batch_id(spark, settings))

    assert result == _outcome(result, skipped=True, bronze_rows=2, changed_skipped=1)
    assert current_version(spark, dataset_tables(settings).bronze) == before["bronze"]
    assert _manifest(spark, settings) == [("a.csv", None, "changed_skipped", "b1"),
                                          ("a.csv", "b1", "ingested", None)]
    # known from now on: no new manifest version on the next run
    outcome = ingest_step(spark, settings, "b1")
    assert outcome == _outcome(outcome, skipped=True, bronze_rows=2)
    assert _versions(spark, settings)["manifest"] == before["manifest"] + 1


def test_changed_file_is_read_into_a_new_batch_with_reingest(
        spark, make_settings, tmp_path, landing_csv, touch):
    landing, settings = _changed_landing(spark, make_settings, tmp_path, landing_csv, touch,
                                         "dataset.source.on_changed_file=reingest")

    second = default_batch_id(spark, settings)
    result = ingest_step(spark, settings, second)

    assert second != "b1"
    assert result == _outcome(result, rows_in=3, bronze_rows=3, quarantined=0, files=1)
    bronze = read_table(spark, dataset_tables(settings).bronze)
    assert sorted((r._batch_id == second, r.sample_number) for r in bronze.collect()) == [
        (False, 1), (False, 2), (True, 1), (True, 2), (True, 3)]
    # the first ingest first: the new batch id is a hash, "b0..." sorts before "b1"
    assert sorted(_manifest(spark, settings), key=lambda row: row[3] is not None) == [
        ("a.csv", "b1", "ingested", None), ("a.csv", second, "ingested", "b1")]
    # the re-ingested bytes are known now: nothing new on the next run
    assert default_batch_id(spark, settings) == second
    outcome = ingest_step(spark, settings, second)
    assert outcome == _outcome(outcome, skipped=True, bronze_rows=3)


def test_manifest_written_before_content_hashes_keeps_working(
        spark, make_settings, tmp_path, landing_csv, touch):
    landing = tmp_path / "landing"
    landing_csv.write(landing, "a.csv", landing_csv.birds(1, 2))
    settings = make_settings(f"dataset.source.path={landing}")
    ingest_step(spark, settings, "b1")
    manifest = dataset_tables(settings).manifest
    old = read_table(spark, manifest).select(
        "path", "size", "modification_time", "_batch_id", "ingested_at")
    old.localCheckpoint().write.format("delta").mode("overwrite") \
        .option("overwriteSchema", "true").save(manifest.path)
    landing_csv.write(landing, "b.csv", landing_csv.birds(3))

    result = ingest_step(spark, settings, default_batch_id(spark, settings))

    assert result == _outcome(result, rows_in=1, bronze_rows=1, quarantined=0, files=1)
    rows = sorted((Path(r.path).name, r.status, r.content_sha256 is None)
                  for r in read_table(spark, manifest).collect())
    assert rows == [("a.csv", None, True), ("b.csv", "ingested", False)]
    # without a hash to compare, a known path with a new mtime counts as changed
    touch(landing / "a.csv")
    with pytest.raises(ChangedLandingFileError, match=r"a.csv \(ingested in batch b1\)"):
        ingest_step(spark, settings, "b3")


def test_forced_rerun_reads_every_file_and_records_hashes(
        spark, make_settings, tmp_path, landing_csv, touch):
    landing = tmp_path / "landing"
    landing_csv.write(landing, "a.csv", landing_csv.birds(1, 2))
    settings = make_settings(f"dataset.source.path={landing}")
    ingest_step(spark, settings, "b1")
    touch(landing / "a.csv")

    result = ingest_step(spark, settings, "b1", force=True)

    assert result == _outcome(result, rows_in=2, bronze_rows=2, quarantined=0, files=1)
    assert read_table(spark, dataset_tables(settings).bronze).count() == 2
    assert _manifest(spark, settings) == [("a.csv", "b1", "ingested", None)]
    assert not table_exists(spark, dataset_tables(settings).silver)
