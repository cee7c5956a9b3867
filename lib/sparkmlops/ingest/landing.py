"""The landing files: listed, hashed and read with the declared schema; the row transforms.

This module reads the landing files (through Hadoop's FileSystem and Spark's readers) and
never a table or the tracker: :mod:`sparkmlops.ingest.step` writes what it finds.
The raw files are read with the schema declared in config (never inferred).
Records Spark cannot parse with that schema (malformed lines, values that do not
cast to the declared type), records with a null in a required column and records
with NaN or Infinity in a double/float column (unless the column sets
``allow_non_finite``) go to quarantine with the reason and the source file; every
other row lands in bronze
with audit columns. Rows in = bronze + quarantine, recorded in the step's run.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
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

from sparkmlops.config import FLOAT_TYPES, ColumnSpec, SourceSettings
from sparkmlops.errors import MissingInputError, ReconciliationError, SparkmlopsError
from sparkmlops.ingest.records import LandingFile
from sparkmlops.quarantine import SOURCE_FILE_COLUMN, SOURCE_OFFSET_COLUMN, SOURCE_ROW_COLUMN
from sparkmlops.spark import session_conf
from sparkmlops.tables import BATCH_COLUMN

log = logging.getLogger(__name__)

CORRUPT_COLUMN = "_corrupt_record"
INGESTED_AT_COLUMN = "_ingested_at"
# helper columns that locate a row in its file; never written to bronze
BLOCK_START = "_pos_block_start"
ROW_INDEX = "_pos_row_index"
ROW_ID = "_pos_row_id"
POSITION_HELPERS = (BLOCK_START, ROW_INDEX, ROW_ID)
# the columns the reader adds to a landing file's own
READER_COLUMNS = (CORRUPT_COLUMN, SOURCE_FILE_COLUMN, *POSITION_HELPERS)


class SchemaMismatchError(SparkmlopsError):
    """A landing file does not match the declared schema (missing column, type change)."""

    exit_code = 3


class MalformedCsvError(SparkmlopsError):
    """A multi-line CSV landing file whose quotes do not pair up: Spark would join records."""

    exit_code = 3


class IngestReconciliationError(ReconciliationError):
    """Rows read != rows in bronze + quarantine: something was lost or doubled."""


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
    row knows its file. A multi-line CSV file whose quotes do not pair up rejects the
    batch too (:func:`check_csv_quoting`).
    """
    # JSON is read by path alone: its files are never opened one by one
    files = path if isinstance(path, list) else (
        [] if source.format == "json" else [p for p, _, _ in list_files(spark, path)])
    if source.format == "csv" and source.options.get("header", "false").lower() == "true":
        by_header = _read_csv_by_header(spark, source, columns, files)
        check_csv_quoting(spark, source, files)
        return by_header
    if source.format == "csv":
        check_csv_quoting(spark, source, files)
    if source.format == "parquet":
        for file in files:
            check_parquet_types(spark, file, columns)
    df = _with_origin(_reader(spark, source, read_schema(columns)).load(path))
    if source.format == "parquet":
        df = df.withColumn(ROW_INDEX, F.col("_metadata.row_index"))
    return rename_to_schema(df, columns, source)


def _with_origin(df: DataFrame) -> DataFrame:
    """The file each row came from and the byte offset of the split that read it."""
    return df.withColumn(SOURCE_FILE_COLUMN, F.col("_metadata.file_path")).withColumn(
        BLOCK_START, F.col("_metadata.file_block_start"))


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
            BLOCK_START, F.lit(None).cast("long"))
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


# one row per broken file: the line its broken record starts on, the line the tokenizer
# stopped on, and what it found
QUOTING_ERRORS = "file string, record_line long, error_line long, problem string"
# Python's csv splits no field longer than this unless told (128 KiB by default)
_FIELD_LIMIT = 2**31 - 1


