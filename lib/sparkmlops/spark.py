"""The one SparkSession factory: Delta enabled, driven by the environment's settings.

Delta's jars are not in the ``delta-spark`` wheel. ``make jars`` copies the pinned
artifacts from Maven Central into ``.jars/`` (see ``deps/pom.xml``); the factory puts
them on ``spark.jars``. Without that folder it falls back to Ivy resolution through
``spark.jars.packages`` (``configure_spark_with_delta_pip``).

``python -m sparkmlops.spark write-spark-defaults --jars-dir .jars`` writes the same
settings into the venv's ``$SPARK_HOME/conf/spark-defaults.conf`` so that a bare
``spark-submit jobs/pipeline.py`` gets Delta as well.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession

from sparkmlops.config import SparkSettings
from sparkmlops.redact import redact_pair

log = logging.getLogger(__name__)

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
JARS_DIR_ENV = "SPARKMLOPS_JARS_DIR"


def default_jars_dir() -> Path:
    """The folder with the Delta jars: ``$SPARKMLOPS_JARS_DIR``; else ``<checkout>/.jars``
    when sparkmlops runs from its source tree (``make jars`` fills it); else ``./.jars``.

    An installed wheel has no checkout: the folder beside the package would be
    site-packages' parent. Without jars, ``configure_delta`` resolves them with Ivy.
    """
    if os.environ.get(JARS_DIR_ENV):
        return Path(os.environ[JARS_DIR_ENV])
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "setup.cfg").is_file() and (checkout / "lib" / "sparkmlops").is_dir():
        return checkout / ".jars"
    return Path.cwd() / ".jars"


def delta_jars(jars_dir: Path | None = None) -> list[str]:
    """Absolute paths of the jars in the jar folder (empty when it was never filled)."""
    folder = jars_dir or default_jars_dir()
    if not folder.is_dir():
        return []
    return sorted(str(p.resolve()) for p in folder.glob("*.jar"))


def configure_delta(
    builder: SparkSession.Builder, jars_dir: Path | None = None
) -> SparkSession.Builder:
    """Enable Delta on a builder: extension, catalog and jars (local folder or Ivy)."""
    builder = builder.config("spark.sql.extensions", DELTA_EXTENSION).config(
        "spark.sql.catalog.spark_catalog", DELTA_CATALOG
    )
    jars = delta_jars(jars_dir)
    if jars:
        return builder.config("spark.jars", ",".join(jars))
    from delta import configure_spark_with_delta_pip

    log.warning("no Delta jars in %s; resolving them with Ivy from Maven Central",
                jars_dir or default_jars_dir())
    return configure_spark_with_delta_pip(builder)


def get_spark(settings: SparkSettings) -> SparkSession:
    """Return the session for these settings, creating it only when none is active.

    On EMR and Databricks (``use_existing_session``) the platform's session is used: it
    already has its master, Delta and storage, so this adds no master and no jars, only
    the env's ``spark.conf`` and log level (see ``adopt_session``).
    """
    active = SparkSession.getActiveSession()
    if active is None and settings.use_existing_session:
        # spark-submit on a cluster: the launcher's JVM is up and the session starts here,
        # so settings fixed at start (spark.ui.*, spark.executor.*) still take effect
        builder = SparkSession.builder.appName(settings.app_name)
        for key, value in settings.conf.items():
            builder = builder.config(key, value)
        active = builder.getOrCreate()
    if active is not None:
        return adopt_session(active, settings)
    builder = SparkSession.builder.appName(settings.app_name)
    # Under spark-submit the launcher's --master (default local[*]) wins over config.
    if settings.master and not running_under_spark_submit():
        builder = builder.master(settings.master)
    for key, value in settings.conf.items():
        builder = builder.config(key, value)
    master = settings.master or ""
    # Local Python workers run PYSPARK_PYTHON, else the first `python3` on PATH, which
    # may lack this environment's packages (pyarrow for the pandas UDFs of feature
    # transforms). SparkContext reads the variable (not the conf key) once, when it
    # starts: it is set for that moment only, and the process's environment restored.
    python = ({"PYSPARK_PYTHON": sys.executable} if master.startswith("local")
              and not _python_workers_configured(settings) else {})
    builder = configure_delta(builder)
    with environ(**python):
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(settings.log_level)
    log.info("Spark %s session started (master=%s)", spark.version, spark.sparkContext.master)
    return spark


def adopt_session(spark: SparkSession, settings: SparkSettings) -> SparkSession:
    """Apply the env's ``spark.conf`` and ``log_level`` to a session this factory did not build.

    Runtime SQL settings (time zone, schema auto-merge, shuffle partitions) are set on the
    session. Settings fixed when the session started (memory, jars, UI) cannot change any
    more: differing ones are logged in one warning naming the keys, because the cluster's
    own Spark config (an EMR configuration classification, a Databricks cluster's
    spark_conf) is where they belong.
    """
    fixed = []
    for key, value in settings.conf.items():
        current = spark.conf.get(key, None)
        if current == value:
            continue
        if spark.conf.isModifiable(key):
            spark.conf.set(key, value)
        else:
            # a log line is logged config too: a secret key's value never reaches it
            held = None if current is None else redact_pair(key, current)
            fixed.append(f"{key}={redact_pair(key, value)} (session has {held})")
    if fixed:
        log.warning("spark.conf not applied, fixed when the running session started; set it "
                    "in the cluster's Spark config: %s", ", ".join(fixed))
    spark.sparkContext.setLogLevel(settings.log_level)
    return spark


def _python_workers_configured(settings: SparkSettings) -> bool:
    return bool(os.environ.get("PYSPARK_PYTHON")) or "spark.pyspark.python" in settings.conf


def running_under_spark_submit() -> bool:
    """True when this Python process was started by spark-submit (its JVM is already up)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def write_spark_defaults(jars_dir: Path) -> Path:
    """Write Delta settings into the installed pyspark's ``conf/spark-defaults.conf``."""
    from pyspark.find_spark_home import _find_spark_home

    jars = delta_jars(jars_dir)
    if not jars:
        raise SystemExit(f"no jars in {jars_dir}; run `make jars` first")
    conf_dir = Path(_find_spark_home()) / "conf"
    conf_dir.mkdir(parents=True, exist_ok=True)
    target = conf_dir / "spark-defaults.conf"
    target.write_text(
        "# written by `python -m sparkmlops.spark write-spark-defaults` (make jars)\n"
        f"spark.jars {','.join(jars)}\n"
        f"spark.sql.extensions {DELTA_EXTENSION}\n"
        f"spark.sql.catalog.spark_catalog {DELTA_CATALOG}\n"
    )
    return target


