"""OPTIMIZE / Z-ORDER, VACUUM and time travel on small tables written in several commits."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyspark.sql.functions as F
import pytest
from delta.tables import DeltaTable
from mlflow.tracking import MlflowClient

from sparkmlops.cli import main
from sparkmlops.config import load_settings
from sparkmlops.errors import ConfigError, MissingInputError
from sparkmlops.maintenance import (
    RETENTION_CHECK_CONF,
    active_files,
    optimize_table,
    read_as_of,
    vacuum_table,
)
from sparkmlops.tables import current_version, dataset_tables, read_table, table_ref
from sparkmlops.writes import replace_batch

SCHEMA = "id int, species string, island string, _batch_id string"
BATCHES = {
    "b1": [(1, "Adelie", "Torgersen"), (2, "Gentoo", None)],
    "b2": [(3, "Chinstrap", "Dream"), (4, None, "Dream")],
    "b3": [(5, "Adelie", "Biscoe"), (6, "Gentoo", "Biscoe")],
}


@pytest.fixture(scope="module", autouse=True)
def quick_vacuum_listing(spark):
    # VACUUM lists the table in parallelPartitionDiscovery.parallelism tasks, 10000 by
    # default: about 40 s per VACUUM of a tiny table on local[2], 2 s with 2 tasks.
    key = "spark.sql.sources.parallelPartitionDiscovery.parallelism"
    previous = spark.conf.get(key)
    spark.conf.set(key, "2")
    yield
    spark.conf.set(key, previous)


def _rows(batch_ids):
    return sorted((*row, batch_id) for batch_id in batch_ids for row in BATCHES[batch_id])


def _collect(df):
    return sorted(tuple(r) for r in df.select("id", "species", "island", "_batch_id").collect())


@pytest.fixture(scope="module")
def three_commits(spark, tmp_path_factory):
    """A table written as three commits (v0, v1, v2) of a few small files each."""
    state_dir = tmp_path_factory.mktemp("three_commits")
    ref = table_ref(load_settings("local", "penguins", overrides=[f"state_dir={state_dir}"]),
                    "bronze")
    for batch_id, rows in BATCHES.items():
        source_df = spark.createDataFrame([(*r, batch_id) for r in rows], SCHEMA)
        replace_batch(source_df, ref, batch_id)
    return Path(ref.path)


@pytest.fixture
def bronze(three_commits, make_settings):
    """bronze.penguins of this test's tmp dir: a copy of the three commits (log and files)."""
    ref = dataset_tables(make_settings()).bronze
    shutil.copytree(three_commits, ref.path)
    return ref


def _parquet_files(ref):
    return {p.name for p in Path(ref.path).rglob("*.parquet") if "_delta_log" not in p.parts}


def _active_file_names(spark, ref):
    return {Path(uri).name for uri in read_table(spark, ref).inputFiles()}


def test_optimize_compacts_the_small_files_and_keeps_the_rows(spark, bronze):
    files_before = active_files(spark, bronze)

    result = optimize_table(spark, bronze, [])

    assert files_before >= 3
    assert active_files(spark, bronze) == 1
    assert (result["numFilesRemoved"], result["numFilesAdded"]) == (files_before, 1)
    assert (result["version"], current_version(spark, bronze)) == (3, 3)
    assert result["zorder_by"] == []
    assert _collect(read_table(spark, bronze)) == _rows(["b1", "b2", "b3"])


def test_zorder_uses_the_columns_the_table_has_and_only_once(spark, bronze, caplog):
    with caplog.at_level("INFO", logger="sparkmlops.maintenance"):
        result = optimize_table(spark, bronze, ["species", "sex", "island"])
        again = optimize_table(spark, bronze, ["species", "sex", "island"])

    last = DeltaTable.forPath(spark, bronze.path).history(1).first()
    assert result["zorder_by"] == ["species", "island"]
    assert (last["version"], last["operation"]) == (3, "OPTIMIZE")
    assert json.loads(last["operationParameters"]["zOrderBy"]) == ["species", "island"]
    assert "bronze.penguins has no column(s) ['sex']" in caplog.text
    assert (again["version"], again["numFilesRemoved"]) == (3, 0)
    assert _collect(read_table(spark, bronze)) == _rows(["b1", "b2", "b3"])


