from __future__ import annotations

import math
import random
from datetime import datetime

import pyspark.sql.functions as F
import pytest
from chispa import assert_df_equality

from sparkmlops.monitor.drift import (
    DriftMetric,
    MonitoringRow,
    MonitorRun,
    chi_square,
    compare,
    judged,
    judged_live,
    ks_statistic,
    merged_bins,
    monitoring_schema,
    psi,
    worst,
)
from sparkmlops.train.reference import (
    NULL_BUCKET,
    OTHER_BUCKET,
    UNSEEN_BUCKET,
    CategoricalProfile,
    NumericProfile,
    Profile,
    batch_profile,
    model_reference,
    reference_profile,
    reference_rows,
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


def test_categories_beyond_the_kept_ones_are_rare_not_unseen(spark):
    # 4 islands, the reference keeps the 2 most frequent: the other 2 are seen, only rare
    islands = ["A"] * 50 + ["B"] * 30 + ["C"] * 10 + ["D"] * 10  # PSI needs 25 rows a bin
    df = _frame(spark, [1.0] * len(islands), islands)
    reference = reference_profile(df, numeric=[], categorical=["island"], max_categories=2)
    assert reference.categorical["island"].shares == {"A": 0.5, "B": 0.3, OTHER_BUCKET: 0.2}
    assert reference.categorical["island"].other == ["C", "D"]
    assert Profile.from_dict(reference.to_dict()) == reference

    same = {(m.feature, m.metric): m.value
            for m in compare(reference, batch_profile(df, reference))}
    assert same[("island", "unseen_rate")] == 0.0
    assert same[("island", "psi")] == pytest.approx(0.0)
    # a value the reference never saw is unseen; a rare one is not
    later = _frame(spark, [1.0] * 4, ["A", "C", "E", "E"])
    shifted = {(m.feature, m.metric): m.value
               for m in compare(reference, batch_profile(later, reference))}
    assert batch_profile(later, reference).categorical["island"].shares == {
        "A": 0.25, OTHER_BUCKET: 0.25, UNSEEN_BUCKET: 0.5}
    assert shifted[("island", "unseen_rate")] == 0.5


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


def _training_data(spark, n: int = 2000):
    """``n`` rows of a skewed number, in a seeded random order."""
    rng = random.Random(7)
    rows = [(round(rng.lognormvariate(3.0, 0.5), 3),) for _ in range(n)]
    return spark.createDataFrame(rows, "x double").coalesce(1)


def test_the_training_data_against_its_own_reference_is_ok_where_a_holdout_one_warns(spark):
    from sparkmlops.config import MonitorSettings

    data = _training_data(spark)
    # a 3 % holdout, 61 rows: what train profiled before (91 rows of 342 penguins)
    holdout = data.where(F.monotonically_increasing_id() % 33 == 0)
    reference = reference_profile(reference_rows(data), numeric=["x"], categorical=[])
    holdout_reference = reference_profile(holdout, numeric=["x"], categorical=[])
    on_own, on_holdout = batch_profile(data, reference), batch_profile(data, holdout_reference)

    own = judged(compare(reference, on_own), MonitorSettings().drift, RUN, rows=2000)
    assert worst([r.status for r in own]) == "ok"
    # every drift metric of the data against its own reference is nought
    assert [r.value for r in own] == [0.0] * 5
    # the holdout's ten deciles are where its 61 values fell: on them the very data it
    # was drawn from has a PSI of 0.29, over the alert level (what monitor said before)
    assert holdout_reference.numeric["x"].rows == 61
    assert psi(holdout_reference.numeric["x"].bin_shares,
               on_holdout.numeric["x"].bin_shares) == pytest.approx(0.2898, abs=1e-4)
    # merged to 25 rows a bin (two bins of 61), and no KS on 61 rows: not drift either
    [psi_row, ks_row] = compare(holdout_reference, on_holdout)[:2]
    assert psi_row.value == pytest.approx(0.0203, abs=1e-4)
    assert math.isnan(ks_row.value)


def test_reference_rows_are_all_the_data_up_to_the_limit_and_a_seeded_sample_beyond(spark):
    data = _training_data(spark, 1000)

    sample = reference_rows(data, limit=100, seed=3)

    assert reference_rows(data, limit=1000) is data
    assert 60 < sample.count() < 140
    assert sample.collect() == reference_rows(data, limit=100, seed=3).collect()


RUN = MonitorRun(batch_id="b2", model_name="m", model_version="3", model_run_id="train1",
                 monitor_run_id="mon1", monitored_at=datetime(2026, 11, 26, 12, 0, 0))


def test_levels_judge_ceilings_and_floors_and_the_batch_takes_the_worst():
    from sparkmlops.config import Levels

    rows = judged([DriftMetric("x", "psi", 0.05), DriftMetric("x", "ks", 0.15, 0.01),
                   DriftMetric("y", "psi", 0.3), DriftMetric("y", "chi_square", 9.0, 0.01)],
                  {"psi": Levels(warn=0.1, alert=0.25), "ks": Levels(warn=0.1, alert=0.2)},
                  RUN, rows=40)

    assert rows == [
        MonitoringRow("b2", "b2", "x", "psi", 0.05, None, 0.1, 0.25, "ok", 40, "m", "3",
                      "train1", "mon1", RUN.monitored_at),
        MonitoringRow("b2", "b2", "x", "ks", 0.15, 0.01, 0.1, 0.2, "warn", 40, "m", "3",
                      "train1", "mon1", RUN.monitored_at),
        MonitoringRow("b2", "b2", "y", "psi", 0.3, None, 0.1, 0.25, "alert", 40, "m", "3",
                      "train1", "mon1", RUN.monitored_at),
        # no levels for chi_square: recorded, not judged
        MonitoringRow("b2", "b2", "y", "chi_square", 9.0, 0.01, None, None, "ok", 40, "m",
                      "3", "train1", "mon1", RUN.monitored_at)]
    assert [r.described() for r in rows if r.status != "ok"] == [
        "x.ks=0.15 (warn)", "y.psi=0.3 (alert)"]
    assert worst([r.status for r in rows]) == "alert"
    assert worst([]) == "ok"
    floor = Levels(warn=0.8, alert=0.65)
    assert [floor.status(v) for v in (0.9, 0.8, 0.7, 0.6)] == ["ok", "warn", "warn", "alert"]


def test_a_nan_drift_metric_is_recorded_not_judged():
    from sparkmlops.config import Levels

    (row,) = judged([DriftMetric("x", "psi", float("nan"))],
                    {"psi": Levels(warn=0.1, alert=0.25)}, RUN, rows=None)

    assert (row.status, row.warn, row.alert, row.rows) == ("ok", 0.1, 0.25, None)
    assert math.isnan(row.value)


def test_live_metrics_are_judged_per_scored_batch_over_their_labelled_rows(spark):
    from sparkmlops.config import Levels

    metrics = spark.createDataFrame(
        [("b1", 30, 0.9), ("b2", 12, 0.7), ("b3", 5, None)],
        "scored_batch string, labelled_rows long, live_accuracy double")

    rows = judged_live(metrics, {"accuracy": Levels(warn=0.8, alert=0.65)}, RUN)

    assert sorted((r.scored_batch, r.feature, r.metric, r.value, r.p_value, r.warn, r.alert,
                   r.status, r.rows) for r in rows) == [
        ("b1", "_model", "live_accuracy", 0.9, None, 0.8, 0.65, "ok", 30),
        ("b2", "_model", "live_accuracy", 0.7, None, 0.8, 0.65, "warn", 12)]
    # every row names the monitored batch and the run, whichever batch it is of
    assert {(r.batch_id, r.model_version, r.monitor_run_id) for r in rows} == {
        ("b2", "3", "mon1")}


def test_a_live_metric_without_levels_is_recorded_ok(spark):
    metrics = spark.createDataFrame([("b1", 8, 1.5, 1.2)], "scored_batch string, "
                                    "labelled_rows long, live_rmse double, live_mae double")

    rows = judged_live(metrics, {}, RUN)

    assert [(r.metric, r.value, r.warn, r.status, r.rows) for r in rows] == [
        ("live_rmse", 1.5, None, "ok", 8), ("live_mae", 1.2, None, "ok", 8)]


def test_monitoring_rows_are_the_table_schema_and_read_back_unchanged(spark):
    row = MonitoringRow("b2", "b1", "_model", "live_accuracy", 0.7, None, 0.8, 0.65, "warn",
                        12, "m", "3", "train1", "mon1", RUN.monitored_at)

    frame = spark.createDataFrame([row.record()], monitoring_schema())

    assert frame.columns == [
        "_batch_id", "scored_batch", "feature", "metric", "value", "p_value", "warn", "alert",
        "status", "rows", "model_name", "model_version", "model_run_id", "monitor_run_id",
        "monitored_at", "note"]
    assert [f.dataType.simpleString() for f in frame.schema.fields] == [
        "string", "string", "string", "string", "double", "double", "double", "double",
        "string", "bigint", "string", "string", "string", "string", "timestamp", "string"]
    assert [MonitoringRow.from_row(r) for r in frame.collect()] == [row]


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


def test_sparse_bins_merge_in_order_until_each_holds_enough_rows():
    deciles = [0.1] * 10
    piled = [0.0] * 9 + [1.0]  # a batch whose every value is in the top decile

    # 1000 rows: 100 a decile, nothing to merge
    assert merged_bins(deciles, piled, 1000) == (deciles, piled)
    # 100 rows: three deciles hold 30 >= 25; the short last one joins the bin before
    expected, actual = merged_bins(deciles, piled, 100)
    assert (expected, actual) == (pytest.approx([0.3, 0.3, 0.4]), [0.0, 0.0, 1.0])
    # 40 rows: seven deciles make one bin of 28, the other three no second one
    assert merged_bins(deciles, piled, 40) is None


def _numeric(rows: int, shares: list[float], null_rate: float = 0.0) -> NumericProfile:
    return NumericProfile("x", rows, edges=[float(i) for i in range(1, len(shares))],
                          bin_shares=shares, points=[5.0],
                          cdf=[sum(shares[:5])], null_rate=null_rate,
                          minimum=0.0, maximum=10.0)


def test_a_small_batch_is_measured_on_merged_bins_and_not_tested():
    # 60 rows drawn from ten equal deciles, as a sample of 60 falls: 3 to 9 a decile
    sample = [c / 60 for c in (3, 9, 6, 9, 3, 6, 9, 3, 6, 6)]
    reference = Profile(numeric={"x": _numeric(5000, [0.1] * 10)})
    batch = Profile(numeric={"x": _numeric(60, sample)})

    metrics = {m.metric: m for m in compare(reference, batch)}

    # on ten deciles the sample is 0.16 from its own population, over the warn level
    assert psi([0.1] * 10, sample) == pytest.approx(0.1648, abs=1e-4)
    # merged to bins of 25 expected rows: five deciles, then the other five
    assert metrics["psi"].value == pytest.approx(0.0, abs=1e-12)
    assert metrics["psi"].note is None
    assert math.isnan(metrics["ks"].value) and metrics["ks"].p_value is None
    assert metrics["ks"].note == ("not computed: 5000 reference and 60 batch rows, the "
                                  "test needs at least 100 on each side")


def test_too_few_rows_for_two_bins_leave_psi_uncomputed_and_unjudged():
    from sparkmlops.config import MonitorSettings

    reference = Profile(numeric={"x": _numeric(5000, [0.1] * 10)},
                        categorical={"island": CategoricalProfile(
                            "island", 5000, {"A": 0.5, "B": 0.5}, 0.0)})
    # 40 rows, a quarter of them null: 30 values, all in the top decile
    batch = Profile(numeric={"x": _numeric(40, [0.0] * 9 + [1.0], null_rate=0.25)},
                    categorical={"island": CategoricalProfile(
                        "island", 40, {"A": 1.0}, 0.0)})

    rows = {(r.feature, r.metric): r for r in judged(
        compare(reference, batch), MonitorSettings().drift, RUN, rows=40)}

    assert math.isnan(rows[("x", "psi")].value)
    assert rows[("x", "psi")].status == "ok"
    assert rows[("x", "psi")].note == ("not computed: 30 rows, PSI needs at least 25 in "
                                       "each of two bins")
    # the categories: 0.5 of 40 is 20 < 25 expected rows, so no two bins either
    assert math.isnan(rows[("island", "psi")].value)
    assert math.isnan(rows[("island", "chi_square")].value)
    # the rates are measured whatever the size
    assert rows[("x", "null_rate_increase")].value == 0.25
    assert rows[("x", "null_rate_increase")].status == "alert"


def test_a_statistic_over_its_level_that_chance_explains_is_ok_with_a_note():
    from sparkmlops.config import Levels

    levels = {"ks": Levels(warn=0.1, alert=0.2)}
    chance, drift_ = judged([DriftMetric("x", "ks", 0.12, 0.08),
                             DriftMetric("y", "ks", 0.12, 0.01)], levels, RUN, rows=150)

    assert (chance.status, chance.note) == (
        "ok", "warn level reached, but p=0.08 >= 0.05: within chance at these sample sizes")
    assert (drift_.status, drift_.note) == ("warn", None)
