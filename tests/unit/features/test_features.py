from __future__ import annotations

import json
from datetime import date

import pyspark.sql.functions as F
import pytest
from chispa import assert_df_equality
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame

from sparkmlops.config import (
    BucketFeature,
    DatePartsFeature,
    DerivedFeature,
    FeatureSettings,
    LabelSettings,
)
from sparkmlops.errors import ConfigError, FeatureTransformError
from sparkmlops.features.mllib import (
    DerivedFeatureError,
    bucket_stages,
    build_feature_table,
    check_derived_values,
    check_sql_features,
    date_parts_stage,
    derived_stage,
    feature_stages,
    label_index,
)
from sparkmlops.features.transforms import (
    PythonFeatureTransformer,
    feature_transform,
    normalize_text,
)
from sparkmlops.train.fitting import build_pipeline


@feature_transform("tests.mass_in_kg")
def mass_in_kg(df: DataFrame, *, column: str, output: str) -> DataFrame:
    """A test transform that also leaves a helper column behind."""
    return (df.withColumn("helper", F.col(column) / 1000)
              .withColumn(output, F.round("helper", 1)))


def test_derived_features_are_sql_expressions_in_order(spark):
    source_df = spark.createDataFrame([(40.0, 20.0), (None, 18.0)], "l double, d double")

    actual_df = derived_stage([
        DerivedFeature(name="ratio", expr="l / d"),
        DerivedFeature(name="ratio_x10", expr="ratio * 10"),
    ]).transform(source_df)

    expected_df = spark.createDataFrame(
        [(40.0, 20.0, 2.0, 20.0), (None, 18.0, None, None)],
        "l double, d double, ratio double, ratio_x10 double",
    )
    assert_df_equality(actual_df, expected_df, ignore_nullable=True, ignore_metadata=True)


def test_date_parts_are_doubles_named_after_column_and_part(spark):
    source_df = spark.createDataFrame([(date(2007, 11, 11),), (date(2009, 12, 31),), (None,)],
                                      "laid date")
    parts = ["year", "month", "dayofweek", "dayofyear", "quarter"]

    actual_df = date_parts_stage([DatePartsFeature(column="laid", parts=parts)]).transform(
        source_df)

    expected_df = spark.createDataFrame(
        [(date(2007, 11, 11), 2007.0, 11.0, 1.0, 315.0, 4.0),   # a Sunday
         (date(2009, 12, 31), 2009.0, 12.0, 5.0, 365.0, 4.0),   # a Thursday
         (None, None, None, None, None, None)],
        "laid date, laid_year double, laid_month double, laid_dayofweek double, "
        "laid_dayofyear double, laid_quarter double")
    assert_df_equality(actual_df, expected_df, ignore_nullable=True, ignore_metadata=True)


def test_buckets_cut_at_the_splits_and_give_null_and_nan_their_own_bucket(spark):
    source_df = spark.createDataFrame(
        [(1, 3000.0), (2, 3500.0), (3, 9000.0), (4, None), (5, float("nan"))],
        "id int, mass double")
    bucket = BucketFeature(name="mass_band", column="mass", splits=["-inf", 3500, 4500, "inf"])

    actual_df = Pipeline(stages=bucket_stages([bucket])).fit(source_df).transform(
        source_df).select("id", "mass_band")

    expected_df = spark.createDataFrame([(1, 0.0), (2, 1.0), (3, 2.0), (4, 3.0), (5, 3.0)],
                                        "id int, mass_band double")
    assert_df_equality(actual_df, expected_df, ignore_nullable=True, ignore_metadata=True)


