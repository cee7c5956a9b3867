"""OPTIMIZE / Z-ORDER, VACUUM and time travel on small tables written in several commits."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import mlflow
import pyspark.sql.functions as F
import pytest
from delta.tables import DeltaTable
from mlflow.tracking import MlflowClient

from sparkmlops.cli import main
from sparkmlops.config import load_settings
from sparkmlops.errors import ConfigError, MissingInputError, VersionUnavailableError
from sparkmlops.maintain.step import (
    RETENTION_CHECK_CONF,
    MaintainOutcome,
    TableMaintenance,
    VacuumResult,
    active_files,
    maintain_step,
    optimize_table,
    read_as_of,
    read_as_of_or_latest,
    vacuum_table,
)
from sparkmlops.tables import current_version, dataset_tables, read_table, table_ref
from sparkmlops.tracking.runs import configure_mlflow
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
    assert (result.files_removed, result.files_added) == (files_before, 1)
    assert (result.version, current_version(spark, bronze)) == (3, 3)
    assert result.zorder_by == []
    assert _collect(read_table(spark, bronze)) == _rows(["b1", "b2", "b3"])


def test_zorder_uses_the_columns_the_table_has_and_only_once(spark, bronze, caplog):
    with caplog.at_level("INFO", logger="sparkmlops.maintain.step"):
        result = optimize_table(spark, bronze, ["species", "sex", "island"])
        again = optimize_table(spark, bronze, ["species", "sex", "island"])

    last = DeltaTable.forPath(spark, bronze.path).history(1).first()
    assert result.zorder_by == ["species", "island"]
    assert (last["version"], last["operation"]) == (3, "OPTIMIZE")
    assert json.loads(last["operationParameters"]["zOrderBy"]) == ["species", "island"]
    assert "bronze.penguins has no column(s) ['sex']" in caplog.text
    assert (again.version, again.files_removed, again.files_added) == (3, 0, 0)
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
    assert result == VacuumResult(files_deleted=len(on_disk - active), retention_hours=0,
                                  version=5)
    assert check_after == "true"
    assert _collect(read_table(spark, bronze)) == _rows(["b1", "b2", "b3"])
    with pytest.raises(VersionUnavailableError, match=r"^table bronze.penguins v0 was vacuumed"):
        read_as_of(spark, bronze, version=0)


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


def test_maintain_step_optimizes_and_vacuums_each_table_there_and_names_the_others(
        spark, bronze, make_settings):
    settings = make_settings()
    files_before = active_files(spark, bronze)

    untouched = maintain_step(spark, settings, vacuum=False, optimize=False)
    result = maintain_step(spark, settings)

    others = [ref.fqn for ref in dataset_tables(settings) if ref.fqn != "bronze.penguins"]
    assert isinstance(result, MaintainOutcome)
    assert untouched.tables == {"bronze.penguins": TableMaintenance(
        version_before=2, files_before=files_before, optimize=None, vacuum=None,
        version_after=2, files_after=files_before)}
    assert (untouched.outputs, untouched.missing) == ({}, others)
    [(fqn, table)] = result.tables.items()
    assert (fqn, table.version_before, table.version_after) == ("bronze.penguins", 2, 5)
    assert (table.files_before, table.files_after) == (files_before, 1)
    assert table.optimize is not None
    assert (table.optimize.files_removed, table.optimize.files_added) == (files_before, 1)
    assert (table.optimize.zorder_by, table.optimize.version) == (["species", "island"], 3)
    assert table.vacuum == VacuumResult(files_deleted=0, retention_hours=168, version=5)
    assert (result.outputs, result.missing) == ({"bronze.penguins": 5}, others)
    assert _collect(read_table(spark, bronze)) == _rows(["b1", "b2", "b3"])


def test_read_as_of_or_latest_names_the_version_it_read(spark, bronze, make_settings):
    v1_time = DeltaTable.forPath(spark, bronze.path).history().where("version = 1").select(
        F.date_format("timestamp", "yyyy-MM-dd HH:mm:ss.SSS")).first()[0]

    frame, latest = read_as_of_or_latest(spark, bronze)
    old, named = read_as_of_or_latest(spark, bronze, version=0)
    then, as_of = read_as_of_or_latest(spark, bronze, timestamp=v1_time)

    assert (_collect(frame), latest) == (_rows(["b1", "b2", "b3"]), "v2 (latest)")
    assert (_collect(old), named) == (_rows(["b1"]), "v0")
    assert (_collect(then), as_of) == (_rows(["b1", "b2"]), f"as of {v1_time}")
    with pytest.raises(MissingInputError, match=r"^table silver.penguins does not exist at "):
        read_as_of_or_latest(spark, dataset_tables(make_settings()).silver)


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
    assert "sparkmlops maintain: dataset penguins, batch all" in out
    assert f"wrote bronze.penguins v{version_after}" in out
    assert run.data.tags["sparkmlops.outcome"] == "maintained"
    assert run.data.params["bronze.penguins.version_before"] == str(version_before)
    assert run.data.params["bronze.penguins.version_after"] == str(version_after)
    assert run.data.metrics["files_after.bronze.penguins"] == 1
    assert run.data.metrics["files_vacuumed.bronze.penguins"] == 0  # 168 h keeps them all
    assert active_files(spark, bronze) == 1

    assert main(["show-table", "bronze", "--version", str(version_after + 1), *config]) == 3
    assert f"has no version {version_after + 1}; the latest is v{version_after}" in \
        capsys.readouterr().err


@pytest.fixture(scope="module")
def vacuumed(spark, three_commits, tmp_path_factory):
    """A state dir whose bronze.penguins went through OPTIMIZE (v3) and a VACUUM with
    retention 0 (v4, v5): v0-v2's files are gone. Read only, shared by its tests."""
    state_dir = tmp_path_factory.mktemp("vacuumed")
    ref = dataset_tables(load_settings("local", "penguins",
                                       overrides=[f"state_dir={state_dir}"])).bronze
    shutil.copytree(three_commits, ref.path)
    optimize_table(spark, ref, [])
    vacuum_table(spark, ref, 0, allow_unsafe=True)
    return state_dir


