"""Ingest: landing files → ``bronze.<dataset>`` (+ ``quarantine.<dataset>``).

The raw files are read with the schema declared in config (never inferred).
Records Spark cannot parse with that schema (malformed lines, values that do not
cast to the declared type), records with a null in a required column and records
with NaN or Infinity in a double/float column (unless the column sets
``allow_non_finite``) go to quarantine with the reason and the source file; every
other row lands in bronze
with audit columns. Rows in = bronze + quarantine, recorded in the step's run.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import re
from dataclasses import dataclass, replace
from datetime import datetime
from functools import reduce
from typing import Any

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

from sparkmlops.config import FLOAT_TYPES, ColumnSpec, Settings, SourceSettings
from sparkmlops.errors import MissingInputError, ReconciliationError, SparkmlopsError
from sparkmlops.spark import session_conf
from sparkmlops.tables import (
    BATCH_COLUMN,
    TableWrite,
    insert_new_rows,
    read_table,
    replace_batch,
    table_exists,
    table_ref,
)

log = logging.getLogger(__name__)

CORRUPT_COLUMN = "_corrupt_record"
SOURCE_FILE_COLUMN = "_source_file"
INGESTED_AT_COLUMN = "_ingested_at"
# where a quarantined record sits in its file: the byte offset of the file split
# Spark read it from (0 for a whole file) and the 1-based record number from there
# (header not counted; a multi-line quoted record counts once)
SOURCE_OFFSET_COLUMN = "_source_offset"
SOURCE_ROW_COLUMN = "_source_row"
QUARANTINE_COLUMNS = ["step", "reason", "record", SOURCE_FILE_COLUMN, SOURCE_OFFSET_COLUMN,
                      SOURCE_ROW_COLUMN, "quarantined_at"]
# helper columns that locate a row in its file; never written to bronze
_BLOCK_START = "_pos_block_start"
_ROW_INDEX = "_pos_row_index"
_ROW_ID = "_pos_row_id"
_POSITION_HELPERS = (_BLOCK_START, _ROW_INDEX, _ROW_ID)


class SchemaMismatchError(SparkmlopsError):
    """A landing file does not match the declared schema (missing column, type change)."""

    exit_code = 3


class IngestReconciliationError(ReconciliationError):
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
    """Read landing files (a folder or a list of files) with the declared schema.

    Columns are matched by name, never by position: CSV headers are read file by
    file and each group of files with the same header is read with the declared
    types in that header's order. A file missing a required column, or (with
    ``schema_evolution: fail``) carrying an undeclared one, rejects the whole batch
    before anything is written. Undeclared columns are kept as nullable columns with
    ``add_new_columns``. Unparseable records are kept in ``_corrupt_record``; each
    row knows its file.
    """
    if source.format == "csv" and source.options.get("header", "false").lower() == "true":
        files = path if isinstance(path, list) else [p for p, _, _ in list_files(spark, path)]
        return _read_csv_by_header(spark, source, columns, files)
    if source.format == "parquet":
        files = path if isinstance(path, list) else [p for p, _, _ in list_files(spark, path)]
        for file in files:
            check_parquet_types(spark, file, columns)
    df = _with_origin(_reader(spark, source, read_schema(columns)).load(path))
    if source.format == "parquet":
        df = df.withColumn(_ROW_INDEX, F.col("_metadata.row_index"))
    return rename_to_schema(df, columns, source)


def _with_origin(df: DataFrame) -> DataFrame:
    """The file each row came from and the byte offset of the split that read it."""
    return df.withColumn(SOURCE_FILE_COLUMN, F.col("_metadata.file_path")).withColumn(
        _BLOCK_START, F.col("_metadata.file_block_start"))


def _reader(spark: SparkSession, source: SourceSettings, schema: StructType) -> Any:
    return (
        spark.read.format(source.format)
        .schema(schema)
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT_COLUMN)
        .options(**source.options)
    )


def _read_csv_by_header(
    spark: SparkSession, source: SourceSettings, columns: list[ColumnSpec], files: list[str]
) -> DataFrame:
    groups: dict[tuple[str, ...], list[str]] = {}
    for file in files:
        header = csv_header(spark, file, source)
        if not header:
            log.warning("%s is empty (no header line): it holds no rows", file)
            continue
        check_header(file, header, columns, source.schema_evolution)
        groups.setdefault(tuple(header), []).append(file)
    declared = {c.source_name: _spark_type(c.type) for c in columns}
    frames = []
    for names, group in groups.items():
        schema = StructType(
            [StructField(h, declared.get(h, StringType()), True) for h in names]
            + [StructField(CORRUPT_COLUMN, StringType(), True)]
        )
        raw = _reader(spark, source, schema).option("enforceSchema", "true").load(group)
        frames.append(rename_to_schema(_with_origin(raw), columns, source))
    if not frames:
        empty = spark.createDataFrame([], read_schema(columns)).withColumn(
            SOURCE_FILE_COLUMN, F.lit(None).cast("string")).withColumn(
            _BLOCK_START, F.lit(None).cast("long"))
        return rename_to_schema(empty, columns, source)
    return reduce(lambda a, b: a.unionByName(b, allowMissingColumns=True), frames)


def csv_header(spark: SparkSession, file: str, source: SourceSettings) -> list[str]:
    """The header line of one CSV file, parsed with the source's delimiter and quote.

    A compressed file (``.gz``, ``.bz2``, ``.deflate`` ...) is read through the codec
    Hadoop picks by its extension, as Spark's reader does. A UTF-8 byte-order mark is
    dropped; an empty file has no header (``[]``).
    """
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    stream = _open_decompressed(spark, file)
    try:
        encoding = source.options.get("encoding", source.options.get("charset", "UTF-8"))
        line = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(stream, encoding)) \
            .readLine()
    finally:
        stream.close()
    if line is None or not line.strip():
        return []
    line = line.lstrip("\ufeff")
    delimiter = source.options.get("sep", source.options.get("delimiter", ","))
    quote = source.options.get("quote", '"')
    return next(csv.reader([line], delimiter=delimiter, quotechar=quote))


def _open_decompressed(spark: SparkSession, file: str) -> Any:
    """A Java InputStream of the file's content, decompressed by the codec of its extension."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    hadoop_path = jvm.org.apache.hadoop.fs.Path(file)
    stream = hadoop_path.getFileSystem(conf).open(hadoop_path)
    codec = jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(conf).getCodec(hadoop_path)
    if codec is None:
        return stream
    try:
        return codec.createInputStream(stream)
    except Exception:
        stream.close()
        raise


