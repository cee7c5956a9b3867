"""A batch id names a set of files forever (issue 20, case 1): re-running an ingested batch
with new files in the landing dir reads none of them and changes no row of any table;
``--force`` re-reads exactly the batch's own files or refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql.types import TimestampType

from sparkmlops.cli import main
from sparkmlops.features.step import features_step
from sparkmlops.ingest.records import ChangedLandingFileError
from sparkmlops.ingest.step import IngestOutcome, default_batch_id, ingest_step
from sparkmlops.tables import current_version, dataset_tables, read_table, table_ref
from sparkmlops.validate.step import validate_step

LAYERS = ("bronze", "quarantine", "manifest", "ingest_log")


def _outcome(result: IngestOutcome, **counts: int | bool) -> IngestOutcome:
    """``result`` as it should be: ``counts`` and every other count 0 (its run and versions
    as they are)."""
    return IngestOutcome(result.run_id, result.outputs, bronze_version=result.bronze_version,
                         **counts)


def _rows(spark, settings, layer: str) -> list[tuple]:
    """Every row of a table, without the times a re-run writes anew."""
    df = read_table(spark, getattr(dataset_tables(settings), layer))
    kept = [f.name for f in df.schema.fields if not isinstance(f.dataType, TimestampType)]
    return sorted((tuple(r) for r in df.select(*kept).collect()), key=str)


def _bronze(spark, settings) -> list[tuple]:
    return sorted((r.sample_number, Path(r._source_file).name, r._batch_id)
                  for r in read_table(spark, dataset_tables(settings).bronze).collect())


def _manifest(spark, settings) -> list[tuple]:
    return sorted((Path(r.path).name, r._batch_id, r.status)
                  for r in read_table(spark, dataset_tables(settings).manifest).collect())


def _versions(spark, settings) -> dict[str, int | None]:
    return {layer: current_version(spark, table_ref(settings, layer)) for layer in LAYERS}


@pytest.fixture
def two_batches(spark, make_settings, tmp_path, landing_csv):
    """a.csv ingested as the first batch, b.csv as the second, then c.csv lands unread."""
    landing = tmp_path / "landing"
    settings = make_settings(f"dataset.source.path={landing}")
    batches = []
    for name, birds in (("a.csv", (1, 2)), ("b.csv", (3, 4, 5))):
        landing_csv.write(landing, name, landing_csv.birds(*birds))
        batches.append(default_batch_id(spark, settings))
        ingest_step(spark, settings, batches[-1])
    landing_csv.write(landing, "c.csv", landing_csv.birds(6))
    return landing, settings, batches


def test_rerunning_an_ingested_batch_reads_no_new_file_and_changes_no_table(
        spark, two_batches):
    # the repro: two batches in, a new file lands, the first batch is run again
    landing, settings, (first, second) = two_batches
    for batch in (first, second):
        validate_step(spark, settings, batch)
        features_step(spark, settings, batch)
    before = {layer: _rows(spark, settings, layer) for layer in ("silver", "gold")}
    versions = _versions(spark, settings)

    again = ingest_step(spark, settings, first)
    after_ingest = _versions(spark, settings)
    validate_step(spark, settings, first, bronze_version=again.bronze_version)
    features_step(spark, settings, first)

    assert again == _outcome(again, skipped=True, bronze_rows=2, pending=1)
    assert after_ingest == versions
    assert _bronze(spark, settings) == [(1, "a.csv", first), (2, "a.csv", first),
                                        (3, "b.csv", second), (4, "b.csv", second),
                                        (5, "b.csv", second)]
    assert _manifest(spark, settings) == [("a.csv", first, "ingested"),
                                          ("b.csv", second, "ingested")]
    # the later steps replaced their batch with the same rows
    assert {layer: _rows(spark, settings, layer) for layer in ("silver", "gold")} == before
    assert len(before["silver"]) == len(before["gold"]) == 5

    # the new file is the next batch's, and the one after that flips nothing
    third = default_batch_id(spark, settings)
    assert third not in (first, second)
    outcome = ingest_step(spark, settings, third)
    assert outcome == _outcome(outcome, rows_in=1, bronze_rows=1, quarantined=0, files=1)
    expected_manifest = [("a.csv", first, "ingested"), ("b.csv", second, "ingested"),
                         ("c.csv", third, "ingested")]
    assert _manifest(spark, settings) == expected_manifest
    settled = _versions(spark, settings)
    assert default_batch_id(spark, settings) == third
    outcome = ingest_step(spark, settings, third)
    assert outcome == _outcome(outcome, skipped=True, bronze_rows=1)
    outcome = ingest_step(spark, settings, first)
    assert outcome == _outcome(outcome, skipped=True, bronze_rows=2)
    assert _versions(spark, settings) == settled
    assert _manifest(spark, settings) == expected_manifest
    assert [row[2] for row in _bronze(spark, settings)] == [first] * 2 + [second] * 3 + [third]


def test_force_rereads_exactly_the_batch_files_and_leaves_the_new_file(
        spark, two_batches, touch):
    landing, settings, (first, second) = two_batches
    touch(landing / "a.csv")  # the same bytes: still the batch's file

    forced = ingest_step(spark, settings, first, force=True)

    assert forced == _outcome(forced, rows_in=2, bronze_rows=2, quarantined=0, files=1)
    assert _bronze(spark, settings) == [(1, "a.csv", first), (2, "a.csv", first),
                                        (3, "b.csv", second), (4, "b.csv", second),
                                        (5, "b.csv", second)]
    assert _manifest(spark, settings) == [("a.csv", first, "ingested"),
                                          ("b.csv", second, "ingested")]
    # the manifest knows a.csv's new mtime: the next plain ingest reads c.csv alone
    third = default_batch_id(spark, settings)
    outcome = ingest_step(spark, settings, third)
    assert outcome == _outcome(outcome, rows_in=1, bronze_rows=1, quarantined=0, files=1)


def test_force_refuses_a_batch_whose_file_is_gone_or_changed_and_writes_nothing(
        spark, two_batches, tmp_path, landing_csv, capsys):
    landing, settings, (first, _) = two_batches
    versions = _versions(spark, settings)
    a = (landing / "a.csv").resolve().as_uri().replace("file:///", "file:/")
    told = f"batch {first}: --force re-reads the 1 file(s) the manifest records"
    (landing / "a.csv").rename(tmp_path / "a.csv")

    code = main(["ingest", "--batch-id", first, "--force", "--set", f"state_dir={tmp_path}",
                 "--set", f"dataset.source.path={landing}"])

    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("sparkmlops")]
    assert code == 3
    assert err == [f"sparkmlops ingest: MissingInputError: {told}, and 1 of them are gone from "
                   f"{landing}: {a}; nothing was written"]
    landing_csv.write(landing, "a.csv", landing_csv.birds(1, 7))
    with pytest.raises(ChangedLandingFileError) as changed:
        ingest_step(spark, settings, first, force=True)
    assert str(changed.value) == (
        f"{told}, and 1 of them hold other bytes now: {a}; nothing was written "
        "(a plain ingest follows source.on_changed_file for them)")
    assert changed.value.exit_code == 3
    assert _versions(spark, settings) == versions
