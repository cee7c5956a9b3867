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
from sparkmlops.errors import MissingInputError
from sparkmlops.tables import BATCH_COLUMN, TableWrite, replace_batch, table_ref

log = logging.getLogger(__name__)

CORRUPT_COLUMN = "_corrupt_record"
SOURCE_FILE_COLUMN = "_source_file"
INGESTED_AT_COLUMN = "_ingested_at"
QUARANTINE_COLUMNS = ["step", "reason", "record", SOURCE_FILE_COLUMN, "quarantined_at"]


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
    spark: SparkSession, source: SourceSettings, columns: list[ColumnSpec], path: str
) -> DataFrame:
    """Read the landing files with the declared schema; keep unparseable records."""
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


def landing_batch_id(spark: SparkSession, path: str) -> str:
    """A deterministic batch id from the landing files' names, sizes and mtimes."""
    files = list_files(spark, path)
    if not files:
        raise MissingInputError(f"no input files at {path}")
    digest = hashlib.sha256("\n".join(f"{p}|{s}|{m}" for p, s, m in files).encode())
    return f"b{digest.hexdigest()[:12]}"


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
    spark: SparkSession, settings: Settings, batch_id: str, *, source_path: str | None = None
) -> IngestResult:
    """Ingest the landing files into bronze and quarantine, one atomic commit each."""
    dataset = settings.dataset
    path = source_path or settings.resolve_path(dataset.source.path)
    list_files(spark, path)  # fails with a clear message when the path is missing
    ingested_at = datetime.now().replace(microsecond=0)
    raw = read_landing(spark, dataset.source, dataset.schema_, path)
    parsed = add_audit_columns(rename_to_schema(raw, dataset.schema_), batch_id, ingested_at)
    parsed = parsed.withColumn("_reason", quarantine_reason(dataset.schema_))
    # Spark refuses queries on the corrupt-record column of an unparsed file; caching
    # also makes the three uses below (count, good rows, bad rows) one read of the files.
    parsed = parsed.persist()
    try:
        rows_in = parsed.count()
        good = parsed.where(F.col("_reason").isNull()).drop("_reason", CORRUPT_COLUMN)
        bad = parsed.where(F.col("_reason").isNotNull())
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
    rows_quarantined = rows_in - bronze.rows
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
