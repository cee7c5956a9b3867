"""Ingest's I/O edge: landing files → bronze (+ quarantine), manifest and ingest log."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, ClassVar

import pyspark.sql.functions as F
from pyspark.sql import SparkSession

from sparkmlops.config import Settings
from sparkmlops.ingest.landing import (
    CORRUPT_COLUMN,
    POSITION_HELPERS,
    ROW_ID,
    IngestReconciliationError,
    IngestResult,
    add_audit_columns,
    quarantine_reason,
    read_landing,
    with_source_position,
)
from sparkmlops.ingest.records import (
    CHANGED_SKIPPED,
    DUPLICATE,
    INGESTED,
    LISTED_AS,
    MANIFEST_SCHEMA,
    LandingFile,
    LandingPlan,
    check_changed_files,
    leave_for_next_batch,
    list_files,
    log_unread_files,
    plan_landing,
    recorded_batch,
    replan_batch,
)
from sparkmlops.quarantine import to_quarantine, write_quarantine
from sparkmlops.spark import session_conf
from sparkmlops.tables import (
    BATCH_COLUMN,
    DatasetTables,
    TableWrite,
    current_version,
    dataset_tables,
    read_batch,
)
from sparkmlops.tracking.runs import StepOutcome, step_run
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
    bronze = tables.bronze
    source = settings.dataset.source
    path = settings.resolve_path(source.path)
    with step_run(settings, "ingest", batch_id) as tracker:
        recorded = recorded_batch(spark, tables.manifest, batch_id)
        if force and recorded:
            plan = replan_batch(spark, path, batch_id, recorded)
        else:
            plan = plan_landing(spark, tables.manifest, path,
                                reingest=source.on_changed_file == "reingest", ready=source.ready)
            check_changed_files(plan, source.on_changed_file)
            if recorded:
                plan = leave_for_next_batch(plan)
            log_unread_files(plan, batch_id)
        files = plan.read
        unread = {"duplicates": len(plan.duplicates),
                  "changed_skipped": len([f for f in plan.changed if f not in files]),
                  "not_ready": len(plan.not_ready), "pending": len(plan.pending)}
        for name, count in unread.items():
            tracker.count(f"files_{name}", count)
        if not files:
            seen = record_unread_files(spark, tables, plan, batch_id)
            version = current_version(spark, bronze)
            rows = read_batch(spark, bronze, batch_id).count() if version is not None else 0
            tracker.outcome("skipped_already_ingested" if recorded else "skipped_nothing_new")
            tracker.read(bronze, version, rows)
            log.info("%s under %s; batch %s stays at %s v%s",
                     "batch already ingested: nothing read" if recorded else "no new files",
                     path, batch_id, bronze.fqn, version)
            outputs = {bronze.fqn: version} if version is not None else {}
            if seen is not None:
                tracker.wrote(seen)
                outputs[seen.table.fqn] = seen.version
            return IngestOutcome(tracker.run_id, outputs, bronze_version=version, skipped=True,
                                 bronze_rows=rows, **unread)
        tracker.count("files_in", len(files))
        result = ingest_batch(spark, settings, batch_id, source_path=path, files=files)
        tracker.count("rows_in.landing", result.rows_in)
        tracker.wrote(result.bronze)
        tracker.wrote(result.quarantine, rows=result.rows_quarantined)
        # a forced re-read keeps the batch's record of the path's earlier batch
        before = {old.path: e for old, e in recorded.items() if e is not None}
        earlier = {f: before[f.path] for f in files if f.path in before} if recorded \
            else plan.changed
        manifest, ingest_log = record_batch(spark, tables, result, files, earlier=earlier)
        seen = record_unread_files(spark, tables, plan, batch_id)
        if seen is not None:
            # one entry per table in the run: the last version, all the rows written
            manifest = replace(seen, rows=manifest.rows + seen.rows)
        tracker.wrote(manifest)
        tracker.wrote(ingest_log)
        tracker.outcome("ingested")
        return IngestOutcome(
            tracker.run_id,
            {bronze.fqn: result.bronze.version,
             result.quarantine.table.fqn: result.quarantine.version,
             manifest.table.fqn: manifest.version},
            bronze_version=result.bronze.version, rows_in=result.rows_in,
            bronze_rows=result.bronze.rows,
            quarantined=result.rows_quarantined, files=len(files), skipped=False, **unread,
        )


def record_batch(
    spark: SparkSession,
    tables: DatasetTables,
    result: IngestResult,
    files: list[LandingFile],
    *,
    earlier: dict[LandingFile, str] | None = None,
) -> tuple[TableWrite, TableWrite]:
    """Write the batch's files to the manifest and its counts to the ingest log.

    This is the last commit of an ingest: a job killed before it leaves the files
    pending, and the re-run replaces the batch instead of adding it twice.
    ``earlier`` names the batch that read a re-ingested path before.
    """
    at = datetime.now().replace(microsecond=0)
    earlier = earlier or {}
    manifest = spark.createDataFrame(
        [(f.path, f.size, f.modification_time, result.batch_id, at, f.sha256, INGESTED,
          earlier.get(f)) for f in files],
        MANIFEST_SCHEMA,
    )
    log_row = spark.createDataFrame(
        [(result.batch_id, len(files), result.rows_in, result.bronze.rows,
          result.rows_quarantined, result.bronze.version, at)],
        f"{BATCH_COLUMN} string, files long, rows_in long, bronze_rows long, "
        "quarantined_rows long, bronze_version long, ingested_at timestamp",
    )
    ingest_log = replace_batch(log_row, tables.ingest_log, result.batch_id)
    # mergeSchema: a manifest written before content hashes gains the new columns
    written = replace_batch(manifest, tables.manifest, result.batch_id,
                            merge_schema=True)
    return written, ingest_log


def record_unread_files(
    spark: SparkSession, tables: DatasetTables, plan: LandingPlan, batch_id: str
) -> TableWrite | None:
    """Record the files the plan does not read, so the next run knows them without hashing.

    Their rows belong to no batch (``_batch_id`` null, so replacing a batch never drops
    them); ``earlier_batch`` names the batch holding their bytes (duplicate) or the
    path's earlier bytes (changed_skipped). Inserted only when not recorded yet, so a
    re-run adds nothing. Written after the batch: a kill in between only means the
    next run hashes these files again and reaches the same verdict.
    """
    at = datetime.now().replace(microsecond=0)
    rows = [(f.path, f.size, f.modification_time, None, at, f.sha256, DUPLICATE, holder or batch_id)
            for f, holder in plan.duplicates.items()]
    rows += [(f.path, f.size, f.modification_time, None, at, f.sha256, CHANGED_SKIPPED, earlier)
             for f, earlier in plan.changed.items() if f not in plan.read]
    if not rows:
        return None
    unread = spark.createDataFrame(sorted(rows), MANIFEST_SCHEMA)
    return insert_new_rows(unread, tables.manifest, LISTED_AS)


def ingest_batch(
    spark: SparkSession,
    settings: Settings,
    batch_id: str,
    *,
    source_path: str | None = None,
    files: list[LandingFile] | None = None,
) -> IngestResult:
    """Ingest landing files into bronze and quarantine, one atomic commit each.

    ``files`` (``read`` of :func:`plan_landing`) limits the batch to those files; without
    it every file under the source path is read.
    """
    dataset = settings.dataset
    tables = dataset_tables(settings)
    path = source_path or settings.resolve_path(dataset.source.path)
    if files is None:
        list_files(spark, path)  # fails with a clear message when the path is missing
    ingested_at = datetime.now().replace(microsecond=0)
    target: str | list[str] = [f.path for f in files] if files else path
    raw = read_landing(spark, dataset.source, dataset.schema_, target)
    parsed = add_audit_columns(raw.withColumn(ROW_ID, F.monotonically_increasing_id()),
                               batch_id, ingested_at)
    parsed = parsed.withColumn("_reason", quarantine_reason(dataset.schema_))
    # Spark refuses queries on the corrupt-record column of an unparsed file; caching
    # also makes the three uses below (count, good rows, bad rows) one read of the files.
    # With CSV column pruning on (Spark's default) a line with too few fields has its
    # missing fields silently set to null; off, the PERMISSIVE parser flags the line.
    parsed = parsed.persist()
    try:
        with session_conf(spark, "spark.sql.csv.parser.columnPruning.enabled", "false"):
            rows_in = parsed.count()
        good = parsed.where(F.col("_reason").isNull()).drop(
            "_reason", CORRUPT_COLUMN, *POSITION_HELPERS)
        bad = parsed.where(F.col("_reason").isNotNull())
        rows_quarantined = bad.count()
        if rows_quarantined:
            bad = with_source_position(parsed, bad)
        record = F.coalesce(
            F.col(CORRUPT_COLUMN),
            F.to_json(F.struct(*[F.col(c.name) for c in dataset.schema_])),
        )
        quarantined = to_quarantine(bad, "ingest", F.col("_reason"), record)
        q_write = write_quarantine(quarantined, tables.quarantine, batch_id, "ingest")
        bronze = replace_batch(good, tables.bronze, batch_id,
                               merge_schema=dataset.source.schema_evolution == "add_new_columns",
                               partition_by=dataset.write.partition_by)
    finally:
        parsed.unpersist()
    if rows_in != bronze.rows + rows_quarantined:
        raise IngestReconciliationError(
            f"batch {batch_id}: {rows_in} rows read but {bronze.rows} written to bronze and "
            f"{rows_quarantined} to quarantine"
        )
    log.info("ingest %s: %d rows in, %d to bronze, %d quarantined",
             batch_id, rows_in, bronze.rows, rows_quarantined)
    return IngestResult(batch_id, rows_in, bronze, q_write, rows_quarantined)
