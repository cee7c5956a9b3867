"""The crowd's judgments as they land: their declared columns, why one is refused, and
the judgments frame consensus reads.

A judgment is one row of an annotation file: the item (the ``crowd.item_keys`` columns,
landed under the dataset's key names so labels join gold by key), the worker and the
label. It lands in ``bronze.<dataset>_annotations`` unless it is refused, with a reason,
into the dataset's quarantine:

- the schema's own reasons: an unparseable line, a missing item key or worker or label;
- ``unknown label``: a label not in ``crowd.classes``;
- ``repeated judgment``: a second judgment of the same worker on the same item, in the
  same batch (the first in file order is kept) or after an earlier batch's.
"""

from __future__ import annotations

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame, Window

from sparkmlops.config import ColumnSpec, CrowdSettings, DatasetSettings
from sparkmlops.labels.consensus import ITEM, LABEL, WORKER
from sparkmlops.quarantine import SOURCE_FILE_COLUMN
from sparkmlops.tables import BATCH_COLUMN


def annotation_columns(dataset: DatasetSettings, crowd: CrowdSettings) -> list[ColumnSpec]:
    """The declared columns of an annotation file: each item key under the dataset key it
    matches (with that key's type), then the worker and the label, all required. The
    label is read as text, so a value outside the classes is quarantined by name rather
    than failing a cast."""
    types = {c.name: c.type for c in dataset.schema_}
    items = [ColumnSpec(name=key, source=source, type=types[key], nullable=False)
             for key, source in zip(dataset.keys, crowd.item_keys, strict=True)]
    return [*items,
            ColumnSpec(name=crowd.worker, type="string", nullable=False),
            ColumnSpec(name=crowd.label, type="string", nullable=False)]


def refuse_judgments(
    parsed: DataFrame, *, keys: list[str], crowd: CrowdSettings, earlier: DataFrame,
    reason: str, row_id: str,
) -> DataFrame:
    """``parsed`` (the batch's rows, ``reason`` null for a good one) with the crowd's own
    reasons added where the schema found none: an unknown label, and a repeated judgment.

    ``earlier`` holds the (keys, worker, ``_batch_id``) of judgments other batches landed;
    ``row_id`` orders the batch's rows as read, so the first of two judgments of a worker
    on an item in one batch is the one kept.
    """
    worker, label = crowd.worker, crowd.label
    classes = F.array(*[F.lit(c) for c in crowd.classes])
    unknown = F.when(~F.array_contains(classes, F.col(label)),
                     F.concat(F.lit("unknown label '"), F.col(label),
                              F.lit(f"': not one of crowd.classes {crowd.classes}")))
    pair = [*keys, worker]
    first = Window.partitionBy(*pair).orderBy(
        F.col(SOURCE_FILE_COLUMN).asc_nulls_last(), F.col(row_id))
    earlier_batch = "_earlier_batch"
    previous = earlier.groupBy(*pair).agg(F.min(BATCH_COLUMN).alias(earlier_batch))
    candidates = parsed.where(F.col(reason).isNull())
    ranked = candidates.withColumn("_nth", F.row_number().over(first)).select(
        F.col(row_id), F.col("_nth"))
    flagged = (parsed.join(ranked, on=row_id, how="left")
               .join(previous, on=pair, how="left"))
    repeated = F.coalesce(
        F.when(F.col(earlier_batch).isNotNull(),
               F.concat(F.lit(f"repeated judgment: worker {worker}="), F.col(worker),
                        F.lit(" already judged this item in batch "), F.col(earlier_batch))),
        F.when(F.col("_nth") > 1,
               F.concat(F.lit(f"repeated judgment: worker {worker}="), F.col(worker),
                        F.lit(" judged this item earlier in the same batch"))))
    refined: Column = F.coalesce(F.col(reason), unknown, repeated)
    return flagged.withColumn(reason, refined).drop("_nth", earlier_batch).select(
        *parsed.columns)


def judgment_frame(annotations: DataFrame, keys: list[str], crowd: CrowdSettings) -> DataFrame:
    """The judgments frame of :mod:`consensus` from bronze annotations: the item as a
    struct of the dataset's keys, the worker and the label, as text."""
    return annotations.select(
        F.struct(*[F.col(k) for k in keys]).alias(ITEM),
        F.col(crowd.worker).cast("string").alias(WORKER),
        F.col(crowd.label).cast("string").alias(LABEL),
    )


def with_item_keys(df: DataFrame, keys: list[str]) -> DataFrame:
    """``df`` with its ``item`` struct back as the dataset's key columns, first."""
    rest = [c for c in df.columns if c != ITEM]
    return df.select(*[F.col(f"{ITEM}.{k}").alias(k) for k in keys], *rest)
