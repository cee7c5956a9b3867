"""Features' I/O edge: silver → gold (the fitted feature columns of a batch)."""

from __future__ import annotations

import logging

from pyspark.sql import SparkSession

from sparkmlops.config import Settings
from sparkmlops.features import stages
from sparkmlops.tables import (
    current_version,
    features_table_name,
    read_batch,
    table_ref,
    write_batch,
)
from sparkmlops.tracking import StepResult, step_run

log = logging.getLogger(__name__)

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- features


def features_step(
    spark: SparkSession, settings: Settings, batch_id: str, *, silver_version: int | None = None
) -> StepResult:
    """Silver batch → gold feature table (derived features, numeric label)."""
    silver = table_ref(settings, "silver")
    gold = table_ref(settings, "gold", features_table_name(settings))
    with step_run(settings, "features", batch_id) as tracker:
        version = silver_version if silver_version is not None else current_version(spark, silver)
        batch = read_batch(spark, silver, batch_id, version)
        frame = stages.build_feature_table(batch, settings.dataset)
        written = write_batch(frame, gold, settings, batch_id)
        tracker.read(silver, version, written.rows)
        tracker.wrote(written)
        return StepResult("features", tracker.run_id, {gold.fqn: written.version},
                          {"gold_rows": written.rows})


