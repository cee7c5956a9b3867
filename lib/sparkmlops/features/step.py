"""Features' I/O edge: silver → gold (the fitted feature columns of a batch)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from pyspark.sql import SparkSession

from sparkmlops.config import Settings
from sparkmlops.features import stages
from sparkmlops.tables import current_version, dataset_tables, read_batch
from sparkmlops.tracking import StepOutcome, step_run
from sparkmlops.writes import write_batch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeaturesOutcome(StepOutcome):
    """The gold rows the batch became."""

    step: ClassVar[str] = "features"
    gold_rows: int = 0

    @property
    def summary(self) -> dict[str, Any]:
        return {"gold_rows": self.gold_rows}


def features_step(
    spark: SparkSession, settings: Settings, batch_id: str, *, silver_version: int | None = None
) -> FeaturesOutcome:
    """Silver batch → gold feature table (derived features, numeric label)."""
    tables = dataset_tables(settings)
    silver, gold = tables.silver, tables.gold
    with step_run(settings, "features", batch_id) as tracker:
        version = silver_version if silver_version is not None else current_version(spark, silver)
        batch = read_batch(spark, silver, batch_id, version)
        frame = stages.build_feature_table(batch, settings.dataset)
        written = write_batch(frame, gold, settings, batch_id)
        tracker.read(silver, version, written.rows)
        tracker.wrote(written)
        return FeaturesOutcome(tracker.run_id, {gold.fqn: written.version},
                               gold_rows=written.rows)
