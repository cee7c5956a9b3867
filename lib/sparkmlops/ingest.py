"""Ingest: landing files → ``bronze.<dataset>`` (+ ``quarantine.<dataset>``).

The raw files are read with the schema declared in config (never inferred).
Records Spark cannot parse with that schema (malformed lines, values that do not
cast to the declared type) and records with a null in a required column go to
quarantine with the reason and the source file; every other row lands in bronze
with audit columns. Rows in = bronze + quarantine, recorded in the step's run.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql.types import (
    BooleanType,
    DataType,
    DateType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from sparkmlops.config import ColumnSpec, Settings, SourceSettings
from sparkmlops.errors import MissingInputError, SparkmlopsError
from sparkmlops.tables import (
    BATCH_COLUMN,
    TableWrite,
    read_table,
    replace_batch,
    table_exists,
    table_ref,
)

log = logging.getLogger(__name__)

CORRUPT_COLUMN = "_corrupt_record"
SOURCE_FILE_COLUMN = "_source_file"
INGESTED_AT_COLUMN = "_ingested_at"
QUARANTINE_COLUMNS = ["step", "reason", "record", SOURCE_FILE_COLUMN, "quarantined_at"]


class IngestReconciliationError(SparkmlopsError):
    """Rows read != rows in bronze + quarantine: something was lost or doubled."""


@dataclass(frozen=True)
class IngestResult:
    batch_id: str
    rows_in: int
    bronze: TableWrite
    quarantine: TableWrite
    rows_quarantined: int


def read_schema(columns: list[ColumnSpec]) -> StructType:
    """The reader schema: source column names and declared types, plus the corrupt column."""
    fields = [StructField(c.source_name, _spark_type(c.type), True) for c in columns]
    return StructType([*fields, StructField(CORRUPT_COLUMN, _spark_type("string"), True)])


def read_landing(
    spark: SparkSession, source: SourceSettings, columns: list[ColumnSpec], path: str | list[str]
) -> DataFrame:
    """Read the landing files (a folder or a list of files) with the declared schema.

    Unparseable records are kept in ``_corrupt_record``; each row knows its file.
    """
    reader = (
        spark.read.format(source.format)
        .schema(read_schema(columns))
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT_COLUMN)
        .options(**source.options)
    )
    df = reader.load(path)
    return df.withColumn(SOURCE_FILE_COLUMN, F.col("_metadata.file_path"))


def rename_to_schema(df: DataFrame, columns: list[ColumnSpec]) -> DataFrame:
    """Rename the raw source columns to the declared names, keeping audit columns."""
    selected = [F.col(f"`{c.source_name}`").alias(c.name) for c in columns]
    extra = [F.col(n) for n in df.columns if n.startswith("_")]
    return df.select(*selected, *extra)


def quarantine_reason(columns: list[ColumnSpec]) -> Column:
    """Why a parsed row cannot enter bronze, or null when it can."""
    reasons = [
        F.when(F.col(CORRUPT_COLUMN).isNotNull(),
               F.lit("unparseable record: malformed line or value not castable to its type"))
    ]
    reasons += [
        F.when(F.col(c.name).isNull(), F.lit(f"null in required column {c.name}"))
        for c in columns
        if not c.nullable
    ]
    return F.coalesce(*reasons)


def add_audit_columns(df: DataFrame, batch_id: str, ingested_at: datetime) -> DataFrame:
    """Add the batch id and the ingestion time; the source file is already there."""
    return df.withColumn(BATCH_COLUMN, F.lit(batch_id)).withColumn(
        INGESTED_AT_COLUMN, F.lit(ingested_at).cast("timestamp")
    )


def to_quarantine(df: DataFrame, step: str, reason: Column, record: Column) -> DataFrame:
    """Rows in the shape of ``quarantine.<dataset>``: step, reason, record as text, origin."""
    return df.select(
        F.lit(step).alias("step"),
        reason.alias("reason"),
        record.alias("record"),
        F.col(SOURCE_FILE_COLUMN) if SOURCE_FILE_COLUMN in df.columns else F.lit(None).cast(
            "string").alias(SOURCE_FILE_COLUMN),
        F.current_timestamp().alias("quarantined_at"),
        F.col(BATCH_COLUMN),
    )


@dataclass(frozen=True)
class LandingFile:
    """A landing file as the manifest knows it: path, size and modification time."""

    path: str
    size: int
    modification_time: int


def batch_id_for(files: list[LandingFile]) -> str:
    """A deterministic batch id from the files' paths, sizes and modification times."""
    lines = sorted(f"{f.path}|{f.size}|{f.modification_time}" for f in files)
    return f"b{hashlib.sha256(chr(10).join(lines).encode()).hexdigest()[:12]}"


def landing_batch_id(spark: SparkSession, path: str) -> str:
    """The batch id of all the data files under ``path``."""
    files = list_files(spark, path)
    if not files:
        raise MissingInputError(f"no input files at {path}")
    return batch_id_for([LandingFile(*f) for f in files])


def ingested_files(spark: SparkSession, settings: Settings) -> DataFrame | None:
    """The manifest of files already ingested (None before the first batch)."""
    ref = table_ref(settings, "manifest")
    return read_table(spark, ref) if table_exists(spark, ref) else None