def test_unsafe_vacuum_deletes_the_files_optimize_removed(spark, bronze):
    optimize_table(spark, bronze, [])
    on_disk = _parquet_files(bronze)
    active = _active_file_names(spark, bronze)
    spark.conf.set(RETENTION_CHECK_CONF, "true")
    try:
        result = vacuum_table(spark, bronze, 0, allow_unsafe=True)
        check_after = spark.conf.get(RETENTION_CHECK_CONF)
    finally:
        spark.conf.unset(RETENTION_CHECK_CONF)

    assert len(active) == 1 and len(on_disk) > 1
    assert _parquet_files(bronze) == active
    assert result["files_deleted"] == len(on_disk - active)
    assert check_after == "true"
    assert _collect(read_table(spark, bronze)) == _rows(["b1", "b2", "b3"])
    with pytest.raises(Exception, match="FILE_NOT_EXIST"):
        read_as_of(spark, bronze, version=0).collect()


def test_vacuum_below_the_safe_default_needs_allow_unsafe(spark, bronze):
    optimize_table(spark, bronze, [])
    on_disk = _parquet_files(bronze)

    with pytest.raises(ConfigError, match=r"^VACUUM bronze.penguins: retention 0 h is below "
                                          r"Delta's 168 h safety default"):
        vacuum_table(spark, bronze, 0, allow_unsafe=False)

    assert _parquet_files(bronze) == on_disk
    assert current_version(spark, bronze) == 3
    assert spark.conf.get(RETENTION_CHECK_CONF, None) is None


def test_read_as_of_a_version_or_a_timestamp(spark, bronze):
    history = DeltaTable.forPath(spark, bronze.path).history()
    # formatted by Spark in the session time zone, the zone timestampAsOf is read in
    v1_time = history.where("version = 1").select(
        F.date_format("timestamp", "yyyy-MM-dd HH:mm:ss.SSS")).first()[0]

    assert _collect(read_as_of(spark, bronze, version=0)) == _rows(["b1"])
    assert _collect(read_as_of(spark, bronze, version=2)) == _rows(["b1", "b2", "b3"])
    assert _collect(read_as_of(spark, bronze, timestamp=v1_time)) == _rows(["b1", "b2"])
    with pytest.raises(MissingInputError,
                       match=r"^table bronze.penguins has no version 9; the latest is v2$"):
        read_as_of(spark, bronze, version=9)
    with pytest.raises(MissingInputError, match=r"^table bronze.penguins has no version as of "
                                                r"2999-01-01 00:00:00; the latest is v2 \("):
        read_as_of(spark, bronze, timestamp="2999-01-01 00:00:00")
    with pytest.raises(ConfigError, match="exactly one of version or timestamp"):
        read_as_of(spark, bronze, version=0, timestamp=v1_time)


def test_cli_maintain_after_an_ingest_logs_its_run(
        spark, make_settings, tmp_path, capsys, sample_landing):
    config = ["--env", "local", "--set", f"state_dir={tmp_path}",
              "--set", f"dataset.source.path={sample_landing / 'penguins_raw_PAL0809.csv'}"]
    assert main(["ingest", "--batch-id", "b1", *config]) == 0
    bronze = dataset_tables(make_settings()).bronze
    version_before = current_version(spark, bronze)
    capsys.readouterr()

    code = main(["maintain", *config])

    out = capsys.readouterr().out
    version_after = current_version(spark, bronze)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("sparkmlops-penguins")
    [run] = client.search_runs([experiment.experiment_id],
                               "tags.`sparkmlops.step` = 'maintain'")
    assert code == 0
    assert "sparkmlops maintain: dataset penguins" in out
    assert f"bronze.penguins v{version_before} → v{version_after}" in out
    assert run.data.tags["sparkmlops.outcome"] == "maintained"
    assert run.data.params["bronze.penguins.version_before"] == str(version_before)
    assert run.data.params["bronze.penguins.version_after"] == str(version_after)
    assert run.data.metrics["files_after.bronze.penguins"] == 1
    assert run.data.metrics["files_vacuumed.bronze.penguins"] == 0  # 168 h keeps them all
    assert active_files(spark, bronze) == 1

    assert main(["show-table", "bronze", "--version", str(version_after + 1), *config]) == 3
    assert f"has no version {version_after + 1}; the latest is v{version_after}" in \
        capsys.readouterr().err
