"""Delta table naming, reads, atomic idempotent writes and versions.

A table is known as ``<layer>.<dataset>`` (``bronze.penguins``: the name in MLflow
lineage, logs and messages). Where it lives depends on ``storage``:

- path mode (the local default): stored at ``<storage.root>/<layer>/<dataset>``,
  addressed by that path;
- catalog mode (``storage.catalog`` + ``storage.schema``): the metastore table
  ``<catalog>.<schema>.<layer>_<dataset>`` (gold: ``..gold_<dataset>_features``),
  addressed by that name only. It is a *managed* table: Unity Catalog users expect
  the metastore to own storage, lifecycle and governance of the tables it lists
  (and UC-only features such as predictive optimisation apply to managed tables
  only), so a path is never needed. With ``storage.external: true`` the table is
  created at ``<root>/<layer>/<dataset>`` as an *external* table of that name, for
  a deployment whose data must sit in a given bucket; it is still read and written
  by name. (Path-stored tables registered afterwards with ``CREATE TABLE ...
  LOCATION`` were rejected: two ways to address one table, and a write by path
  bypasses the catalog's permissions.)

:class:`TableRef` hides the difference (``exists``, ``read``, ``delta_table``,
``save``), so no caller branches on the mode. The writes of a batch, one Delta
commit each, are in ``sparkmlops.writes``.
"""

from __future__ import annotations

import logging
import re
import types
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Union, get_args, get_origin, get_type_hints

import pyspark.sql.functions as F
from delta.tables import DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, DataFrameWriter, SparkSession

from sparkmlops.config import Settings
from sparkmlops.errors import (
    ConfigError,
    InvalidBatchIdError,
    MissingInputError,
    VersionUnavailableError,
)

log = logging.getLogger(__name__)

BATCH_COLUMN = "_batch_id"
# A batch id names a Delta predicate value, an MLflow tag and a report folder: letters,
# digits and ``._-``, starting with a letter or digit (so never ``..`` or a hidden
# name), at most 128 characters.
BATCH_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


_RECORD_TYPES: dict[type, str] = {str: "string", float: "double", int: "long",
                                  datetime: "timestamp"}


def record_column(field_name: str) -> str:
    """The table column of a record's field: ``batch_id`` is the audit ``_batch_id``."""
    return BATCH_COLUMN if field_name == "batch_id" else field_name


def record_schema(record: type) -> str:
    """The Spark schema (DDL) of a table whose rows are the dataclass ``record`` (its
    fields in order: str, float, int or datetime, each possibly ``| None``): a table's
    row is declared once (``monitoring``, ``quality_metrics``)."""
    hints = get_type_hints(record)
    return ", ".join(f"{record_column(f.name)} {_record_type(hints[f.name])}"
                     for f in fields(record))


def _record_type(hint: Any) -> str:
    if get_origin(hint) in (Union, types.UnionType):  # ``float | None``: a nullable double
        (hint,) = [a for a in get_args(hint) if a is not type(None)]
    return _RECORD_TYPES[hint]


def check_batch_id(batch_id: str) -> str:
    """Return ``batch_id`` if it is a valid batch id, else raise :class:`InvalidBatchIdError`.

    >>> check_batch_id("b2e41c0a9f3d1")
    'b2e41c0a9f3d1'
    """
    if not isinstance(batch_id, str) or BATCH_ID_PATTERN.fullmatch(batch_id) is None:
        shown = repr(batch_id)
        shown = shown if len(shown) <= 60 else f"{shown[:57]}..."
        raise InvalidBatchIdError(
            f"batch id {shown} is not valid: use 1-128 ASCII letters, digits, '.', '_' or '-', "
            "starting with a letter or digit; nothing was written")
    return batch_id


def batch_condition(batch_id: str, column: str = BATCH_COLUMN) -> Column:
    """``column = batch_id`` as a Column (the id checked first): no SQL text is pasted."""
    return F.col(column) == F.lit(check_batch_id(batch_id))


# Delta tags a commit with this session setting where a writer takes no option
# (MERGE, and the CREATE TABLE AS SELECT of saveAsTable, which ignores the option)
USER_METADATA_CONF = "spark.databricks.delta.commitInfo.userMetadata"


