"""Ingest's I/O edge: landing files → bronze (+ quarantine), manifest and ingest log.

The one module of ingest that reads or writes a table or calls the tracker: it reads the
manifest, lists and hashes the landing files (through :mod:`landing`), hands both to the
pure plan (:mod:`records`), then reads the planned files and writes what it found.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any, ClassVar

import pyspark.sql.functions as F
from pyspark.sql import SparkSession

from sparkmlops.config import ColumnSpec, Settings, SourceSettings, WriteSettings
from sparkmlops.errors import MissingInputError, check_reconciled
from sparkmlops.ingest.landing import (
    CORRUPT_COLUMN,
    POSITION_HELPERS,
    ROW_ID,
    IngestReconciliationError,
    add_audit_columns,
    hadoop_exists,
    list_files,
    quarantine_reason,
    read_landing,
    with_content_hash,
    with_source_position,
)
from sparkmlops.ingest.records import (
    LISTED_AS,
    MANIFEST_SCHEMA,
    LandingFile,
    LandingPlan,
    batch_id_for,
    check_changed_files,
    earlier_batches,
    ingested_rows,
    leave_for_next_batch,
    log_unread_files,
    manifest_index,
    plan_landing,
    recorded_files,
    replan_batch,
    unread_rows,
)
from sparkmlops.quarantine import to_quarantine, write_quarantine
from sparkmlops.spark import persisted, session_conf
from sparkmlops.tables import (
    BATCH_COLUMN,
    DatasetTables,
    TableRef,
    TableWrite,
    current_version,
    dataset_tables,
    read_batch,
    read_table,
    table_exists,
)
from sparkmlops.tracking.runs import StepOutcome, StepTracker, step_run
from sparkmlops.writes import insert_new_rows, replace_batch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestOutcome(StepOutcome):
    """The landing files read into bronze (or none: ``skipped``) and where the rows went."""

    step: ClassVar[str] = "ingest"
    bronze_version: int | None = None  # bronze after the step (None: no bronze yet)
    skipped: bool = False
    rows_in: int = 0
    bronze_rows: int = 0
    quarantined: int = 0
    files: int = 0
    duplicates: int = 0  # files whose bytes an earlier batch already read
    changed_skipped: int = 0  # known paths with new bytes, left unread (on_changed_file: skip)
    not_ready: int = 0  # new files not ready yet (source.ready): neither read nor recorded
    pending: int = 0  # new files a re-run of an ingested batch leaves for the next batch

    @property
    def summary(self) -> dict[str, Any]:
        unread = {k: v for k, v in (("duplicates", self.duplicates),
                                    ("changed_skipped", self.changed_skipped),
                                    ("not_ready", self.not_ready),
                                    ("pending", self.pending)) if v}
        if self.skipped:
            return {"skipped": True, "bronze_rows": self.bronze_rows, **unread}
        return {"rows_in": self.rows_in, "bronze_rows": self.bronze_rows,
                "quarantined": self.quarantined, "files": self.files, **unread}


@dataclass(frozen=True)
class IngestResult:
    """What :func:`ingest_batch` read and wrote: rows in, and the bronze and quarantine commits."""

    batch_id: str
    rows_in: int
    bronze: TableWrite
    quarantine: TableWrite
    rows_quarantined: int


def ingest_step(
    spark: SparkSession, settings: Settings, batch_id: str, *, force: bool = False
) -> IngestOutcome:
    """Landing files not ingested yet → bronze (+ quarantine), then manifest and ingest log.

    Files are known by their bytes: one whose bytes were read before (touched, copied)
    is recorded and not read again, so re-running changes nothing; one at a known path
    with new bytes follows ``source.on_changed_file``; one not ready yet
    (``source.ready``) is left for a later run. A batch id names its files forever:
    for a batch the manifest records as ingested the run reads nothing and leaves new
    files for the next batch, and ``force`` re-reads exactly the batch's recorded files
    (replacing it; gone or changed ones stop it before anything is written).
    """
    tables = dataset_tables(settings)
    dataset = settings.dataset
    path = settings.resolve_path(dataset.source.path)
    with step_run(settings, IngestOutcome.step, batch_id) as tracker:
        recorded = recorded_batch(spark, tables.manifest, batch_id)
        plan = batch_plan(spark, tables.manifest, dataset.source, path, batch_id, recorded,
                          force=force)
        for name, count in plan.unread.items():
            tracker.count(f"files_{name}", count)
        if not plan.read:
            return _nothing_read(spark, tables, tracker, plan, batch_id,
                                 path=path, ingested=bool(recorded))
        tracker.count("files_in", len(plan.read))
        result = ingest_batch(spark, tables, batch_id, source=dataset.source,
                              columns=dataset.schema_, write=dataset.write, path=path,
                              files=plan.read)
        tracker.count("rows_in.landing", result.rows_in)
        tracker.wrote(result.bronze)
        tracker.wrote(result.quarantine, rows=result.rows_quarantined)
        manifest, ingest_log = record_batch(spark, tables, result, plan,
                                            earlier=earlier_batches(plan, recorded))
        tracker.wrote(manifest)
        tracker.wrote(ingest_log)
        tracker.outcome("ingested")
        return IngestOutcome(
            tracker.run_id,
            {tables.bronze.fqn: result.bronze.version,
             result.quarantine.table.fqn: result.quarantine.version,
             manifest.table.fqn: manifest.version},
            bronze_version=result.bronze.version, rows_in=result.rows_in,
            bronze_rows=result.bronze.rows, quarantined=result.rows_quarantined,
            files=len(plan.read), skipped=False, **plan.unread,
        )


def _nothing_read(
    spark: SparkSession,
    tables: DatasetTables,
    tracker: StepTracker,
    plan: LandingPlan,
    batch_id: str,
    *,
    path: str,
    ingested: bool,
) -> IngestOutcome:
    """A run that reads no file (nothing new, or ``ingested``: the batch is already): it
    records the files seen and not read, and the batch stays as bronze holds it."""
    bronze = tables.bronze
    seen = record_unread_files(spark, tables, plan, batch_id)
    version = current_version(spark, bronze)
    rows = read_batch(spark, bronze, batch_id).count() if version is not None else 0
    tracker.outcome("skipped_already_ingested" if ingested else "skipped_nothing_new")
    tracker.read(bronze, version, rows)
    log.info("%s under %s; batch %s stays at %s v%s",
             "batch already ingested: nothing read" if ingested else "no new files",
             path, batch_id, bronze.fqn, version)
    outputs = {bronze.fqn: version} if version is not None else {}
    if seen is not None:
        tracker.wrote(seen)
        outputs[seen.table.fqn] = seen.version
    return IngestOutcome(tracker.run_id, outputs, bronze_version=version, skipped=True,
                         bronze_rows=rows, **plan.unread)


def default_batch_id(spark: SparkSession, settings: Settings) -> str:
    """The files an ingest would read make the batch; with none, the latest batch again."""
    tables = dataset_tables(settings)
    source = settings.dataset.source
    path = settings.resolve_path(source.path)
    plan = landing_plan(spark, tables.manifest, path, source)
    if plan.read:
        return batch_id_for(plan.read)
    latest = latest_ingested_batch(spark, tables.ingest_log)
    if latest is None:
        raise MissingInputError(f"no input files at {path}")
    return latest


def landing_plan(
    spark: SparkSession, manifest: TableRef, path: str, source: SourceSettings
) -> LandingPlan:
    """The plan (:func:`~sparkmlops.ingest.records.plan_landing`) of the files under ``path``
    against ``manifest``: listed, asked for markers and hashed through Hadoop's FileSystem;
    ``source`` says what a changed file does and when a file is ready."""
    index = manifest_index(read_table(spark, manifest) if table_exists(spark, manifest) else None)
    now_ms = int(time.time() * 1000)
    return plan_landing(list_files(spark, path), index,
                        content_hash=partial(with_content_hash, spark),
                        exists=hadoop_exists(spark), now_ms=now_ms,
                        reingest=source.on_changed_file == "reingest", ready=source.ready)


def batch_plan(
    spark: SparkSession,
    manifest: TableRef,
    source: SourceSettings,
    path: str,
    batch_id: str,
    recorded: dict[LandingFile, str | None],
    *,
    force: bool,
) -> LandingPlan:
    """What a run of ``batch_id`` reads: with ``force`` on an ingested batch (``recorded``:
    its files), exactly those files again; else the landing plan, which for an ingested
    batch reads nothing and leaves the new files for the next batch."""
    if force and recorded:
        return replan_batch(list_files(spark, path), recorded, path=path, batch_id=batch_id,
                            content_hash=partial(with_content_hash, spark))
    plan = landing_plan(spark, manifest, path, source)
    check_changed_files(plan, source.on_changed_file)
    if recorded:
        plan = leave_for_next_batch(plan)
    log_unread_files(plan, batch_id)
    return plan


def recorded_batch(
    spark: SparkSession, manifest: TableRef, batch_id: str
) -> dict[LandingFile, str | None]:
    """The files the manifest records as read into ``batch_id`` (an ingested batch), each
    with the batch that read its path before (``earlier_batch``); empty when the batch was
    never ingested, or its ingest was killed before its last commit, the manifest's."""
    if not table_exists(spark, manifest):
        return {}
    return recorded_files(read_batch(spark, manifest, batch_id))


