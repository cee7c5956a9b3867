"""benchmarks/datagen.py's files are landing files: ingest takes every row, and quarantines
exactly the rows it spoiled, at their file and line."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from benchmarks.datagen import BAD_MASS, write_landing

from sparkmlops.ingest.step import dataset_landing, ingest_batch
from sparkmlops.tables import dataset_tables, read_table

ROWS = 500


def test_every_generated_row_lands_in_bronze(spark, tmp_path, make_settings):
    landing = write_landing(spark, ROWS, str(tmp_path / "landing"), seed=7, files=4)
    settings = make_settings()

    result = ingest_batch(spark, replace(dataset_landing(settings), path=landing), "bdatagen")

    assert result.rows_in == ROWS
    assert result.bronze.rows + result.rows_quarantined == result.rows_in
    assert result.rows_quarantined == 0
    assert result.bronze.rows == ROWS


def test_spoiled_rows_are_quarantined_with_their_position(spark, tmp_path, make_settings):
    landing = write_landing(spark, ROWS, str(tmp_path / "landing"), seed=7, files=2,
                            bad_fraction=0.05)
    settings = make_settings()

    result = ingest_batch(spark, replace(dataset_landing(settings), path=landing), "bdatagen")

    spoiled = sorted(
        (path, n) for path in Path(landing).glob("part-*.csv")
        for n, line in enumerate(path.read_text().splitlines()[1:], start=1)
        if f",{BAD_MASS}," in line)
    assert ROWS * 0.02 < len(spoiled) < ROWS * 0.08
    assert (result.rows_in, result.rows_quarantined) == (ROWS, len(spoiled))
    quarantine = read_table(spark, dataset_tables(settings).quarantine).collect()
    assert sorted((Path(r._source_file.removeprefix("file:")), r._source_row)
                  for r in quarantine) == spoiled
    assert {r.reason for r in quarantine} == {
        "unparseable record: malformed line or value not castable to its type"}
