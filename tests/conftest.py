"""One Delta-enabled SparkSession for the whole suite, and settings in a temp dir per test."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from sqlalchemy.engine import Engine

from sparkmlops.config import Settings, SparkSettings, load_settings
from sparkmlops.spark import get_spark

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
    """``make_settings("quality.gate=dry_run", ...)``: penguins settings in this test's tmp dir."""

    def factory(*overrides: str, dataset: str = "penguins", state_dir: Path | None = None
                ) -> Settings:
        return load_settings(
            "local", dataset, overrides=[f"state_dir={state_dir or tmp_path}", *overrides]
        )

    return factory


@dataclass
class PipelineRun:
    state_dir: Path
    settings: Settings
    result: object  # sparkmlops.pipeline.PipelineResult


@pytest.fixture(scope="session")
def pipeline_run(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    """The whole pipeline once on the bundled sample, into a session temp dir."""
    from sparkmlops.ingest.records import landing_batch_id
    from sparkmlops.pipeline import run_pipeline

    state_dir = tmp_path_factory.mktemp("pipeline_run")
    settings = load_settings("local", "penguins", overrides=[f"state_dir={state_dir}"])
    batch_id = landing_batch_id(spark, str(SAMPLE_LANDING))
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