def latest_ingested_batch(spark: SparkSession, ingest_log: TableRef) -> str | None:
    """The batch id of the most recent complete ingest (highest bronze version), if any."""
    if not table_exists(spark, ingest_log):
        return None
    row = read_table(spark, ingest_log).orderBy(F.col("bronze_version").desc()).first()
    return str(row[BATCH_COLUMN]) if row else None


def record_batch(
    spark: SparkSession,
    tables: DatasetTables,
    result: IngestResult,
    plan: LandingPlan,
    *,
    earlier: dict[LandingFile, str] | None = None,
) -> tuple[TableWrite, TableWrite]:
    """Write the batch's counts to the ingest log, its files to the manifest, then the files
    the plan does not read (:func:`record_unread_files`).

    The batch's manifest rows are the last commit of an ingest: a job killed before it
    leaves the files pending, and the re-run replaces the batch instead of adding it twice.
    ``earlier`` names the batch that read a re-ingested path before. Returns the manifest's
    write (its last version, all the rows written) and the ingest log's.
    """
    at = datetime.now().replace(microsecond=0)
    log_row = spark.createDataFrame(
        [(result.batch_id, len(plan.read), result.rows_in, result.bronze.rows,
          result.rows_quarantined, result.bronze.version, at)],
        f"{BATCH_COLUMN} string, files long, rows_in long, bronze_rows long, "
        "quarantined_rows long, bronze_version long, ingested_at timestamp",
    )
    ingest_log = replace_batch(log_row, tables.ingest_log, result.batch_id)
    files = spark.createDataFrame(ingested_rows(plan.read, result.batch_id, at, earlier),
                                  MANIFEST_SCHEMA)
    # mergeSchema: a manifest written before content hashes gains the new columns
    manifest = replace_batch(files, tables.manifest, result.batch_id, merge_schema=True)
    seen = record_unread_files(spark, tables, plan, result.batch_id)
    if seen is not None:
        # one entry per table in the run: the last version, all the rows written
        manifest = replace(seen, rows=manifest.rows + seen.rows)
    return manifest, ingest_log


