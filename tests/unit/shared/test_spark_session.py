"""The session factory adopts a session it did not start (notebooks, EMR, Databricks)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from sparkmlops.config import SparkSettings
from sparkmlops.spark import get_spark, task_failures_unlogged


def _root_log_level(spark: SparkSession) -> str:
    log_manager = spark.sparkContext._jvm.org.apache.logging.log4j.LogManager  # type: ignore[union-attr]
    return str(log_manager.getRootLogger().getLevel())


def test_a_running_session_takes_the_envs_runtime_conf_and_log_level_and_names_the_rest(
    spark: SparkSession, caplog,
):
    before_zone = spark.conf.get("spark.sql.session.timeZone")
    settings = SparkSettings(
        use_existing_session=True, master=None, log_level="ERROR",
        conf={"spark.sql.session.timeZone": "America/New_York",   # runtime: set
              "spark.sql.shuffle.partitions": "2",                # already so: untouched
              "spark.ui.enabled": "true",                         # fixed at start: named
              "spark.executor.memory": "7g"},                     # fixed at start: named
    )
    try:
        with caplog.at_level(logging.WARNING, logger="sparkmlops.spark"):
            adopted = get_spark(settings)

        assert adopted is spark
        assert spark.conf.get("spark.sql.session.timeZone") == "America/New_York"
        assert _root_log_level(spark) == "ERROR"
        assert [r.getMessage() for r in caplog.records] == [
            "spark.conf not applied, fixed when the running session started; set it in the "
            "cluster's Spark config: spark.ui.enabled=true (session has false), "
            "spark.executor.memory=7g (session has None)"]
    finally:
        spark.conf.set("spark.sql.session.timeZone", before_zone)
        spark.sparkContext.setLogLevel("WARN")


def test_a_session_with_the_envs_conf_already_gets_no_warning(spark: SparkSession, caplog):
    settings = SparkSettings(use_existing_session=True, master=None,
                             conf={"spark.sql.session.timeZone": "UTC",
                                   "spark.ui.enabled": "false"})

    with caplog.at_level(logging.WARNING, logger="sparkmlops.spark"):
        assert get_spark(settings) is spark

    assert caplog.records == []


def test_the_jars_dir_is_the_checkouts_only_when_running_from_it(monkeypatch, tmp_path):
    import sparkmlops.spark as factory

    monkeypatch.delenv("SPARKMLOPS_JARS_DIR", raising=False)
    repo = Path(factory.__file__).resolve().parents[2]
    assert factory.default_jars_dir() == repo / ".jars"

    # the same module installed from a wheel: no checkout around it
    installed = tmp_path / "venv/lib/python3.11/site-packages/sparkmlops/spark.py"
    installed.parent.mkdir(parents=True)
    monkeypatch.setattr(factory, "__file__", str(installed))
    monkeypatch.chdir(tmp_path)
    assert factory.default_jars_dir() == tmp_path / ".jars"

    monkeypatch.setenv("SPARKMLOPS_JARS_DIR", "/opt/jars")
    assert factory.default_jars_dir() == Path("/opt/jars")


def test_task_failures_are_unlogged_inside_the_block_and_spark_logs_again_after(spark):
    log4j = spark.sparkContext._jvm.org.apache.logging.log4j
    spark_logger = log4j.LogManager.getLogger("org.apache.spark")
    config = log4j.LogManager.getContext(False).getConfiguration()
    before = (spark_logger.getLevel().toString(),
              config.getLoggerConfig("org.apache.spark").getName())

    with pytest.raises(ArithmeticError), task_failures_unlogged(spark):
        inside = spark_logger.getLevel().toString()
        raise ArithmeticError("a failing cast, named by the caller")

    after = (spark_logger.getLevel().toString(),
             config.getLoggerConfig("org.apache.spark").getName())
    # no level of its own is left behind: the root's level (setLogLevel) reaches it again
    assert (inside, after) == ("OFF", before)
