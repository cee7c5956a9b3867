from __future__ import annotations

import math

import pytest
from chispa import assert_df_equality

from sparkmlops.monitor.drift import chi_square, compare, ks_statistic, psi
from sparkmlops.train.reference import (
    NULL_BUCKET,
    UNSEEN_BUCKET,
    Profile,
    batch_profile,
    model_reference,
    reference_profile,
)


def test_psi_is_zero_for_equal_shares_and_matches_the_formula():
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    expected = (0.7 - 0.5) * math.log(0.7 / 0.5) + (0.3 - 0.5) * math.log(0.3 / 0.5)
    assert psi([0.5, 0.5], [0.7, 0.3]) == pytest.approx(expected)
    # an empty bin counts as 1e-4, not as an infinite difference
    assert psi([0.5, 0.5], [1.0, 0.0]) == pytest.approx(
        0.5 * math.log(1.0 / 0.5) + (1e-4 - 0.5) * math.log(1e-4 / 0.5))


def test_ks_statistic_is_the_largest_cdf_gap_with_a_p_value():
    statistic, p_value = ks_statistic([0.25, 0.5, 0.75], [0.05, 0.3, 0.7], 1000, 1000)
    assert statistic == pytest.approx(0.2)
    assert p_value < 1e-10
    assert ks_statistic([0.5], [0.5], 100, 100) == (0.0, 1.0)


def test_chi_square_against_reference_shares():
    statistic, p_value = chi_square([0.5, 0.5], [0.6, 0.4], 100)
    assert statistic == pytest.approx((60 - 50) ** 2 / 50 + (40 - 50) ** 2 / 50)
    assert p_value == pytest.approx(0.0455, abs=1e-3)


def _frame(spark, values, islands):
    return spark.createDataFrame(list(zip(values, islands, strict=True)),
                                 "x double, island string")


def test_same_data_shows_no_drift_and_a_shift_shows_in_every_metric(spark):
    n = 1000
    reference_df = _frame(spark, [i / n for i in range(n)],
                          ["Biscoe" if i % 2 else "Dream" for i in range(n)])
    shifted_df = _frame(spark, [0.5 + i / n if i % 10 else None for i in range(n)],
                        ["Biscoe" if i % 4 else ("Atlantis" if i % 8 else None)
                         for i in range(n)])

    reference = reference_profile(reference_df, numeric=["x"], categorical=["island"])
    same = {(m.feature, m.metric): m for m in compare(reference,
                                                      batch_profile(reference_df, reference))}
    shifted = {(m.feature, m.metric): m for m in compare(reference,
                                                         batch_profile(shifted_df, reference))}

    assert len(reference.numeric["x"].edges) == 9
    assert reference.numeric["x"].bin_shares == pytest.approx([0.1] * 10, abs=0.01)
    assert same[("x", "psi")].value == pytest.approx(0.0, abs=1e-9)
    assert same[("x", "ks")].value == pytest.approx(0.0, abs=1e-9)
    assert same[("island", "chi_square")].p_value == pytest.approx(1.0)
    assert shifted[("x", "psi")].value > 1.0
    assert shifted[("x", "ks")].value == pytest.approx(0.5, abs=0.02)
    assert shifted[("x", "ks")].p_value < 1e-6
    assert shifted[("x", "null_rate")].value == pytest.approx(0.1)
    assert shifted[("x", "null_rate_increase")].value == pytest.approx(0.1)
    # values above the reference maximum (0.999), among the non-null ones
    above = sum(1 for i in range(n) if i % 10 and 0.5 + i / n > 0.999) / 900
    assert shifted[("x", "out_of_range_rate")].value == pytest.approx(above)
    assert shifted[("island", "unseen_rate")].value == pytest.approx(0.125)
    assert shifted[("island", "null_rate")].value == pytest.approx(0.125)
    assert shifted[("island", "chi_square")].p_value < 1e-6


