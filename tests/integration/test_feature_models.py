"""A PipelineModel with a pure-Python stage through MLflow's spark flavor and spark_udf."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from chispa import assert_df_equality
from pyspark.ml.classification import LogisticRegression

from sparkmlops.config import load_settings
from sparkmlops.tracking.runs import StepTracker, configure_mlflow
from sparkmlops.train.fitting import build_pipeline
from sparkmlops.train.step import log_pipeline_model, model_signature


@pytest.fixture(scope="module")
def logged(tmp_path_factory, all_kinds_features, feature_train_df):
    """(fitted model, its MLflow model URI, input columns), logged as the train step does."""
    state_dir = tmp_path_factory.mktemp("feature_models")
    configure_mlflow(load_settings("local", "penguins", overrides=[f"state_dir={state_dir}"]))
    train = feature_train_df
    model = build_pipeline(all_kinds_features, LogisticRegression(regParam=0.1)).fit(train)
    inputs = [c for c in train.columns if c != "label"]
    with mlflow.start_run() as run:
        tracker = StepTracker(step="train", run_id=run.info.run_id)
        signature = model_signature(train, model.transform(train), inputs)
        info = log_pipeline_model(tracker, model, signature=signature)
    return model, info.model_uri, inputs


def test_python_stage_model_round_trips_through_mlflow_spark_flavor(
        spark, logged, feature_score_df):
    model, uri, _ = logged
    to_score = feature_score_df

    loaded = mlflow.spark.load_model(uri)

    expected_df = model.transform(to_score).select("id", "prediction", "probability")
    actual_df = loaded.transform(to_score).select("id", "prediction", "probability")
    assert_df_equality(actual_df, expected_df)
    # the model carries the code of its Python stage, and declared requirements only
    local = Path(mlflow.artifacts.download_artifacts(uri))
    assert (local / "code" / "sparkmlops" / "features" / "transforms.py").is_file()
    import pandas
    import pyarrow
    assert (local / "requirements.txt").read_text().splitlines() == [
        f"pyspark=={spark.version}", f"mlflow=={mlflow.__version__}",
        f"pandas=={pandas.__version__}", f"pyarrow=={pyarrow.__version__}"]


# MLflow's pyfunc of a spark-flavor model starts a local[1] Spark (a JVM) inside each
# Python worker that runs the UDF: about 30 s per query here, for any Spark model.
@pytest.mark.e2e
def test_python_stage_model_scores_the_same_with_pyfunc_spark_udf(
        spark, logged, feature_score_df):
    model, uri, inputs = logged
    to_score = feature_score_df.coalesce(1)  # one worker, so one nested Spark

    predict = mlflow.pyfunc.spark_udf(spark, uri, result_type="double", env_manager="local")

    expected_df = model.transform(to_score).select("id", "prediction")
    actual_df = to_score.select("id", predict(*inputs).alias("prediction"))
    assert_df_equality(actual_df, expected_df, ignore_nullable=True, ignore_metadata=True)
