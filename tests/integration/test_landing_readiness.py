"""A landing file is read only when it is ready (issue 20, case 3): a zero-byte file (an upload
not finished), one younger than ``source.ready.min_age_seconds`` or one without its
``source.ready.marker`` is skipped with a warning, not recorded, and read once it is ready."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from sparkmlops.ingest.records import MANIFEST_SCHEMA
from sparkmlops.ingest.step import IngestOutcome, default_batch_id, ingest_step
from sparkmlops.tables import dataset_tables, read_table, table_exists


def _outcome(result: IngestOutcome, **counts: int | bool) -> IngestOutcome:
    """``result`` as it should be: ``counts`` and every other count 0 (its run and versions
    as they are)."""
    return IngestOutcome(result.run_id, result.outputs, bronze_version=result.bronze_version,
                         **counts)


def _manifest(spark, settings) -> list[tuple]:
    return sorted((Path(r.path).name, r._batch_id, r.status)
                  for r in read_table(spark, dataset_tables(settings).manifest).collect())


def _bronze(spark, settings) -> list[tuple]:
    return sorted((r.sample_number, Path(r._source_file).name, r._batch_id)
                  for r in read_table(spark, dataset_tables(settings).bronze).collect())


def _uri(path: Path) -> str:
    return path.resolve().as_uri().replace("file:///", "file:/")


def test_a_zero_byte_file_is_skipped_unrecorded_and_read_when_its_bytes_arrive(
        spark, make_settings, tmp_path, landing_csv, caplog):
    # the repro: a half-finished upload is a zero-byte file beside a complete one
    landing = landing_csv.write(tmp_path / "landing", "a.csv", landing_csv.birds(1, 2))
    settings = make_settings(f"dataset.source.path={landing}")
    alone = default_batch_id(spark, settings)
    (landing / "z.csv").touch()

    first = default_batch_id(spark, settings)
    with caplog.at_level(logging.WARNING, logger="sparkmlops.ingest.records"):
        result = ingest_step(spark, settings, first)

    assert first == alone  # not part of the batch's identity
    assert result == _outcome(result, rows_in=2, bronze_rows=2, quarantined=0, files=1, not_ready=1)
    assert _manifest(spark, settings) == [("a.csv", first, "ingested")]
    assert [r.getMessage() for r in caplog.records if r.name == "sparkmlops.ingest.records"] == [
        f"{_uri(landing / 'z.csv')} is not ready: empty (0 bytes): an upload that has not "
        "started or finished; not read and not recorded: it is read once ready"]

    landing_csv.write(landing, "z.csv", landing_csv.birds(3, 4, 5))
    second = default_batch_id(spark, settings)
    outcome = ingest_step(spark, settings, second)
    assert outcome == _outcome(outcome, rows_in=3, bronze_rows=3, quarantined=0, files=1)
    assert _bronze(spark, settings) == [(1, "a.csv", first), (2, "a.csv", first),
                                        (3, "z.csv", second), (4, "z.csv", second),
                                        (5, "z.csv", second)]
    assert _manifest(spark, settings) == [("a.csv", first, "ingested"),
                                          ("z.csv", second, "ingested")]


def test_a_file_younger_than_min_age_is_read_once_old_enough(
        spark, make_settings, tmp_path, landing_csv):
    landing = landing_csv.write(tmp_path / "landing", "a.csv", landing_csv.birds(1, 2))
    settings = make_settings(f"dataset.source.path={landing}",
                             "dataset.source.ready.min_age_seconds=600")

    young = ingest_step(spark, settings, "b1")
    an_hour_ago = time.time() - 3600
    os.utime(landing / "a.csv", (an_hour_ago, an_hour_ago))
    old_enough = ingest_step(spark, settings, "b2")

    assert young == _outcome(young, skipped=True, bronze_rows=0, not_ready=1)
    assert old_enough == _outcome(old_enough, rows_in=2, bronze_rows=2, quarantined=0, files=1)
    assert _manifest(spark, settings) == [("a.csv", "b2", "ingested")]


def test_a_folder_marker_makes_its_folder_ready(spark, make_settings, tmp_path, landing_csv):
    landing = landing_csv.write(tmp_path / "landing", "a.csv", landing_csv.birds(1, 2))
    settings = make_settings(f"dataset.source.path={landing}",
                             "dataset.source.ready.marker=_SUCCESS")

    without = ingest_step(spark, settings, "b1")
    recorded = table_exists(spark, dataset_tables(settings).manifest)
    (landing / "_SUCCESS").touch()
    with_marker = ingest_step(spark, settings, "b2")

    assert without == _outcome(without, skipped=True, bronze_rows=0, not_ready=1)
    assert not recorded
    assert with_marker == _outcome(with_marker, rows_in=2, bronze_rows=2, quarantined=0, files=1)
    assert _manifest(spark, settings) == [("a.csv", "b2", "ingested")]


def test_a_per_file_marker_makes_its_file_ready_and_is_never_read_as_data(
        spark, make_settings, tmp_path, landing_csv):
    landing = landing_csv.write(tmp_path / "landing", "a.csv", landing_csv.birds(1, 2))
    landing_csv.write(landing, "b.csv", landing_csv.birds(3))
    # a marker with bytes that are no CSV of the schema: read as data, it would fail the batch
    (landing / "a.csv.done").write_text("uploaded by the nightly export\n")
    settings = make_settings(f"dataset.source.path={landing}",
                             'dataset.source.ready.marker="{file}.done"')

    first = default_batch_id(spark, settings)
    a_only = ingest_step(spark, settings, first)
    (landing / "b.csv.done").write_text("")
    second = default_batch_id(spark, settings)
    b_too = ingest_step(spark, settings, second)

    assert a_only == _outcome(a_only, rows_in=2, bronze_rows=2, quarantined=0, files=1, not_ready=1)
    assert b_too == _outcome(b_too, rows_in=1, bronze_rows=1, quarantined=0, files=1)
    assert _bronze(spark, settings) == [(1, "a.csv", first), (2, "a.csv", first),
                                        (3, "b.csv", second)]
    assert _manifest(spark, settings) == [("a.csv", first, "ingested"),
                                          ("b.csv", second, "ingested")]


def test_bytes_arriving_at_a_path_recorded_empty_before_the_fix_are_read_as_new(
        spark, make_settings, tmp_path, landing_csv):
    # a manifest written before readiness checks holds the zero-byte upload as ingested
    landing = landing_csv.write(tmp_path / "landing", "a.csv", landing_csv.birds(1, 2))
    settings = make_settings(f"dataset.source.path={landing}")
    ingest_step(spark, settings, "b1")
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    spark.createDataFrame(
        [(_uri(landing / "z.csv"), 0, 1_700_000_000_000, "b1", None, empty, "ingested", None)],
        MANIFEST_SCHEMA,
    ).write.format("delta").mode("append").save(dataset_tables(settings).manifest.path)
    landing_csv.write(landing, "z.csv", landing_csv.birds(3))

    result = ingest_step(spark, settings, "b2")

    assert result == _outcome(result, rows_in=1, bronze_rows=1, quarantined=0, files=1)
    assert _bronze(spark, settings) == [(1, "a.csv", "b1"), (2, "a.csv", "b1"),
                                        (3, "z.csv", "b2")]
