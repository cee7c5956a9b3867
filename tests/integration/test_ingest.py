from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pyspark.sql.functions as F
import pytest

from sparkmlops.errors import MissingInputError
from sparkmlops.ingest.step import (
    IngestOutcome,
    IngestResult,
    dataset_landing,
    ingest_batch,
    ingest_step,
)
from sparkmlops.tables import current_version, dataset_tables, read_table


def _outcome(result: IngestOutcome, **counts: int | bool) -> IngestOutcome:
    """``result`` as it should be: ``counts`` and every other count 0 (its run and versions
    as they are)."""
    return IngestOutcome(result.run_id, result.outputs, bronze_version=result.bronze_version,
                         **counts)


def _ingest_batch(spark, settings, batch_id: str, path: str) -> IngestResult:
    """Every file under ``path`` into bronze and quarantine, as the dataset reads them."""
    return ingest_batch(spark, replace(dataset_landing(settings), path=path), batch_id)


def _non_finite(csv) -> list[str]:
    """Culmen lengths (and one body mass) that are NaN or Infinity in CSV spellings."""
    def culmen(n: int, value: str, mass: str = "3750") -> str:
        return csv.line(n, mass=mass).replace(",39.1,", f",{value},", 1)

    return [culmen(1, "39.1"), culmen(2, "Infinity"), culmen(3, "-Infinity"),
            culmen(4, "NaN"), culmen(5, "-Inf"), culmen(6, "NA"),
            culmen(7, "40.2", mass="Infinity")]


def test_nan_and_infinity_in_a_csv_go_to_quarantine_with_the_column(spark, make_settings,
                                                                    tmp_path, landing_csv):
    landing = landing_csv.write(tmp_path / "landing", "part1.csv", _non_finite(landing_csv))
    settings = make_settings(f"dataset.source.path={landing}")

    result = ingest_step(spark, settings, "b1")

    assert result == _outcome(result, rows_in=7, bronze_rows=2, quarantined=5, files=1)
    bronze = read_table(spark, dataset_tables(settings).bronze)
    assert sorted((r.sample_number, r.culmen_length_mm) for r in bronze.collect()) == [
        (1, 39.1), (6, None)]
    quarantine = read_table(spark, dataset_tables(settings).quarantine)
    culmen = "non-finite value (NaN or Infinity) in column culmen_length_mm"
    mass = "non-finite value (NaN or Infinity) in column body_mass_g"
    # the record is the parsed row as JSON, where Spark writes the values as strings
    assert sorted((r._source_row, r.reason, json.loads(r.record)["culmen_length_mm"],
                   json.loads(r.record)["body_mass_g"]) for r in quarantine.collect()) == [
        (2, culmen, "Infinity", 3750.0), (3, culmen, "-Infinity", 3750.0),
        (4, culmen, "NaN", 3750.0), (5, culmen, "-Infinity", 3750.0),
        (7, mass, 40.2, "Infinity")]


def test_a_column_may_allow_nan_and_infinity(spark, make_settings, tmp_path, landing_csv):
    landing = landing_csv.write(tmp_path / "landing", "part1.csv", _non_finite(landing_csv))
    settings = make_settings(f"dataset.source.path={landing}",
                             "dataset.schema.9.allow_non_finite=true")

    result = ingest_step(spark, settings, "b1")

    assert result == _outcome(result, rows_in=7, bronze_rows=6, quarantined=1, files=1)
    bronze = read_table(spark, dataset_tables(settings).bronze)
    assert sorted((r.sample_number, str(r.culmen_length_mm)) for r in bronze.collect()) == [
        (1, "39.1"), (2, "inf"), (3, "-inf"), (4, "nan"), (5, "-inf"), (6, "None")]
    quarantine = read_table(spark, dataset_tables(settings).quarantine).collect()
    assert [(r._source_row, r.reason) for r in quarantine] == [
        (7, "non-finite value (NaN or Infinity) in column body_mass_g")]