def pending_files(spark: SparkSession, settings: Settings, path: str) -> list[LandingFile]:
    """Files under ``path`` not in the manifest yet (same path, size and mtime)."""
    files = [LandingFile(*f) for f in list_files(spark, path)]
    manifest = ingested_files(spark, settings)
    if manifest is None or not files:
        return files
    seen = {(r.path, r.size, r.modification_time)
            for r in manifest.select("path", "size", "modification_time").collect()}
    return [f for f in files if (f.path, f.size, f.modification_time) not in seen]


def latest_ingested_batch(spark: SparkSession, settings: Settings) -> str | None:
    """The batch id of the most recent complete ingest (highest bronze version), if any."""
    ref = table_ref(settings, "ingest_log")
    if not table_exists(spark, ref):
        return None
    row = read_table(spark, ref).orderBy(F.col("bronze_version").desc()).first()
    return str(row[BATCH_COLUMN]) if row else None


def default_batch_id(spark: SparkSession, settings: Settings) -> str:
    """The files not ingested yet make the batch; with none, the latest batch again."""
    path = settings.resolve_path(settings.dataset.source.path)
    pending = pending_files(spark, settings, path)
    if pending:
        return batch_id_for(pending)
    latest = latest_ingested_batch(spark, settings)
    if latest is None:
        raise MissingInputError(f"no input files at {path}")
    return latest


def record_batch(
    spark: SparkSession, settings: Settings, result: IngestResult, files: list[LandingFile]
) -> tuple[TableWrite, TableWrite]:
    """Write the batch's files to the manifest and its counts to the ingest log.

    This is the last commit of an ingest: a job killed before it leaves the files
    pending, and the re-run replaces the batch instead of adding it twice.
    """
    at = datetime.now().replace(microsecond=0)
    manifest = spark.createDataFrame(
        [(f.path, f.size, f.modification_time, result.batch_id, at) for f in files],
        f"path string, size long, modification_time long, {BATCH_COLUMN} string, "
        "ingested_at timestamp",
    )
    log_row = spark.createDataFrame(
        [(result.batch_id, len(files), result.rows_in, result.bronze.rows,
          result.rows_quarantined, result.bronze.version, at)],
        f"{BATCH_COLUMN} string, files long, rows_in long, bronze_rows long, "
        "quarantined_rows long, bronze_version long, ingested_at timestamp",
    )
    ingest_log = replace_batch(log_row, table_ref(settings, "ingest_log"), result.batch_id)
    return replace_batch(manifest, table_ref(settings, "manifest"), result.batch_id), ingest_log


def list_files(spark: SparkSession, path: str) -> list[tuple[str, int, int]]:
    """(name, size, mtime) of the data files under ``path`` via Hadoop's FileSystem."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    fs = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if not fs.exists(hadoop_path):
        raise MissingInputError(f"input path does not exist: {path}")
    root = fs.makeQualified(hadoop_path).toString().rstrip("/")
    out = []
    iterator = fs.listFiles(hadoop_path, True)
    while iterator.hasNext():
        status = iterator.next()
        path = status.getPath().toString()
        # like Spark's reader: skip hidden files and anything below a hidden folder
        # (_temporary/, _delta_log/, .checkpoint/ ...)
        relative = path[len(root):].lstrip("/") if path.startswith(root) else path
        if any(part.startswith((".", "_")) for part in relative.split("/")):
            continue
        out.append((path, status.getLen(), status.getModificationTime()))
    return sorted(out)


def ingest_batch(
    spark: SparkSession,
    settings: Settings,
    batch_id: str,
    *,
    source_path: str | None = None,
    files: list[LandingFile] | None = None,
) -> IngestResult:
    """Ingest landing files into bronze and quarantine, one atomic commit each.

    ``files`` (from :func:`pending_files`) limits the batch to those files; without
    it every file under the source path is read.
    """
    dataset = settings.dataset
    path = source_path or settings.resolve_path(dataset.source.path)
    list_files(spark, path)  # fails with a clear message when the path is missing
    ingested_at = datetime.now().replace(microsecond=0)
    target: str | list[str] = [f.path for f in files] if files else path
    raw = read_landing(spark, dataset.source, dataset.schema_, target)
    parsed = add_audit_columns(rename_to_schema(raw, dataset.schema_), batch_id, ingested_at)
    parsed = parsed.withColumn("_reason", quarantine_reason(dataset.schema_))
    # Spark refuses queries on the corrupt-record column of an unparsed file; caching
    # also makes the three uses below (count, good rows, bad rows) one read of the files.
    parsed = parsed.persist()
    try:
        rows_in = parsed.count()
        good = parsed.where(F.col("_reason").isNull()).drop("_reason", CORRUPT_COLUMN)
        bad = parsed.where(F.col("_reason").isNotNull())
        rows_quarantined = bad.count()
        record = F.coalesce(
            F.col(CORRUPT_COLUMN),
            F.to_json(F.struct(*[F.col(c.name) for c in dataset.schema_])),
        )
        quarantined = to_quarantine(bad, "ingest", F.col("_reason"), record)
        q_write = replace_batch(
            quarantined, table_ref(settings, "quarantine"), batch_id,
            extra_predicate="step = 'ingest'",
        )
        bronze = replace_batch(good, table_ref(settings, "bronze"), batch_id)
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


_TYPES: dict[str, DataType] = {
    "string": StringType(), "int": IntegerType(), "long": LongType(), "double": DoubleType(),
    "float": FloatType(), "boolean": BooleanType(), "date": DateType(),
    "timestamp": TimestampType(),
}


def _spark_type(name: str) -> DataType:
    return _TYPES[name]