def check_header(
    file: str, header: list[str], columns: list[ColumnSpec], evolution: str
) -> None:
    """Reject a file that lacks a required column or (policy ``fail``) adds one."""
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        raise SchemaMismatchError(f"{file}: duplicate column(s) {duplicated} in the header")
    missing = [c.source_name for c in columns if not c.nullable and c.source_name not in header]
    if missing:
        raise SchemaMismatchError(
            f"{file}: required column(s) {missing} missing from the header; nothing was written")
    extra = [h for h in header if h not in {c.source_name for c in columns}]
    if extra and evolution == "fail":
        raise SchemaMismatchError(
            f"{file}: undeclared column(s) {extra} and source.schema_evolution is 'fail'; "
            "nothing was written")


def check_parquet_types(spark: SparkSession, file: str, columns: list[ColumnSpec]) -> None:
    """Reject a Parquet file whose column types differ from the declared ones."""
    actual = {f.name: f.dataType for f in spark.read.parquet(file).schema.fields}
    for column in columns:
        found = actual.get(column.source_name)
        if found is None and not column.nullable:
            raise SchemaMismatchError(
                f"{file}: required column {column.source_name!r} missing; nothing was written")
        if found is not None and found != _spark_type(column.type):
            raise SchemaMismatchError(
                f"{file}: column {column.source_name!r} is {found.simpleString()}, declared "
                f"{column.type}; a type change is rejected and nothing was written")


