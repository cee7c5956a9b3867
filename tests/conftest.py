"""Fixtures of the whole suite: one Delta-enabled SparkSession, settings in a temp dir per test,
and the builders more than one test folder uses (tests import no helper from another test module).

Layout: tests/unit/<stage>/ (pure: inline DataFrames, no state dir, no MLflow, no Delta),
tests/integration/ (a step against Delta and MLflow), tests/e2e/ (whole pipeline runs).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from sqlalchemy.engine import Engine

from sparkmlops.config import (
    BucketFeature,
    DatePartsFeature,
    DerivedFeature,
    FeatureSettings,
    Settings,
    SparkSettings,
    TransformFeature,
    load_settings,
)
from sparkmlops.spark import environ, get_spark

REPO = Path(__file__).resolve().parents[1]
SAMPLE_LANDING = REPO / "data" / "sample" / "penguins" / "landing"
SAMPLE_HEADER = (SAMPLE_LANDING / "penguins_raw_PAL0708.csv").read_text().splitlines()[0]

# A test must never write into the developer's own state dir or MLflow server.
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("MLFLOW_REGISTRY_URI", None)
os.environ.pop("SPARKMLOPS_STATE_DIR", None)
# The repo's conf dir, whatever the working directory pytest runs in (and never the
# developer's own $SPARKMLOPS_CONF_DIR); subprocesses of tests inherit it.
os.environ["SPARKMLOPS_CONF_DIR"] = str(REPO / "conf")
# The JVMs tests start in subprocesses (a spark-submit, the CLI, a notebook's kernel, a
# project's own tests, a standalone cluster's master and worker) live a minute or two: the
# C1 compiler alone is quick enough for them, and C2 would spend about a third of their
# CPU compiling code they exit before running much (a spark-submit of the pipeline on
# the sample: 121 s of CPU with C2, 86 s without). Spark passes SPARK_SUBMIT_OPTS to the
# driver's JVM and SPARK_DAEMON_JAVA_OPTS to the daemons'. The suite's own session runs
# for the whole suite, where C2's code pays off: the `spark` fixture starts it without.
SHORT_LIVED_JVM = "-XX:TieredStopAtLevel=1"
# The suite's data is a few hundred rows, its queries many and each run once or twice:
# adaptive execution re-plans every query at each shuffle, work that pays off on real
# data and is overhead here (a pipeline run on the sample: ~20 % less CPU without it,
# 39-42 s instead of 49-56 s, measured side by side in one session). Set on the suite's
# own session, and on the drivers of subprocesses through SPARK_SUBMIT_OPTS (SparkConf
# reads spark.* system properties; what a job sets itself still wins). Whole-stage
# codegen stays on: without it a failing cast reaches the caller wrapped in the write's
# TASK_WRITE_FAILED, and the label expression's row was no longer named.
SMALL_DATA_SQL = {"spark.sql.adaptive.enabled": "false"}
_OWN_SUBMIT_OPTS = os.environ.get("SPARK_SUBMIT_OPTS")
for _variable in ("SPARK_SUBMIT_OPTS", "SPARK_DAEMON_JAVA_OPTS"):
    os.environ[_variable] = " ".join(filter(None, [os.environ.get(_variable), SHORT_LIVED_JVM]))
os.environ["SPARK_SUBMIT_OPTS"] += "".join(f" -D{key}={value}"
                                          for key, value in SMALL_DATA_SQL.items())


@pytest.fixture(scope="session", autouse=True)
def migrate_mlflow_stores_once(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """MLflow's schema migrations run once per session, not once per SQLite store.

    Every test with a state dir of its own gets a fresh ``mlflow.db``, and MLflow
    migrates a fresh store through its whole alembic history: 1.5-3 s each, for about
    a hundred stores in the suite. MLflow still creates each store when and where it
    would (a test may check that none was made); only its migration step is replaced:
    the first store of the session is migrated for real and kept as a template, and
    later ones get the template's tables (SQLite's backup API), which is the same
    empty, migrated schema. Stores of subprocesses and of an MLflow server migrate
    themselves.
    """
    from mlflow.store.db import utils

    upgrade = getattr(utils, "_upgrade_db", None)
    if upgrade is None:  # MLflow moved it: every store migrates itself, only slower
        yield
        return
    template = tmp_path_factory.mktemp("mlflow_store") / "migrated.db"

    def from_template(engine: Engine) -> None:
        if engine.dialect.name != "sqlite":
            upgrade(engine)
            return
        first = not template.exists()
        if first:
            upgrade(engine)
        raw = engine.raw_connection()
        try:
            with closing(sqlite3.connect(template)) as kept:
                if first:
                    raw.driver_connection.backup(kept)
                else:
                    kept.backup(raw.driver_connection)
        finally:
            raw.close()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(utils, "_upgrade_db", from_template)
        yield


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    # a JVM for the whole run: started with C2 (without the subprocesses' SHORT_LIVED_JVM)
    with environ(SPARK_SUBMIT_OPTS=_OWN_SUBMIT_OPTS):
        session = get_spark(
            SparkSettings(
                master="local[2]",
                app_name="sparkmlops-tests",
                conf={
                    # catalog-mode tests create managed tables (spark_catalog, a schema per
                    # test); a static setting, so set once here: never ./spark-warehouse
                    "spark.sql.warehouse.dir": str(tmp_path_factory.mktemp("warehouse")),
                    "spark.sql.shuffle.partitions": "2",
                    "spark.default.parallelism": "2",
                    "spark.ui.enabled": "false",
                    "spark.ui.showConsoleProgress": "false",
                    "spark.sql.session.timeZone": "UTC",
                    "spark.databricks.delta.snapshotPartitions": "2",
                    "spark.sql.sources.parallelPartitionDiscovery.parallelism": "2",
                    "spark.driver.memory": "3g",
                    **SMALL_DATA_SQL,
                },
            )
        )
    yield session
    session.stop()


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def catalog_schema(spark: SparkSession, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh schema of ``spark_catalog`` for this test (catalog mode), dropped after."""
    import re
    import uuid

    name = re.sub(r"\W", "_", request.node.name)[:40].lower() + "_" + uuid.uuid4().hex[:8]
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS spark_catalog.{name}")
    yield name
    spark.sql(f"DROP SCHEMA IF EXISTS spark_catalog.{name} CASCADE")


