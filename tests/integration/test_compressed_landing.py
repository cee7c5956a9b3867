"""Compressed landing files (issue 11, case 6): gzip and bzip2 CSV and gzip JSON lines are
read like the plain files, header check included."""

from __future__ import annotations

import bz2
import gzip
import json
from pathlib import Path

import pytest

from sparkmlops.ingest.landing import SchemaMismatchError, csv_header
from sparkmlops.ingest.step import IngestOutcome, ingest_step
from sparkmlops.tables import dataset_tables, read_table, table_exists, table_ref


def _outcome(result: IngestOutcome, **counts: int | bool) -> IngestOutcome:
    """``result`` as it should be: ``counts`` and every other count 0 (its run and versions
    as they are)."""
    return IngestOutcome(result.run_id, result.outputs, bronze_version=result.bronze_version,
                         **counts)


def _csv(csv, *numbers: int, header: str | None = None) -> bytes:
    return csv.text(csv.birds(*numbers), header=header).encode()


def test_gzip_and_bzip2_csv_land_like_the_plain_file(spark, make_settings, tmp_path,
                                                     landing_csv):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.csv").write_bytes(_csv(landing_csv, 1, 2))
    (landing / "b.csv.gz").write_bytes(gzip.compress(_csv(landing_csv, 3, 4, 5)))
    (landing / "c.csv.bz2").write_bytes(bz2.compress(_csv(landing_csv, 6, 7)))
    settings = make_settings(f"dataset.source.path={landing}")

    result = ingest_step(spark, settings, "b1")

    assert result == _outcome(result, rows_in=7, bronze_rows=7, quarantined=0, files=3)
    bronze = read_table(spark, dataset_tables(settings).bronze)
    assert sorted((r.sample_number, Path(r._source_file).name, r.island, r.body_mass_g)
                  for r in bronze.collect()) == [
        (1, "a.csv", "Torgersen", 3750.0), (2, "a.csv", "Torgersen", 3750.0),
        (3, "b.csv.gz", "Torgersen", 3750.0), (4, "b.csv.gz", "Torgersen", 3750.0),
        (5, "b.csv.gz", "Torgersen", 3750.0), (6, "c.csv.bz2", "Torgersen", 3750.0),
        (7, "c.csv.bz2", "Torgersen", 3750.0)]


def test_header_of_a_compressed_file_is_read_decompressed(spark, make_settings, tmp_path,
                                                          landing_csv):
    path = tmp_path / "part.csv.gz"
    path.write_bytes(gzip.compress(_csv(landing_csv, 1, header="\ufeffa;b;\"c;d\"")))
    settings = make_settings("dataset.source.options.sep=;")

    assert csv_header(spark, str(path), settings.dataset.source) == ["a", "b", "c;d"]


def test_compressed_file_missing_a_required_column_rejects_the_batch_with_its_reason(
        spark, make_settings, tmp_path, landing_csv):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.csv.gz").write_bytes(gzip.compress(_csv(landing_csv, 1)))
    without_study = landing_csv.header.replace("studyName,", "", 1)
    (landing / "b.csv.bz2").write_bytes(bz2.compress(_csv(landing_csv, header=without_study)))
    settings = make_settings(f"dataset.source.path={landing}")

    with pytest.raises(SchemaMismatchError) as rejected:
        ingest_step(spark, settings, "b1")

    assert str(rejected.value) == (
        f"{(landing / 'b.csv.bz2').resolve().as_uri().replace('file:///', 'file:/')}: "
        "required column(s) ['studyName'] missing from the header; nothing was written")
    for layer in ("bronze", "quarantine", "manifest", "ingest_log"):
        assert not table_exists(spark, table_ref(settings, layer)), layer


def test_gzip_json_lines_land_and_a_copy_is_known_by_its_bytes(spark, make_settings, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    lines = [json.dumps({"studyName": "PAL0708", "Sample Number": n, "Species": "Gentoo",
                         "Sex": "MALE", "Date Egg": "2007-11-27"}) for n in (1, 2, 3)]
    data = gzip.compress(("\n".join(lines) + "\n").encode())
    (landing / "part.json.gz").write_bytes(data)
    settings = make_settings(f"dataset.source.path={landing}", "dataset.source.format=json",
                             "dataset.source.options={}")
    ingest_step(spark, settings, "b1")
    (landing / "part-copy.json.gz").write_bytes(data)

    again = ingest_step(spark, settings, "b2")

    bronze = read_table(spark, dataset_tables(settings).bronze)
    assert sorted((r.sample_number, r.species, r._batch_id) for r in bronze.collect()) == [
        (1, "Gentoo", "b1"), (2, "Gentoo", "b1"), (3, "Gentoo", "b1")]
    assert again == _outcome(again, skipped=True, bronze_rows=0, duplicates=1)
