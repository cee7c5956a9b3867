"""Atomic, idempotent Delta writes of a batch: one commit per table, retried on conflict.

A batch is written with ``replaceWhere`` on its batch id (``replace_batch``) or
merged on its business keys (``upsert_batch``), so re-running a batch replaces
exactly that batch and never doubles it, and a killed job leaves the previous
version in place. Concurrent writers to one table retry Delta's write conflicts.
"""

from __future__ import annotations

import logging
import operator
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import reduce

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame, SparkSession

from sparkmlops.config import WriteSettings
from sparkmlops.errors import MissingInputError
from sparkmlops.spark import session_conf
from sparkmlops.tables import (
    BATCH_COLUMN,
    USER_METADATA_CONF,
    TableRef,
    TableWrite,
    batch_condition,
    read_batch,
    require_schema,
    table_exists,
)

log = logging.getLogger(__name__)


def replace_batch(
    df: DataFrame,
    ref: TableRef,
    batch_id: str,
    *,
    extra_predicate: Column | None = None,
    merge_schema: bool = False,
    partition_by: list[str] | None = None,
) -> TableWrite:
    """Write ``df`` as the whole content of ``batch_id`` in one atomic commit.

    Rows of other batches are untouched; re-running the same batch replaces it.
    ``df`` must carry ``_batch_id`` = ``batch_id`` (Delta checks the predicate).
    ``extra_predicate`` narrows what is replaced (``F.col("step") == "ingest"``).
    """
    predicate = batch_condition(batch_id)
    if extra_predicate is not None:
        predicate = predicate & extra_predicate
    return replace_where(df, ref, predicate, merge_schema=merge_schema,
                         partition_by=partition_by)


def replace_where(
    df: DataFrame, ref: TableRef, predicate: Column, *, attempts: int = 5,
    merge_schema: bool = False, partition_by: list[str] | None = None,
) -> TableWrite:
    """Atomically replace the rows matching ``predicate`` with ``df`` (create if missing).

    ``predicate`` is a Column built with the Column API; Delta's ``replaceWhere``
    takes SQL text, so Spark itself renders it (:func:`predicate_sql`). Delta
    rejects the commit if ``df`` holds a row outside ``predicate``. A conflict
    with a concurrent writer (Delta's optimistic concurrency) is retried: replacing
    the same predicate again is idempotent, so a retry cannot double a row.
    ``merge_schema`` lets new nullable columns into the table (never a type change).
    ``partition_by`` partitions a table this write creates (ignored afterwards).
    """
    spark = df.sparkSession
    predicate_text = predicate_sql(spark, predicate)

    def write(token: str) -> None:
        writer = df.write.format("delta").option("userMetadata", token)
        if merge_schema:
            writer = writer.option("mergeSchema", "true")
        create = not table_exists(spark, ref)
        if not create:
            writer = writer.mode("overwrite").option("replaceWhere", predicate_text)
        else:
            require_schema(spark, ref)
            writer = writer.mode("append")
            partitions = [c for c in partition_by or [] if c in df.columns]
            if partitions:
                writer = writer.partitionBy(*partitions)
        with session_conf(spark, USER_METADATA_CONF, token):
            ref.save(writer, create=create)

    return _commit_with_retries(spark, ref, write, attempts)[0]


@dataclass(frozen=True)
class MergeWrite(TableWrite):
    """A MERGE's commit: ``rows`` = the batch's rows now in the table (inserted + updated)."""

    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    # source rows that lost to a newer record of the same key already in the table
    stale: int = 0


