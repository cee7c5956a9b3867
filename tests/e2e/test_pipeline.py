"""The whole pipeline on the sample: tables, registry, lineage, idempotency, spark-submit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from delta.tables import DeltaTable
from mlflow.tracking import MlflowClient

from sparkmlops.ingest.step import IngestOutcome, default_batch_id
from sparkmlops.pipeline.step import BATCH_STEPS, run_pipeline
from sparkmlops.predict.step import PredictOutcome
from sparkmlops.promote.promotion import decision_record
from sparkmlops.promote.step import PromoteOutcome
from sparkmlops.tables import current_version, dataset_tables, read_table, table_ref
from sparkmlops.tracking.registry import CHALLENGER, CHAMPION, ModelRegistry
from sparkmlops.tracking.runs import configure_mlflow
from sparkmlops.train.step import TrainOutcome

pytestmark = pytest.mark.e2e

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def source_rows(sample_landing) -> int:
    """Data lines in the sample's landing files (headers left out)."""
    return sum(len(p.read_text().splitlines()) - 1 for p in sample_landing.glob("*.csv"))


def _table(spark, settings, layer, name=None):
    ref = table_ref(settings, layer, name)
    return ref, current_version(spark, ref), read_table(spark, ref)


def test_sample_has_344_rows(source_rows):
    assert source_rows == 344


def test_tables_exist_with_versions_and_reconciled_counts(spark, pipeline_run, source_rows):
    settings = pipeline_run.settings
    counts = {}
    for layer, name in [("bronze", None), ("silver", None), ("quarantine", None),
                        ("gold", "penguins_features"), ("predictions", None),
                        ("validation_results", None)]:
        ref, version, df = _table(spark, settings, layer, name)
        counts[ref.fqn] = (version, df.count())

    assert counts == {
        "bronze.penguins": (0, source_rows),
        "silver.penguins": (0, 342),
        # v0: ingest's (empty) quarantine commit, v1: the validate step's rows
        "quarantine.penguins": (1, 2),
        "gold.penguins_features": (0, 342),
        "predictions.penguins": (0, 342),
        "validation_results.penguins": (0, len(settings.dataset.validate_.expectations)),
    }
    quarantined = read_table(spark, dataset_tables(settings).quarantine).collect()
    # the two birds of the raw data with no measurements at all
    assert sorted((json.loads(q.record)["study_name"], json.loads(q.record)["sample_number"])
                  for q in quarantined) == [("PAL0708", 4), ("PAL0910", 120)]
    assert {q.reason for q in quarantined} == {
        "failed expectations: expect_column_values_to_not_be_null(body_mass_g)"}


def test_tables_are_genuine_delta_tables(spark, pipeline_run):
    bronze = dataset_tables(pipeline_run.settings).bronze
    commit = Path(bronze.path, "_delta_log", "00000000000000000000.json").read_text()
    actions = [next(iter(json.loads(line))) for line in commit.splitlines()]

    assert {"protocol", "metaData", "add", "commitInfo"} <= set(actions)
    assert DeltaTable.isDeltaTable(spark, bronze.path)
    history = DeltaTable.forPath(spark, bronze.path).history().collect()
    assert [(h.version, h.operation) for h in history] == [(0, "WRITE")]


def test_another_delta_reader_opens_the_tables(pipeline_run, source_rows):
    """delta-rs (no Spark, no JVM) reads what the pipeline wrote."""
    from deltalake import DeltaTable as RustDeltaTable

    settings = pipeline_run.settings
    bronze = RustDeltaTable(dataset_tables(settings).bronze.path)
    predictions = RustDeltaTable(dataset_tables(settings).predictions.path).to_pyarrow_table()

    assert (bronze.version(), bronze.to_pyarrow_table().num_rows) == (0, source_rows)
    assert predictions.num_rows == 342
    assert predictions.column("model_version").unique().to_pylist() == ["1"]