@pytest.fixture
def make_settings(tmp_path: Path) -> SettingsFactory:
    """``make_settings("dataset.validate.gate=dry_run", ...)``: penguins settings in this
    test's tmp dir."""

    def factory(*overrides: str, dataset: str = "penguins", state_dir: Path | None = None
                ) -> Settings:
        return load_settings(
            "local", dataset, overrides=[f"state_dir={state_dir or tmp_path}", *overrides]
        )

    return factory


# Settings whose model reads two measurements only, and gold rows that hold just those
# (x → culmen_length_mm, y → culmen_depth_mm): the small frames of the tuning tests
TWO_FEATURES = ("dataset.features.derived=[]", "dataset.features.categorical=[]",
                "dataset.features.date_parts=[]",
                "dataset.features.numeric=[culmen_length_mm, culmen_depth_mm]")
TWO_FEATURE_GOLD_SCHEMA = ("study_name string, species string, sample_number int, "
                           "culmen_length_mm double, culmen_depth_mm double, label_raw string, "
                           "label double, _batch_id string")
TwoFeaturePoint = tuple[float, float, str, float]


@pytest.fixture
def two_feature_settings(make_settings: SettingsFactory) -> SettingsFactory:
    """``make_settings`` with the model reading culmen_length_mm and culmen_depth_mm only."""

    def factory(*overrides: str, **kwargs: object) -> Settings:
        return make_settings(*TWO_FEATURES, *overrides, **kwargs)

    return factory


