"""Duplicate keys across batches: append keeps every record, upsert keeps the latest per key.

Bronze is the raw record in both modes. In upsert mode silver, gold and predictions
are written with a Delta MERGE on the business key: the highest ``write.order_by``
wins, an older record arriving late is counted as stale, and re-running a batch
changes no row.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
from delta.tables import DeltaTable

from sparkmlops.errors import QualityGateFailed
from sparkmlops.features.step import features_step
from sparkmlops.ingest.step import ingest_step
from sparkmlops.tables import TableRef, dataset_tables, read_table
from sparkmlops.validate.step import validate_step
from sparkmlops.writes import upsert_batch

UPSERT = ("dataset.write.mode=upsert", "dataset.write.order_by=date_egg")


def _land(landing: Path, name: str, bad_inputs) -> None:
    landing.mkdir(exist_ok=True)
    shutil.copy(bad_inputs / name, landing / name)


# ---------------------------------------------------------------- the MERGE helper


def test_upsert_batch_keeps_the_latest_record_per_key(spark, tmp_path, latest_per_key, sorted_rows):
    ref = TableRef("silver", "t", str(tmp_path / "t"))
    schema = "k int, v string, o int, _batch_id string"
    b1 = spark.createDataFrame([(1, "a", 1, "b1"), (2, "b", 5, "b1"), (3, "c", 1, "b1")], schema)
    first = upsert_batch(b1, ref, "b1", ["k"], order_by="o")
    assert (first.version, first.inserted) == (0, 3)

    b2 = spark.createDataFrame(
        [(1, "a2", 2, "b2"), (2, "older", 3, "b2"), (4, "d", 1, "b2"), (4, "d0", 0, "b2")],
        schema)
    latest, superseded = latest_per_key(b2, ["k"], "o")
    assert sorted_rows(superseded, "k", "v") == [(4, "d0")]
    second = upsert_batch(latest, ref, "b2", ["k"], order_by="o")

    assert (second.version, second.inserted, second.updated, second.stale, second.rows) == (
        1, 1, 1, 1, 2)
    expected = [(1, "a2", 2, "b2"), (2, "b", 5, "b1"), (3, "c", 1, "b1"), (4, "d", 1, "b2")]
    assert sorted_rows(read_table(spark, ref), "k", "v", "o", "_batch_id") == expected

    # re-running either batch changes no row; the older batch cannot win back key 1
    again = upsert_batch(latest, ref, "b2", ["k"], order_by="o")
    old = upsert_batch(b1, ref, "b1", ["k"], order_by="o")
    assert (again.inserted, again.updated, again.deleted, again.stale) == (0, 0, 0, 1)
    assert (old.inserted, old.updated, old.deleted, old.stale, old.rows) == (0, 0, 0, 1, 2)
    assert sorted_rows(read_table(spark, ref), "k", "v", "o", "_batch_id") == expected


def test_upsert_batch_replaces_what_a_changed_batch_no_longer_holds(spark, tmp_path, sorted_rows):
    ref = TableRef("gold", "t", str(tmp_path / "t"))
    schema = "k int, v string, _batch_id string"
    upsert_batch(spark.createDataFrame([(1, "a", "b1"), (2, "b", "b1")], schema), ref, "b1", ["k"])
    upsert_batch(spark.createDataFrame([(3, "c", "b2")], schema), ref, "b2", ["k"])

    rerun = upsert_batch(spark.createDataFrame([(1, "a1", "b1")], schema), ref, "b1", ["k"])

    assert (rerun.updated, rerun.deleted, rerun.rows) == (1, 1, 1)
    assert sorted_rows(read_table(spark, ref), "k", "v", "_batch_id") == [
        (1, "a1", "b1"), (3, "c", "b2")]
    operations = [r.operation for r in DeltaTable.forPath(spark, ref.path).history().collect()]
    assert operations == ["MERGE", "MERGE", "WRITE"]


# ---------------------------------------------------------------- the corpus, two batches


def test_duplicate_keys_across_batches_append_keeps_every_record(
        spark, make_settings, tmp_path, bad_inputs, sorted_rows):
    landing = tmp_path / "landing"
    settings = make_settings(f"dataset.source.path={landing}")
    _land(landing, "duplicate_keys_across_1.csv", bad_inputs)
    ingest_step(spark, settings, "b1")
    _land(landing, "duplicate_keys_across_2.csv", bad_inputs)
    ingest_step(spark, settings, "b2")

    bronze = read_table(spark, dataset_tables(settings).bronze)
    assert sorted_rows(bronze, "_batch_id", "sample_number", "sex") == [
        ("b1", 1, "FEMALE"), ("b1", 1, "MALE"), ("b1", 2, "MALE"), ("b1", 3, "FEMALE"),
        ("b2", 2, "FEMALE"), ("b2", 3, "MALE"), ("b2", 4, "MALE")]
    # a key twice in one batch fails the suite's compound-unique expectation (critical)
    with pytest.raises(QualityGateFailed, match="expect_compound_columns_to_be_unique"):
        validate_step(spark, settings, "b1")
    # b1 never reached silver, so b2's keys 2 and 3 are new there (a key silver already
    # holds from another batch follows write.repeated_keys: tests/test_repeated_keys.py)
    validate_step(spark, settings, "b2")
    silver = read_table(spark, dataset_tables(settings).silver)
    assert sorted_rows(silver, "_batch_id", "sample_number") == [("b2", 2), ("b2", 3), ("b2", 4)]


def test_duplicate_keys_across_batches_upsert_keeps_the_latest(
        spark, make_settings, tmp_path, bad_inputs, sorted_rows):
    landing = tmp_path / "landing"
    settings = make_settings(f"dataset.source.path={landing}", *UPSERT,
                             "dataset.write.partition_by=[region]")
    silver_ref, gold_ref = dataset_tables(settings).silver, dataset_tables(
        settings).gold
    def batch(name: str, batch_id: str) -> tuple[int, ...]:
        _land(landing, name, bad_inputs)
        ingest_step(spark, settings, batch_id)
        result = validate_step(spark, settings, batch_id)
        features_step(spark, settings, batch_id)
        return (result.silver_rows, result.quarantined, result.superseded, result.stale)

    # within batch 1, key 1's later record (2007-11-16) supersedes the earlier one
    assert batch("duplicate_keys_across_1.csv", "b1") == (3, 0, 1, 0)
    # key 2 is newer in batch 2 (updated), key 3 is older (stale, silver keeps batch 1's),
    # key 4 is new; bronze still holds all seven raw records
    assert batch("duplicate_keys_across_2.csv", "b2") == (2, 0, 0, 1)
    assert read_table(spark, dataset_tables(settings).bronze).count() == 7
    expected_silver = [
        (1, "FEMALE", date(2007, 11, 16), "b1"), (2, "FEMALE", date(2007, 11, 20), "b2"),
        (3, "FEMALE", date(2007, 11, 11), "b1"), (4, "MALE", date(2007, 11, 11), "b2")]
    silver = read_table(spark, silver_ref)
    assert sorted_rows(silver, "sample_number", "sex", "date_egg", "_batch_id") == expected_silver
    # gold follows silver: key 2 moved from batch 1 to batch 2, one row per key
    assert sorted_rows(read_table(spark, gold_ref), "sample_number", "label_raw", "_batch_id") == [
        (1, "FEMALE", "b1"), (2, "FEMALE", "b2"), (3, "FEMALE", "b1"), (4, "MALE", "b2")]
    assert DeltaTable.forPath(spark, silver_ref.path).detail().first().partitionColumns == [
        "region"]

    # re-running batch 1 after batch 2 cannot bring back key 2's older record
    validate_step(spark, settings, "b1")
    features_step(spark, settings, "b1")
    assert sorted_rows(read_table(spark, silver_ref), "sample_number", "sex", "date_egg",
                 "_batch_id") == expected_silver
    assert read_table(spark, gold_ref).count() == 4