def new_column_name(source_name: str) -> str:
    """A Delta-safe snake_case name for an undeclared source column."""
    name = re.sub(r"[^0-9a-zA-Z]+", "_", source_name).strip("_").lower()
    return name if name and not name[0].isdigit() else f"c_{name}"


def rename_to_schema(
    df: DataFrame, columns: list[ColumnSpec], source: SourceSettings | None = None
) -> DataFrame:
    """Declared columns by their declared names (null when a nullable one is absent),
    undeclared ones (``add_new_columns``) in snake_case, then the audit columns."""
    present = set(df.columns)
    selected = [
        (F.col(f"`{c.source_name}`") if c.source_name in present
         else F.lit(None).cast(_spark_type(c.type))).alias(c.name)
        for c in columns
    ]
    declared = {c.source_name for c in columns}
    added = []
    if source is not None and source.schema_evolution == "add_new_columns":
        added = [F.col(f"`{n}`").alias(new_column_name(n)) for n in df.columns
                 if n not in declared and not n.startswith("_")]
    audit = [F.col(n) for n in df.columns if n.startswith("_")]
    return df.select(*selected, *added, *audit)


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
    # bytes that are not valid in the declared encoding decode to U+FFFD
    reasons += [
        F.when(F.col(c.name).contains("\ufffd"),
               F.lit(f"text in column {c.name} is not valid in the declared encoding"))
        for c in columns
        if c.type == "string"
    ]
    # Spark's CSV and JSON readers parse NaN, Infinity and -Inf into double columns, and
    # Parquet stores them as is; MLlib cannot train on them and would score them with a
    # made-up probability. A null is missing, not non-finite: it stays a null.
    reasons += [
        F.when(F.isnan(c.name) | (F.abs(c.name) == F.lit(float("inf"))),
               F.lit(f"non-finite value (NaN or Infinity) in column {c.name}"))
        for c in columns
        if c.type in FLOAT_TYPES and not c.allow_non_finite
    ]
    return F.coalesce(*reasons)


def add_audit_columns(df: DataFrame, batch_id: str, ingested_at: datetime) -> DataFrame:
    """Add the batch id and the ingestion time; the source file is already there."""
    return df.withColumn(BATCH_COLUMN, F.lit(batch_id)).withColumn(
        INGESTED_AT_COLUMN, F.lit(ingested_at).cast("timestamp")
    )


def to_quarantine(df: DataFrame, step: str, reason: Column, record: Column) -> DataFrame:
    """Rows in the shape of ``quarantine.<dataset>``: step, reason, record as text, origin."""
    def origin(name: str, type_: str) -> Column:
        return F.col(name) if name in df.columns else F.lit(None).cast(type_).alias(name)

    return df.select(
        F.lit(step).alias("step"),
        reason.alias("reason"),
        record.alias("record"),
        origin(SOURCE_FILE_COLUMN, "string"),
        origin(SOURCE_OFFSET_COLUMN, "long"),
        origin(SOURCE_ROW_COLUMN, "long"),
        F.current_timestamp().alias("quarantined_at"),
        F.col(BATCH_COLUMN),
    )