def test_registered_version_has_the_aliases_and_predictions_name_it(spark, pipeline_run):
    settings = pipeline_run.settings
    result = pipeline_run.result
    configure_mlflow(settings)
    client = MlflowClient()
    name = settings.dataset.model.name
    train = result.step(TrainOutcome)

    champion = client.get_model_version_by_alias(name, CHAMPION)
    challenger = client.get_model_version_by_alias(name, CHALLENGER)

    assert str(champion.version) == str(challenger.version) == train.model_version == "1"
    assert champion.run_id == train.run_id
    # the few tags train writes, and the promotion gate's record: ten, not 31
    card_uri = f"runs:/{train.run_id}/model_card.json"
    auc = round(train.metrics["areaUnderROC"], 6)
    assert {k: v for k, v in champion.tags.items() if k != "promotion.decision"} == {
        "sparkmlops.dataset": "penguins", "sparkmlops.batch_id": result.batch_id,
        "sparkmlops.training_run": train.run_id, "sparkmlops.training_table_version": "0",
        "sparkmlops.metric.areaUnderROC": str(auc), "sparkmlops.model_card": card_uri,
        "promotion.mode": "enabled", "promotion.promoted": "True",
        "promotion.champion_move": "done"}
    assert decision_record(champion.tags)["run_id"] == result.step(PromoteOutcome).run_id
    card = ModelRegistry(client).model_card(champion)
    assert set(card) == {
        "model", "version", "dataset", "batch_id", "training_run_id", "training_table",
        "training_table_path", "training_table_version", "git_commit", "sparkmlops_version",
        "wheel_sha256", "config_hash", "primary_metric", "metrics"}
    assert (card["model"], card["version"], card["training_table"],
            card["training_table_version"], card["config_hash"], card["primary_metric"]) == (
        name, "1", "gold.penguins_features", 0, settings.config_hash(), "areaUnderROC")
    assert card["training_table_path"] == dataset_tables(settings).gold.path
    assert card["metrics"] == {k: round(v, 6) for k, v in train.metrics.items()}
    predictions = read_table(spark, dataset_tables(settings).predictions)
    assert {(r.model_name, r.model_version, r.model_run_id, r._batch_id) for r in
            predictions.select("model_name", "model_version", "model_run_id", "_batch_id")
            .distinct().collect()} == {(name, "1", train.run_id, result.batch_id)}
    assert predictions.where("predicted_label NOT IN ('MALE', 'FEMALE')").count() == 0
    assert train.metrics["areaUnderROC"] > 0.85


def test_training_run_logs_evaluation_plots_that_agree_with_its_metrics(pipeline_run):
    configure_mlflow(pipeline_run.settings)
    train = pipeline_run.result.step(TrainOutcome)
    run = MlflowClient().get_run(train.run_id)
    listed = {a.path for a in MlflowClient().list_artifacts(train.run_id, "plots")}

    assert {f"plots/{n}.png" for n in ("roc_curve", "pr_curve", "confusion_matrix",
                                       "coefficients")} <= listed
    roc = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/plots/roc_curve.json")
    assert roc["auc"] == pytest.approx(run.data.metrics["areaUnderROC"], abs=0.01)
    matrix = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/plots/confusion_matrix.json")
    assert matrix["labels"] == ["FEMALE", "MALE"]
    cells = [c for row in matrix["matrix"] for c in row]
    assert sum(cells) == train.rows_test
    correct = matrix["matrix"][0][0] + matrix["matrix"][1][1]
    assert correct / sum(cells) == pytest.approx(run.data.metrics["accuracy"])
    weights = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/plots/coefficients.json")
    assert {"body_mass_g", "culmen_ratio", "species_Gentoo penguin (Pygoscelis papua)"} <= set(
        weights)


