"""Evaluation plots: the numbers behind them, on hand-built holdouts."""

from __future__ import annotations

import json

import pytest
from pyspark.ml.linalg import Vectors, VectorUDT
from pyspark.sql.types import DoubleType, StructField, StructType

from sparkmlops.train.plots import area, confusion, curve_points, write_plots


def _scored(spark, rows):
    return spark.createDataFrame(
        [(float(y), float(p), Vectors.dense([1 - s, s])) for y, p, s in rows],
        StructType([StructField("label", DoubleType()), StructField("prediction", DoubleType()),
                    StructField("probability", VectorUDT())]))


def test_roc_points_and_area_match_the_ranking(spark):
    # positives scored 0.9 and 0.3, negatives 0.8 and 0.1: 3 of 4 pairs ranked right
    scored = _scored(spark, [(1, 1, 0.9), (0, 1, 0.8), (1, 0, 0.3), (0, 0, 0.1)])

    points = curve_points(scored, bins=10)

    assert [(p["fpr"], p["tpr"]) for p in points] == [
        (0.0, 0.0), (0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (1.0, 1.0)]
    assert [p["precision"] for p in points] == [1.0, 1.0, 0.5, 2 / 3, 0.5]
    assert area([p["fpr"] for p in points], [p["tpr"] for p in points]) == pytest.approx(0.75)


def test_confusion_counts_true_against_predicted(spark):
    scored = _scored(spark, [(1, 1, 0.9), (0, 1, 0.8), (1, 0, 0.3), (0, 0, 0.1), (0, 0, 0.2)])

    assert confusion(scored) == {(1, 1): 1, (0, 1): 1, (1, 0): 1, (0, 0): 2}


def test_write_plots_for_a_regression_draws_residuals(spark, tmp_path):
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.regression import LinearRegression

    df = spark.createDataFrame([(float(x), 2.0 * x + 1 + (x % 3) * 0.1) for x in range(50)],
                               "x double, label double")
    model = Pipeline(stages=[VectorAssembler(inputCols=["x"], outputCol="features"),
                             LinearRegression()]).fit(df)

    written = write_plots(model.transform(df), model, "regression", None, tmp_path)

    assert sorted(p.name for p in written) == ["coefficients.png", "residuals.png"]
    assert json.loads((tmp_path / "residuals.json").read_text())["rows"] == 50
    assert json.loads((tmp_path / "coefficients.json").read_text())["x"] == pytest.approx(
        2.0, abs=0.01)


def test_feature_names_of_a_scaled_vector_come_from_the_assembled_one(
        spark, make_settings, toy_gold):
    from pyspark.ml.classification import LogisticRegression

    from sparkmlops.train.fitting import build_pipeline
    from sparkmlops.train.plots import feature_names, model_weights

    features = make_settings().dataset.features  # scale: auto → standardized for this model
    model = build_pipeline(features, LogisticRegression()).fit(toy_gold(n=40))

    names = feature_names(model.transform(toy_gold(n=4)))

    assert names == ["culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g",
                     "culmen_ratio", "date_egg_year", "species_A", "species___unknown",
                     "island_Biscoe", "island_Dream", "island___unknown"]
    kind, weights = model_weights(model, names)
    assert kind == "coefficients"
    assert [n for n, _ in weights] == names