def with_source_position(rows: DataFrame, subset: DataFrame) -> DataFrame:
    """Add each ``subset`` row's offset and record number in its file.

    ``rows`` is every row read (with ``_pos_row_id`` from
    ``monotonically_increasing_id`` on the scan): a file split's rows are
    consecutive within one Spark partition, so a row's number in its split is its
    id minus the split's first id. Parquet gives the exact row index instead.
    """
    if _ROW_INDEX in subset.columns:
        return subset.withColumn(SOURCE_OFFSET_COLUMN, F.lit(0).cast("long")).withColumn(
            SOURCE_ROW_COLUMN, F.col(_ROW_INDEX) + 1)
    split = [SOURCE_FILE_COLUMN, _BLOCK_START]
    first = rows.groupBy(*split).agg(F.min(_ROW_ID).alias("_first_row_id"))
    return (
        subset.join(F.broadcast(first), split, "left")
        .withColumn(SOURCE_OFFSET_COLUMN, F.col(_BLOCK_START))
        .withColumn(SOURCE_ROW_COLUMN, F.col(_ROW_ID) - F.col("_first_row_id") + 1)
        .drop("_first_row_id")
    )


@dataclass(frozen=True)
class LandingFile:
    """A landing file as the manifest knows it: path, size, mtime and (once hashed) content."""

    path: str
    size: int
    modification_time: int
    # sha256 of the bytes as stored (a .gz file's compressed bytes); None until hashed
    sha256: str | None = None

    @property
    def listed_as(self) -> tuple[str, int, int]:
        return (self.path, self.size, self.modification_time)


class ChangedLandingFileError(SparkmlopsError):
    """A file ingested before holds other bytes now and ``source.on_changed_file`` is ``fail``."""

    exit_code = 3


# a manifest row's status: read into its batch, or seen and not read, and why
INGESTED = "ingested"
DUPLICATE = "duplicate"  # the same bytes are already in `earlier_batch`
CHANGED_SKIPPED = "changed_skipped"  # a known path with new bytes, on_changed_file: skip
MANIFEST_SCHEMA = (
    f"path string, size long, modification_time long, {BATCH_COLUMN} string, "
    "ingested_at timestamp, content_sha256 string, status string, earlier_batch string"
)
# a file is known by the manifest when a row has its path, size and mtime
_LISTED_AS = ["path", "size", "modification_time"]

# content hashes by (path, size, mtime): one CLI run plans the landing files twice
# (the default batch id, then the ingest), and each file's bytes are read once
_HASHES: dict[tuple[str, int, int], str] = {}


def with_content_hash(spark: SparkSession, file: LandingFile) -> LandingFile:
    """``file`` with the sha256 of its bytes, streamed in the JVM through Hadoop's FileSystem
    (so s3a:, abfss: and dbfs: paths work and no byte passes through Python)."""
    if file.sha256 is not None:
        return file
    if file.listed_as not in _HASHES:
        jvm = spark.sparkContext._jvm
        assert jvm is not None
        hadoop_path = jvm.org.apache.hadoop.fs.Path(file.path)
        fs = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
        stream = fs.open(hadoop_path)
        try:
            digest = jvm.org.apache.commons.codec.digest.DigestUtils.sha256Hex(stream)
        finally:
            stream.close()
        _HASHES[file.listed_as] = str(digest)
    return replace(file, sha256=_HASHES[file.listed_as])


def batch_id_for(files: list[LandingFile]) -> str:
    """A deterministic batch id from the files' paths and content hashes.

    A new modification time alone (a touch, a re-upload of the same bytes) keeps the id.
    """
    unhashed = [f.path for f in files if f.sha256 is None]
    if unhashed:
        raise ValueError(f"batch_id_for needs the files' content hashes; not hashed: {unhashed}")
    lines = sorted(f"{f.path}|{f.sha256}" for f in files)
    return f"b{hashlib.sha256(chr(10).join(lines).encode()).hexdigest()[:12]}"


def landing_batch_id(spark: SparkSession, path: str) -> str:
    """The batch id of all the data files under ``path``."""
    files = list_files(spark, path)
    if not files:
        raise MissingInputError(f"no input files at {path}")
    return batch_id_for([with_content_hash(spark, LandingFile(*f)) for f in files])


