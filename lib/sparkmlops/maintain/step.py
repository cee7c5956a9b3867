"""Delta table care: OPTIMIZE / Z-ORDER, VACUUM and time travel for reproduction.

Every batch write is a small commit, so a table collects many small files;
OPTIMIZE compacts them (Z-ordered by ``dataset.maintain.zorder_by`` where the table has
those columns) and VACUUM deletes the files no version within the retention still
needs. Time travel (``read_as_of``) reaches back only as far as VACUUM allows.

This is the stage's one I/O edge: ``maintain_step`` (the ``maintain`` command) and
``read_as_of_or_latest`` (the ``show-table`` command) are what the commands call.

Example::

    outcome = maintain_step(spark, settings)          # every existing table
    outcome.tables["bronze.penguins"].files_after     # 1
    read_as_of(spark, dataset_tables(settings).bronze, version=3).show()
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from delta.tables import DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession

from sparkmlops.config import MaintainSettings, Settings
from sparkmlops.errors import ConfigError, MissingInputError, VersionUnavailableError
from sparkmlops.spark import session_conf
from sparkmlops.tables import (
    DatasetTables,
    TableRef,
    current_version,
    dataset_tables,
    read_table,
    require_data_files,
    table_exists,
    unreadable_version,
    version_or_current,
)
from sparkmlops.tracking.runs import StepOutcome, StepTracker, step_run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OptimizeResult:
    """What one OPTIMIZE did (Delta's metrics) and the table's version afterwards."""

    files_added: int
    files_removed: int
    partitions_optimized: int
    files_considered: int
    files_skipped: int
    bytes_added: int
    bytes_removed: int
    zorder_by: list[str]  # the columns of dataset.maintain.zorder_by the table has
    version: int

    def as_dict(self) -> dict[str, Any]:
        """The metrics by Delta's names (``numFilesAdded`` ...), as ``maintenance.json``
        records them."""
        return {_DELTA_METRICS.get(name, name): value for name, value in asdict(self).items()}


# Delta's name of each OPTIMIZE metric kept; the two byte counts are the totalSize of
# Delta's filesAdded / filesRemoved
_DELTA_METRICS = {"files_added": "numFilesAdded", "files_removed": "numFilesRemoved",
                  "partitions_optimized": "partitionsOptimized",
                  "files_considered": "totalConsideredFiles",
                  "files_skipped": "totalFilesSkipped",
                  "bytes_added": "bytesAdded", "bytes_removed": "bytesRemoved"}


@dataclass(frozen=True)
class VacuumResult:
    """What one VACUUM deleted, with what retention, and the table's version afterwards."""

    files_deleted: int | None  # as Delta reports it (None: it did not)
    retention_hours: float
    version: int


@dataclass(frozen=True)
class TableMaintenance:
    """One table's versions and active files before and after, and what was run on it
    (None: that part was skipped, ``--no-optimize`` / ``--no-vacuum``)."""

    version_before: int
    files_before: int
    optimize: OptimizeResult | None
    vacuum: VacuumResult | None
    version_after: int
    files_after: int

    def as_dict(self) -> dict[str, Any]:
        """The record as ``maintenance.json`` holds it."""
        return {**asdict(self), "optimize": self.optimize and self.optimize.as_dict()}


@dataclass(frozen=True)
class MaintainOutcome(StepOutcome):
    """What OPTIMIZE and VACUUM did to each table, and the tables that do not exist yet."""

    step: ClassVar[str] = "maintain"
    tables: dict[str, TableMaintenance] = field(default_factory=dict)  # by ``bronze.penguins``
    missing: list[str] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, Any]:
        lines: dict[str, Any] = {fqn: _table_line(t) for fqn, t in self.tables.items()}
        if self.missing:
            lines["not there yet"] = ", ".join(self.missing)
        return lines


def _table_line(table: TableMaintenance) -> str:
    """``v3 → v5, 4 → 1 files; Z-ORDER by species; VACUUM deleted 3 files``."""
    line = (f"v{table.version_before} → v{table.version_after}, "
            f"{table.files_before} → {table.files_after} files")
    if table.optimize:
        zorder = table.optimize.zorder_by
        line += f"; Z-ORDER by {', '.join(zorder)}" if zorder else "; OPTIMIZE"
    if table.vacuum:
        line += f"; VACUUM deleted {table.vacuum.files_deleted} files"
    return line


