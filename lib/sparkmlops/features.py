"""Features: ``silver.<dataset>`` → ``gold.<dataset>_features``.

Derived columns are Spark SQL expressions from config; the label is mapped to
its class index (position in ``label.classes``) or cast to double for regression.
The gold table keeps the business keys, the feature columns, the raw label and
``label``, and the batch id. Everything learned from data (indexing, imputation,
encoding) happens inside the MLlib pipeline, so scoring applies exactly the
training-time transformations.
"""

from __future__ import annotations

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame

from sparkmlops.config import DatasetSettings, DerivedFeature, LabelSettings
from sparkmlops.tables import BATCH_COLUMN

LABEL_COLUMN = "label"


def add_derived_features(df: DataFrame, derived: list[DerivedFeature]) -> DataFrame:
    """Add each configured SQL expression as a column, in order (later may use earlier)."""
    for feature in derived:
        df = df.withColumn(feature.name, F.expr(feature.expr))
    return df


def label_index(label: LabelSettings) -> Column:
    """The numeric label: class position for classification, the value for regression."""
    source = F.col(label.source)
    if not label.classes:
        return source.cast("double")
    mapping = F.create_map(
        *[item for i, cls in enumerate(label.classes) for item in (F.lit(cls), F.lit(float(i)))]
    )
    return mapping[source]


def build_feature_table(df: DataFrame, dataset: DatasetSettings) -> DataFrame:
    """Silver rows → the gold feature table rows (keys, features, label, batch id).

    A key that is also a feature (e.g. ``species``) appears once; numeric features
    are cast to double, which MLlib's Imputer requires.
    """
    with_features = add_derived_features(df, dataset.features.derived)
    numeric = [F.col(c).cast("double").alias(c) for c in dataset.features.numeric]
    categorical = [c for c in dataset.features.categorical if c not in dataset.keys]
    return with_features.select(
        *dataset.keys,
        *numeric,
        *categorical,
        F.col(dataset.label.source).alias(f"{LABEL_COLUMN}_raw"),
        label_index(dataset.label).alias(LABEL_COLUMN),
        BATCH_COLUMN,
    )
