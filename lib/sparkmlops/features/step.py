"""Features' I/O edge: silver → gold (the fitted feature columns of a batch)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from pyspark.sql import SparkSession

from sparkmlops.config import Settings
from sparkmlops.features import mllib
from sparkmlops.tables import dataset_tables, read_batch, version_or_current
from sparkmlops.tracking.runs import StepOutcome, step_run
from sparkmlops.writes import write_batch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeaturesOutcome(StepOutcome):
    """The gold rows the batch became."""

    step: ClassVar[str] = "features"
    gold_version: int | None = None  # gold after the step
    gold_rows: int = 0

    @property
    def summary(self) -> dict[str, Any]:
        return {"gold_rows": self.gold_rows}


def features_step(
    spark: SparkSession, settings: Settings, batch_id: str, *, silver_version: int | None = None
) -> FeaturesOutcome:
    """Silver batch → gold feature table (derived features, numeric label).

    Raises:
        DerivedFeatureError: a derived feature fails on a row of the batch (gold is not
            written).
    """
    dataset = settings.dataset
    tables = dataset_tables(settings)
    silver, gold = tables.silver, tables.gold
    with step_run(settings, FeaturesOutcome.step, batch_id) as tracker:
        version = version_or_current(spark, silver, silver_version)
        batch = read_batch(spark, silver, batch_id, version)
        frame = mllib.build_feature_table(batch, dataset)
        # before the write: an expression that fails on a row fails here, naming it,
        # not in train after gold holds the batch
        mllib.check_derived_values(frame, dataset.features, keys=dataset.keys,
                                   source=f"{silver.fqn} v{version} batch {batch_id}")
        written = write_batch(frame, gold, dataset.write, dataset.keys, batch_id)
        tracker.read(silver, version, written.rows)
        tracker.wrote(written)
        return FeaturesOutcome(tracker.run_id, {gold.fqn: written.version},
                               gold_version=written.version, gold_rows=written.rows)