VACUUMED_V0 = (r"table bronze.penguins v0 was vacuumed: its data files were deleted by the "
               r"VACUUM of v4 \(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\) with a retention of 0 h; the "
               r"table keeps removed files for delta.deletedFileRetentionDuration = interval 1 "
               r"week \(Delta's default\); the latest is v5")


def test_show_table_of_a_vacuumed_version_is_one_line_naming_the_vacuum(spark, vacuumed, capfd):
    config = ["--env", "local", "--set", f"state_dir={vacuumed}"]
    capfd.readouterr()

    vacuumed_code = main(["show-table", "bronze", "--version", "0", *config])
    vacuumed_err = capfd.readouterr().err
    never_code = main(["show-table", "bronze", "--version", "6", *config])
    never_err = capfd.readouterr().err
    kept_code = main(["show-table", "bronze", "--version", "3", *config])
    kept = capfd.readouterr()

    assert vacuumed_code == 3
    [line] = vacuumed_err.splitlines()  # no Java trace
    assert re.fullmatch("sparkmlops show-table: VersionUnavailableError: " + VACUUMED_V0, line)
    assert never_code == 3
    assert never_err.splitlines() == [
        "sparkmlops show-table: VersionUnavailableError: table bronze.penguins has no version 6; "
        "the latest is v5"]
    assert kept_code == 0 and kept.err == ""
    assert "bronze.penguins v3, first 20 rows" in kept.out


def test_reproduce_of_a_run_whose_training_version_was_vacuumed_is_one_line(
        spark, vacuumed, capfd, monkeypatch):
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # tqdm bars on stderr
    settings = load_settings("local", "penguins", overrides=[f"state_dir={vacuumed}"])
    configure_mlflow(settings)
    with mlflow.start_run() as run:  # what a train run records of its input
        mlflow.set_tag("sparkmlops.step", "train")
        mlflow.log_dict(json.loads(settings.model_dump_json(by_alias=True)),
                        "config/effective_config.json")
        mlflow.log_dict({"type": "logistic_regression", "params": {}}, "training/estimator.json")
        mlflow.log_dict({"inputs": [{"table": "bronze.penguins",
                                     "path": dataset_tables(settings).bronze.path,
                                     "table_name": None, "version": 0}]}, "lineage.json")
    capfd.readouterr()

    code = main(["reproduce", run.info.run_id, "--env", "local", "--set", f"state_dir={vacuumed}"])

    assert code == 3
    [line] = capfd.readouterr().err.splitlines()
    assert re.fullmatch("sparkmlops reproduce: VersionUnavailableError: " + VACUUMED_V0, line)


def test_a_version_past_the_retentions_names_the_retention(spark, bronze):
    log_dir = Path(bronze.path) / "_delta_log"
    ten_days_ago = time.time() - 10 * 86400
    os.utime(log_dir / f"{0:020d}.json", (ten_days_ago, ten_days_ago))

    with pytest.raises(VersionUnavailableError) as older_than_file_retention:
        read_table(spark, bronze, 0)
    spark.sql(f"ALTER TABLE delta.`{bronze.path}` SET TBLPROPERTIES "
              "('delta.checkpointInterval' = '1')")  # v3, with a checkpoint
    for expired in (0, 1):  # as log clean-up does past delta.logRetentionDuration
        for suffix in ("json", "crc"):
            (log_dir / f"{expired:020d}.{suffix}").unlink(missing_ok=True)
    with pytest.raises(VersionUnavailableError) as gone_from_the_log:
        read_as_of(spark, bronze, version=1)

    assert str(older_than_file_retention.value) == (
        "table bronze.penguins v0 is older than delta.deletedFileRetentionDuration = interval 1 "
        "week (Delta's default), so VACUUM may have deleted its files; the latest is v2 "
        "([DELTA_UNSUPPORTED_TIME_TRAVEL_BEYOND_DELETED_FILE_RETENTION_DURATION] Cannot time "
        "travel beyond delta.deletedFileRetentionDuration (168 HOURS) set on the table.)")
    assert str(gone_from_the_log.value) == (
        "table bronze.penguins v1 is gone from the table's log, which keeps "
        "delta.logRetentionDuration = interval 30 days (Delta's default); the latest is v3 "
        "([DELTA_VERSION_NOT_FOUND] Cannot time travel Delta table to version 1. Available "
        "versions: [3, 3].)")