@dataclass(frozen=True)
class TableRef:
    """One Delta table: its ``layer.name``, and how it is addressed.

    ``table_name`` (catalog mode) is the metastore name it is read and written by;
    ``path`` is its storage path (path mode, or an external table's location; None
    for a managed table). Use the methods, never ``path`` directly, to reach it.
    """

    layer: str
    name: str
    path: str | None
    table_name: str | None = None

    @property
    def fqn(self) -> str:
        """``layer.name``: the table's name in lineage, logs and messages."""
        return f"{self.layer}.{self.name}"

    @property
    def address(self) -> str:
        """What the table is addressed by: its metastore name, else its path."""
        return self.table_name or str(self.path)

    @property
    def described(self) -> str:
        """``bronze.penguins (main.ml.bronze_penguins)`` for messages."""
        return f"{self.fqn} ({self.address})"

    @property
    def _storage_path(self) -> str:
        if self.path is None:  # a managed table: table_ref never makes one without a name
            raise ValueError(f"{self.fqn} has neither a table name nor a path")
        return self.path

    def exists(self, spark: SparkSession) -> bool:
        if self.table_name is not None:
            return bool(spark.catalog.tableExists(self.table_name))
        return bool(DeltaTable.isDeltaTable(spark, self._storage_path))

    def delta_table(self, spark: SparkSession) -> DeltaTable:
        if self.table_name is not None:
            return DeltaTable.forName(spark, self.table_name)
        return DeltaTable.forPath(spark, self._storage_path)

    def read(self, spark: SparkSession, *, version: int | None = None,
             timestamp: str | None = None) -> DataFrame:
        """The table, as of ``version`` or ``timestamp`` when given (time travel)."""
        reader = spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        if timestamp is not None:
            reader = reader.option("timestampAsOf", timestamp)
        if self.table_name is not None:
            return reader.table(self.table_name)
        return reader.load(self._storage_path)

    def save(self, writer: DataFrameWriter, *, create: bool) -> None:
        """Run ``writer`` (mode and options set) against this table.

        ``create``: the table does not exist yet; in catalog mode it is created by
        name (at ``path`` when external) and the write fails, rather than appends,
        if another writer created it meanwhile (a conflict the caller retries).
        """
        if self.table_name is None:
            writer.save(self._storage_path)
            return
        if create:
            if self.path is not None:
                writer = writer.option("path", self.path)
            writer = writer.mode("errorifexists")
        writer.saveAsTable(self.table_name)


@dataclass(frozen=True)
class TableWrite:
    """What one write committed: the table, its new version and the rows written."""

    table: TableRef
    version: int
    rows: int


def table_ref(settings: Settings, layer: str, name: str | None = None) -> TableRef:
    """The table ``layer.name`` (name defaults to the dataset's) of these settings.

    In catalog mode (``storage.catalog: main``, ``storage.schema: ml``) the gold table
    ``table_ref(settings, "gold", "penguins_features")`` is named
    ``main.ml.gold_penguins_features``; in path mode it is at
    ``<storage.root>/gold/penguins_features``.
    """
    name = name or settings.dataset.name
    storage = settings.storage
    path: str | None = f"{settings.resolve_path(storage.root).rstrip('/')}/{layer}/{name}"
    if not storage.catalog_mode:
        return TableRef(layer=layer, name=name, path=path)
    # layer and dataset name are identifiers, so the joined name is one too
    table_name = f"{storage.catalog}.{storage.schema_}.{layer}_{name}"
    return TableRef(layer=layer, name=name, path=path if storage.external else None,
                    table_name=table_name)


@dataclass(frozen=True)
class DatasetTables:
    """The Delta tables one dataset's jobs write, one attribute per layer.

    A step takes what it reads and writes from here (``tables.bronze``,
    ``tables.gold``) rather than naming layers itself; iterating gives every table
    in pipeline order.
    """

    bronze: TableRef
    quarantine: TableRef
    manifest: TableRef
    ingest_log: TableRef
    silver: TableRef
    validation_results: TableRef
    quality_metrics: TableRef
    gold: TableRef
    predictions: TableRef
    monitoring: TableRef

    def __iter__(self) -> Iterator[TableRef]:
        return (getattr(self, layer) for layer in DATASET_LAYERS)

    def layer(self, layer: str) -> TableRef:
        """The table of ``layer`` (``bronze``, ``gold``, ...), for a layer named at run time."""
        if layer not in DATASET_LAYERS:
            raise ConfigError(
                f"unknown table layer {layer!r}; known: {', '.join(DATASET_LAYERS)}")
        ref: TableRef = getattr(self, layer)
        return ref


# every table a dataset's jobs write, in pipeline order
DATASET_LAYERS = tuple(f.name for f in fields(DatasetTables))


def dataset_tables(settings: Settings) -> DatasetTables:
    """The Delta tables a dataset's pipeline writes (gold is ``<dataset>_features``)."""
    return DatasetTables(**{
        layer: table_ref(settings, layer,
                         f"{settings.dataset.name}_features" if layer == "gold" else None)
        for layer in DATASET_LAYERS
    })