def test_normalize_text_folds_case_accents_unicode_and_blanks(spark):
    source_df = spark.createDataFrame(
        [(1, " Tórgersen "), (2, "TORGERSEN"), (3, "Biscoe\u00a0 Point"), (4, "  "), (5, None)],
        "id int, island string")
    stage = PythonFeatureTransformer(function="sparkmlops.features.transforms:normalize_text",
                                     paramsJson='{"column": "island", "output": "island_norm"}',
                                     outputCols=["island_norm"])

    actual_df = stage.transform(source_df)

    expected_df = spark.createDataFrame(
        [(1, " Tórgersen ", "torgersen"), (2, "TORGERSEN", "torgersen"),
         (3, "Biscoe\u00a0 Point", "biscoe point"), (4, "  ", None), (5, None, None)],
        "id int, island string, island_norm string")
    assert_df_equality(actual_df, expected_df, ignore_nullable=True, ignore_metadata=True)


def test_normalize_text_of_a_batch_with_no_text_at_all_is_null(spark):
    # one partition, so the UDF sees an Arrow batch of nulls only
    source_df = spark.createDataFrame([(1, None), (2, None)], "id int, island string") \
        .coalesce(1)

    actual_df = normalize_text(source_df, column="island", output="island_norm")

    expected_df = spark.createDataFrame([(1, None, None), (2, None, None)],
                                        "id int, island string, island_norm string")
    assert_df_equality(actual_df, expected_df, ignore_nullable=True)


def test_python_stage_adds_only_the_declared_outputs(spark):
    source_df = spark.createDataFrame([(1, 3750.0), (2, None)], "id int, mass double")
    stage = PythonFeatureTransformer(function=f"{__name__}:mass_in_kg",
                                     paramsJson='{"column": "mass", "output": "mass_kg"}',
                                     outputCols=["mass_kg"])

    actual_df = stage.transform(source_df)

    expected_df = spark.createDataFrame([(1, 3750.0, 3.8), (2, None, None)],
                                        "id int, mass double, mass_kg double")
    assert_df_equality(actual_df, expected_df, ignore_nullable=True, ignore_metadata=True)


def test_python_stage_fails_when_the_function_does_not_add_its_outputs(spark):
    source_df = spark.createDataFrame([(1, 3750.0)], "id int, mass double")
    stage = PythonFeatureTransformer(function=f"{__name__}:mass_in_kg",
                                     paramsJson='{"column": "mass", "output": "mass_kg"}',
                                     outputCols=["mass_kg", "mass_lb"])

    with pytest.raises(FeatureTransformError, match=r"did not add .*\['mass_lb'\]"):
        stage.transform(source_df)


DRIVER_ONLY_MODULE = """
import pyspark.sql.functions as F


def _shout(text):
    return None if text is None else text.upper() + "!"


def shout(df, *, column, output):
    @F.udf("string")
    def shout_udf(value):
        return _shout(value)

    return df.withColumn(output, shout_udf(column))
"""