SAFE_RETENTION_HOURS = 168.0
RETENTION_CHECK_CONF = "spark.databricks.delta.retentionDurationCheck.enabled"


def active_files(spark: SparkSession, ref: TableRef) -> int:
    """How many data files the table's latest version reads (DESCRIBE DETAIL numFiles)."""
    row = _delta_table(spark, ref).detail().select("numFiles").first()
    return int(row["numFiles"]) if row else 0


def _delta_table(spark: SparkSession, ref: TableRef) -> DeltaTable:
    if not table_exists(spark, ref):
        raise _missing(ref)
    return ref.delta_table(spark)


def _latest_version(spark: SparkSession, ref: TableRef) -> int:
    """The table's latest version; MissingInputError when there is no table."""
    version = current_version(spark, ref)
    if version is None:
        raise _missing(ref)
    return version


def _missing(ref: TableRef) -> MissingInputError:
    return MissingInputError(f"table {ref.fqn} does not exist at {ref.address}")


# ---------------------------------------------------------------- OPTIMIZE


def optimize_table(spark: SparkSession, ref: TableRef, zorder_by: list[str]) -> OptimizeResult:
    """Compact the table's small files, Z-ordered by the columns of ``zorder_by`` it has.

    Columns the table does not have are skipped (and logged), so one dataset-wide
    list fits every layer; with none left it is a plain compaction. A table with
    nothing to compact gets no new commit, and neither does one already Z-ordered by
    the same columns with no write since (Delta would rewrite every file again).

    Returns:
        Delta's metrics (files and bytes added and removed, ...; all 0 when nothing was
        rewritten), the ``zorder_by`` columns used and the table's ``version`` afterwards.
    """
    table = _delta_table(spark, ref)
    present = set(table.toDF().columns)
    columns = [c for c in zorder_by if c in present]
    skipped = [c for c in zorder_by if c not in present]
    if skipped:
        log.info("%s has no column(s) %s; Z-ORDER by %s", ref.fqn, skipped, columns or "none")
    metrics: dict[str, Any] = {}
    if columns and _zordered_since_last_write(table, columns):
        log.info("%s is Z-ordered by %s with no write since; nothing to optimize",
                 ref.fqn, columns)
    else:
        builder = table.optimize()
        result = builder.executeZOrderBy(*columns) if columns else builder.executeCompaction()
        row = result.select("metrics").first()
        metrics = row["metrics"].asDict(recursive=True) if row else {}
    out = _optimize_result(metrics, columns, _latest_version(spark, ref))
    log.info("optimized %s → v%s: %d files removed, %d added", ref.fqn, out.version,
             out.files_removed, out.files_added)
    return out


def _optimize_result(metrics: dict[str, Any], zorder_by: list[str], version: int
                     ) -> OptimizeResult:
    """Delta's OPTIMIZE metrics (``numFilesAdded`` ..., absent: 0) as an OptimizeResult."""
    def count(name: str) -> int:
        return int(metrics.get(_DELTA_METRICS[name]) or 0)

    def size(files: str) -> int:
        return int((metrics.get(files) or {"totalSize": 0})["totalSize"])

    return OptimizeResult(
        files_added=count("files_added"), files_removed=count("files_removed"),
        partitions_optimized=count("partitions_optimized"),
        files_considered=count("files_considered"), files_skipped=count("files_skipped"),
        bytes_added=size("filesAdded"), bytes_removed=size("filesRemoved"),
        zorder_by=zorder_by, version=version)


def _zordered_since_last_write(table: DeltaTable, columns: list[str]) -> bool:
    """True when the last commit that touched data files was a Z-ORDER by ``columns``."""
    for row in table.history(20).collect():
        if row["operation"] in ("VACUUM START", "VACUUM END"):
            continue
        zorder = (row["operationParameters"] or {}).get("zOrderBy") or "[]"
        return bool(row["operation"] == "OPTIMIZE" and json.loads(zorder) == columns)
    return False


# ---------------------------------------------------------------- VACUUM


