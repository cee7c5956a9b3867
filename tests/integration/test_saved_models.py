"""Models already saved keep loading and scoring: fixtures saved by earlier code, loaded
with the loader the predict step uses, and the import paths those models name.

The fixtures and how they were made: tests/fixtures/models/README.md.
"""

from __future__ import annotations

import importlib
from datetime import date
from pathlib import Path

import mlflow
import pytest
from pyspark.ml.functions import vector_to_array

from sparkmlops.features.transforms import (
    COMPAT_IMPORT_PATHS,
    PythonFeatureTransformer,
    normalize_text,
    resolve_transform,
)

MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"

# fixture folder → the function reference its Python stage was saved with
SAVED_REFERENCES = {
    "penguins-lr-normalize-text-026694e": "sparkmlops.features.transforms:normalize_text",
    "penguins-lr-normalize-text-old-import-paths": "sparkmlops.feature_transforms:normalize_text",
    "penguins-lr-normalize-text-registered-name": "normalize_text",
}

# The import paths saved models name. An entry dropped from COMPAT_IMPORT_PATHS (or a
# module moved without an alias left behind) would break every model that names it.
FROZEN_IMPORT_PATHS = {
    "sparkmlops.features.transforms.PythonFeatureTransformer",
    "sparkmlops.features.transforms:normalize_text",
    "sparkmlops.feature_transforms.PythonFeatureTransformer",
    "sparkmlops.feature_transforms:normalize_text",
}
# the registered names saved models name: renaming one breaks them just as well
FROZEN_NAMES = {"normalize_text": normalize_text}
CURRENT = {"PythonFeatureTransformer": PythonFeatureTransformer, "normalize_text": normalize_text}

SCORE_SCHEMA = ("sample_number int, island string, date_egg date, culmen_length_mm double, "
                "culmen_depth_mm double, body_mass_g double")
SCORE_ROWS = [
    (101, "Biscoe", date(2008, 11, 12), 47.0, 15.0, 5100.0),
    (102, "  DRÉAM ", date(2009, 11, 30), 39.5, 19.0, 3400.0),  # a known island, misspelled
    (103, "Tórgersen", date(2007, 12, 2), 40.0, 18.0, None),    # no mass: imputed
    (104, "Atlantis", None, 44.0, 18.0, 3900.0),                # an unseen island, no date
    (105, None, date(2008, 11, 15), 42.0, 17.0, 4500.0),        # no island
]
# What the models scored when they were made: computed once, with main at 026694e
# (all three fixtures give the same, being fitted on the same rows), by
# mlflow.spark.load_model(<fixture>).transform(SCORE_ROWS): (sample_number, island_norm,
# prediction, P(class 1)), P rounded to 9 places.
EXPECTED_SCORES = [
    (101, "biscoe", 1.0, 0.822152681),
    (102, "dream", 0.0, 0.090035068),
    (103, "torgersen", 1.0, 0.885617163),
    (104, "atlantis", 0.0, 0.112032601),
    (105, None, 1.0, 0.662120677),
]
EXPECTED_COLUMNS = [
    "sample_number", "island", "date_egg", "culmen_length_mm", "culmen_depth_mm",
    "body_mass_g", "date_egg_month", "culmen_ratio", "island_norm", "mass_band__bucket_input",
    "mass_band", "culmen_length_mm__imputed", "body_mass_g__imputed", "culmen_ratio__imputed",
    "date_egg_month__imputed", "island_norm__index", "mass_band__index", "island_norm__onehot",
    "mass_band__onehot", "features__unscaled", "features", "rawPrediction", "probability",
    "prediction"]


def test_every_fixture_is_covered():
    assert sorted(p.name for p in MODELS.iterdir() if p.is_dir()) == sorted(SAVED_REFERENCES)


@pytest.mark.parametrize("name", sorted(SAVED_REFERENCES))
def test_a_saved_model_loads_and_scores_as_it_did_when_saved(spark, name):
    batch = spark.createDataFrame(SCORE_ROWS, SCORE_SCHEMA)

    model = mlflow.spark.load_model(str(MODELS / name))  # as the predict step loads one
    scored = model.transform(batch)

    (python_stage,) = [s for s in model.stages if isinstance(s, PythonFeatureTransformer)]
    assert python_stage.getOrDefault("function") == SAVED_REFERENCES[name]
    assert scored.columns == EXPECTED_COLUMNS
    rows = scored.select("sample_number", "island_norm", "prediction",
                         vector_to_array("probability")[1].alias("p")).collect()
    assert sorted((r.sample_number, r.island_norm, r.prediction, round(r.p, 9))
                  for r in rows) == EXPECTED_SCORES


def test_no_import_path_that_saved_models_name_is_dropped():
    assert FROZEN_IMPORT_PATHS <= set(COMPAT_IMPORT_PATHS)


@pytest.mark.parametrize("path", COMPAT_IMPORT_PATHS)
def test_an_import_path_that_saved_models_name_resolves_to_the_current_code(path):
    if ":" in path:  # a function, as the stage's function param stores it
        attribute = path.partition(":")[2]
        found = resolve_transform(path)
    else:  # a class, as Spark's DefaultParamsWriter stores it in the stage metadata
        module, _, attribute = path.rpartition(".")
        found = getattr(importlib.import_module(module), attribute)

    assert found is CURRENT[attribute]


@pytest.mark.parametrize("name", sorted(FROZEN_NAMES))
def test_a_registered_name_that_saved_models_name_resolves_to_the_current_function(name):
    assert resolve_transform(name) is FROZEN_NAMES[name]