def record_unread_files(
    spark: SparkSession, tables: DatasetTables, plan: LandingPlan, batch_id: str
) -> TableWrite | None:
    """Record the files the plan does not read, so the next run knows them without hashing.

    Inserted only when not recorded yet, so a re-run adds nothing. Written after the
    batch: a kill in between only means the next run hashes these files again and
    reaches the same verdict.
    """
    rows = unread_rows(plan, batch_id, datetime.now().replace(microsecond=0))
    if not rows:
        return None
    return insert_new_rows(spark.createDataFrame(rows, MANIFEST_SCHEMA), tables.manifest,
                           LISTED_AS)


def ingest_batch(
    spark: SparkSession,
    tables: DatasetTables,
    batch_id: str,
    *,
    source: SourceSettings,
    columns: list[ColumnSpec],
    write: WriteSettings,
    path: str,
    files: list[LandingFile] | None = None,
) -> IngestResult:
    """Ingest landing files into bronze and quarantine, one atomic commit each.

    ``files`` (``read`` of the landing plan) limits the batch to those files; without it
    every file under ``path`` is read. ``source`` says how to read them, ``columns`` what
    they hold (``dataset.schema``), ``write.partition_by`` how bronze is laid out.
    """
    if files is None:
        list_files(spark, path)  # fails with a clear message when the path is missing
    ingested_at = datetime.now().replace(microsecond=0)
    raw = read_landing(spark, source, columns, [f.path for f in files] if files else path)
    parsed = add_audit_columns(raw.withColumn(ROW_ID, F.monotonically_increasing_id()),
                               batch_id, ingested_at)
    parsed = parsed.withColumn("_reason", quarantine_reason(columns))
    # Spark refuses queries on the corrupt-record column of an unparsed file; caching
    # also makes the three uses below (count, good rows, bad rows) one read of the files.
    # With CSV column pruning on (Spark's default) a line with too few fields has its
    # missing fields silently set to null; off, the PERMISSIVE parser flags the line.
    with persisted(parsed) as (parsed,):
        with session_conf(spark, "spark.sql.csv.parser.columnPruning.enabled", "false"):
            rows_in = parsed.count()
        good = parsed.where(F.col("_reason").isNull()).drop(
            "_reason", CORRUPT_COLUMN, *POSITION_HELPERS)
        bad = parsed.where(F.col("_reason").isNotNull())
        rows_quarantined = bad.count()
        if rows_quarantined:
            bad = with_source_position(parsed, bad)
        record = F.coalesce(F.col(CORRUPT_COLUMN),
                            F.to_json(F.struct(*[F.col(c.name) for c in columns])))
        quarantined = to_quarantine(bad, IngestOutcome.step, F.col("_reason"), record)
        q_write = write_quarantine(quarantined, tables.quarantine, batch_id, IngestOutcome.step)
        bronze = replace_batch(good, tables.bronze, batch_id,
                               merge_schema=source.schema_evolution == "add_new_columns",
                               partition_by=write.partition_by)
    check_reconciled(f"ingest batch {batch_id}: {rows_in} rows read", rows_in,
                     error=IngestReconciliationError, bronze=bronze.rows,
                     quarantined=rows_quarantined)
    log.info("ingest %s: %d rows in, %d to bronze, %d quarantined",
             batch_id, rows_in, bronze.rows, rows_quarantined)
    return IngestResult(batch_id, rows_in, bronze, q_write, rows_quarantined)