def check_csv_quoting(spark: SparkSession, source: SourceSettings, files: list[str]) -> None:
    """Reject the batch (exit 3, nothing written) when a multi-line CSV file's quotes do not
    pair up, naming the file and the line of the broken record.

    With ``multiLine`` Spark's parser reads on after a quote that never closes: the lines up
    to the next quote (or the end of the file) become one field, so the records in them
    vanish into a quarantined record or land as one row's text, while rows in still equal
    bronze + quarantine. Without ``multiLine`` a field ends with its line, so nothing is
    joined and nothing is checked here. Each file is tokenized once by Python's ``csv`` in
    strict mode, whole in one task (as Spark reads a multi-line file): a quoted field must
    close, and its closing quote must be followed by the delimiter or a line end. Its cost:
    100 MB of the sample's rows (660k lines) took 7 s, Spark's count of the same multi-line
    file 2.6 s (two busy cores); about half of it is handing the lines to Python.
    """
    options = {k.lower(): v for k, v in source.options.items()}
    if not files or options.get("multiline", "false").lower() != "true":
        return
    dialect = _csv_dialect(options)
    if dialect is None:
        return
    reader = spark.read.format("text")
    if "linesep" in options:
        reader = reader.option("lineSep", options["linesep"])
    # A file must reach its task whole and in order. Spark cuts files into splits of at most
    # min(maxPartitionBytes, max(openCostInBytes, bytes per core)): an open cost above the
    # largest file keeps every file whole and still packs small files into few tasks (one
    # task per file made 15 small files take 9 s instead of 1).
    whole = str(max(_file_size(spark, f) for f in files) + 1)
    split = spark.conf.get("spark.sql.files.maxPartitionBytes") or "128MB"
    with session_conf(spark, "spark.sql.files.openCostInBytes", whole), \
            session_conf(spark, "spark.sql.files.maxPartitionBytes",
                         str(max(int(whole), _bytes(spark, split)))):
        broken = (reader.load(files)
                  .select(F.col("_metadata.file_path").alias("file"),
                          F.col("value").cast("binary").alias("value"))
                  .mapInArrow(_quoting_scan(dialect, options.get("comment"), _codec(options)),
                              QUOTING_ERRORS)
                  .collect())
    if broken:
        first = sorted(broken)[0]
        more = f" ({len(broken) - 1} more file(s) broken)" if len(broken) > 1 else ""
        raise MalformedCsvError(
            f"{first.file}: line {first.record_line}: "
            f"{_quoting_problem(first.problem, first.record_line, first.error_line)}; "
            f"nothing was written{more}")


def _quoting_problem(problem: str, record_line: int, error_line: int) -> str:
    """What a strict tokenizer's complaint means for Spark's multi-line read of the file."""
    if problem == "unexpected end of data":
        return ("a quoted field opens and never closes; Spark would read every line after it "
                "into that field and lose their records")
    if problem.endswith("expected after '\"'") and error_line == record_line:
        return ("a quote inside a quoted field is not escaped (text follows the quote that "
                "would close the field); Spark would split the record's fields wrongly")
    if problem.endswith("expected after '\"'"):
        return (f"a quoted field does not close before a quote on line {error_line} that text "
                f"follows; Spark would read lines {record_line}-{error_line} as one record "
                "and lose the records between")
    return f"{problem} (line {error_line})"


def _csv_dialect(options: dict[str, str]) -> dict[str, Any] | None:
    """Python csv arguments for the source's CSV options; None when they cannot say the same
    (a delimiter of several characters, no quote character, a non-ASCII-compatible encoding:
    Spark's text reader, which feeds the check, decodes UTF-8)."""
    delimiter = options.get("sep", options.get("delimiter", ","))
    quote = options.get("quote", '"')
    escape = options.get("escape", "\\")
    encoding = options.get("encoding", options.get("charset", "UTF-8")).lower().replace("-", "")
    if len(delimiter) != 1 or len(quote) != 1 or quote == "\u0000" or len(escape) > 1 \
            or encoding.startswith(("utf16", "utf32", "ucs")):
        log.warning("CSV options %s: the quoting of multi-line files is not checked", options)
        return None
    return {"delimiter": delimiter, "quotechar": quote, "doublequote": True, "strict": True,
            "escapechar": escape if escape and escape != quote else None}


def _file_size(spark: SparkSession, file: str) -> int:
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    hadoop_path = jvm.org.apache.hadoop.fs.Path(file)
    fs = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return int(fs.getFileStatus(hadoop_path).getLen())


def _bytes(spark: SparkSession, size: str) -> int:
    """A Spark size setting ("128MB", "134217728b") in bytes."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    return int(jvm.org.apache.spark.network.util.JavaUtils.byteStringAsBytes(size))


def _codec(options: dict[str, str]) -> str:
    """The Python codec of the source's encoding (UTF-8 when Python does not know it)."""
    encoding = options.get("encoding", options.get("charset", "UTF-8"))
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        return "utf-8"


