"""Features' I/O edge: silver → gold (the fitted feature columns of a batch)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from pyspark.sql import DataFrame, SparkSession

from sparkmlops.config import Settings
from sparkmlops.features import mllib
from sparkmlops.tables import (
    crowd_tables,
    dataset_tables,
    read_batch,
    read_table,
    table_exists,
    version_or_current,
)
from sparkmlops.tracking.runs import StepOutcome, StepTracker, step_run
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
    spark: SparkSession, settings: Settings, batch_id: str, *, silver_version: int | None = None,
    labels_version: int | None = None,
) -> FeaturesOutcome:
    """Silver batch → gold feature table (derived features, numeric label).

    With ``label.from: crowd`` the label is the accepted consensus label of each row's
    key in ``labels.<dataset>`` (at ``labels_version``, else its latest; none yet: every
    row waits for its label). With ``label.expr`` it is the expression's value on each
    silver row (logged as the run's ``label.expr`` param); a row without one (null, or not
    one of ``label.classes``) is kept, with a null ``label``.

    Raises:
        ConfigError: ``label.expr`` does not analyse against the batch's columns, or gives
            no value a label can be; ``LabelExpressionError``: it fails on a row (gold is
            not written).
        DerivedFeatureError: a derived feature fails on a row of the batch (gold is not
            written).
    """
    dataset = settings.dataset
    tables = dataset_tables(settings)
    silver, gold = tables.silver, tables.gold
    with step_run(settings, FeaturesOutcome.step, batch_id) as tracker:
        version = version_or_current(spark, silver, silver_version)
        batch = read_batch(spark, silver, batch_id, version)
        accepted = _accepted_labels(spark, settings, tracker, labels_version)
        if dataset.label.expr is not None:
            # lineage: the label of these gold rows is computed here, by this expression
            tracker.params({"label.expr": dataset.label.expr})
        frame = mllib.build_feature_table(batch, dataset, accepted)
        # before the write: an expression that fails on a row fails here, naming it,
        # not in train after gold holds the batch
        source = f"{silver.fqn} v{version} batch {batch_id}"
        mllib.check_derived_values(frame, dataset.features, keys=dataset.keys, source=source)
        # the label is computed by this write: an expression failing on a row is named
        with mllib.label_failures_named(batch, dataset.label, keys=dataset.keys,
                                        source=source):
            written = write_batch(frame, gold, dataset.write, dataset.keys, batch_id)
        tracker.read(silver, version, written.rows)
        tracker.wrote(written)
        return FeaturesOutcome(tracker.run_id, {gold.fqn: written.version},
                               gold_version=written.version, gold_rows=written.rows)


def _accepted_labels(
    spark: SparkSession, settings: Settings, tracker: StepTracker, version: int | None
) -> DataFrame | None:
    """The accepted crowd labels by key (``label.from: crowd``), recorded as read; None
    for a label from a column. Before the labels stage's first run: no label yet."""
    dataset = settings.dataset
    if not dataset.label.crowd:
        return None
    labels = crowd_tables(settings).labels
    if version is None and not table_exists(spark, labels):
        types = {c.name: c.type for c in dataset.schema_}
        schema = ", ".join(f"`{k}` {types[k]}" for k in dataset.keys)
        log.info("%s does not exist yet: no row of the batch has a crowd label", labels.fqn)
        return spark.createDataFrame([], f"{schema}, {mllib.LABEL_COLUMN} string")
    version = version_or_current(spark, labels, version)
    accepted = read_table(spark, labels, version).select(*dataset.keys, mllib.LABEL_COLUMN)
    tracker.read(labels, version)
    return accepted
