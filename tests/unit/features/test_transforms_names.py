"""What a saved ``PythonFeatureTransformer`` stores as its function, read from its metadata."""

from __future__ import annotations

import json
from pathlib import Path

import pyspark.sql.functions as F
import pytest
from pyspark.ml import PipelineModel
from pyspark.ml.classification import LogisticRegression
from pyspark.sql import DataFrame

from sparkmlops.config import FeatureSettings, TransformFeature
from sparkmlops.features.transforms import PythonFeatureTransformer, feature_transform
from sparkmlops.train.fitting import build_pipeline


@feature_transform("tests.names.shout")
def shout(df: DataFrame, *, column: str, output: str) -> DataFrame:
    """A registered test transform that is not a built-in."""
    return df.withColumn(output, F.upper(column))


def whisper(df: DataFrame, *, column: str, output: str) -> DataFrame:
    """A test transform registered under no name."""
    return df.withColumn(output, F.lower(column))


def saved_function(model: PipelineModel, path: Path) -> str:
    """The ``function`` param in the saved metadata of the model's Python stage."""
    model.write().save(str(path))
    (metadata,) = [m for m in path.glob("stages/*/metadata/part-00000*")
                   if "PythonFeatureTransformer" in json.loads(m.read_text())["class"]]
    return str(json.loads(metadata.read_text())["paramMap"]["function"])


def stage(function: str) -> PythonFeatureTransformer:
    return PythonFeatureTransformer(function=function,
                                    paramsJson='{"column": "island", "output": "island_x"}',
                                    outputCols=["island_x"])


@pytest.mark.parametrize("function", ["normalize_text",
                                      "sparkmlops.features.transforms:normalize_text"])
def test_a_model_trained_from_config_stores_a_built_in_by_its_registered_name(
        spark, tmp_path, function):
    # as the train step builds and fits it; config may give the name or the import path
    features = FeatureSettings(
        transforms=[TransformFeature(function=function,
                                     params={"column": "island", "output": "island_norm"},
                                     outputs=["island_norm"])],
        numeric=["length"], categorical=["island_norm"])
    train_df = spark.createDataFrame(
        [(" Biscoe", 40.0, 0.0), ("DREAM", 45.0, 1.0), ("biscoe", 41.0, 0.0), ("Dream", 47.0, 1.0)],
        "island string, length double, label double")
    model = build_pipeline(features, LogisticRegression()).fit(train_df)

    assert saved_function(model, tmp_path / "model") == "normalize_text"


@pytest.mark.parametrize("function", ["normalize_text",
                                      "sparkmlops.features.transforms:normalize_text",
                                      "sparkmlops.feature_transforms:normalize_text"])
def test_a_built_in_is_saved_by_its_registered_name_however_the_stage_names_it(
        tmp_path, function):
    assert saved_function(PipelineModel(stages=[stage(function)]),
                          tmp_path / "model") == "normalize_text"


def test_a_registered_function_that_is_not_a_built_in_is_saved_by_its_import_path(tmp_path):
    # its name is known only where its module is imported; loading the path imports it
    assert saved_function(PipelineModel(stages=[stage("tests.names.shout")]),
                          tmp_path / "model") == f"{__name__}:shout"


def test_an_unregistered_function_is_saved_by_the_import_path_it_was_given(tmp_path):
    assert saved_function(PipelineModel(stages=[stage(f"{__name__}:whisper")]),
                          tmp_path / "model") == f"{__name__}:whisper"


def test_saving_leaves_the_stage_itself_as_it_was_given(tmp_path):
    given = stage("sparkmlops.features.transforms:normalize_text")

    saved_function(PipelineModel(stages=[given]), tmp_path / "model")

    assert given.getOrDefault("function") == "sparkmlops.features.transforms:normalize_text"


def test_a_stage_saved_by_its_registered_name_loads_and_transforms(spark, tmp_path):
    PipelineModel(stages=[stage("sparkmlops.features.transforms:normalize_text")]).write().save(
        str(tmp_path / "model"))
    source_df = spark.createDataFrame([(1, " Tórgersen "), (2, None)], "id int, island string")

    loaded = PipelineModel.load(str(tmp_path / "model"))

    assert loaded.stages[0].getOrDefault("function") == "normalize_text"
    assert sorted(tuple(r) for r in loaded.transform(source_df).collect()) == [
        (1, " Tórgersen ", "torgersen"), (2, None, None)]