def delta_coordinate() -> str:
    """The Maven coordinate of the Delta jar matching the installed pyspark and delta-spark."""
    from importlib.metadata import version

    import pyspark

    spark_binary = ".".join(pyspark.__version__.split(".")[:2])
    return f"io.delta:delta-spark_{spark_binary}_2.13:{version('delta-spark')}"


def resolve_with_ivy(jars_dir: Path, ivy_dir: Path) -> list[Path]:
    """Fetch the Delta jars with Spark's own Ivy (no Maven needed) into ``jars_dir``.

    Used by ``make jars`` when ``mvn`` is not on PATH. Only Delta's and Unity
    Catalog's jars are kept: Spark already ships Scala, ANTLR and Jackson.
    """
    import shutil

    spark = (
        SparkSession.builder.master("local[1]")
        .appName("sparkmlops-resolve-delta-jars")
        .config("spark.jars.packages", delta_coordinate())
        .config("spark.jars.ivy", str(ivy_dir))
        .config("spark.jars.ivySettings", str(Path(__file__).resolve().parents[2] / "deps"
                                              / "ivysettings.xml"))
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.stop()
    jars_dir.mkdir(parents=True, exist_ok=True)
    copied = []
    for jar in sorted((ivy_dir / "jars").glob("*.jar")):
        if jar.name.startswith(("io.delta_", "io.unitycatalog_")):
            target = jars_dir / jar.name.split("_", 1)[1]
            shutil.copy2(jar, target)
            copied.append(target)
    if not copied:
        raise SystemExit(f"Ivy resolved no Delta jars for {delta_coordinate()}")
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sparkmlops.spark")
    sub = parser.add_subparsers(dest="command", required=True)
    defaults = sub.add_parser("write-spark-defaults", help="put the Delta jars in spark-defaults")
    defaults.add_argument("--jars-dir", type=Path, default=default_jars_dir())
    ivy = sub.add_parser("resolve-with-ivy", help="fetch the Delta jars with Spark's Ivy")
    ivy.add_argument("--jars-dir", type=Path, default=default_jars_dir())
    ivy.add_argument("--ivy-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "resolve-with-ivy":
        for jar in resolve_with_ivy(args.jars_dir.resolve(), args.ivy_dir.resolve()):
            print(f"resolved {jar}")
        return 0
    target = write_spark_defaults(args.jars_dir.resolve())
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


@contextmanager
def persisted(*frames: DataFrame) -> Iterator[tuple[DataFrame, ...]]:
    """The frames cached for the block (read more than once inside it), then released.

    Example::

        with persisted(train, test) as (train, test):
            n_train, n_test = train.count(), test.count()
    """
    cached = tuple(frame.persist() for frame in frames)
    try:
        yield cached
    finally:
        for frame in cached:
            frame.unpersist()


@contextmanager
def session_conf(spark: SparkSession, key: str, value: str) -> Iterator[None]:
    """Set a SQL conf of ``spark`` for the ``with`` block, then restore what it was."""
    previous = spark.conf.get(key, None)
    spark.conf.set(key, value)
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, previous)


@contextmanager
def task_failures_unlogged(spark: SparkSession) -> Iterator[None]:
    """Keep Spark's JVM from logging the task failures of a job whose failure the caller
    names itself: a failing cast over two partitions logged about 330 lines (each task's
    trace from Utils, Executor, DataWritingSparkTask, TaskSetManager) before the one line.

    The ``org.apache.spark`` loggers are turned off for the block and put back after it
    as they were: a level of their own restored, or none (so ``setLogLevel`` still
    reaches them); what fails still raises, with Spark's message.
    """
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    log4j = jvm.org.apache.logging.log4j
    context = log4j.LogManager.getContext(False)
    config = context.getConfiguration()
    name = "org.apache.spark"
    own = config.getLoggerConfig(name)
    had_own = own.getName() == name
    before = own.getLevel()
    log4j.core.config.Configurator.setLevel(name, log4j.Level.OFF)
    try:
        yield
    finally:
        if had_own:
            log4j.core.config.Configurator.setLevel(name, before)
        else:
            config.removeLogger(name)
            context.updateLoggers()


@contextmanager
def environ(**values: str | None) -> Iterator[None]:
    """Set (None: unset) environment variables for the block, then restore them."""
    saved = {key: os.environ.get(key) for key in values}
    try:
        _set_environ(values)
        yield
    finally:
        _set_environ(saved)


def _set_environ(values: dict[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
