"""Predict: score a batch natively with the MLlib PipelineModel of a registered version.

No Python UDF round trip: the model is loaded as a Spark ``PipelineModel`` and its
``transform`` runs in the JVM (but for the Python feature transforms a dataset's
config may add; see ``sparkmlops.feature_transforms``). The model computes every
feature itself, so it scores raw gold (or silver) rows. Each prediction row names
the model (name, version, training run id), the batch and when it was scored, so it
can be walked back to the training data version and code through the registry.
"""

from __future__ import annotations

from datetime import datetime

import pyspark.sql.functions as F
from pyspark.ml import PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame

from sparkmlops.config import DatasetSettings
from sparkmlops.tables import BATCH_COLUMN


def predicted_label(classes: list[str] | None) -> Column:
    """The class name of the predicted index (null for regression)."""
    if not classes:
        return F.lit(None).cast("string")
    index = F.col("prediction").cast("int")
    # guarded: element_at with a null index does not return null on Spark 4.1
    return F.when(index.isNotNull(), F.element_at(F.array(*[F.lit(c) for c in classes]), index + 1))


def score_frame(
    model: PipelineModel,
    df: DataFrame,
    dataset: DatasetSettings,
    *,
    model_name: str,
    model_version: str,
    model_run_id: str,
    batch_id: str,
    scored_at: datetime,
) -> DataFrame:
    """Score ``df`` and shape the rows of ``predictions.<dataset>``."""
    scored = model.transform(df)
    task = dataset.model.task
    if task == "regression":
        probability = F.lit(None).cast("double")
        probabilities = F.lit(None).cast("array<double>")
    else:
        probabilities = vector_to_array(F.col("probability"))
        # the probability of the predicted class; for binary tasks, of the positive class
        probability = (
            probabilities[1] if task == "binary_classification"
            else F.array_max(probabilities)
        )
    return scored.select(
        *dataset.keys,
        F.col("prediction").cast("double").alias("prediction"),
        predicted_label(dataset.label.classes).alias("predicted_label"),
        probability.alias("probability"),
        probabilities.alias("probabilities"),
        F.lit(model_name).alias("model_name"),
        F.lit(model_version).alias("model_version"),
        F.lit(model_run_id).alias("model_run_id"),
        F.lit(batch_id).alias(BATCH_COLUMN),
        F.lit(scored_at).cast("timestamp").alias("scored_at"),
    )
