from __future__ import annotations

from datetime import datetime

import pyspark.sql.functions as F
from chispa import assert_df_equality

from sparkmlops.predict.scoring import (
    UNSCORABLE_COLUMN,
    flag_unscorable,
    missing_inputs,
    predicted_label,
    score_with_reasons,
    shape_predictions,
)
from sparkmlops.train.fitting import split_train_test
from sparkmlops.train.tuning import search


def test_predicted_label_maps_the_index_to_the_class(spark):
    source_df = spark.createDataFrame([(0.0,), (1.0,), (None,)], "prediction double")

    actual_df = source_df.select("prediction",
                                 predicted_label(["FEMALE", "MALE"]).alias("predicted_label"))

    expected_df = spark.createDataFrame([(0.0, "FEMALE"), (1.0, "MALE"), (None, None)],
                                        "prediction double, predicted_label string")
    assert_df_equality(actual_df, expected_df, ignore_nullable=True)


def test_scored_rows_name_the_model_and_batch(spark, make_settings, toy_gold):
    dataset = make_settings().dataset
    gold = toy_gold()
    train, _ = split_train_test(gold, dataset)
    model = search(train, dataset).model
    at = datetime(2026, 11, 26, 12, 0, 0)
    batch = gold.where(F.col("sample_number").isin(1, 30))

    scored = shape_predictions(model.transform(batch), dataset, model_name="m",
                               model_version="3", model_run_id="r1", batch_id="b9",
                               scored_at=at)

    assert scored.columns == [
        "study_name", "species", "sample_number", "prediction", "predicted_label",
        "probability", "probabilities", "model_name", "model_version", "model_run_id",
        "_batch_id", "scored_at"]
    rows = {r.sample_number: r for r in scored.collect()}
    # sample 1 has x = -18.5 (FEMALE), sample 30 has x = 10.5 (MALE)
    assert (rows[1].predicted_label, rows[30].predicted_label) == ("FEMALE", "MALE")
    assert rows[30].probability > 0.5 > rows[1].probability
    assert abs(sum(rows[30].probabilities) - 1.0) < 1e-9
    assert {(r.model_name, r.model_version, r.model_run_id, r._batch_id, r.scored_at)
            for r in rows.values()} == {("m", "3", "r1", "b9", at)}


def test_rows_without_a_usable_prediction_get_a_reason(spark):
    from pyspark.ml.linalg import Vectors, VectorUDT
    from pyspark.sql.types import DoubleType, IntegerType, StructField, StructType

    schema = StructType([StructField("k", IntegerType()), StructField("prediction", DoubleType()),
                         StructField("probability", VectorUDT())])
    source_df = spark.createDataFrame(
        [(1, 1.0, Vectors.dense([0.2, 0.8])), (2, float("nan"), Vectors.dense([0.5, 0.5])),
         (3, None, Vectors.dense([0.5, 0.5])), (4, 0.0, Vectors.dense([float("nan"), 0.1]))],
        schema)

    actual_df = flag_unscorable(source_df, "binary_classification").select(
        "k", UNSCORABLE_COLUMN)

    expected_df = spark.createDataFrame(
        [(1, None), (2, "the model gave no prediction (null or NaN)"),
         (3, "the model gave no prediction (null or NaN)"),
         (4, "the model gave a NaN class probability")], f"k int, {UNSCORABLE_COLUMN} string")
    assert_df_equality(actual_df, expected_df, ignore_row_order=True, ignore_nullable=True)


def test_a_batch_without_a_model_input_column_is_quarantined_whole(spark, make_settings, toy_gold):
    dataset = make_settings().dataset
    gold = toy_gold()
    train, _ = split_train_test(gold, dataset)
    model = search(train, dataset).model
    batch = gold.where(F.col("sample_number") < 5).drop("flipper_length_mm")

    missing = missing_inputs(["sample_number", "flipper_length_mm"], batch.columns)
    flagged, scored = score_with_reasons(model, batch, "binary_classification", missing,
                                         model_label="model m v3")

    assert missing == ["flipper_length_mm"]
    expected_df = spark.createDataFrame(
        [(i, "input column(s) ['flipper_length_mm'] missing; model m v3 needs them")
         for i in range(5)], f"sample_number int, {UNSCORABLE_COLUMN} string")
    assert_df_equality(flagged.select("sample_number", UNSCORABLE_COLUMN), expected_df,
                       ignore_row_order=True, ignore_nullable=True)
    assert scored.isEmpty()
    assert {"prediction", "probability", UNSCORABLE_COLUMN} <= set(scored.columns)


