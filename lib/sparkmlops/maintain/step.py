"""Delta table care: OPTIMIZE / Z-ORDER, VACUUM and time travel for reproduction.

Every batch write is a small commit, so a table collects many small files;
OPTIMIZE compacts them (Z-ordered by ``maintenance.zorder_by`` where the table has
those columns) and VACUUM deletes the files no version within the retention still
needs. Time travel (``read_as_of``) reaches back only as far as VACUUM allows.

Example::

    results = maintain_dataset(spark, settings)          # every existing table
    read_as_of(spark, dataset_tables(settings).bronze, version=3).show()
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

from delta.tables import DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession

from sparkmlops.config import Settings
from sparkmlops.errors import ConfigError, MissingInputError, VersionUnavailableError
from sparkmlops.spark import session_conf
from sparkmlops.tables import (
    TableRef,
    current_version,
    dataset_tables,
    read_table,
    require_data_files,
    table_exists,
    unreadable_version,
)
from sparkmlops.tracking.runs import StepOutcome, step_run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MaintainOutcome(StepOutcome):
    """What OPTIMIZE and VACUUM did to each table, and the tables that do not exist yet."""

    step: ClassVar[str] = "maintain"
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, Any]:
        return {"tables": self.tables, "missing": self.missing}


SAFE_RETENTION_HOURS = 168.0
RETENTION_CHECK_CONF = "spark.databricks.delta.retentionDurationCheck.enabled"
_OPTIMIZE_METRICS = ("numFilesAdded", "numFilesRemoved", "partitionsOptimized",
                     "totalConsideredFiles", "totalFilesSkipped")


def active_files(spark: SparkSession, ref: TableRef) -> int:
    """How many data files the table's latest version reads (DESCRIBE DETAIL numFiles)."""
    row = _delta_table(spark, ref).detail().select("numFiles").first()
    return int(row["numFiles"]) if row else 0


def _delta_table(spark: SparkSession, ref: TableRef) -> DeltaTable:
    if not table_exists(spark, ref):
        raise MissingInputError(f"table {ref.fqn} does not exist at {ref.address}")
    return ref.delta_table(spark)


# ---------------------------------------------------------------- OPTIMIZE


def optimize_table(spark: SparkSession, ref: TableRef, zorder_by: list[str]) -> dict[str, Any]:
    """Compact the table's small files, Z-ordered by the columns of ``zorder_by`` it has.

    Columns the table does not have are skipped (and logged), so one dataset-wide
    list fits every layer; with none left it is a plain compaction. A table with
    nothing to compact gets no new commit, and neither does one already Z-ordered by
    the same columns with no write since (Delta would rewrite every file again).

    Returns:
        Delta's metrics (``numFilesAdded``, ``numFilesRemoved``, ``bytesAdded``,
        ``bytesRemoved``, ...), the ``zorder_by`` columns used and the table's
        ``version`` afterwards.
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
    out: dict[str, Any] = {name: int(metrics.get(name) or 0) for name in _OPTIMIZE_METRICS}
    out["bytesAdded"] = int((metrics.get("filesAdded") or {"totalSize": 0})["totalSize"])
    out["bytesRemoved"] = int((metrics.get("filesRemoved") or {"totalSize": 0})["totalSize"])
    out["zorder_by"] = columns
    out["version"] = current_version(spark, ref)
    log.info("optimized %s → v%s: %d files removed, %d added", ref.fqn, out["version"],
             out["numFilesRemoved"], out["numFilesAdded"])
    return out


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
) -> dict[str, Any]:
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
            "may still read; set maintenance.allow_unsafe_retention: true to allow it"
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
    version = current_version(spark, ref)
    log.info("vacuumed %s (retention %g h) → v%s: %s files deleted", ref.fqn, retention_hours,
             version, deleted if deleted is not None else "?")
    return {"files_deleted": deleted, "retention_hours": retention_hours, "version": version}


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
    latest = current_version(spark, ref)
    if latest is None:
        raise MissingInputError(f"table {ref.fqn} does not exist at {ref.address}")
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


# ---------------------------------------------------------------- the dataset


def maintain_dataset(
    spark: SparkSession, settings: Settings, *, vacuum: bool = True, optimize: bool = True
) -> dict[str, dict[str, Any]]:
    """OPTIMIZE (Z-ORDER) then VACUUM every existing table of the dataset.

    Returns, per table (``bronze.penguins`` ...) that exists: ``version_before``,
    ``version_after``, ``files_before``, ``files_after`` (active files) and the
    ``optimize`` and ``vacuum`` results (None when that part was not run).
    """
    care = settings.dataset.maintain
    results: dict[str, dict[str, Any]] = {}
    for ref in dataset_tables(settings):
        if not table_exists(spark, ref):
            log.info("%s does not exist at %s; nothing to maintain", ref.fqn, ref.address)
            continue
        result: dict[str, Any] = {"version_before": current_version(spark, ref),
                                  "files_before": active_files(spark, ref),
                                  "optimize": None, "vacuum": None}
        if optimize:
            result["optimize"] = optimize_table(spark, ref, care.zorder_by)
        if vacuum:
            result["vacuum"] = vacuum_table(spark, ref, care.vacuum_retention_hours,
                                            allow_unsafe=care.allow_unsafe_retention)
        result["version_after"] = current_version(spark, ref)
        result["files_after"] = active_files(spark, ref)
        results[ref.fqn] = result
    return results


def maintain_step(
    spark: SparkSession, settings: Settings, batch_id: str = "all",
    *, vacuum: bool = True, optimize: bool = True,
) -> MaintainOutcome:
    """``maintain_dataset`` in its own MLflow run: versions as params, file counts as metrics."""
    with step_run(settings, "maintain", batch_id) as tracker:
        tracker.params({"maintain.optimize": optimize, "maintain.vacuum": vacuum,
                        "maintain.zorder_by": ",".join(settings.dataset.maintain.zorder_by),
                        "maintain.vacuum_retention_hours":
                            settings.dataset.maintain.vacuum_retention_hours})
        results = maintain_dataset(spark, settings, vacuum=vacuum, optimize=optimize)
        for fqn, result in results.items():
            tracker.params({f"{fqn}.version_before": result["version_before"],
                            f"{fqn}.version_after": result["version_after"]})
            tracker.count(f"files_before.{fqn}", result["files_before"])
            tracker.count(f"files_after.{fqn}", result["files_after"])
            if result["vacuum"] and result["vacuum"]["files_deleted"] is not None:
                tracker.count(f"files_vacuumed.{fqn}", result["vacuum"]["files_deleted"])
        tracker.log_dict(results, "maintenance.json")
        tracker.outcome("maintained")
        missing = [ref.fqn for ref in dataset_tables(settings) if ref.fqn not in results]
        return MaintainOutcome(tracker.run_id,
                               {fqn: r["version_after"] for fqn, r in results.items()},
                               tables=results, missing=missing)
