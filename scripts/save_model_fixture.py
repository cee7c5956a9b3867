"""Save a small MLflow Spark model with a Python feature stage, as the train step saves one.

    PYTHONPATH=lib .venv/bin/python scripts/save_model_fixture.py NAME [--old-import-paths]

Writes tests/fixtures/models/NAME/: a PipelineModel (date parts, derived SQL,
``normalize_text`` as a ``PythonFeatureTransformer``, buckets, impute, index, one-hot,
assemble, scale, logistic regression) fitted on a dozen hand-built penguin rows and
logged with ``train.step.log_pipeline_model`` (its signature, requirements and code)
into a throw-away MLflow store, then copied out. tests/integration/test_saved_models.py
loads these fixtures, so a change that stops a saved model loading fails there.

The copy drops the model's ``code/`` folder (a copy of the whole sparkmlops package,
which would duplicate the library in the repo) and its ``code:`` entry in MLmodel: the
installed sparkmlops provides that code, as it does wherever sparkmlops is imported.

``--old-import-paths`` then rewrites the Python stage's metadata to what a model saved
before the stage folders holds: class ``sparkmlops.feature_transforms.PythonFeatureTransformer``
and function ``sparkmlops.feature_transforms:normalize_text``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
from datetime import date
from pathlib import Path

import mlflow
import yaml
from pyspark.ml.classification import LogisticRegression
from pyspark.sql import DataFrame, SparkSession

from sparkmlops.config import (
    BucketFeature,
    DatePartsFeature,
    DerivedFeature,
    FeatureSettings,
    SparkSettings,
    TransformFeature,
)
from sparkmlops.spark import get_spark
from sparkmlops.tracking.runs import StepTracker
from sparkmlops.train.fitting import build_pipeline
from sparkmlops.train.step import log_pipeline_model, model_signature

log = logging.getLogger("save_model_fixture")

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "models"
OLD_CLASS = "sparkmlops.feature_transforms.PythonFeatureTransformer"
OLD_FUNCTION = "sparkmlops.feature_transforms:normalize_text"

# every kind of feature; island spelled in ways normalize_text folds together
FEATURES = FeatureSettings(
    date_parts=[DatePartsFeature(column="date_egg", parts=["month"])],
    derived=[DerivedFeature(name="culmen_ratio",
                            expr="try_divide(culmen_length_mm, culmen_depth_mm)")],
    transforms=[TransformFeature(function="normalize_text",
                                 params={"column": "island", "output": "island_norm"},
                                 outputs=["island_norm"])],
    buckets=[BucketFeature(name="mass_band", column="body_mass_g",
                           splits=["-inf", 4000, "inf"])],
    numeric=["culmen_length_mm", "body_mass_g", "culmen_ratio"],
    categorical=["island_norm"],
)
SCHEMA = ("sample_number int, island string, date_egg date, culmen_length_mm double, "
          "culmen_depth_mm double, body_mass_g double, label double")
TRAIN_ROWS = [
    (1, "Biscoe", date(2008, 11, 10), 45.0, 15.0, 5000.0, 1.0),
    (2, "Dream", date(2008, 11, 20), 40.0, 20.0, 3500.0, 0.0),
    (3, " biscoe", date(2008, 12, 1), 48.0, 16.0, 5200.0, 1.0),
    (4, "DREAM", date(2008, 12, 5), 38.0, 19.0, 3300.0, 0.0),
    (5, "Biscoe", None, 46.0, 15.5, 4100.0, 0.0),
    (6, "Dream", date(2009, 11, 15), 41.0, 18.0, None, 1.0),
    (7, "Torgersen", date(2009, 11, 16), 39.0, 18.5, 3600.0, 0.0),
    (8, "Tórgersen", date(2009, 11, 18), 42.5, 20.0, 4300.0, 1.0),
    (9, "torgersen ", date(2007, 11, 11), 37.5, 18.0, 3400.0, 0.0),
    (10, "Biscoe", date(2007, 11, 12), 49.0, 15.5, 5400.0, 1.0),
    (11, None, date(2007, 11, 20), 36.0, 17.5, 3200.0, 0.0),
    (12, "Dream", date(2007, 12, 1), 44.0, 19.5, 4200.0, 1.0),
]


def session() -> SparkSession:
    return get_spark(SparkSettings(
        master="local[1]", app_name="save-model-fixture",
        conf={"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "1",
              "spark.sql.session.timeZone": "UTC"}))


def train_frame(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(TRAIN_ROWS, SCHEMA).coalesce(1)


def save_fixture(spark: SparkSession, target: Path) -> None:
    """Fit, log as the train step does (into a temporary store), copy out without code/."""
    train = train_frame(spark)
    model = build_pipeline(FEATURES, LogisticRegression(regParam=0.1)).fit(train)
    inputs = [c for c in train.columns if c != "label"]
    with tempfile.TemporaryDirectory(prefix="model-fixture-") as store:
        mlflow.set_tracking_uri(f"sqlite:///{store}/mlflow.db")
        experiment = mlflow.create_experiment("fixture", artifact_location=f"{store}/artifacts")
        with mlflow.start_run(experiment_id=experiment) as run:
            tracker = StepTracker(step="train", run_id=run.info.run_id)
            signature = model_signature(train, model.transform(train), inputs)
            info = log_pipeline_model(tracker, model, signature=signature)
        local = Path(mlflow.artifacts.download_artifacts(info.model_uri, dst_path=store))
        shutil.copytree(local, target)
    drop_code(target)


def drop_code(model_dir: Path) -> None:
    """Remove the model's copy of sparkmlops and MLmodel's reference to it."""
    shutil.rmtree(model_dir / "code", ignore_errors=True)
    mlmodel = model_dir / "MLmodel"
    spec = yaml.safe_load(mlmodel.read_text())
    for flavor in spec["flavors"].values():
        flavor.pop("code", None)
    spec["model_size_bytes"] = sum(f.stat().st_size for f in model_dir.rglob("*") if f.is_file())
    mlmodel.write_text(yaml.safe_dump(spec, default_flow_style=False, sort_keys=False))


def use_old_import_paths(model_dir: Path) -> None:
    """Rewrite the Python stage's metadata to the class and function paths of earlier wheels."""
    (metadata,) = [m for m in (model_dir / "sparkml" / "stages").glob("*/metadata/part-00000*")
                   if "PythonFeatureTransformer" in json.loads(m.read_text())["class"]]
    saved = json.loads(metadata.read_text())
    saved["class"] = OLD_CLASS
    saved["paramMap"]["function"] = OLD_FUNCTION
    metadata.write_text(json.dumps(saved, separators=(",", ":")))  # as Spark writes it
    (metadata.parent / f".{metadata.name}.crc").unlink()  # its checksum no longer holds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="folder under tests/fixtures/models/")
    parser.add_argument("--old-import-paths", action="store_true",
                        help="store the stage under sparkmlops.feature_transforms")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    target = FIXTURES / args.name
    if target.exists():
        parser.error(f"{target} exists; remove it first")
    spark = session()
    try:
        save_fixture(spark, target)
    finally:
        spark.stop()
    if args.old_import_paths:
        use_old_import_paths(target)
    log.info("saved %s", target)


if __name__ == "__main__":
    main()