def upsert_batch(
    df: DataFrame,
    ref: TableRef,
    batch_id: str,
    keys: list[str],
    *,
    order_by: str | None = None,
    merge_schema: bool = False,
    partition_by: list[str] | None = None,
    attempts: int = 5,
) -> MergeWrite:
    """MERGE one batch into a table that holds one row per business key, in one commit.

    ``df`` must hold at most one row per key (see :func:`rank_per_key`). A key
    not in the table is inserted; a key in the table takes the batch's row when
    ``order_by`` is not older (without ``order_by``: always), so a later record
    wins and an older, late-arriving one is counted as stale; rows the table holds
    for this batch that the batch no longer has are deleted. Re-running the batch
    therefore changes nothing, and a retry after a write conflict is safe. A table
    this creates is written as the batch (plain append).
    """
    spark = df.sparkSession
    if not table_exists(spark, ref):
        created = replace_batch(df, ref, batch_id, merge_schema=merge_schema,
                                partition_by=partition_by)
        return MergeWrite(created.table, created.version, created.rows, inserted=created.rows)
    def t(name: str) -> Column:
        return F.col(f"t.`{name}`")

    def s(name: str) -> Column:
        return F.col(f"s.`{name}`")

    on = reduce(operator.and_, [t(k).eqNullSafe(s(k)) for k in keys])
    data_columns = [c for c in df.columns if c not in keys]
    update = reduce(operator.or_, [~t(c).eqNullSafe(s(c)) for c in data_columns], F.lit(False))
    if order_by is not None:
        newer = (t(BATCH_COLUMN) == s(BATCH_COLUMN)) | t(order_by).isNull() \
            | (s(order_by) >= t(order_by))
        update = newer & update
    in_batch = batch_condition(batch_id, f"t.{BATCH_COLUMN}")

    def merge(token: str) -> None:
        builder = ref.delta_table(spark).alias("t").merge(df.alias("s"), on)
        if merge_schema:
            builder = builder.withSchemaEvolution()
        builder = (
            builder.whenMatchedUpdateAll(condition=update)
            .whenNotMatchedInsertAll()
            .whenNotMatchedBySourceDelete(condition=in_batch)
        )
        with session_conf(spark, USER_METADATA_CONF, token):
            builder.execute()

    committed, metrics = _commit_with_retries(spark, ref, merge, attempts)
    inserted = int(metrics.get("numTargetRowsInserted", 0))
    updated = int(metrics.get("numTargetRowsUpdated", 0))
    deleted = int(metrics.get("numTargetRowsDeleted", 0))
    # Delta makes no commit when nothing changes (a re-run): count the source then
    source = int(metrics["numSourceRows"]) if "numSourceRows" in metrics else df.count()
    matched_unchanged = _batch_rows(spark, ref, batch_id, committed.version) - inserted - updated
    stale = source - inserted - updated - matched_unchanged
    log.info("merged batch %s into %s v%s: %d inserted, %d updated, %d deleted, %d stale",
             batch_id, ref.fqn, committed.version, inserted, updated, deleted, stale)
    return MergeWrite(committed.table, committed.version, inserted + updated + matched_unchanged,
                      inserted=inserted, updated=updated, deleted=deleted, stale=stale)


def _batch_rows(spark: SparkSession, ref: TableRef, batch_id: str, version: int) -> int:
    return read_batch(spark, ref, batch_id, version).count()


def insert_new_rows(df: DataFrame, ref: TableRef, on: list[str], *, attempts: int = 5
                    ) -> TableWrite:
    """Insert the rows of ``df`` whose ``on`` columns match no row of the table, in one commit.

    An insert-only MERGE (new columns merged into the schema): writing the same rows
    again changes nothing. The condition is built from Columns, never from text.
    """
    spark = df.sparkSession
    if not table_exists(spark, ref):
        def append(token: str) -> None:
            require_schema(spark, ref)
            writer = df.write.format("delta").option("userMetadata", token).mode("append")
            with session_conf(spark, USER_METADATA_CONF, token):
                ref.save(writer, create=True)

        return _commit_with_retries(spark, ref, append, attempts)[0]
    condition = reduce(operator.and_, [F.col(f"t.`{c}`").eqNullSafe(F.col(f"s.`{c}`"))
                                       for c in on])

    def merge(token: str) -> None:
        builder = (ref.delta_table(spark).alias("t").merge(df.alias("s"), condition)
                   .withSchemaEvolution().whenNotMatchedInsertAll())
        with session_conf(spark, USER_METADATA_CONF, token):
            builder.execute()

    committed, metrics = _commit_with_retries(spark, ref, merge, attempts)
    return replace(committed, rows=int(metrics.get("numTargetRowsInserted", 0)))


