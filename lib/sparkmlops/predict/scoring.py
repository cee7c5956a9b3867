"""Predict: score a batch natively with the MLlib PipelineModel of a registered version.

No Python UDF round trip: the model is loaded as a Spark ``PipelineModel`` and its
``transform`` runs in the JVM (but for the Python feature transforms a dataset's
config may add; see ``sparkmlops.features.transforms``). The model computes every
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
from sparkmlops.features.mllib import FEATURES_VECTOR, IMPUTED, UNSCALED_VECTOR
from sparkmlops.tables import BATCH_COLUMN


def predicted_label(classes: list[str] | None) -> Column:
    """The class name of the predicted index (null for regression)."""
    if not classes:
        return F.lit(None).cast("string")
    index = F.col("prediction").cast("int")
    # guarded: element_at with a null index does not return null on Spark 4.1
    return F.when(index.isNotNull(), F.element_at(F.array(*[F.lit(c) for c in classes]), index + 1))


UNSCORABLE_COLUMN = "_unscorable_reason"


def is_finite(value: Column) -> Column:
    """True for a number that is neither NaN nor ±Infinity (null for null)."""
    return ~F.isnan(value) & (F.abs(value) != F.lit(float("inf")))


def vector_slot_names(df: DataFrame, column: str) -> list[str]:
    """The name of each slot of an assembled vector column, from its ML attributes.

    Imputed slots are named after their input column (``body_mass_g``, not
    ``body_mass_g__imputed``); a slot without a name is ``slot <i>``.
    """
    attrs = df.schema[column].metadata.get("ml_attr", {})
    size = int(attrs.get("num_attrs", 0))
    names = {int(a["idx"]): str(a.get("name", ""))
             for group in attrs.get("attrs", {}).values() for a in group}
    size = max(size, max(names, default=-1) + 1)
    return [names.get(i, "").removesuffix(IMPUTED) or f"slot {i}" for i in range(size)]


def non_finite_inputs(scored: DataFrame) -> Column | None:
    """Why a row's model inputs are not finite after the feature stages, else null.

    Checked on the vector the feature stages assemble (before scaling, which keeps
    ±Infinity infinite): the estimator would still return a confident-looking
    probability for it. None when the frame has no assembled vector.
    """
    column = next((c for c in (UNSCALED_VECTOR, FEATURES_VECTOR) if c in scored.columns), None)
    if column is None:
        return None
    names = F.array(*[F.lit(n) for n in vector_slot_names(scored, column)])
    values = vector_to_array(F.col(column))
    bad = F.filter(
        F.transform(values, lambda v, i: F.when(
            ~is_finite(v), F.coalesce(F.element_at(names, i + 1), F.concat(
                F.lit("slot "), i.cast("string"))))),
        lambda name: name.isNotNull())
    return F.when(F.size(bad) > 0, F.concat(
        F.lit("non-finite model input(s) after the feature stages (NaN or Infinity): "),
        F.array_join(F.array_distinct(bad), ", ")))


def flag_unscorable(scored: DataFrame, task: str) -> DataFrame:
    """Add ``_unscorable_reason``: why a scored row has no usable prediction, else null.

    Imputation and the unseen-category bucket let the model take nulls and new
    values; a model input that is still NaN or infinite after the feature stages
    (an infinite measurement, say) gets a prediction nobody should act on, and a
    null or NaN prediction is no prediction at all.
    """
    prediction = F.col("prediction")
    reason = F.when(prediction.isNull() | F.isnan(prediction),
                    F.lit("the model gave no prediction (null or NaN)"))
    inputs = non_finite_inputs(scored)
    if inputs is not None:
        reason = F.coalesce(inputs, reason)
    if task != "regression":
        probabilities = vector_to_array(F.col("probability"))
        no_probability = F.exists(probabilities, lambda p: F.isnan(p))
        reason = F.coalesce(reason, F.when(no_probability, F.lit(
            "the model gave a NaN class probability")))
    return scored.withColumn(UNSCORABLE_COLUMN, reason)


def score_with_reasons(
    model: PipelineModel, batch: DataFrame, task: str, missing: list[str], *,
    model_label: str,
) -> tuple[DataFrame, DataFrame]:
    """(every row with its ``_unscorable_reason`` or null, the scorable rows as scored).

    With input columns ``missing`` the model cannot run at all: every row gets the
    same reason, and the scored side is empty (with the scored columns' types).
    """
    if not missing:
        flagged = flag_unscorable(model.transform(batch), task)
        return flagged, flagged.where(F.col(UNSCORABLE_COLUMN).isNull())
    reason = f"input column(s) {missing} missing; {model_label} needs them"
    filled = batch.limit(0)
    for column in missing:
        filled = filled.withColumn(column, F.lit(None).cast("double"))
    return (batch.withColumn(UNSCORABLE_COLUMN, F.lit(reason)),
            flag_unscorable(model.transform(filled), task))


def missing_inputs(required: list[str], available: list[str]) -> list[str]:
    """The model's input columns that ``available`` lacks."""
    return [c for c in required if c not in set(available)]


def shape_predictions(
    scored: DataFrame,
    dataset: DatasetSettings,
    *,
    model_name: str,
    model_version: str,
    model_run_id: str,
    batch_id: str,
    scored_at: datetime,
) -> DataFrame:
    """Rows of ``predictions.<dataset>`` from rows the PipelineModel transformed."""
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
