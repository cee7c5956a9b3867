"""The quarantine table, ``quarantine.<dataset>``: its one owner.

Every step that refuses rows (ingest: unparseable, validate: a failed expectation or a
repeated key, predict: unscorable) writes them here in one shape, with the step and the
reason, and replaces only its own rows of the batch, so a re-run of one step never
touches what another step quarantined.

Example::

    rows = to_quarantine(bad, "validate", reason_column, record_column)
    written = write_quarantine(rows, tables.quarantine, batch_id, "validate")
"""

from __future__ import annotations

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame

from sparkmlops.tables import BATCH_COLUMN, TableRef, TableWrite
from sparkmlops.writes import replace_batch

# where a quarantined record came from: its file (also an audit column of bronze), the
# byte offset of the file split Spark read it from (0 for a whole file) and the 1-based
# record number from there (header not counted; a multi-line quoted record counts once)
SOURCE_FILE_COLUMN = "_source_file"
SOURCE_OFFSET_COLUMN = "_source_offset"
SOURCE_ROW_COLUMN = "_source_row"


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


def write_quarantine(rows: DataFrame, ref: TableRef, batch_id: str, step: str) -> TableWrite:
    """Replace ``step``'s quarantined rows of the batch with ``rows``: one Delta commit.

    Other steps' rows of the batch stay; the schema may grow (a later step's rows
    bring no new columns today, but an older table may lack the origin columns).
    """
    return replace_batch(rows, ref, batch_id, extra_predicate=F.col("step") == step,
                         merge_schema=True)