def _quoting_scan(
    dialect: dict[str, Any], comment: str | None, codec: str
) -> Callable[[Iterable[Any]], Iterator[Any]]:
    """The mapInArrow function: (file, line bytes) rows in file order → a row per broken file.

    Lines come as bytes: Spark's text reader does not check them, and an invalid byte only
    needs to decode to something that is neither a quote nor a delimiter."""
    def scan(batches: Iterable[Any]) -> Iterator[Any]:
        import pyarrow as pa

        csv.field_size_limit(_FIELD_LIMIT)

        def rows() -> Iterator[tuple[str, str]]:
            for batch in batches:
                texts = [v.decode(codec, "replace") for v in batch.column("value").to_pylist()]
                yield from zip(batch.column("file").to_pylist(), texts, strict=True)

        broken = []
        for file, lines in itertools.groupby(rows(), key=lambda row: row[0]):
            # a comment line (Spark skips it) is read as an empty one, so lines keep their numbers
            texts = ("" if comment and text.startswith(comment) else text for _, text in lines)
            error = first_quoting_error(texts, dialect)
            if error is not None:
                broken.append({"file": file, "record_line": error[0], "error_line": error[1],
                               "problem": error[2]})
        yield pa.RecordBatch.from_pylist(broken, schema=pa.schema(
            [("file", pa.string()), ("record_line", pa.int64()), ("error_line", pa.int64()),
             ("problem", pa.string())]))

    return scan


def first_quoting_error(
    lines: Iterable[str], dialect: dict[str, Any]
) -> tuple[int, int, str] | None:
    """(line the broken record starts on, line the tokenizer stopped on, its message) of the
    first record of ``lines`` (a file's lines, header included) whose quotes do not pair up."""
    reader = csv.reader((line + "\n" for line in lines), **dialect)
    record_line = 1
    try:
        for _ in reader:
            record_line = reader.line_num + 1
    except csv.Error as error:
        return record_line, reader.line_num, str(error)
    return None


def check_header(
    file: str, header: list[str], columns: list[ColumnSpec], evolution: str
) -> None:
    """Reject a file (exit 3, before anything is written) whose header names a column twice or
    a reader column, lacks a declared column that may not be absent, or holds an undeclared
    column that policy ``fail`` refuses or that would land under a name bronze already has.

    Spark resolves column names case-insensitively, so names are compared that way: 'Sex' and
    'sex' are one column to it, and an undeclared 'Culmen_Length_MM' would land as
    ``culmen_length_mm`` beside the declared column of that name.
    """
    spellings: dict[str, list[str]] = {}
    for name in header:
        spellings.setdefault(name.lower(), []).append(name)
    duplicated = sorted({n for names in spellings.values() if len(names) > 1 for n in names})
    if duplicated:
        raise SchemaMismatchError(
            f"{file}: duplicate column(s) {duplicated} in the header (Spark compares column "
            "names case-insensitively); nothing was written")
    reserved = sorted(h for h in header if h.lower() in {r.lower() for r in READER_COLUMNS})
    if reserved:
        raise SchemaMismatchError(
            f"{file}: column(s) {reserved} in the header carry a name the reader gives its own "
            "columns; rename them in the file; nothing was written")
    declared = {c.source_name for c in columns}
    undeclared = [h for h in header if h not in declared]
    missing = [c for c in columns if c.source_name not in header and not c.may_be_absent]
    if missing:
        raise SchemaMismatchError(_missing_columns(file, "header", missing, undeclared))
    if undeclared and evolution == "fail":
        raise SchemaMismatchError(
            f"{file}: undeclared column(s) {undeclared} and source.schema_evolution is 'fail'; "
            "nothing was written")
    if evolution == "add_new_columns":
        _check_added_names(file, undeclared, columns)


def _missing_columns(
    file: str, where: str, missing: list[ColumnSpec], undeclared: list[str]
) -> str:
    """The one line naming the declared columns a file lacks (and what it has instead)."""
    required = [c.source_name for c in missing if not c.nullable]
    optional = [c.source_name for c in missing if c.nullable]
    named = " and ".join([*([f"required column(s) {required}"] if required else []),
                          *([f"column(s) {optional}"] if optional else [])])
    instead = f" (it has undeclared column(s) {undeclared})" if undeclared else ""
    absent = (f"; set may_be_absent: true on {', '.join(c.name for c in missing if c.nullable)}"
              " if files may lack it" if optional else "")
    return f"{file}: {named} missing from the {where}{instead}{absent}; nothing was written"


