"""Catalog mode on Spark's own catalog: the same writes, reads and guarantees, by name.

``spark_catalog`` is Delta's catalog on the test session (a local warehouse dir, see
conftest); each test gets its own schema. Nothing here is addressed by a path.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import sparkmlops.writes as writes
from sparkmlops.errors import MissingInputError
from sparkmlops.maintain.step import optimize_table, read_as_of
from sparkmlops.tables import TableRef, current_version, dataset_tables, read_batch, read_table
from sparkmlops.writes import insert_new_rows, replace_batch, upsert_batch

SCHEMA = "k int, v string, _batch_id string"


def _rows(df):
    return sorted(tuple(r) for r in df.collect())


def _table_type(spark, name):
    detail = {r.col_name: r.data_type
              for r in spark.sql(f"DESCRIBE TABLE EXTENDED {name}").collect()}
    return detail["Type"], detail["Location"]


@pytest.fixture
def catalog_settings(make_settings, catalog_schema):
    def factory(*overrides: str):
        return make_settings("storage.catalog=spark_catalog",
                             f"storage.schema={catalog_schema}", *overrides)

    return factory


def test_batches_are_written_replaced_and_time_travelled_by_name(spark, catalog_settings,
                                                                 tmp_path):
    bronze = dataset_tables(catalog_settings()).bronze
    name = bronze.table_name
    b1 = spark.createDataFrame([(1, "a", "b1"), (2, "b", "b1")], SCHEMA)
    b2 = spark.createDataFrame([(3, "c", "b2")], SCHEMA)
    b1_again = spark.createDataFrame([(1, "a2", "b1")], SCHEMA)

    first = replace_batch(b1, bronze, "b1", partition_by=["_batch_id"])
    second = replace_batch(b2, bronze, "b2")
    third = replace_batch(b1_again, bronze, "b1")

    # each write is one commit, its version and rows read back from that very commit
    assert [(w.version, w.rows) for w in (first, second, third)] == [(0, 2), (1, 1), (2, 1)]
    assert spark.catalog.tableExists(name)
    assert _rows(spark.table(name)) == [(1, "a2", "b1"), (3, "c", "b2")]
    assert _rows(read_batch(spark, bronze, "b1", version=1)) == [(1, "a", "b1"), (2, "b", "b1")]
    assert _rows(read_table(spark, bronze, version=0)) == [(1, "a", "b1"), (2, "b", "b1")]
    assert current_version(spark, bronze) == 2
    history = bronze.delta_table(spark).history().orderBy("version").collect()
    assert [(h.operation, h.operationParameters.get("mode")) for h in history] == [
        ("CREATE TABLE AS SELECT", None), ("WRITE", "Overwrite"), ("WRITE", "Overwrite")]
    assert [h.operationParameters.get("predicate") for h in history[1:]] == [
        "`=`(_batch_id, 'b2')", "`=`(_batch_id, 'b1')"]
    # created partitioned by the batch
    assert bronze.delta_table(spark).detail().first().partitionColumns == ["_batch_id"]
    # a managed table: in the warehouse, nothing under the lake root
    kind, location = _table_type(spark, name)
    assert kind == "MANAGED"
    assert f"/{name.split('.')[1]}.db/bronze_penguins" in location
    assert not (tmp_path / "lake").exists()


def test_read_as_of_a_version_or_timestamp_by_name(spark, catalog_settings):
    ref = dataset_tables(catalog_settings()).silver
    replace_batch(spark.createDataFrame([(1, "a", "b1")], SCHEMA), ref, "b1")
    between = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    replace_batch(spark.createDataFrame([(2, "b", "b2")], SCHEMA), ref, "b2")

    assert _rows(read_as_of(spark, ref, version=0)) == [(1, "a", "b1")]
    assert _rows(read_as_of(spark, ref, timestamp=between)) == [(1, "a", "b1")]
    with pytest.raises(MissingInputError, match=r"^table silver.penguins has no version 5; "
                                                r"the latest is v1$"):
        read_as_of(spark, ref, version=5)


def test_a_missing_table_is_named_by_its_catalog_name(spark, catalog_settings,
                                                      catalog_schema):
    ref = dataset_tables(catalog_settings()).gold

    with pytest.raises(MissingInputError) as excinfo:
        read_table(spark, ref)

    assert str(excinfo.value) == (f"table gold.penguins_features does not exist at "
                                  f"spark_catalog.{catalog_schema}.gold_penguins_features")


def test_a_missing_schema_fails_with_one_line_and_creates_nothing(spark, make_settings):
    settings = make_settings("storage.catalog=spark_catalog", "storage.schema=no_such_schema")
    ref = dataset_tables(settings).bronze

    with pytest.raises(MissingInputError) as excinfo:
        replace_batch(spark.createDataFrame([(1, "a", "b1")], SCHEMA), ref, "b1")

    assert str(excinfo.value) == (
        "schema spark_catalog.no_such_schema does not exist: create it (CREATE SCHEMA "
        "spark_catalog.no_such_schema) or set storage.catalog / storage.schema to an "
        "existing one")
    assert not spark.catalog.databaseExists("spark_catalog.no_such_schema")


def test_a_writer_that_lost_the_race_to_create_retries_as_a_batch_replace(
        spark, catalog_settings, monkeypatch):
    ref = dataset_tables(catalog_settings()).bronze
    replace_batch(spark.createDataFrame([(1, "a", "b1")], SCHEMA), ref, "b1")
    # this writer checked for the table before the other created it
    answers = iter([False])
    real = writes.table_exists
    monkeypatch.setattr(writes, "table_exists",
                        lambda spark, ref: next(answers, None) or real(spark, ref))

    written = replace_batch(spark.createDataFrame([(1, "a", "b1"), (2, "b", "b1")], SCHEMA),
                            ref, "b1")

    # the create failed (TABLE_OR_VIEW_ALREADY_EXISTS), never appended; the retry replaced
    assert (written.version, written.rows) == (1, 2)
    assert _rows(spark.table(ref.table_name)) == [(1, "a", "b1"), (2, "b", "b1")]


def test_merges_and_insert_only_writes_by_name(spark, catalog_settings):
    settings = catalog_settings()
    silver, manifest = dataset_tables(settings).silver, dataset_tables(settings).manifest
    b1 = spark.createDataFrame([(1, "a", "b1"), (2, "b", "b1")], SCHEMA)
    b2 = spark.createDataFrame([(2, "b2", "b2"), (3, "c", "b2")], SCHEMA)

    created = upsert_batch(b1, silver, "b1", ["k"])
    merged = upsert_batch(b2, silver, "b2", ["k"])
    listed = insert_new_rows(b1, manifest, ["k"])
    listed_again = insert_new_rows(b1.union(b2), manifest, ["k"])

    assert (created.version, created.inserted) == (0, 2)
    assert (merged.version, merged.inserted, merged.updated) == (1, 1, 1)
    assert _rows(spark.table(silver.table_name)) == [(1, "a", "b1"), (2, "b2", "b2"),
                                                     (3, "c", "b2")]
    assert (listed.version, listed.rows, listed_again.version, listed_again.rows) == (0, 2, 1, 1)
    assert _rows(spark.table(manifest.table_name)) == [(1, "a", "b1"), (2, "b", "b1"),
                                                       (3, "c", "b2")]


def test_optimize_by_name(spark, catalog_settings):
    ref = dataset_tables(catalog_settings()).bronze
    for batch in ("b1", "b2", "b3"):
        replace_batch(spark.createDataFrame([(1, batch, batch)], SCHEMA), ref, batch)

    optimized = optimize_table(spark, ref, ["k"])

    assert (optimized.files_removed, optimized.files_added, optimized.version) == (3, 1, 3)
    assert len(spark.table(ref.table_name).inputFiles()) == 1
    assert _rows(spark.table(ref.table_name)) == [(1, "b1", "b1"), (1, "b2", "b2"),
                                                  (1, "b3", "b3")]


def test_external_tables_are_registered_by_name_at_the_root(spark, catalog_settings, tmp_path):
    from delta.tables import DeltaTable

    ref = dataset_tables(catalog_settings("storage.external=true")).bronze

    written = replace_batch(spark.createDataFrame([(1, "a", "b1")], SCHEMA), ref, "b1")

    kind, location = _table_type(spark, ref.table_name)
    assert (written.version, written.rows) == (0, 1)
    assert (kind, location) == ("EXTERNAL", f"file:{tmp_path}/lake/bronze/penguins")
    assert DeltaTable.isDeltaTable(spark, str(tmp_path / "lake" / "bronze" / "penguins"))
    assert _rows(spark.table(ref.table_name)) == [(1, "a", "b1")]


def test_path_mode_still_writes_by_path_and_registers_nothing(spark, make_settings, tmp_path):
    ref = dataset_tables(make_settings()).bronze

    written = replace_batch(spark.createDataFrame([(1, "a", "b1")], SCHEMA), ref, "b1")

    assert ref == TableRef("bronze", "penguins", f"{tmp_path}/lake/bronze/penguins")
    assert (written.version, written.rows) == (0, 1)
    assert (tmp_path / "lake" / "bronze" / "penguins" / "_delta_log").is_dir()
    assert not spark.catalog.tableExists("bronze_penguins")