def append_rows(
    df: DataFrame, ref: TableRef, *, properties: dict[str, str] | None = None, attempts: int = 5
) -> TableWrite:
    """Append ``df`` to the table in one commit: a blind append, which reads, updates and
    deletes no row of the table, for a table that only grows (``model_events``).

    The write that creates the table gives it the table ``properties``
    (``{"delta.appendOnly": "true"}``: Delta then refuses every UPDATE, DELETE and MERGE
    that would change a row): Delta takes the ``delta.*`` options of the writer that
    creates a table as its properties, by path and by name alike (``DeltaTableBuilder``
    was not used: it parses a name of at most two parts, so ``main.ml.model_events_x``
    failed with PARSE_SYNTAX_ERROR).
    """
    spark = df.sparkSession

    def append(token: str) -> None:
        writer = df.write.format("delta").option("userMetadata", token).mode("append")
        create = not table_exists(spark, ref)
        if create:
            require_schema(spark, ref)
            for key, value in (properties or {}).items():
                writer = writer.option(key, value)
        with session_conf(spark, USER_METADATA_CONF, token):
            ref.save(writer, create=create)

    return _commit_with_retries(spark, ref, append, attempts)[0]


def update_by_key(df: DataFrame, ref: TableRef, keys: list[str], *, attempts: int = 5
                  ) -> TableWrite:
    """Set the other columns of ``df`` on the table's rows with the same ``keys``, in one
    commit (a MERGE that only updates): a row whose values already equal the source's is
    not touched, a key the table does not hold is not inserted, so writing the same rows
    again commits nothing. ``df`` holds at most one row per key; the table may hold
    several (append mode), and each takes the values. ``rows``: the rows updated.
    """
    spark = df.sparkSession
    on = reduce(operator.and_, [F.col(f"t.`{k}`").eqNullSafe(F.col(f"s.`{k}`")) for k in keys])
    columns = [c for c in df.columns if c not in keys]
    changed = reduce(operator.or_, [~F.col(f"t.`{c}`").eqNullSafe(F.col(f"s.`{c}`"))
                                    for c in columns])

    def merge(token: str) -> None:
        builder = (ref.delta_table(spark).alias("t").merge(df.alias("s"), on)
                   .whenMatchedUpdate(condition=changed,
                                      set={f"`{c}`": F.col(f"s.`{c}`") for c in columns}))
        with session_conf(spark, USER_METADATA_CONF, token):
            builder.execute()

    committed, metrics = _commit_with_retries(spark, ref, merge, attempts)
    return replace(committed, rows=int(metrics.get("numTargetRowsUpdated", 0)))


RANK_COLUMN = "_rank_in_key"


def rank_per_key(df: DataFrame, keys: list[str], order_by: str) -> DataFrame:
    """Add ``_rank_in_key``: 1 for the latest record of each key, 2, 3... for older ones.

    The highest ``order_by`` wins (nulls lose); a tie goes to the later source file,
    then to a hash of the record, so the choice never depends on how Spark ran.
    """
    from pyspark.sql.window import Window

    tie_breakers = [F.col(c).desc_nulls_last() for c in ("_source_file",) if c in df.columns]
    content = F.xxhash64(*[F.col(f"`{c}`") for c in df.columns])
    window = Window.partitionBy(*keys).orderBy(
        F.col(order_by).desc_nulls_last(), *tie_breakers, content.desc())
    return df.withColumn(RANK_COLUMN, F.row_number().over(window))