@pytest.fixture(scope="session")
def two_feature_gold(spark: SparkSession) -> Callable[[Iterable[TwoFeaturePoint]], DataFrame]:
    """Gold rows from ``(x, y, label_raw, label)`` points: keys S1/A/<i>, batch b1."""

    def build(points: Iterable[TwoFeaturePoint]) -> DataFrame:
        return spark.createDataFrame(
            [("S1", "A", i, x, y, raw, label, "b1") for i, (x, y, raw, label) in enumerate(points)],
            TWO_FEATURE_GOLD_SCHEMA)

    return build


@dataclass
class PipelineRun:
    state_dir: Path
    settings: Settings
    result: object  # sparkmlops.pipeline.step.PipelineResult


@pytest.fixture(scope="session")
def pipeline_run(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    """The whole pipeline once on the bundled sample, into a session temp dir."""
    from sparkmlops.ingest.step import default_batch_id
    from sparkmlops.pipeline.step import run_pipeline

    state_dir = tmp_path_factory.mktemp("pipeline_run")
    settings = load_settings("local", "penguins", overrides=[f"state_dir={state_dir}"])
    batch_id = default_batch_id(spark, settings)
    result = run_pipeline(spark, settings, batch_id)
    return PipelineRun(state_dir=state_dir, settings=settings, result=result)


class LandingCsv:
    """Landing CSV lines in the sample's columns: one measured Adelie bird per line,
    told apart by its sample number (``line(2, mass="heavy")`` for a bad one)."""

    header = SAMPLE_HEADER
    _bird = ('PAL0708,{n},Adelie Penguin (Pygoscelis adeliae),Anvers,Torgersen,'
             '"Adult, 1 Egg Stage",N1A{n},Yes,2007-11-11,39.1,18.7,181,{mass},MALE,NA,NA,'
             '{comment}')

    def line(self, n: int, mass: str = "3750", comment: str = "NA",
             study: str | None = None) -> str:
        line = self._bird.format(n=n, mass=mass, comment=comment)
        return line.replace("PAL0708", study, 1) if study is not None else line

    def birds(self, *numbers: int) -> list[str]:
        return [self.line(n) for n in numbers]

    def text(self, lines: Iterable[str], *, header: str | None = None) -> str:
        return "\n".join([self.header if header is None else header, *lines]) + "\n"

    def write(self, folder: Path, name: str, lines: Iterable[str]) -> Path:
        """``folder/name`` with the header and ``lines``; returns ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(self.text(lines))
        return folder


@pytest.fixture(scope="session")
def landing_csv() -> LandingCsv:
    return LandingCsv()


# ---------------------------------------------------------------- paths of the checkout


@pytest.fixture(scope="session")
def learnable_silver(spark: SparkSession) -> Callable[..., DataFrame]:
    """``build(n, batch_id)``: ``n`` silver-like birds with every schema column of the sample;
    sex follows body mass, so a model learns it (train, promote and the gate on real fits)."""
    species = ["Adelie Penguin (Pygoscelis adeliae)", "Gentoo penguin (Pygoscelis papua)"]

    def build(n: int = 160, batch_id: str = "b1") -> DataFrame:
        rows = [("PAL0708", i, species[i % 2], "Anvers", ["Biscoe", "Dream", "Torgersen"][i % 3],
                 "Adult, 1 Egg Stage", f"N{i}", "Yes", date(2007 + i % 3, 11, 1 + i % 28),
                 38.0 + i % 9, 17.0 + i % 4, 180.0 + i % 30, 3000.0 + 25 * (i % 80),
                 "MALE" if i % 80 >= 40 else "FEMALE", 8.5, -25.0, None, batch_id)
                for i in range(n)]
        return spark.createDataFrame(rows, (
            "study_name string, sample_number int, species string, region string, "
            "island string, stage string, individual_id string, clutch_completion string, "
            "date_egg date, culmen_length_mm double, culmen_depth_mm double, "
            "flipper_length_mm double, body_mass_g double, sex string, delta_15_n double, "
            "delta_13_c double, comments string, _batch_id string"))

    return build


@pytest.fixture(scope="session")
def repo() -> Path:
    """The root of this checkout."""
    return REPO


@pytest.fixture(scope="session")
def sample_landing() -> Path:
    """The bundled sample's landing folder (data/sample/penguins/landing)."""
    return SAMPLE_LANDING


@pytest.fixture(scope="session")
def bad_inputs() -> Path:
    """The corpus of malformed landing files (tests/data/bad_inputs)."""
    return REPO / "tests" / "data" / "bad_inputs"


# ---------------------------------------------------------------- small shared builders


@pytest.fixture
def touch() -> Callable[..., None]:
    """``touch(path, seconds_later=3600)``: move a file's mtime on, keeping its bytes."""

    def later(path: Path, seconds_later: int = 3600) -> None:
        stat = path.stat()
        os.utime(path, (stat.st_atime + seconds_later, stat.st_mtime + seconds_later))

    return later


@pytest.fixture(scope="session")
def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


FEATURE_SCHEMA = ("id int, island string, laid date, length double, depth double, "
                  "mass double, label double")


@pytest.fixture(scope="session")
def all_kinds_features() -> FeatureSettings:
    """Every kind of feature; island spelled in several ways that normalize_text folds together.

    Goes with ``feature_train_df`` and ``feature_score_df``."""
    return FeatureSettings(
        date_parts=[DatePartsFeature(column="laid", parts=["month"])],
        derived=[DerivedFeature(name="ratio", expr="length / depth")],
        transforms=[TransformFeature(function="normalize_text",
                                     params={"column": "island", "output": "island_norm"},
                                     outputs=["island_norm"])],
        buckets=[BucketFeature(name="mass_band", column="mass", splits=["-inf", 4000, "inf"])],
        numeric=["length", "mass", "ratio"],
        categorical=["island_norm"],
    )


@pytest.fixture(scope="session")
def feature_train_df(spark: SparkSession) -> DataFrame:
    """Six labelled rows for ``all_kinds_features``."""
    return spark.createDataFrame([
        (1, "Biscoe", date(2008, 11, 10), 45.0, 15.0, 5000.0, 1.0),
        (2, "Dream", date(2008, 11, 20), 40.0, 20.0, 3500.0, 0.0),
        (3, " biscoe", date(2008, 12, 1), 48.0, 16.0, 5200.0, 1.0),
        (4, "DREAM", date(2008, 12, 5), 38.0, 19.0, 3300.0, 0.0),
        (5, "Biscoe", None, 46.0, 15.5, 4100.0, 0.0),
        (6, "Dream", date(2009, 11, 15), 41.0, 18.0, None, 1.0),
    ], FEATURE_SCHEMA)


@pytest.fixture(scope="session")
def feature_score_df(spark: SparkSession) -> DataFrame:
    """Rows to score with a model fitted on ``feature_train_df``: an unseen island, a null
    island and a null mass and date, a known island misspelled."""
    return spark.createDataFrame([
        (10, "Atlantis", date(2009, 12, 1), 44.0, 18.0, 3900.0, None),
        (11, None, None, 42.0, 17.0, None, None),
        (12, "  dréam", date(2009, 11, 30), 39.0, 19.5, 4000.0, None),
    ], FEATURE_SCHEMA)


@pytest.fixture(scope="session")
def latest_per_key() -> Callable[[DataFrame, list[str], str], tuple[DataFrame, DataFrame]]:
    """``latest_per_key(df, keys, order_by)``: (the latest record per key, the records it
    supersedes), ranked as the upsert MERGE ranks them."""
    from sparkmlops.writes import RANK_COLUMN, rank_per_key

    def split(df: DataFrame, keys: list[str], order_by: str) -> tuple[DataFrame, DataFrame]:
        ranked = rank_per_key(df, keys, order_by)
        return (ranked.where(f"{RANK_COLUMN} = 1").drop(RANK_COLUMN),
                ranked.where(f"{RANK_COLUMN} > 1").drop(RANK_COLUMN))

    return split


@pytest.fixture(scope="session")
def sorted_rows() -> Callable[..., list[tuple]]:
    """``sorted_rows(df, *columns)``: those columns of every row, as sorted tuples."""
    return lambda df, *columns: sorted(tuple(r[c] for c in columns) for r in df.collect())