def test_scorable_batch_keeps_every_row_and_flags_none(spark, make_settings, toy_gold):
    dataset = make_settings().dataset
    gold = toy_gold()
    train, _ = split_train_test(gold, dataset)
    model = search(train, dataset).model
    batch = gold.where(F.col("sample_number") < 8)  # nulls in species and body mass

    flagged, scored = score_with_reasons(model, batch, "binary_classification", [],
                                         model_label="model m v3")

    assert flagged.where(F.col(UNSCORABLE_COLUMN).isNotNull()).isEmpty()
    assert sorted(r.sample_number for r in scored.collect()) == list(range(8))


def test_a_zero_culmen_depth_is_scored_not_a_failed_job(spark, make_settings, toy_gold):
    # Spark 4 runs ANSI SQL: the ratio as `a / b` would fail the whole batch on b = 0
    dataset = make_settings().dataset
    gold = toy_gold()
    train, _ = split_train_test(gold, dataset)
    model = search(train, dataset).model
    batch = gold.where(F.col("sample_number") < 3).withColumn("culmen_depth_mm", F.lit(0.0))

    flagged, scored = score_with_reasons(model, batch, "binary_classification", [],
                                         model_label="model m v3")

    rows = scored.select("sample_number", "culmen_ratio", "prediction").collect()
    assert sorted(r.sample_number for r in rows) == [0, 1, 2]
    assert {r.culmen_ratio for r in rows} == {None}
    assert flagged.where(F.col(UNSCORABLE_COLUMN).isNotNull()).isEmpty()


def test_rows_with_infinite_model_inputs_are_flagged_not_scored(spark, make_settings, toy_gold):
    # issue 11: an Infinity got a prediction with probability 1.0 and was not quarantined
    dataset = make_settings().dataset
    gold = toy_gold()
    train, _ = split_train_test(gold, dataset)
    model = search(train, dataset).model
    inf = float("inf")
    batch = (gold.where(F.col("sample_number") < 4)
             .withColumn("culmen_length_mm", F.when(F.col("sample_number") == 1, F.lit(inf))
                         .otherwise(F.col("culmen_length_mm")))
             .withColumn("body_mass_g", F.when(F.col("sample_number") == 2, F.lit(-inf))
                         .otherwise(F.col("body_mass_g")))
             # NaN is a missing value to the imputer: scored with the surrogate
             .withColumn("flipper_length_mm", F.when(F.col("sample_number") == 3,
                                                     F.lit(float("nan")))
                         .otherwise(F.col("flipper_length_mm"))))

    flagged, scored = score_with_reasons(model, batch, "binary_classification", [],
                                         model_label="model m v3")

    prefix = "non-finite model input(s) after the feature stages (NaN or Infinity): "
    expected_df = spark.createDataFrame(
        [(0, None), (1, prefix + "culmen_length_mm, culmen_ratio"), (2, prefix + "body_mass_g"),
         (3, None)], f"sample_number int, {UNSCORABLE_COLUMN} string")
    assert_df_equality(flagged.select("sample_number", UNSCORABLE_COLUMN), expected_df,
                       ignore_row_order=True, ignore_nullable=True)
    assert_df_equality(scored.select("sample_number"),
                       spark.createDataFrame([(0,), (3,)], "sample_number int"),
                       ignore_row_order=True, ignore_nullable=True)


def test_vector_slot_names_come_from_the_assembler(spark):
    from pyspark.ml.feature import VectorAssembler

    source_df = spark.createDataFrame([(1.0, 2.0)], "a__imputed double, b double")

    assembled = VectorAssembler(inputCols=["a__imputed", "b"], outputCol="v").transform(source_df)

    from sparkmlops.predict.scoring import vector_slot_names
    assert vector_slot_names(assembled, "v") == ["a", "b"]
