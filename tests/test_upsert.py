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

from sparkmlops.errors import ConfigError, QualityGateFailed
from sparkmlops.features.step import features_step
from sparkmlops.ingest.step import ingest_step
from sparkmlops.quality.step import validate_step
from sparkmlops.tables import TableRef, read_table, table_ref
from sparkmlops.writes import RANK_COLUMN, rank_per_key, upsert_batch

CORPUS = Path(__file__).resolve().parent / "data" / "bad_inputs"
UPSERT = ("dataset.write.mode=upsert", "dataset.write.order_by=date_egg")


def latest_per_key(df, keys, order_by):
    """(the latest record per key, the records it supersedes)"""
    ranked = rank_per_key(df, keys, order_by)
    return (ranked.where(f"{RANK_COLUMN} = 1").drop(RANK_COLUMN),
            ranked.where(f"{RANK_COLUMN} > 1").drop(RANK_COLUMN))


def _land(landing: Path, name: str) -> None:
    landing.mkdir(exist_ok=True)
    shutil.copy(CORPUS / name, landing / name)


def _rows(df, *columns):
    return sorted(tuple(r[c] for c in columns) for r in df.collect())


# ---------------------------------------------------------------- the MERGE helper


def test_upsert_batch_keeps_the_latest_record_per_key(spark, tmp_path):
    ref = TableRef("silver", "t", str(tmp_path / "t"))
    schema = "k int, v string, o int, _batch_id string"
    b1 = spark.createDataFrame([(1, "a", 1, "b1"), (2, "b", 5, "b1"), (3, "c", 1, "b1")], schema)
    first = upsert_batch(b1, ref, "b1", ["k"], order_by="o")
    assert (first.version, first.inserted) == (0, 3)

    b2 = spark.createDataFrame(
        [(1, "a2", 2, "b2"), (2, "older", 3, "b2"), (4, "d", 1, "b2"), (4, "d0", 0, "b2")],
        schema)
    latest, superseded = latest_per_key(b2, ["k"], "o")
    assert _rows(superseded, "k", "v") == [(4, "d0")]
    second = upsert_batch(latest, ref, "b2", ["k"], order_by="o")

    assert (second.version, second.inserted, second.updated, second.stale, second.rows) == (
        1, 1, 1, 1, 2)
    expected = [(1, "a2", 2, "b2"), (2, "b", 5, "b1"), (3, "c", 1, "b1"), (4, "d", 1, "b2")]
    assert _rows(read_table(spark, ref), "k", "v", "o", "_batch_id") == expected

    # re-running either batch changes no row; the older batch cannot win back key 1
    again = upsert_batch(latest, ref, "b2", ["k"], order_by="o")
    old = upsert_batch(b1, ref, "b1", ["k"], order_by="o")
    assert (again.inserted, again.updated, again.deleted, again.stale) == (0, 0, 0, 1)
    assert (old.inserted, old.updated, old.deleted, old.stale, old.rows) == (0, 0, 0, 1, 2)
    assert _rows(read_table(spark, ref), "k", "v", "o", "_batch_id") == expected


def test_upsert_batch_replaces_what_a_changed_batch_no_longer_holds(spark, tmp_path):
    ref = TableRef("gold", "t", str(tmp_path / "t"))
    schema = "k int, v string, _batch_id string"
    upsert_batch(spark.createDataFrame([(1, "a", "b1"), (2, "b", "b1")], schema), ref, "b1", ["k"])
    upsert_batch(spark.createDataFrame([(3, "c", "b2")], schema), ref, "b2", ["k"])

    rerun = upsert_batch(spark.createDataFrame([(1, "a1", "b1")], schema), ref, "b1", ["k"])

    assert (rerun.updated, rerun.deleted, rerun.rows) == (1, 1, 1)
    assert _rows(read_table(spark, ref), "k", "v", "_batch_id") == [
        (1, "a1", "b1"), (3, "c", "b2")]
    operations = [r.operation for r in DeltaTable.forPath(spark, ref.path).history().collect()]
    assert operations == ["MERGE", "MERGE", "WRITE"]


def test_latest_per_key_breaks_ties_the_same_way_every_time(spark):
    schema = "k int, v string, o int, _source_file string"
    rows = [(1, "x", 1, "a.csv"), (1, "y", 1, "b.csv"), (1, "z", 1, "b.csv"), (2, "w", None, "a")]
    for partitions in (1, 3):
        df = spark.createDataFrame(rows, schema).repartition(partitions)
        latest, _ = latest_per_key(df, ["k"], "o")
        # the later file wins a tie on o; within it, a hash of the record decides
        winners = _rows(latest, "k", "v")
        assert winners[0][1] in {"y", "z"} and winners[1] == (2, "w")
        assert winners == _rows(latest_per_key(spark.createDataFrame(rows, schema), ["k"], "o")[0],
                                "k", "v")


