from __future__ import annotations

from datetime import datetime

import pyspark.sql.functions as F
from chispa import assert_df_equality

from sparkmlops.inference import predicted_label, score_frame
from sparkmlops.training import fit_model, split_train_test
from tests.test_training import _gold


def test_predicted_label_maps_the_index_to_the_class(spark):
    source_df = spark.createDataFrame([(0.0,), (1.0,), (None,)], "prediction double")

    actual_df = source_df.select("prediction",
                                 predicted_label(["FEMALE", "MALE"]).alias("predicted_label"))

    expected_df = spark.createDataFrame([(0.0, "FEMALE"), (1.0, "MALE"), (None, None)],
                                        "prediction double, predicted_label string")
    assert_df_equality(actual_df, expected_df, ignore_nullable=True)


def test_scored_rows_name_the_model_and_batch(spark, make_settings):
    dataset = make_settings().dataset
    gold = _gold(spark)
    train, _ = split_train_test(gold, dataset)
    model = fit_model(train, dataset)
    at = datetime(2026, 11, 26, 12, 0, 0)
    batch = gold.where(F.col("sample_number").isin(1, 30))

    scored = score_frame(model, batch, dataset, model_name="m", model_version="3",
                         model_run_id="r1", batch_id="b9", scored_at=at)

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