def _commit_with_retries(
    spark: SparkSession, ref: TableRef, write: Callable[[str], None], attempts: int
) -> tuple[TableWrite, dict[str, str]]:
    """Run ``write(token)`` until it commits, retrying Delta write conflicts with backoff.

    The token tags the commit (userMetadata) so its version and counts are read back
    from this commit, not from whatever another writer committed just after it.
    """
    token = f"sparkmlops-write-{uuid.uuid4()}"
    for attempt in range(1, attempts + 1):
        try:
            write(token)
            break
        except Exception as exc:  # noqa: BLE001 - narrowed by _is_write_conflict
            if attempt == attempts or not _is_write_conflict(exc):
                raise
            # jitter between retrying writers, not a secret: random is what it needs
            delay = min(0.5 * 2 ** (attempt - 1), 8.0) * (0.5 + random.random())  # nosec B311
            log.warning("write conflict on %s (attempt %d/%d), retrying in %.1f s: %s",
                        ref.fqn, attempt, attempts, delay, str(exc).splitlines()[0][:200])
            time.sleep(delay)
    return _committed_write(spark, ref, token)


_CONFLICTS = (
    "ConcurrentAppendException", "ConcurrentDeleteReadException",
    "ConcurrentDeleteDeleteException", "ConcurrentTransactionException",
    "ProtocolChangedException", "MetadataChangedException", "DELTA_CONCURRENT_",
    "DELTA_PROTOCOL_CHANGED", "DELTA_METADATA_CHANGED",
    # two first writers racing to create the table (by path; by name)
    "FileAlreadyExistsException", "TABLE_OR_VIEW_ALREADY_EXISTS", "TableAlreadyExistsException",
)


def _is_write_conflict(exc: Exception) -> bool:
    text = f"{type(exc).__name__}: {exc}"
    return any(marker in text for marker in _CONFLICTS)


def _committed_write(
    spark: SparkSession, ref: TableRef, token: str
) -> tuple[TableWrite, dict[str, str]]:
    history = ref.delta_table(spark).history(50)
    mine = history.where(history["userMetadata"] == token).first()
    if mine is None:
        # Delta makes no commit for a write that changes nothing (an empty batch
        # replacing nothing): the table stays at its current version
        version = history.select("version").first()
        if version is None:
            raise MissingInputError(f"table {ref.fqn} has no history after a write")
        log.info("%s unchanged at version %s (nothing to write)", ref.fqn, version[0])
        return TableWrite(table=ref, version=int(version[0]), rows=0), {}
    metrics = dict(mine["operationMetrics"] or {})
    rows = int(metrics.get("numOutputRows", 0))
    log.info("wrote %s version %s (%d rows)", ref.fqn, mine["version"], rows)
    return TableWrite(table=ref, version=int(mine["version"]), rows=rows), metrics


def predicate_sql(spark: SparkSession, predicate: Column) -> str:
    """SQL text of a Column predicate, rendered by Spark's own expression printer.

    For the APIs that only take text (Delta's ``replaceWhere``): literals come out
    escaped exactly as Spark's parser reads them back (quotes and backslashes
    included), so nothing is pasted into SQL by hand.
    """
    return str(spark._jsparkSession.expression(predicate._jc).sql())


def write_batch(
    df: DataFrame, ref: TableRef, write: WriteSettings, keys: list[str], batch_id: str, *,
    order_by: str | None = None, merge_schema: bool = False,
) -> TableWrite:
    """Write one batch of a keyed table the dataset's way (``dataset.write``).

    ``append``: the batch replaces its own rows (replaceWhere on the batch id).
    ``upsert``: MERGE on the business key ``keys``, so the table keeps one row per key;
    ``order_by`` makes an older record lose to the table's newer one.
    """
    if write.mode == "upsert":
        return upsert_batch(df, ref, batch_id, keys, order_by=order_by,
                            merge_schema=merge_schema, partition_by=write.partition_by)
    return replace_batch(df, ref, batch_id, merge_schema=merge_schema,
                         partition_by=write.partition_by)