def test_nan_and_infinity_in_json_lines_go_to_quarantine(spark, make_settings, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    base = {"studyName": "PAL0708", "Species": "Gentoo penguin (Pygoscelis papua)",
            "Body Mass (g)": 5000.0}
    (landing / "part.jsonl").write_text("\n".join(
        json.dumps({**base, "Sample Number": n, "Culmen Length (mm)": value})
        for n, value in [(1, 45.2), (2, float("nan")), (3, float("-inf")), (4, None)]) + "\n")
    settings = make_settings(f"dataset.source.path={landing}", "dataset.source.format=json",
                             "dataset.source.options={}")

    result = ingest_step(spark, settings, "b1")

    assert result == _outcome(result, rows_in=4, bronze_rows=2, quarantined=2, files=1)
    bronze = read_table(spark, dataset_tables(settings).bronze)
    assert sorted((r.sample_number, r.culmen_length_mm) for r in bronze.collect()) == [
        (1, 45.2), (4, None)]
    quarantine = read_table(spark, dataset_tables(settings).quarantine)
    assert sorted((r._source_row, r.reason) for r in quarantine.collect()) == [
        (2, "non-finite value (NaN or Infinity) in column culmen_length_mm"),
        (3, "non-finite value (NaN or Infinity) in column culmen_length_mm")]


def test_bad_rows_go_to_quarantine_with_reason_and_good_rows_to_bronze(spark, make_settings,
                                                                       tmp_path, landing_csv):
    landing = landing_csv.write(tmp_path / "landing", "part1.csv", [
        landing_csv.line(1, comment='"Nest, observed"'),
        landing_csv.line(2, mass="heavy"),
        landing_csv.line(3, study="NA"),
        landing_csv.line(4, mass="NA"),
    ])
    settings = make_settings()

    result = _ingest_batch(spark, settings, "b1", str(landing))

    assert (result.rows_in, result.bronze.rows, result.rows_quarantined) == (4, 2, 2)
    bronze = read_table(spark, dataset_tables(settings).bronze)
    actual = sorted(
        (r.sample_number, r.body_mass_g, r.comments, r.stage, r._batch_id)
        for r in bronze.collect()
    )
    assert actual == [(1, 3750.0, "Nest, observed", "Adult, 1 Egg Stage", "b1"),
                      (4, None, None, "Adult, 1 Egg Stage", "b1")]
    assert all(r._source_file.endswith("landing/part1.csv") for r in bronze.collect())
    quarantine = read_table(spark, dataset_tables(settings).quarantine).orderBy("reason")
    rows = [(r.step, r.reason, r._batch_id) for r in quarantine.collect()]
    assert rows == [
        ("ingest", "null in required column study_name", "b1"),
        ("ingest", "unparseable record: malformed line or value not castable to its type", "b1"),
    ]
    raw = quarantine.where(F.col("reason").startswith("unparseable")).first().record
    assert raw == landing_csv.line(2, mass="heavy")


def test_bronze_is_a_real_delta_table_with_one_commit_per_batch(spark, make_settings, tmp_path,
                                                                landing_csv):
    landing = landing_csv.write(tmp_path / "landing", "a.csv", landing_csv.birds(1, 2))
    settings = make_settings()

    _ingest_batch(spark, settings, "b1", str(landing))
    landing_csv.write(tmp_path / "landing2", "b.csv", landing_csv.birds(3))
    _ingest_batch(spark, settings, "b2", str(tmp_path / "landing2"))

    bronze = dataset_tables(settings).bronze
    log = sorted(p.name for p in Path(bronze.path, "_delta_log").glob("*.json"))
    assert log == ["00000000000000000000.json", "00000000000000000001.json"]
    counts = {r._batch_id: r["count"] for r in
              read_table(spark, bronze).groupBy("_batch_id").count().collect()}
    assert counts == {"b1": 2, "b2": 1}


def test_rerunning_a_batch_changes_nothing(spark, make_settings, tmp_path, landing_csv):
    landing = landing_csv.write(tmp_path / "landing", "a.csv", landing_csv.birds(1, 2))
    settings = make_settings(f"dataset.source.path={landing}")
    bronze = dataset_tables(settings).bronze

    first = ingest_step(spark, settings, "b1")
    version = current_version(spark, bronze)
    second = ingest_step(spark, settings, "b1")

    assert first == _outcome(first, rows_in=2, bronze_rows=2, files=1)
    assert second == _outcome(second, skipped=True, bronze_rows=2)
    assert second.bronze_version == first.bronze_version
    assert current_version(spark, bronze) == version
    assert read_table(spark, bronze).count() == 2


def test_forced_rerun_replaces_the_batch_without_doubling(spark, make_settings, tmp_path,
                                                          landing_csv):
    landing = landing_csv.write(tmp_path / "landing", "a.csv", landing_csv.birds(1, 2))
    settings = make_settings(f"dataset.source.path={landing}")

    ingest_step(spark, settings, "b1")
    ingest_step(spark, settings, "b1", force=True)

    assert read_table(spark, dataset_tables(settings).bronze).count() == 2


def test_missing_landing_path_is_a_clear_error(spark, make_settings, tmp_path):
    with pytest.raises(MissingInputError, match="input path does not exist: .*nowhere"):
        _ingest_batch(spark, make_settings(), "b1", str(tmp_path / "nowhere"))


def test_only_new_files_are_ingested_and_recorded_in_manifest_and_log(spark, make_settings,
                                                                      tmp_path, landing_csv):
    from sparkmlops.ingest.step import default_batch_id

    landing = landing_csv.write(tmp_path / "landing", "a.csv", landing_csv.birds(1, 2))
    settings = make_settings(f"dataset.source.path={landing}")
    first_batch = default_batch_id(spark, settings)
    ingest_step(spark, settings, first_batch)
    landing_csv.write(landing, "b.csv", [landing_csv.line(3), landing_csv.line(4, mass="heavy"),
                                         landing_csv.line(5)])

    second_batch = default_batch_id(spark, settings)
    second = ingest_step(spark, settings, second_batch)

    assert second_batch != first_batch
    assert second == _outcome(second, rows_in=3, bronze_rows=2, quarantined=1, files=1)
    bronze = read_table(spark, dataset_tables(settings).bronze)
    assert sorted((r._batch_id == second_batch, r.sample_number) for r in bronze.collect()) == [
        (False, 1), (False, 2), (True, 3), (True, 5)]
    manifest = read_table(spark, dataset_tables(settings).manifest)
    assert sorted((Path(r.path).name, r._batch_id == second_batch)
                  for r in manifest.collect()) == [("a.csv", False), ("b.csv", True)]
    ingest_log = read_table(spark, dataset_tables(settings).ingest_log).orderBy("rows_in")
    assert [(r.files, r.rows_in, r.bronze_rows, r.quarantined_rows)
            for r in ingest_log.collect()] == [(1, 2, 2, 0), (1, 3, 2, 1)]
    # nothing new: the default batch is the latest one, and ingesting it changes nothing
    assert default_batch_id(spark, settings) == second_batch
    assert ingest_step(spark, settings, second_batch).skipped is True