def vacuum_table(
    spark: SparkSession, ref: TableRef, retention_hours: float, *, allow_unsafe: bool
) -> VacuumResult:
    """Delete the files no table version within ``retention_hours`` still reads.

    Below Delta's 168 h default a reader or writer still running on an older
    version can lose its files, so a shorter retention needs ``allow_unsafe``;
    Delta's own check is then switched off for this call only and restored after
    (it is a session setting: other queries of the same session share it meanwhile).

    Raises:
        ConfigError: ``retention_hours`` is negative, or below 168 h without ``allow_unsafe``.

    Returns:
        ``files_deleted`` (as Delta reports it, None if it does not), the
        ``retention_hours`` and the table's ``version`` afterwards.
    """
    if retention_hours < 0:
        raise ConfigError(f"VACUUM {ref.fqn}: retention {retention_hours} h is negative")
    unsafe = retention_hours < SAFE_RETENTION_HOURS
    if unsafe and not allow_unsafe:
        raise ConfigError(
            f"VACUUM {ref.fqn}: retention {retention_hours:g} h is below Delta's "
            f"{SAFE_RETENTION_HOURS:g} h safety default and would delete files a running job "
            "may still read; set maintain.allow_unsafe_retention: true to allow it"
        )
    table = _delta_table(spark, ref)
    before = current_version(spark, ref)
    if unsafe:
        log.warning("VACUUM %s with an unsafe retention of %g h", ref.fqn, retention_hours)
        with session_conf(spark, RETENTION_CHECK_CONF, "false"):
            table.vacuum(retention_hours)
    else:
        table.vacuum(retention_hours)
    deleted = _vacuumed_files(table, after_version=before)
    version = _latest_version(spark, ref)
    log.info("vacuumed %s (retention %g h) → v%s: %s files deleted", ref.fqn, retention_hours,
             version, deleted if deleted is not None else "?")
    return VacuumResult(files_deleted=deleted, retention_hours=retention_hours, version=version)


def _vacuumed_files(table: DeltaTable, *, after_version: int | None) -> int | None:
    """``numDeletedFiles`` of the VACUUM END commit (Delta logs VACUUM by default)."""
    for row in table.history(5).collect():
        newer = after_version is None or int(row["version"]) > after_version
        if newer and row["operation"] == "VACUUM END":
            value = (row["operationMetrics"] or {}).get("numDeletedFiles")
            return int(value) if value is not None else None
    return None


# ---------------------------------------------------------------- time travel


def read_as_of(
    spark: SparkSession, ref: TableRef, *, version: int | None = None,
    timestamp: str | None = None,
) -> DataFrame:
    """The table as it was at ``version`` or at ``timestamp`` (exactly one of them).

    ``timestamp`` is anything Spark casts to a timestamp (``2026-11-26 12:00:00``),
    in the session time zone.

    Raises:
        ConfigError: neither or both of ``version`` and ``timestamp`` were given.
        MissingInputError: the table does not exist.
        VersionUnavailableError: the table has no such version (the message names the
            latest one), or it is gone from the log or was vacuumed (the message names
            the retention that removed it).
    """
    if (version is None) == (timestamp is None):
        raise ConfigError(f"read {ref.fqn}: give exactly one of version or timestamp")
    if version is not None:
        return read_table(spark, ref, version)
    latest = _latest_version(spark, ref)
    as_of = f"as of {timestamp}"
    try:
        frame = ref.read(spark, timestamp=timestamp)
    except AnalysisException as exc:
        gone = unreadable_version(spark, ref, exc, as_of=as_of, latest=latest)
        if gone is not None:
            raise gone from None
        if not (exc.getCondition() or "").startswith("DELTA_TIMESTAMP"):
            raise
        reason = str(exc).splitlines()[0]
        raise VersionUnavailableError(
            f"table {ref.fqn} has no version {as_of}; the latest is v{latest} ({reason})"
        ) from None
    require_data_files(spark, ref, frame, as_of=as_of, after=None, latest=latest)
    return frame