@dataclass(frozen=True)
class CrowdTables:
    """The Delta tables of a dataset's crowd labels (``crowd`` in its config): the
    judgments as they landed (``bronze.<dataset>_annotations``, with their own manifest and
    ingest log; refused ones go to the dataset's quarantine), and what the labels stage
    makes of them: accepted ``labels``, ``needs_review`` and ``worker_quality``."""

    annotations: TableRef
    manifest: TableRef
    ingest_log: TableRef
    labels: TableRef
    needs_review: TableRef
    worker_quality: TableRef

    def __iter__(self) -> Iterator[TableRef]:
        return (getattr(self, f.name) for f in fields(self))


def crowd_tables(settings: Settings) -> CrowdTables:
    """The crowd-label tables of the dataset (whether or not it configures ``crowd``)."""
    annotations = f"{settings.dataset.name}_annotations"
    return CrowdTables(
        annotations=table_ref(settings, "bronze", annotations),
        manifest=table_ref(settings, "manifest", annotations),
        ingest_log=table_ref(settings, "ingest_log", annotations),
        labels=table_ref(settings, "labels"),
        needs_review=table_ref(settings, "needs_review"),
        worker_quality=table_ref(settings, "worker_quality"),
    )


MODEL_EVENTS_LAYER = "model_events"
# Delta refuses UPDATE, DELETE and any MERGE that changes a row of an append-only table
APPEND_ONLY = {"delta.appendOnly": "true"}


def model_events_table(settings: Settings) -> TableRef:
    """``model_events.<dataset>``: the audit trail of the dataset's model, one row per
    registration, alias move, gate decision and rollback (``sparkmlops.model_events``).

    Not one of :class:`DatasetTables`: no batch writes it (it is appended to, never
    replaced, updated or deleted: created with :data:`APPEND_ONLY`), and ``maintain``
    leaves it alone.
    """
    return table_ref(settings, MODEL_EVENTS_LAYER)


def table_exists(spark: SparkSession, ref: TableRef) -> bool:
    return ref.exists(spark)


def current_version(spark: SparkSession, ref: TableRef) -> int | None:
    """The table's latest version, or None when it does not exist yet."""
    if not table_exists(spark, ref):
        return None
    row = ref.delta_table(spark).history(1).select("version").first()
    return int(row["version"]) if row else None


def version_or_current(spark: SparkSession, ref: TableRef, version: int | None) -> int | None:
    """``version`` when the caller names one (the pipeline hands each step the version the
    previous step wrote), else the table's latest (a step run on its own)."""
    return version if version is not None else current_version(spark, ref)


def ingest_order(spark: SparkSession, ingest_log: TableRef) -> list[str]:
    """Every ingested batch id, oldest first: ordered by the bronze version its ingest
    committed (later ingests have higher versions, never ties)."""
    rows = read_table(spark, ingest_log).select(BATCH_COLUMN, "bronze_version").collect()
    return [r[BATCH_COLUMN] for r in sorted(rows, key=lambda r: r["bronze_version"])]


def read_table(spark: SparkSession, ref: TableRef, version: int | None = None) -> DataFrame:
    """Read a table, as of ``version`` when given (time travel).

    Raises:
        MissingInputError: the table does not exist.
        VersionUnavailableError: ``version`` is not one time travel can read (never
            written, gone from the log, or its data files vacuumed); the message names
            the retention that removed it.
    """
    if not table_exists(spark, ref):
        raise MissingInputError(f"table {ref.fqn} does not exist at {ref.address}")
    if version is None:
        return ref.read(spark)
    latest = current_version(spark, ref) or 0
    if not 0 <= version <= latest:
        raise VersionUnavailableError(
            f"table {ref.fqn} has no version {version}; the latest is v{latest}")
    try:
        frame = ref.read(spark, version=version)
    except AnalysisException as exc:
        gone = unreadable_version(spark, ref, exc, as_of=f"v{version}", latest=latest)
        if gone is None:
            raise
        raise gone from None
    if version < latest:
        require_data_files(spark, ref, frame, as_of=f"v{version}", after=version, latest=latest)
    return frame


# Delta 4.4's conditions for a version its log no longer holds, and for one older than
# the table's delta.deletedFileRetentionDuration (refused before any file is opened)
LOG_EXPIRED = "DELTA_VERSION_NOT_FOUND"
BEYOND_FILE_RETENTION = "DELTA_UNSUPPORTED_TIME_TRAVEL_BEYOND_DELETED_FILE_RETENTION_DURATION"
LOG_RETENTION = ("delta.logRetentionDuration", "interval 30 days")
FILE_RETENTION = ("delta.deletedFileRetentionDuration", "interval 1 week")