def test_profile_survives_a_json_round_trip(spark):
    df = _frame(spark, [1.0, 2.0, None, 4.0], ["A", None, "B", "A"])
    profile = reference_profile(df, numeric=["x"], categorical=["island"], bins=2, points=4)

    again = Profile.from_dict(profile.to_dict())

    assert again == profile
    assert profile.categorical["island"].shares == {"A": 0.5, "B": 0.25, NULL_BUCKET: 0.25}
    assert profile.numeric["x"].null_rate == 0.25
    assert UNSEEN_BUCKET not in profile.categorical["island"].shares


def test_model_reference_profiles_inputs_scores_and_predicted_classes(spark):
    from pyspark.ml.linalg import Vectors, VectorUDT
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    schema = StructType([StructField("x", DoubleType()), StructField("island", StringType()),
                         StructField("prediction", DoubleType()),
                         StructField("probability", VectorUDT())])
    scored = spark.createDataFrame(
        [(1.0, "A", 1.0, Vectors.dense([0.2, 0.8])), (2.0, "B", 0.0, Vectors.dense([0.9, 0.1])),
         (3.0, "A", 1.0, Vectors.dense([0.4, 0.6])), (4.0, None, 0.0, Vectors.dense([0.7, 0.3]))],
        schema)

    profile = model_reference(scored, ["x"], ["island"], "binary_classification")

    assert sorted(profile.numeric) == ["_score", "x"]
    assert profile.numeric["_score"].minimum == pytest.approx(0.1)
    assert profile.numeric["_score"].maximum == pytest.approx(0.8)
    assert profile.categorical["_predicted"].shares == {"0": 0.5, "1": 0.5}
    assert profile.categorical["island"].shares == {"A": 0.5, "B": 0.25, NULL_BUCKET: 0.25}


def test_levels_judge_ceilings_and_floors_and_the_batch_takes_the_worst():
    from sparkmlops.config import Levels
    from sparkmlops.monitor.drift import DriftMetric, judged, worst

    rows = judged([DriftMetric("x", "psi", 0.05), DriftMetric("x", "ks", 0.15, 0.01),
                   DriftMetric("y", "psi", 0.3), DriftMetric("y", "chi_square", 9.0, 0.01)],
                  {"psi": Levels(warn=0.1, alert=0.25), "ks": Levels(warn=0.1, alert=0.2)})

    assert [(r["feature"], r["metric"], r["status"]) for r in rows] == [
        ("x", "psi", "ok"), ("x", "ks", "warn"), ("y", "psi", "alert"),
        ("y", "chi_square", "ok")]  # no levels for chi_square: recorded, not judged
    assert worst([r["status"] for r in rows]) == "alert"
    assert worst([]) == "ok"
    floor = Levels(warn=0.8, alert=0.65)
    assert [floor.status(v) for v in (0.9, 0.8, 0.7, 0.6)] == ["ok", "warn", "warn", "alert"]


def test_live_metrics_join_labels_by_key_per_scored_batch(spark):
    from sparkmlops.monitor.drift import live_metrics

    predictions = spark.createDataFrame(
        [(1, 1.0, "b1"), (2, 0.0, "b1"), (3, 1.0, "b2"), (4, 1.0, "b2"), (5, 0.0, "b2")],
        "k int, prediction double, _batch_id string")
    labels = spark.createDataFrame([(1, 1.0), (2, 1.0), (3, 1.0), (4, 0.0), (5, None)],
                                   "k int, label double")

    actual_df = live_metrics(predictions, labels, ["k"], "binary_classification")

    expected_df = spark.createDataFrame(  # key 5 has no label yet
        [("b1", 2, 0.5), ("b2", 2, 0.5)],
        "scored_batch string, labelled_rows long, live_accuracy double")
    assert_df_equality(actual_df, expected_df, ignore_row_order=True, ignore_nullable=True)