def _check_added_names(file: str, undeclared: list[str], columns: list[ColumnSpec]) -> None:
    """Reject an undeclared column whose bronze name is taken (by a declared column or by
    another undeclared one): Spark would refuse the ambiguous name, or write one over the
    other."""
    taken = {c.name.lower(): f"the name of declared column {c.name!r} (header "
                             f"{c.source_name!r})" for c in columns}
    for header_name in undeclared:
        name = new_column_name(header_name)
        holder = taken.get(name.lower())
        if holder is not None:
            raise SchemaMismatchError(
                f"{file}: undeclared column {header_name!r} would be added to bronze as "
                f"{name!r}, {holder}; Spark compares column names case-insensitively; "
                "nothing was written")
        taken[name.lower()] = f"as is undeclared column {header_name!r}"


def check_parquet_types(spark: SparkSession, file: str, columns: list[ColumnSpec]) -> None:
    """Reject a Parquet file that lacks a declared column that may not be absent, or whose
    column types differ from the declared ones.

    Spark's Parquet reader matches columns case-insensitively, and so does this check.
    """
    actual = {f.name.lower(): f for f in spark.read.parquet(file).schema.fields}
    declared = {c.source_name.lower() for c in columns}
    missing = [c for c in columns
               if c.source_name.lower() not in actual and not c.may_be_absent]
    if missing:
        undeclared = [f.name for key, f in actual.items() if key not in declared]
        raise SchemaMismatchError(_missing_columns(file, "file's schema", missing, undeclared))
    for column in columns:
        found = actual.get(column.source_name.lower())
        if found is not None and found.dataType != _spark_type(column.type):
            raise SchemaMismatchError(
                f"{file}: column {column.source_name!r} is {found.dataType.simpleString()}, "
                f"declared {column.type}; a type change is rejected and nothing was written")


def new_column_name(source_name: str) -> str:
    """A Delta-safe snake_case name for an undeclared source column."""
    name = re.sub(r"[^0-9a-zA-Z]+", "_", source_name).strip("_").lower()
    return name if name and not name[0].isdigit() else f"c_{name}"


def rename_to_schema(
    df: DataFrame, columns: list[ColumnSpec], source: SourceSettings | None = None
) -> DataFrame:
    """Declared columns by their declared names (null when one that may be absent is),
    undeclared ones (``add_new_columns``) in snake_case, then the reader's own columns."""
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
                 if n not in declared and n not in READER_COLUMNS]
    audit = [F.col(n) for n in df.columns if n in READER_COLUMNS]
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


def with_source_position(rows: DataFrame, subset: DataFrame) -> DataFrame:
    """Add each ``subset`` row's offset and record number in its file.

    ``rows`` is every row read (with ``_pos_row_id`` from
    ``monotonically_increasing_id`` on the scan): a file split's rows are
    consecutive within one Spark partition, so a row's number in its split is its
    id minus the split's first id. Parquet gives the exact row index instead.
    """
    if ROW_INDEX in subset.columns:
        return subset.withColumn(SOURCE_OFFSET_COLUMN, F.lit(0).cast("long")).withColumn(
            SOURCE_ROW_COLUMN, F.col(ROW_INDEX) + 1)
    split = [SOURCE_FILE_COLUMN, BLOCK_START]
    first = rows.groupBy(*split).agg(F.min(ROW_ID).alias("_first_row_id"))
    return (
        subset.join(F.broadcast(first), split, "left")
        .withColumn(SOURCE_OFFSET_COLUMN, F.col(BLOCK_START))
        .withColumn(SOURCE_ROW_COLUMN, F.col(ROW_ID) - F.col("_first_row_id") + 1)
        .drop("_first_row_id")
    )


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


def hadoop_exists(spark: SparkSession) -> Callable[[str], bool]:
    """``exists(path)`` through Hadoop's FileSystem, each path asked once."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    seen: dict[str, bool] = {}

    def exists(path: str) -> bool:
        if path not in seen:
            hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
            seen[path] = bool(hadoop_path.getFileSystem(conf).exists(hadoop_path))
        return seen[path]

    return exists


_TYPES: dict[str, DataType] = {
    "string": StringType(), "int": IntegerType(), "long": LongType(), "double": DoubleType(),
    "float": FloatType(), "boolean": BooleanType(), "date": DateType(),
    "timestamp": TimestampType(),
}


def _spark_type(name: str) -> DataType:
    return _TYPES[name]