def test_udfs_of_a_transform_run_where_only_the_driver_can_import_its_module(
        spark, tmp_path, monkeypatch):
    # as with a model loaded by MLflow, whose code is on the driver's sys.path only
    (tmp_path / "driver_only_transforms.py").write_text(DRIVER_ONLY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    source_df = spark.createDataFrame([(1, "dream"), (2, None)], "id int, island string")
    stage = PythonFeatureTransformer(function="driver_only_transforms:shout",
                                     paramsJson='{"column": "island", "output": "loud"}',
                                     outputCols=["loud"])

    actual_df = stage.transform(source_df)

    expected_df = spark.createDataFrame([(1, "dream", "DREAM!"), (2, None, None)],
                                        "id int, island string, loud string")
    assert_df_equality(actual_df, expected_df, ignore_nullable=True)


def test_feature_table_keeps_keys_schema_columns_label_and_batch(spark, make_settings):
    dataset = make_settings().dataset
    schema = ", ".join(f"`{c.name}` {c.type}" for c in dataset.schema_)
    values = {c.name: None for c in dataset.schema_}
    source_df = spark.createDataFrame([
        tuple({**values, "study_name": "PAL0708", "sample_number": 1, "species": "Adelie",
               "island": "Torgersen", "date_egg": date(2007, 11, 11),
               "body_mass_g": 3750.0, "sex": "MALE"}.values()) + ("b1",),
        tuple({**values, "study_name": "PAL0708", "sample_number": 2, "species": "Adelie",
               "sex": "."}.values()) + ("b1",),
    ], f"{schema}, _batch_id string")

    actual_df = build_feature_table(source_df, dataset)

    # the keys first; no derived column (the pipeline computes them); sex only as the label
    assert actual_df.columns == [
        "study_name", "species", "sample_number", "region", "island", "stage",
        "individual_id", "clutch_completion", "date_egg", "culmen_length_mm",
        "culmen_depth_mm", "flipper_length_mm", "body_mass_g", "delta_15_n", "delta_13_c",
        "comments", "label_raw", "label", "_batch_id"]
    assert_df_equality(
        actual_df.select("sample_number", "island", "date_egg", "body_mass_g", "label_raw",
                         "label", "_batch_id"),
        spark.createDataFrame(
            [(1, "Torgersen", date(2007, 11, 11), 3750.0, "MALE", 1.0, "b1"),
             (2, None, None, None, ".", None, "b1")],
            "sample_number int, island string, date_egg date, body_mass_g double, "
            "label_raw string, label double, _batch_id string"),
        ignore_nullable=True)


def test_a_derived_feature_naming_a_missing_column_fails_with_its_key_path(spark):
    source_df = spark.createDataFrame([(40.0, 20.0)], "l double, d double")
    features = FeatureSettings(derived=[DerivedFeature(name="ratio", expr="l / d"),
                                        DerivedFeature(name="bad", expr="ratio * wingspan")],
                               numeric=["ratio"])

    with pytest.raises(ConfigError, match=r"features.derived.1 \(bad\): 'ratio \* wingspan'"
                                          r".*wingspan"):
        check_sql_features(source_df, features)


def test_a_derived_feature_on_the_label_column_fails_with_its_key_path(spark, make_settings):
    # gold, which the model reads, holds the label's column as label_raw only
    dataset = make_settings("dataset.features.derived=[{name: male, expr: \"sex = 'MALE'\"}]",
                            "dataset.features.numeric=[body_mass_g, male]").dataset
    schema = ", ".join(f"`{c.name}` {c.type}" for c in dataset.schema_)
    source_df = spark.createDataFrame([], f"{schema}, _batch_id string")

    with pytest.raises(ConfigError) as error:
        build_feature_table(source_df, dataset)

    assert str(error.value).startswith(
        "features.derived.0 (male): \"sex = 'MALE'\": [UNRESOLVED_COLUMN.WITH_SUGGESTION] "
        "A column, variable, or function parameter with name `sex` cannot be resolved.")


ISLANDS_SCHEMA = "id int, island string, length double, depth double"
# id 0 casts, id 1 is the first row by id that does not; the rows are not in id order
ISLANDS = [(3, "Biscoe", 40.0, 20.0), (4, None, None, 18.0), (1, "Dream", 41.0, 0.0),
           (0, "7", 39.0, 19.0), (2, "Torgersen", 42.0, 0.0)]
CAST_DREAM = ("[CAST_INVALID_INPUT] The value 'Dream' of the type \"STRING\" cannot be cast to "
              "\"INT\" because it is malformed. Correct the value as per the syntax, or change "
              "its target type. Use `try_cast` to tolerate malformed input and return NULL "
              "instead. SQLSTATE: 22018")


@pytest.mark.parametrize(("expr", "reason"), [
    ("cast(island as int)", CAST_DREAM),
    # not nullable: a count(...) of it is count(1), which never computes it
    ("coalesce(cast(island as int), 0)", CAST_DREAM),
    ("length / depth", "[DIVIDE_BY_ZERO] Division by zero. Use `try_divide` to tolerate "
     "divisor being 0 and return NULL instead. If necessary set \"spark.sql.ansi.enabled\" "
     "to \"false\" to bypass this error. SQLSTATE: 22012"),
])
def test_a_derived_feature_failing_on_a_row_is_named_with_its_first_failing_value(
        spark, expr, reason):
    source_df = spark.createDataFrame(ISLANDS, ISLANDS_SCHEMA)
    features = FeatureSettings(
        derived=[DerivedFeature(name="ratio", expr="try_divide(length, depth)"),
                 DerivedFeature(name="bad", expr=expr),
                 DerivedFeature(name="bad_x2", expr="bad * 2")],
        numeric=["ratio"])

    with pytest.raises(DerivedFeatureError) as error:
        check_derived_values(source_df, features, keys=["id"], source="the islands")

    assert error.value.exit_code == 2
    assert str(error.value) == (
        f"features.derived.1 (bad): {expr!r} fails on the islands (first failing row by id): "
        f"{reason}")


def test_derived_features_that_compute_on_every_row_cost_one_spark_job(spark):
    source_df = spark.createDataFrame(
        [(i, date(2008, 11, 1 + i)) for i in range(20)], "id int, laid date")
    features = FeatureSettings(
        date_parts=[DatePartsFeature(column="laid", parts=["month"])],
        derived=[DerivedFeature(name="late", expr="laid_month > 11"),
                 DerivedFeature(name="day", expr="try_cast(date_format(laid, 'd') as int)")],
        numeric=["laid_month"])
    context = spark.sparkContext
    context.setJobGroup("derived_values", "check_derived_values")

    check_derived_values(source_df, features, keys=["id"], source="the days")

    assert len(context.statusTracker().getJobIdsForGroup("derived_values")) == 1


def test_label_index_is_the_class_position_and_null_when_unknown(spark):
    source_df = spark.createDataFrame([("MALE",), ("FEMALE",), (None,), (".",)], "sex string")

    actual_df = source_df.select("sex", label_index(
        LabelSettings(source="sex", classes=["FEMALE", "MALE"])).alias("label"))

    expected_df = spark.createDataFrame(
        [("MALE", 1.0), ("FEMALE", 0.0), (None, None), (".", None)], "sex string, label double")
    assert_df_equality(actual_df, expected_df, ignore_nullable=True, ignore_metadata=True)


def test_regression_label_is_cast_to_double(spark):
    source_df = spark.createDataFrame([(3,), (None,)], "y int")

    actual_df = source_df.select(label_index(LabelSettings(source="y")).alias("label"))

    assert_df_equality(actual_df, spark.createDataFrame([(3.0,), (None,)], "label double"),
                       ignore_nullable=True)


# ---------------------------------------------------------------- whole feature pipelines

def test_unseen_and_null_inputs_at_scoring_time_get_their_own_encoding(
        spark, all_kinds_features, feature_train_df, feature_score_df):
    model = Pipeline(stages=feature_stages(all_kinds_features, scale="none")).fit(feature_train_df)

    actual_df = model.transform(feature_score_df).select(
        "id", "island_norm", "island_norm__index", "laid_month__imputed", "mass__imputed",
        "mass_band", "mass_band__index", vector_to_array("features").alias("features"))

    # training: islands biscoe (0), dream (1); months 11, 11, 12, 12, 11 (median 11);
    # masses 3300, 3500, 4100, 5000, 5200 (median 4100); bands 0.0, 1.0 and 2.0 (row 6's
    # null mass). An unseen or null island gets the kept index 2 and its own one-hot
    # slot. The vector: length, mass, ratio, laid_month, island (biscoe, dream, other),
    # band (0.0, 1.0, 2.0, other)
    expected_df = spark.createDataFrame([
        (10, "atlantis", 2.0, 12.0, 3900.0, 0.0, 0.0,
         [44.0, 3900.0, 44.0 / 18.0, 12.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]),
        (11, None, 2.0, 11.0, 4100.0, 2.0, 2.0,
         [42.0, 4100.0, 42.0 / 17.0, 11.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0]),
        (12, "dream", 1.0, 11.0, 4000.0, 1.0, 1.0,
         [39.0, 4000.0, 39.0 / 19.5, 11.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0]),
    ], "id int, island_norm string, island_norm__index double, laid_month__imputed double, "
       "mass__imputed double, mass_band double, mass_band__index double, "
       "features array<double>")
    assert_df_equality(actual_df, expected_df, ignore_nullable=True, ignore_metadata=True)


def test_index_encoding_mode_imputation_and_minmax_scaling(spark, all_kinds_features):
    features = all_kinds_features.model_copy(update={
        "categorical_encoding": "index", "impute": "mode", "scale": "minmax",
        "numeric": ["length"], "date_parts": [], "buckets": []})
    source_df = spark.createDataFrame(
        [(1, "Biscoe", None, 40.0, 1.0, None, 0.0), (2, "Dream", None, 40.0, 1.0, None, 1.0),
         (3, "Dream", None, 50.0, 1.0, None, 1.0), (4, None, None, None, 1.0, None, 0.0)],
        "id int, island string, laid date, length double, depth double, mass double, "
        "label double")

    model = build_pipeline(features, LogisticRegression()).fit(source_df)
    actual_df = model.transform(source_df).select(
        "id", vector_to_array("features__unscaled").alias("unscaled"),
        vector_to_array("features").alias("features"))

    # length: null → the mode 40; island: biscoe 0, dream 1, null the kept index 2
    expected_df = spark.createDataFrame([
        (1, [40.0, 0.0], [0.0, 0.0]), (2, [40.0, 1.0], [0.0, 0.5]),
        (3, [50.0, 1.0], [1.0, 0.5]), (4, [40.0, 2.0], [0.0, 1.0])],
        "id int, unscaled array<double>, features array<double>")
    assert_df_equality(actual_df, expected_df, ignore_nullable=True, ignore_metadata=True)


def test_python_stage_pipeline_saved_and_loaded_predicts_the_same(
        tmp_path, all_kinds_features, feature_train_df, feature_score_df):
    model = build_pipeline(all_kinds_features, LogisticRegression(regParam=0.1)).fit(
        feature_train_df)
    model.write().overwrite().save(str(tmp_path / "model"))

    loaded = PipelineModel.load(str(tmp_path / "model"))

    stage = next(s for s in loaded.stages if isinstance(s, PythonFeatureTransformer))
    # a built-in by its registered name, which outlives a move of its module
    assert stage.getOrDefault("function") == "normalize_text"
    expected_df = model.transform(feature_score_df).select("id", "prediction", "probability")
    actual_df = loaded.transform(feature_score_df).select("id", "prediction", "probability")
    assert_df_equality(actual_df, expected_df)
    assert actual_df.where("prediction IS NULL").count() == 0


def test_a_stage_saved_under_the_module_name_of_earlier_wheels_still_loads(spark, tmp_path):
    # what a model registered before the stage folders holds: class and function under
    # sparkmlops.feature_transforms
    stage = PythonFeatureTransformer(
        function="sparkmlops.feature_transforms:normalize_text",
        paramsJson='{"column": "island", "output": "island_norm"}', outputCols=["island_norm"])
    PipelineModel(stages=[stage]).write().save(str(tmp_path / "model"))
    metadata = next((tmp_path / "model" / "stages").glob("0_*/metadata/part-00000*"))
    saved = json.loads(metadata.read_text())
    saved["class"] = "sparkmlops.feature_transforms.PythonFeatureTransformer"
    metadata.write_text(json.dumps(saved))
    (metadata.parent / f".{metadata.name}.crc").unlink()  # its checksum no longer holds
    source_df = spark.createDataFrame([(1, " Bíscoe "), (2, None)], "id int, island string")

    actual_df = PipelineModel.load(str(tmp_path / "model")).transform(source_df)

    expected_df = spark.createDataFrame([(1, " Bíscoe ", "biscoe"), (2, None, None)],
                                        "id int, island string, island_norm string")
    assert_df_equality(actual_df, expected_df, ignore_nullable=True)
