from __future__ import annotations

from datetime import date

import pyspark.sql.functions as F
import pytest
from pyspark.ml.classification import LogisticRegression, RandomForestClassifier
from pyspark.ml.feature import MinMaxScaler, StandardScaler, VectorAssembler
from pyspark.ml.regression import GBTRegressor, LinearRegression

from sparkmlops.features.stages import LABEL_COLUMN
from sparkmlops.training.fitting import (
    build_pipeline,
    evaluate,
    fit_model,
    holdout_flag,
    split_train_test,
)


def _gold(spark, n=200):
    """A separable toy gold table: label 1 when x > 0, with null features and categories."""
    rows = []
    for i in range(n):
        x = (i % 40) - 19.5
        rows.append(("S1", "A" if i % 3 else None, i, x, float(i % 7) + 1, 2.0 * x,
                     "Biscoe" if i % 2 else "Dream", date(2007 + i % 3, 11, 1 + i % 28),
                     "MALE" if x > 0 else "FEMALE", 1.0 if x > 0 else 0.0, "b1"))
    schema = ("study_name string, species string, sample_number int, culmen_length_mm double, "
              "culmen_depth_mm double, flipper_length_mm double, island string, date_egg date, "
              "label_raw string, label double, _batch_id string")
    df = spark.createDataFrame(rows, schema)
    mass = F.when(F.col("sample_number") % 5 == 0, None).otherwise(F.col("culmen_depth_mm"))
    return df.withColumn("body_mass_g", (mass * 1000).cast("double"))


def test_holdout_split_is_deterministic_and_independent_of_partitioning(spark, make_settings):
    dataset = make_settings().dataset
    gold = _gold(spark)

    _, test_a = split_train_test(gold, dataset)
    _, test_b = split_train_test(gold.repartition(7), dataset)
    keys_a = sorted(r.sample_number for r in test_a.collect())
    keys_b = sorted(r.sample_number for r in test_b.collect())

    assert keys_a == keys_b
    assert 30 <= len(keys_a) <= 70  # about 25 % of 200


def test_holdout_flag_changes_with_the_seed(spark):
    df = spark.range(1000).withColumnRenamed("id", "k")

    a = df.where(holdout_flag(["k"], 1, 0.25)).count()
    overlap = df.where(holdout_flag(["k"], 1, 0.25) & holdout_flag(["k"], 2, 0.25)).count()

    assert 200 <= a <= 300
    assert overlap < a


def test_rows_without_label_are_left_out(spark, make_settings):
    gold = _gold(spark).withColumn(
        LABEL_COLUMN, F.when(F.col("sample_number") < 10, None).otherwise(F.col(LABEL_COLUMN)))

    train, test = split_train_test(gold, make_settings().dataset)

    assert train.count() + test.count() == 190


def test_pipeline_learns_a_separable_label_with_nulls_and_unseen_categories(spark, make_settings):
    dataset = make_settings().dataset
    train, test = split_train_test(_gold(spark), dataset)

    model = fit_model(train, dataset)
    unseen = test.withColumn("island", F.lit("Atlantis"))
    metrics = evaluate(model.transform(unseen), dataset.model.task)

    assert metrics["areaUnderROC"] > 0.95
    assert metrics["accuracy"] > 0.9
    assert set(metrics) == {"areaUnderROC", "areaUnderPR", "accuracy", "f1", "precision",
                            "recall", "logLoss"}


@pytest.mark.parametrize(("scale", "estimator_class", "scaler"), [
    ("auto", LogisticRegression, StandardScaler),
    ("auto", LinearRegression, StandardScaler),
    ("auto", RandomForestClassifier, None),
    ("auto", GBTRegressor, None),
    ("minmax", RandomForestClassifier, MinMaxScaler),
    ("none", LogisticRegression, None),
])
def test_scale_auto_standardizes_for_linear_models_only(spark, make_settings, scale,
                                                        estimator_class, scaler):
    features = make_settings(f"dataset.features.scale={scale}").dataset.features
    estimator = estimator_class()

    stages = build_pipeline(features, estimator).getStages()

    scalers = [type(s) for s in stages if isinstance(s, StandardScaler | MinMaxScaler)]
    assert scalers == ([scaler] if scaler else [])
    assert stages[-1] is estimator
    assembler = next(s for s in stages if isinstance(s, VectorAssembler))
    assert assembler.getOutputCol() == ("features__unscaled" if scaler else "features")
