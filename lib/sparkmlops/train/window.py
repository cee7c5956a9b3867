"""The training window: the latest ``model.window_batches`` ingested batches of gold.

Shared by train (what the model is fitted on) and promote (the holdout the gate compares
models on, which must be the same window), so it lives below both steps.

Example::

    order = ingest_order(spark, tables.ingest_log)          # the step reads the log
    data, window = training_window(gold_frame, order, size=3)
"""

from __future__ import annotations

import pyspark.sql.functions as F
from pyspark.sql import DataFrame

from sparkmlops.tables import BATCH_COLUMN

# the batches a windowed train run used (model.window_batches), an artifact of its run
WINDOW_ARTIFACT = "training/batches.json"


def training_window(
    gold: DataFrame, ingest_order: list[str], size: int
) -> tuple[DataFrame, list[str] | None]:
    """Gold limited to the latest ``size`` batches of ``ingest_order`` (all when 0).

    ``ingest_order`` is every ingested batch id, oldest first (``ingest_order`` of
    ``sparkmlops.tables``); the chosen ids are returned so the run can record them and
    ``reproduce`` can reuse them.
    """
    if size == 0:
        return gold, None
    present = {r[0] for r in gold.select(BATCH_COLUMN).distinct().collect()}
    window = [batch for batch in ingest_order if batch in present][-size:]
    return gold.where(F.col(BATCH_COLUMN).isin(window)), window