# ---------------------------------------------------------------- the corpus, two batches


def test_duplicate_keys_across_batches_append_keeps_every_record(spark, make_settings, tmp_path):
    landing = tmp_path / "landing"
    settings = make_settings(f"dataset.source.path={landing}")
    _land(landing, "duplicate_keys_across_1.csv")
    ingest_step(spark, settings, "b1")
    _land(landing, "duplicate_keys_across_2.csv")
    ingest_step(spark, settings, "b2")

    bronze = read_table(spark, table_ref(settings, "bronze"))
    assert _rows(bronze, "_batch_id", "sample_number", "sex") == [
        ("b1", 1, "FEMALE"), ("b1", 1, "MALE"), ("b1", 2, "MALE"), ("b1", 3, "FEMALE"),
        ("b2", 2, "FEMALE"), ("b2", 3, "MALE"), ("b2", 4, "MALE")]
    # a key twice in one batch fails the suite's compound-unique expectation (critical)
    with pytest.raises(QualityGateFailed, match="expect_compound_columns_to_be_unique"):
        validate_step(spark, settings, "b1")
    # b1 never reached silver, so b2's keys 2 and 3 are new there (a key silver already
    # holds from another batch follows write.repeated_keys: tests/test_repeated_keys.py)
    validate_step(spark, settings, "b2")
    silver = read_table(spark, table_ref(settings, "silver"))
    assert _rows(silver, "_batch_id", "sample_number") == [("b2", 2), ("b2", 3), ("b2", 4)]


def test_duplicate_keys_across_batches_upsert_keeps_the_latest(spark, make_settings, tmp_path):
    landing = tmp_path / "landing"
    settings = make_settings(f"dataset.source.path={landing}", *UPSERT,
                             "dataset.write.partition_by=[region]")
    silver_ref, gold_ref = table_ref(settings, "silver"), table_ref(
        settings, "gold", "penguins_features")
    def batch(name: str, batch_id: str) -> tuple[int, ...]:
        _land(landing, name)
        ingest_step(spark, settings, batch_id)
        summary = validate_step(spark, settings, batch_id).summary
        features_step(spark, settings, batch_id)
        return tuple(summary[k] for k in ("silver_rows", "quarantined", "superseded", "stale"))

    # within batch 1, key 1's later record (2007-11-16) supersedes the earlier one
    assert batch("duplicate_keys_across_1.csv", "b1") == (3, 0, 1, 0)
    # key 2 is newer in batch 2 (updated), key 3 is older (stale, silver keeps batch 1's),
    # key 4 is new; bronze still holds all seven raw records
    assert batch("duplicate_keys_across_2.csv", "b2") == (2, 0, 0, 1)
    assert read_table(spark, table_ref(settings, "bronze")).count() == 7
    expected_silver = [
        (1, "FEMALE", date(2007, 11, 16), "b1"), (2, "FEMALE", date(2007, 11, 20), "b2"),
        (3, "FEMALE", date(2007, 11, 11), "b1"), (4, "MALE", date(2007, 11, 11), "b2")]
    silver = read_table(spark, silver_ref)
    assert _rows(silver, "sample_number", "sex", "date_egg", "_batch_id") == expected_silver
    # gold follows silver: key 2 moved from batch 1 to batch 2, one row per key
    assert _rows(read_table(spark, gold_ref), "sample_number", "label_raw", "_batch_id") == [
        (1, "FEMALE", "b1"), (2, "FEMALE", "b2"), (3, "FEMALE", "b1"), (4, "MALE", "b2")]
    assert DeltaTable.forPath(spark, silver_ref.path).detail().first().partitionColumns == [
        "region"]

    # re-running batch 1 after batch 2 cannot bring back key 2's older record
    validate_step(spark, settings, "b1")
    features_step(spark, settings, "b1")
    assert _rows(read_table(spark, silver_ref), "sample_number", "sex", "date_egg",
                 "_batch_id") == expected_silver
    assert read_table(spark, gold_ref).count() == 4


def test_upsert_config_is_checked_at_load(make_settings):
    with pytest.raises(ConfigError, match="write.order_by: required when write.mode is upsert"):
        make_settings("dataset.write.mode=upsert")
    with pytest.raises(ConfigError, match=r"write.order_by: unknown column\(s\) \['updated'\]"):
        make_settings(*UPSERT[:1], "dataset.write.order_by=updated")
    with pytest.raises(ConfigError, match=r"\['sample_number'\] must be declared nullable: false"):
        make_settings(*UPSERT, "dataset.schema.1.nullable=true")
    with pytest.raises(ConfigError, match=r"\['island'\] are partition columns"):
        make_settings("dataset.write.partition_by=[island]",
                      "dataset.maintenance.zorder_by=[island]")
