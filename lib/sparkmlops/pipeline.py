"""The whole batch in one SparkSession, under one parent MLflow run.

ingest → validate → features → train → promote → predict, each step a nested run.
Versions flow from step to step: each step reads exactly the Delta version the
previous one wrote. A challenger that does not pass the promotion gate is an
outcome, not an error: the batch is then scored by the champion in place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pyspark.sql import SparkSession

from sparkmlops.config import Settings
from sparkmlops.steps import (
    StepResult,
    features_step,
    features_table_name,
    ingest_step,
    predict_step,
    promote_step,
    train_step,
    validate_step,
)
from sparkmlops.tables import table_ref
from sparkmlops.tracking import pipeline_run

log = logging.getLogger(__name__)

STEPS = ("ingest", "validate", "features", "train", "promote", "predict")


@dataclass
class PipelineResult:
    batch_id: str
    parent_run_id: str
    experiment_id: str
    steps: list[StepResult] = field(default_factory=list)

    def step(self, name: str) -> StepResult:
        return next(s for s in self.steps if s.step == name)


def run_pipeline(spark: SparkSession, settings: Settings, batch_id: str) -> PipelineResult:
    """Run every step of one batch; raise the first step's SparkmlopsError, if any."""
    bronze = table_ref(settings, "bronze").fqn
    silver = table_ref(settings, "silver").fqn
    gold = table_ref(settings, "gold", features_table_name(settings)).fqn
    with pipeline_run(settings, batch_id) as parent:
        result = PipelineResult(batch_id, parent.info.run_id, parent.info.experiment_id)
        _progress(1, "ingest", batch_id)
        ingest = ingest_step(spark, settings, batch_id)
        result.steps.append(ingest)
        _progress(2, "validate", batch_id)
        validate = validate_step(spark, settings, batch_id,
                                 bronze_version=ingest.outputs[bronze])
        result.steps.append(validate)
        _progress(3, "features", batch_id)
        feats = features_step(spark, settings, batch_id, silver_version=validate.outputs[silver])
        result.steps.append(feats)
        _progress(4, "train", batch_id)
        train = train_step(spark, settings, batch_id, gold_version=feats.outputs[gold])
        result.steps.append(train)
        _progress(5, "promote", batch_id)
        promote = promote_step(spark, settings, batch_id,
                               challenger_version=train.summary["version"],
                               gold_version=feats.outputs[gold])
        result.steps.append(promote)
        _progress(6, "predict", batch_id)
        predict = predict_step(spark, settings, batch_id, gold_version=feats.outputs[gold])
        result.steps.append(predict)
        return result


def _progress(number: int, step: str, batch_id: str) -> None:
    log.info("[%d/%d] %s (batch %s)", number, len(STEPS), step, batch_id)