def unreadable_version(
    spark: SparkSession, ref: TableRef, exc: AnalysisException, *, as_of: str, latest: int
) -> VersionUnavailableError | None:
    """The one-line error for Delta's refusal to time travel to ``as_of`` (None when
    ``exc`` is not one of those refusals)."""
    condition = exc.getCondition() or ""
    reason = (str(exc).splitlines() or [""])[0]
    if condition == LOG_EXPIRED:
        return VersionUnavailableError(
            f"table {ref.fqn} {as_of} is gone from the table's log, which keeps "
            f"{_retention(spark, ref, LOG_RETENTION)}; the latest is v{latest} ({reason})")
    if condition == BEYOND_FILE_RETENTION:
        return VersionUnavailableError(
            f"table {ref.fqn} {as_of} is older than {_retention(spark, ref, FILE_RETENTION)}, "
            f"so VACUUM may have deleted its files; the latest is v{latest} ({reason})")
    return None


def require_data_files(
    spark: SparkSession, ref: TableRef, frame: DataFrame, *, as_of: str, after: int | None,
    latest: int,
) -> None:
    """Raise VersionUnavailableError when a data file ``frame`` (an older version) reads is gone.

    Delta resolves a version whose files VACUUM deleted, and its read fails only later,
    in a task, with FAILED_READ_FILE.FILE_NOT_EXIST and about 330 lines of Java trace.
    VACUUM never deletes a file the latest version reads, so only the others are
    checked: one existence call each, stopping at the first missing.
    """
    current = set(ref.read(spark).inputFiles())
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    fs = None
    for uri in frame.inputFiles():
        if uri in current:
            continue
        path = jvm.org.apache.hadoop.fs.Path(uri)
        fs = fs or path.getFileSystem(conf)
        if not fs.exists(path):
            raise VersionUnavailableError(
                f"table {ref.fqn} {as_of} was vacuumed: {_vacuum_of(spark, ref, after)}; "
                f"the table keeps removed files for {_retention(spark, ref, FILE_RETENTION)}; "
                f"the latest is v{latest}")


def _retention(spark: SparkSession, ref: TableRef, setting: tuple[str, str]) -> str:
    """``delta.logRetentionDuration = interval 30 days (Delta's default)``."""
    key, default = setting
    row = ref.delta_table(spark).detail().select("properties").first()
    value = (row["properties"] or {}).get(key) if row else None
    return f"{key} = {value}" if value else f"{key} = {default} (Delta's default)"


def _vacuum_of(spark: SparkSession, ref: TableRef, after: int | None) -> str:
    """Which VACUUM deleted files after version ``after``, and with what retention."""
    vacuums = ref.delta_table(spark).history().where(F.col("operation") == "VACUUM START")
    if after is not None:
        vacuums = vacuums.where(F.col("version") > after)
    for row in vacuums.orderBy("version").collect():
        metrics = row["operationMetrics"] or {}
        if int(metrics.get("numFilesToDelete") or 0) == 0:
            continue
        params = row["operationParameters"] or {}
        millis = params.get("specifiedRetentionMillis") or params.get("defaultRetentionMillis")
        retention = f"a retention of {int(millis) / 3_600_000:g} h" if millis else "its retention"
        return (f"its data files were deleted by the VACUUM of v{row['version']} "
                f"({row['timestamp']:%Y-%m-%d %H:%M:%S}) with {retention}")
    return "its data files are gone, and the table's history shows no VACUUM that deleted any"


def require_schema(spark: SparkSession, ref: TableRef) -> None:
    """Fail with one line when a catalog-mode table's schema does not exist.

    The platform never creates schemas: on Unity Catalog that takes a privilege a
    job should not hold, and a misspelt schema must not become a new one.
    """
    if ref.table_name is None:
        return
    schema = ref.table_name.rsplit(".", 1)[0]
    if not spark.catalog.databaseExists(schema):
        raise MissingInputError(
            f"schema {schema} does not exist: create it (CREATE SCHEMA {schema}) or set "
            "storage.catalog / storage.schema to an existing one")


def read_batch(
    spark: SparkSession, ref: TableRef, batch_id: str, version: int | None = None
) -> DataFrame:
    """The rows of one batch of a table (as of ``version`` when given)."""
    return read_table(spark, ref, version).where(batch_condition(batch_id))
