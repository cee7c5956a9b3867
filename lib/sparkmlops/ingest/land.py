"""Landing files → a bronze table (+ quarantine), with its manifest and ingest log.

The I/O of landing files, shared by every stage whose input lands as files: ingest (the
dataset's records into ``bronze.<dataset>``) and labels (the crowd's judgments into
``bronze.<dataset>_annotations``). A :class:`Landing` names the files, how they read and
the tables they land in; :func:`land` reads the files the manifest does not know yet and
writes bronze, quarantine, ingest log and manifest (the last commit), so every such input
has the same guarantees: files known by their bytes, incremental, idempotent, every row
in bronze or in quarantine with its reason. The step of each stage (its I/O edge) calls
:func:`land` inside its run and reports what it returns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame, SparkSession

from sparkmlops.config import ColumnSpec, QuarantineSettings, SourceSettings
from sparkmlops.errors import ConfigError, check_reconciled
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
from sparkmlops.pii import PII_KEY_ENV, hashed, protect_pii
from sparkmlops.quarantine import to_quarantine, write_quarantine
from sparkmlops.spark import persisted, session_conf
from sparkmlops.tables import (
    BATCH_COLUMN,
    TableRef,
    TableWrite,
    current_version,
    read_batch,
    read_table,
    table_exists,
)
from sparkmlops.tracking.runs import StepTracker
from sparkmlops.writes import insert_new_rows, replace_batch

log = logging.getLogger(__name__)

# the column a parsed row's reason to be quarantined is in (null: the row lands in bronze)
REASON = "_reason"
# a quarantined row's record once its pii columns are protected (the raw text is gone)
PII_RECORD = "_pii_record"


@dataclass(frozen=True)
class Landing:
    """Landing files and the tables they land in.

    ``columns`` are the declared columns the files are read with (never inferred);
    ``step`` names the quarantined rows (``quarantine.<dataset>`` holds every stage's);
    ``refine``, when given, takes the parsed rows (``REASON`` null for a good row) and
    returns them with the stage's own reasons added, e.g. an unknown class.
    """

    bronze: TableRef
    quarantine: TableRef
    manifest: TableRef
    ingest_log: TableRef
    source: SourceSettings
    columns: list[ColumnSpec]
    path: str
    step: str
    partition_by: list[str] = field(default_factory=list)
    refine: Callable[[DataFrame], DataFrame] | None = None
    # what quarantine keeps of a refused row's record when ``columns`` has pii ones, and
    # the HMAC key of ``pii: hash`` (sparkmlops.pii.pii_key; never in a repr)
    quarantine_settings: QuarantineSettings = field(default_factory=QuarantineSettings)
    pii_key: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Landed:
    """What :func:`land` did for a batch: ``result`` is None when it read no file (nothing
    new, or ``ingested``: the batch was ingested before and keeps its files)."""

    plan: LandingPlan
    ingested: bool
    result: IngestResult | None
    bronze_version: int | None
    bronze_rows: int
    outputs: dict[str, int]


def land(
    spark: SparkSession, landing: Landing, batch_id: str, tracker: StepTracker, *,
    force: bool = False,
) -> Landed:
    """Landing files not read yet → bronze (+ quarantine), then ingest log and manifest.

    Files are known by their bytes: one whose bytes were read before (touched, copied)
    is recorded and not read again, so re-running changes nothing; one at a known path
    with new bytes follows ``source.on_changed_file``; one not ready yet
    (``source.ready``) is left for a later run. A batch id names its files forever:
    for a batch the manifest records as ingested the run reads nothing and leaves new
    files for the next batch, and ``force`` re-reads exactly the batch's recorded files
    (replacing it; gone or changed ones stop it before anything is written).
    """
    recorded = recorded_batch(spark, landing.manifest, batch_id)
    plan = batch_plan(spark, landing.manifest, landing.source, landing.path, batch_id,
                      recorded, force=force)
    for name, count in plan.unread.items():
        tracker.count(f"files_{name}", count)
    if not plan.read:
        return _nothing_read(spark, landing, tracker, plan, batch_id, ingested=bool(recorded))
    tracker.count("files_in", len(plan.read))
    result = ingest_batch(spark, landing, batch_id, files=plan.read)
    tracker.count("rows_in.landing", result.rows_in)
    tracker.wrote(result.bronze)
    tracker.wrote(result.quarantine, rows=result.rows_quarantined)
    manifest, ingest_log = record_batch(spark, landing, result, plan,
                                        earlier=earlier_batches(plan, recorded))
    tracker.wrote(manifest)
    tracker.wrote(ingest_log)
    tracker.outcome("ingested")
    return Landed(plan, bool(recorded), result, result.bronze.version, result.bronze.rows,
                  {landing.bronze.fqn: result.bronze.version,
                   result.quarantine.table.fqn: result.quarantine.version,
                   manifest.table.fqn: manifest.version})


def _nothing_read(
    spark: SparkSession,
    landing: Landing,
    tracker: StepTracker,
    plan: LandingPlan,
    batch_id: str,
    *,
    ingested: bool,
) -> Landed:
    """A run that reads no file (nothing new, or ``ingested``: the batch is already): it
    records the files seen and not read, and the batch stays as bronze holds it."""
    bronze = landing.bronze
    seen = record_unread_files(spark, landing, plan, batch_id)
    version = current_version(spark, bronze)
    rows = read_batch(spark, bronze, batch_id).count() if version is not None else 0
    tracker.outcome("skipped_already_ingested" if ingested else "skipped_nothing_new")
    tracker.read(bronze, version, rows)
    log.info("%s under %s; batch %s stays at %s v%s",
             "batch already ingested: nothing read" if ingested else "no new files",
             landing.path, batch_id, bronze.fqn, version)
    outputs = {bronze.fqn: version} if version is not None else {}
    if seen is not None:
        tracker.wrote(seen)
        outputs[seen.table.fqn] = seen.version
    return Landed(plan, ingested, None, version, rows, outputs)


def default_batch(spark: SparkSession, landing: Landing) -> str | None:
    """The batch id of the files a landing would read (its files' id), or with none new
    the latest ingested batch again (None: nothing ever landed)."""
    plan = landing_plan(spark, landing.manifest, landing.path, landing.source)
    if plan.read:
        return batch_id_for(plan.read)
    return latest_ingested_batch(spark, landing.ingest_log)


@dataclass(frozen=True)
class IngestResult:
    """What :func:`ingest_batch` read and wrote: rows in, and the bronze and quarantine commits."""

    batch_id: str
    rows_in: int
    bronze: TableWrite
    quarantine: TableWrite
    rows_quarantined: int


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
    landing: Landing,
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
    ingest_log = replace_batch(log_row, landing.ingest_log, result.batch_id)
    files = spark.createDataFrame(ingested_rows(plan.read, result.batch_id, at, earlier),
                                  MANIFEST_SCHEMA)
    # mergeSchema: a manifest written before content hashes gains the new columns
    manifest = replace_batch(files, landing.manifest, result.batch_id, merge_schema=True)
    seen = record_unread_files(spark, landing, plan, result.batch_id)
    if seen is not None:
        # one entry per table in the run: the last version, all the rows written
        manifest = replace(seen, rows=manifest.rows + seen.rows)
    return manifest, ingest_log


def record_unread_files(
    spark: SparkSession, landing: Landing, plan: LandingPlan, batch_id: str
) -> TableWrite | None:
    """Record the files the plan does not read, so the next run knows them without hashing.

    Inserted only when not recorded yet, so a re-run adds nothing. Written after the
    batch: a kill in between only means the next run hashes these files again and
    reaches the same verdict.
    """
    rows = unread_rows(plan, batch_id, datetime.now().replace(microsecond=0))
    if not rows:
        return None
    return insert_new_rows(spark.createDataFrame(rows, MANIFEST_SCHEMA), landing.manifest,
                           LISTED_AS)


def ingest_batch(
    spark: SparkSession,
    landing: Landing,
    batch_id: str,
    *,
    files: list[LandingFile] | None = None,
) -> IngestResult:
    """Ingest landing files into bronze and quarantine, one atomic commit each.

    ``files`` (``read`` of the landing plan) limits the batch to those files; without it
    every file under ``landing.path`` is read, with ``landing.source`` and the declared
    ``landing.columns``; ``landing.refine`` adds the stage's own reasons to refuse a row.
    """
    source, columns, path = landing.source, landing.columns, landing.path
    if files is None:
        list_files(spark, path)  # fails with a clear message when the path is missing
    ingested_at = datetime.now().replace(microsecond=0)
    raw = read_landing(spark, source, columns, [f.path for f in files] if files else path)
    parsed = add_audit_columns(raw.withColumn(ROW_ID, F.monotonically_increasing_id()),
                               batch_id, ingested_at)
    parsed = parsed.withColumn(REASON, quarantine_reason(columns))
    if landing.refine is not None:
        parsed = landing.refine(parsed)
    parsed = protect_landed_pii(parsed, landing)
    # Spark refuses queries on the corrupt-record column of an unparsed file; caching
    # also makes the three uses below (count, good rows, bad rows) one read of the files.
    # With CSV column pruning on (Spark's default) a line with too few fields has its
    # missing fields silently set to null; off, the PERMISSIVE parser flags the line.
    with persisted(parsed) as (parsed,):
        with session_conf(spark, "spark.sql.csv.parser.columnPruning.enabled", "false"):
            rows_in = parsed.count()
        good = parsed.where(F.col(REASON).isNull()).drop(
            REASON, CORRUPT_COLUMN, PII_RECORD, *POSITION_HELPERS)
        bad = parsed.where(F.col(REASON).isNotNull())
        rows_quarantined = bad.count()
        if rows_quarantined:
            bad = with_source_position(parsed, bad)
        record = F.col(PII_RECORD) if PII_RECORD in parsed.columns else raw_record(columns)
        quarantined = to_quarantine(bad, landing.step, F.col(REASON), record)
        q_write = write_quarantine(quarantined, landing.quarantine, batch_id, landing.step)
        bronze = replace_batch(good, landing.bronze, batch_id,
                               merge_schema=source.schema_evolution == "add_new_columns",
                               partition_by=landing.partition_by)
    check_reconciled(f"{landing.step} batch {batch_id}: {rows_in} rows read", rows_in,
                     error=IngestReconciliationError, bronze=bronze.rows,
                     quarantined=rows_quarantined)
    log.info("%s %s: %d rows in, %d to %s, %d quarantined", landing.step, batch_id, rows_in,
             bronze.rows, landing.bronze.fqn, rows_quarantined)
    return IngestResult(batch_id, rows_in, bronze, q_write, rows_quarantined)


def raw_record(columns: list[ColumnSpec]) -> Column:
    """A refused row's record as read: its unparsed line, or its fields as JSON."""
    return F.coalesce(F.col(CORRUPT_COLUMN),
                      F.to_json(F.struct(*[F.col(c.name) for c in columns])))


def protect_landed_pii(parsed: DataFrame, landing: Landing) -> DataFrame:
    """Parsed rows with their ``pii`` columns hashed, masked or dropped, before anything
    is cached or written, and the raw text of a refused row replaced by what
    ``quarantine.pii_record`` keeps (``PII_RECORD``); unchanged without pii columns.

    The reasons are computed before (a required pii column's null is still a null), and
    the unparsed line (``_corrupt_record``) is dropped: it holds every raw value.
    """
    columns = landing.columns
    if not any(c.pii for c in columns):
        return parsed
    how = landing.quarantine_settings.pii_record
    if how == "hash":
        if landing.pii_key is None:
            raise ConfigError(f"quarantine.pii_record: hash needs ${PII_KEY_ENV}")
        parsed = parsed.withColumn(PII_RECORD, hashed(raw_record(columns), landing.pii_key))
    parsed = protect_pii(parsed, columns, landing.pii_key)
    if how == "rebuild":
        kept = [c.name for c in columns if c.pii != "drop"]
        parsed = parsed.withColumn(PII_RECORD, F.to_json(F.struct(*[F.col(n) for n in kept])))
    elif how == "drop":
        parsed = parsed.withColumn(PII_RECORD, F.lit(None).cast("string"))
    return parsed.drop(CORRUPT_COLUMN)