def read_as_of_or_latest(
    spark: SparkSession, ref: TableRef, *, version: int | None = None,
    timestamp: str | None = None,
) -> tuple[DataFrame, str]:
    """The table at ``version`` or ``timestamp`` (at most one; neither: its latest
    version), and which version that is in words: ``v3 (latest)``, ``v2``,
    ``as of 2026-11-26 12:00:00``. What ``show-table`` prints.

    The latest version is resolved first and read by number, so the words name the
    version read even when a write commits meanwhile.

    Raises: as :func:`read_as_of`.
    """
    if timestamp is not None:
        return read_as_of(spark, ref, version=version, timestamp=timestamp), f"as of {timestamp}"
    resolved = version_or_current(spark, ref, version)
    if resolved is None:
        raise _missing(ref)
    named = f"v{resolved}" if version is not None else f"v{resolved} (latest)"
    return read_as_of(spark, ref, version=resolved), named


# ---------------------------------------------------------------- the step


def maintain_table(
    spark: SparkSession, ref: TableRef, care: MaintainSettings, *, vacuum: bool = True,
    optimize: bool = True,
) -> TableMaintenance:
    """OPTIMIZE (Z-ORDER by ``care.zorder_by``) then VACUUM (``care.vacuum_retention_hours``)
    one existing table; its versions and active files before and after."""
    version_before, files_before = _latest_version(spark, ref), active_files(spark, ref)
    optimized = optimize_table(spark, ref, care.zorder_by) if optimize else None
    vacuumed = (vacuum_table(spark, ref, care.vacuum_retention_hours,
                             allow_unsafe=care.allow_unsafe_retention) if vacuum else None)
    return TableMaintenance(version_before=version_before, files_before=files_before,
                            optimize=optimized, vacuum=vacuumed,
                            version_after=_latest_version(spark, ref),
                            files_after=active_files(spark, ref))


def maintain_tables(
    spark: SparkSession, tables: DatasetTables, care: MaintainSettings, *,
    vacuum: bool = True, optimize: bool = True,
) -> tuple[dict[str, TableMaintenance], list[str]]:
    """``maintain_table`` on every one of ``tables`` that exists: its records by table
    (``bronze.penguins``) and the tables that do not exist yet, in pipeline order."""
    maintained: dict[str, TableMaintenance] = {}
    missing: list[str] = []
    for ref in tables:
        if not table_exists(spark, ref):
            log.info("%s does not exist at %s; nothing to maintain", ref.fqn, ref.address)
            missing.append(ref.fqn)
            continue
        maintained[ref.fqn] = maintain_table(spark, ref, care, vacuum=vacuum, optimize=optimize)
    return maintained, missing


def maintain_step(
    spark: SparkSession, settings: Settings, batch_id: str = "all",
    *, vacuum: bool = True, optimize: bool = True,
) -> MaintainOutcome:
    """``maintain_tables`` on the dataset's tables in its own MLflow run: the settings as
    params, each table's versions as params and its file counts as metrics, every record
    in ``maintenance.json``."""
    care = settings.dataset.maintain
    with step_run(settings, MaintainOutcome.step, batch_id) as tracker:
        tracker.params({"maintain.optimize": optimize, "maintain.vacuum": vacuum,
                        "maintain.zorder_by": ",".join(care.zorder_by),
                        "maintain.vacuum_retention_hours": care.vacuum_retention_hours})
        maintained, missing = maintain_tables(spark, dataset_tables(settings), care,
                                              vacuum=vacuum, optimize=optimize)
        for fqn, table in maintained.items():
            _track_table(tracker, fqn, table)
        tracker.log_dict({fqn: t.as_dict() for fqn, t in maintained.items()}, "maintenance.json")
        tracker.outcome("maintained")
        # the versions it committed: none where OPTIMIZE had nothing to do and VACUUM was off
        wrote = {fqn: t.version_after for fqn, t in maintained.items()
                 if t.version_after != t.version_before}
        return MaintainOutcome(tracker.run_id, wrote, tables=maintained, missing=missing)


def _track_table(tracker: StepTracker, fqn: str, table: TableMaintenance) -> None:
    tracker.params({f"{fqn}.version_before": table.version_before,
                    f"{fqn}.version_after": table.version_after})
    tracker.count(f"files_before.{fqn}", table.files_before)
    tracker.count(f"files_after.{fqn}", table.files_after)
    if table.vacuum and table.vacuum.files_deleted is not None:
        tracker.count(f"files_vacuumed.{fqn}", table.vacuum.files_deleted)