def ingested_files(spark: SparkSession, settings: Settings) -> DataFrame | None:
    """The manifest of files already ingested (None before the first batch)."""
    ref = table_ref(settings, "manifest")
    return read_table(spark, ref) if table_exists(spark, ref) else None


@dataclass(frozen=True)
class ManifestIndex:
    """What the manifest knows: listings, whose bytes are in which batch, which paths were read."""

    listed: set[tuple[str, int, int]]
    content: dict[str, str]  # sha256 -> the batch holding those bytes
    paths: dict[str, str]  # path -> the batch that read the path's latest bytes


def manifest_index(spark: SparkSession, settings: Settings) -> ManifestIndex:
    """Index the manifest; rows written before content hashes count by path, size, mtime only."""
    manifest = ingested_files(spark, settings)
    if manifest is None:
        return ManifestIndex(set(), {}, {})

    def optional(name: str) -> Column:
        return (F.col(name) if name in manifest.columns else F.lit(None).cast("string")).alias(name)

    rows = manifest.select(*_LISTED_AS, BATCH_COLUMN, "ingested_at", optional("content_sha256"),
                           optional("status"), optional("earlier_batch")).collect()
    index = ManifestIndex({(r.path, r.size, r.modification_time) for r in rows}, {}, {})
    # later rows win: a path re-ingested names its latest batch
    for r in sorted(rows, key=lambda r: (r.ingested_at or datetime.min, r[BATCH_COLUMN] or "")):
        read_in = r[BATCH_COLUMN] if r.status in (None, INGESTED) else r.earlier_batch
        if read_in is None:
            continue
        index.paths[r.path] = read_in
        if r.content_sha256 is not None and r.status != CHANGED_SKIPPED:
            index.content[r.content_sha256] = read_in
    return index


@dataclass(frozen=True)
class LandingPlan:
    """What an ingest does with the landing files the manifest does not know yet."""

    read: list[LandingFile]  # read into the batch
    duplicates: dict[LandingFile, str | None]  # bytes already read: in this batch (None)
    changed: dict[LandingFile, str]  # known path, new bytes: the batch that read it before


def plan_landing(spark: SparkSession, settings: Settings, path: str) -> LandingPlan:
    """Sort the files under ``path`` by identity: new, same bytes as a file already read, or
    a known path with new bytes (read only with ``source.on_changed_file: reingest``).

    A file whose path, size and mtime are in the manifest is known and not hashed again;
    any other is identified by the sha256 of its bytes.
    """
    index = manifest_index(spark, settings)
    reingest = settings.dataset.source.on_changed_file == "reingest"
    plan = LandingPlan([], {}, {})
    in_batch: set[str] = set()
    for listed in list_files(spark, path):
        if listed in index.listed:
            continue
        file = with_content_hash(spark, LandingFile(*listed))
        assert file.sha256 is not None
        if file.sha256 in index.content or file.sha256 in in_batch:
            plan.duplicates[file] = index.content.get(file.sha256)
            continue
        if file.path in index.paths:
            # a path read before whose hash is unknown (also: a row written before
            # content hashes with another size or mtime) is treated as changed
            plan.changed[file] = index.paths[file.path]
            if not reingest:
                continue
        plan.read.append(file)
        in_batch.add(file.sha256)
    return plan


def check_changed_files(plan: LandingPlan, policy: str) -> None:
    """Stop before anything is written when a file changed and the policy is ``fail``."""
    if not plan.changed or policy != "fail":
        return
    files = ", ".join(f"{f.path} (ingested in batch {batch})"
                      for f, batch in sorted(plan.changed.items(), key=lambda kv: kv[0].path))
    raise ChangedLandingFileError(
        f"landing file(s) changed since they were ingested: {files}; "
        "source.on_changed_file is 'fail': set it to 'skip' (keep the rows already read, "
        "ignore the new bytes) or 'reingest' (read the new bytes into a new batch); "
        "nothing was written")


