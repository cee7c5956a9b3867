from __future__ import annotations

from chispa import assert_df_equality

from sparkmlops.config import DerivedFeature, LabelSettings
from sparkmlops.features import add_derived_features, build_feature_table, label_index


def test_derived_features_are_sql_expressions_in_order(spark):
    source_df = spark.createDataFrame([(40.0, 20.0), (None, 18.0)], "l double, d double")

    actual_df = add_derived_features(source_df, [
        DerivedFeature(name="ratio", expr="l / d"),
        DerivedFeature(name="ratio_x10", expr="ratio * 10"),
    ])

    expected_df = spark.createDataFrame(
        [(40.0, 20.0, 2.0, 20.0), (None, 18.0, None, None)],
        "l double, d double, ratio double, ratio_x10 double",
    )
    assert_df_equality(actual_df, expected_df, ignore_nullable=True)


def test_label_index_is_the_class_position_and_null_when_unknown(spark):
    source_df = spark.createDataFrame([("MALE",), ("FEMALE",), (None,), (".",)], "sex string")

    actual_df = source_df.select("sex", label_index(
        LabelSettings(source="sex", classes=["FEMALE", "MALE"])).alias("label"))

    expected_df = spark.createDataFrame(
        [("MALE", 1.0), ("FEMALE", 0.0), (None, None), (".", None)], "sex string, label double")
    assert_df_equality(actual_df, expected_df, ignore_nullable=True)


def test_regression_label_is_cast_to_double(spark):
    source_df = spark.createDataFrame([(3,), (None,)], "y int")

    actual_df = source_df.select(label_index(LabelSettings(source="y")).alias("label"))

    assert_df_equality(actual_df, spark.createDataFrame([(3.0,), (None,)], "label double"),
                       ignore_nullable=True)


def test_feature_table_has_keys_features_label_and_batch(spark, make_settings):
    dataset = make_settings().dataset
    source_df = spark.createDataFrame(
        [("PAL0708", 1, "Adelie", "Torgersen", 39.1, 18.7, 181.0, 3750.0, "MALE", "b1")],
        "study_name string, sample_number int, species string, island string, "
        "culmen_length_mm double, culmen_depth_mm double, flipper_length_mm double, "
        "body_mass_g double, sex string, _batch_id string",
    )

    actual_df = build_feature_table(source_df, dataset)

    assert actual_df.columns == [
        "study_name", "species", "sample_number", "culmen_length_mm", "culmen_depth_mm",
        "flipper_length_mm", "body_mass_g", "culmen_ratio", "island", "label_raw", "label",
        "_batch_id",
    ]
    row = actual_df.first()
    assert (row.culmen_ratio, row.label_raw, row.label) == (39.1 / 18.7, "MALE", 1.0)