def test_parent_run_has_one_nested_run_per_step_with_lineage(pipeline_run, source_rows):
    settings = pipeline_run.settings
    result = pipeline_run.result
    experiment_id = configure_mlflow(settings)

    runs = mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'",
        output_format="list",
    )
    by_step = {r.data.tags["sparkmlops.step"]: r for r in runs}

    assert sorted(by_step) == sorted(BATCH_STEPS)
    assert len(runs) == len(BATCH_STEPS)
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.tags["sparkmlops.config_hash"] == settings.config_hash()
        assert run.data.tags["mlflow.source.git.commit"] != ""
        assert run.data.tags["sparkmlops.batch_id"] == result.batch_id
    assert by_step["ingest"].data.params["output.bronze.penguins.version"] == "0"
    assert by_step["ingest"].data.metrics["rows_in.landing"] == source_rows
    assert by_step["validate"].data.params["input.bronze.penguins.version"] == "0"
    assert by_step["validate"].data.metrics["rows_out.silver.penguins"] == 342
    assert by_step["validate"].data.metrics["rows_out.quarantine.penguins"] == 2
    assert by_step["train"].data.params["input.gold.penguins_features.version"] == "0"
    assert by_step["predict"].data.params["output.predictions.penguins.version"] == "0"
    lineage = mlflow.artifacts.load_dict(f"{by_step['predict'].info.artifact_uri}/lineage.json")
    assert lineage["outputs"][0]["table"] == "predictions.penguins"
    gx = mlflow.artifacts.load_dict(
        f"{by_step['validate'].info.artifact_uri}/validation/gx_result.json")
    assert gx["suite_name"] == "penguins_bronze"


def test_parent_run_carries_the_batchs_headline_numbers(pipeline_run, source_rows):
    """What the runs table shows for the batch without opening a nested run."""
    configure_mlflow(pipeline_run.settings)
    result = pipeline_run.result
    parent = MlflowClient().get_run(result.parent_run_id)
    # a nested run's metrics are not the parent's: only the headline (and no step_seconds)
    assert parent.data.metrics == {
        "rows_in": source_rows, "rows_quarantined": 2, "rows_kept_failing": 0,
        "holdout.areaUnderROC": result.step(TrainOutcome).metrics["areaUnderROC"],
        "promoted": 1, "rows_predicted": 342, "monitoring_status": 0}
    assert parent.data.tags["monitoring.status"] == "ok"


def test_rerun_changes_no_data_and_same_data_gives_same_metrics(
        spark, pipeline_run, source_rows, sample_landing):
    """Same batch again: bronze untouched, a new but identical model is not promoted."""
    settings = pipeline_run.settings
    first = pipeline_run.result
    bronze_version = current_version(spark, dataset_tables(settings).bronze)

    second = run_pipeline(spark, settings, default_batch_id(spark, settings))

    assert second.batch_id == first.batch_id  # nothing new landed: the latest batch again
    ingest = second.step(IngestOutcome)
    assert (ingest.skipped, ingest.bronze_rows) == (True, source_rows)
    assert (ingest.duplicates, ingest.changed_skipped, ingest.not_ready, ingest.pending) == (
        0, 0, 0, 0)
    assert current_version(spark, dataset_tables(settings).bronze) == bronze_version
    assert read_table(spark, dataset_tables(settings).bronze).count() == source_rows
    assert read_table(spark, dataset_tables(settings).silver).count() == 342
    assert read_table(spark, dataset_tables(settings).predictions).count() == 342
    assert second.step(TrainOutcome).metrics == first.step(TrainOutcome).metrics
    promote = second.step(PromoteOutcome)
    assert promote.decision is not None
    assert (promote.decision.challenger_version, promote.promoted, promote.champion) == (
        "2", False, "1")
    assert second.step(PredictOutcome).model_version == "1"


def test_a_bare_spark_submit_of_a_job_gets_delta_from_the_venvs_spark_defaults(tmp_path):
    """A bare spark-submit of a job (no --packages, no --jars) writes Delta: make wrote the
    Delta jars into the venv's spark-defaults.conf. One job proves it (every job starts
    the same way); the whole pipeline runs under spark-submit on the EMR stand-in and on
    the standalone cluster (test_emr_standin, test_wheel_on_cluster)."""
    spark_submit = Path(sys.executable).parent / "spark-submit"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable}
    env.pop("MLFLOW_TRACKING_URI", None)

    proc = subprocess.run(
        [str(spark_submit), "--master", "local[2]", "jobs/ingest.py", "--env", "local",
         "--set", f"state_dir={tmp_path}"],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=900,
    )

    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "  wrote bronze.penguins v0" in proc.stdout.splitlines()
    assert "  bronze_rows: 344" in proc.stdout.splitlines()
    log = tmp_path / "lake" / "bronze" / "penguins" / "_delta_log"
    assert sorted(p.name for p in log.glob("*.json")) == ["00000000000000000000.json"]