def log_unread_files(plan: LandingPlan, batch_id: str) -> None:
    """Say which files are not read, and why."""
    for file, holder in sorted(plan.duplicates.items(), key=lambda kv: kv[0].path):
        log.info("%s holds the same bytes as a file of batch %s: not read again",
                 file.path, holder or batch_id)
    for file, earlier in sorted(plan.changed.items(), key=lambda kv: kv[0].path):
        if file in plan.read:
            log.warning("%s changed since batch %s: its new bytes are read into batch %s "
                        "(source.on_changed_file: reingest)", file.path, earlier, batch_id)
        else:
            log.warning("%s changed since batch %s: the new bytes are NOT read "
                        "(source.on_changed_file: skip)", file.path, earlier)


def latest_ingested_batch(spark: SparkSession, settings: Settings) -> str | None:
    """The batch id of the most recent complete ingest (highest bronze version), if any."""
    ref = table_ref(settings, "ingest_log")
    if not table_exists(spark, ref):
        return None
    row = read_table(spark, ref).orderBy(F.col("bronze_version").desc()).first()
    return str(row[BATCH_COLUMN]) if row else None


def default_batch_id(spark: SparkSession, settings: Settings) -> str:
    """The files an ingest would read make the batch; with none, the latest batch again."""
    path = settings.resolve_path(settings.dataset.source.path)
    plan = plan_landing(spark, settings, path)
    if plan.read:
        return batch_id_for(plan.read)
    latest = latest_ingested_batch(spark, settings)
    if latest is None:
        raise MissingInputError(f"no input files at {path}")
    return latest


def record_batch(
    spark: SparkSession,
    settings: Settings,
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
    ingest_log = replace_batch(log_row, table_ref(settings, "ingest_log"), result.batch_id)
    # mergeSchema: a manifest written before content hashes gains the new columns
    written = replace_batch(manifest, table_ref(settings, "manifest"), result.batch_id,
                            merge_schema=True)
    return written, ingest_log


def record_unread_files(
    spark: SparkSession, settings: Settings, plan: LandingPlan, batch_id: str
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
    return insert_new_rows(unread, table_ref(settings, "manifest"), _LISTED_AS)


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

    ``files`` (``read`` of :func:`plan_landing`) limits the batch to those files; without
    it every file under the source path is read.
    """
    dataset = settings.dataset
    path = source_path or settings.resolve_path(dataset.source.path)
    if files is None:
        list_files(spark, path)  # fails with a clear message when the path is missing
    ingested_at = datetime.now().replace(microsecond=0)
    target: str | list[str] = [f.path for f in files] if files else path
    raw = read_landing(spark, dataset.source, dataset.schema_, target)
    parsed = add_audit_columns(raw.withColumn(_ROW_ID, F.monotonically_increasing_id()),
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
            "_reason", CORRUPT_COLUMN, *_POSITION_HELPERS)
        bad = parsed.where(F.col("_reason").isNotNull())
        rows_quarantined = bad.count()
        if rows_quarantined:
            bad = with_source_position(parsed, bad)
        record = F.coalesce(
            F.col(CORRUPT_COLUMN),
            F.to_json(F.struct(*[F.col(c.name) for c in dataset.schema_])),
        )
        quarantined = to_quarantine(bad, "ingest", F.col("_reason"), record)
        q_write = replace_batch(
            quarantined, table_ref(settings, "quarantine"), batch_id,
            extra_predicate=F.col("step") == "ingest", merge_schema=True,
        )
        bronze = replace_batch(good, table_ref(settings, "bronze"), batch_id,
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


_TYPES: dict[str, DataType] = {
    "string": StringType(), "int": IntegerType(), "long": LongType(), "double": DoubleType(),
    "float": FloatType(), "boolean": BooleanType(), "date": DateType(),
    "timestamp": TimestampType(),
}


def _spark_type(name: str) -> DataType:
    return _TYPES[name]
