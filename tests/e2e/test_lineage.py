"""``sparkmlops lineage`` on the sample's pipeline run (the session's ``pipeline_run``): one
prediction row walked back to its model, data, validation, landing files and code, each
link checked against what the steps returned and what MLflow and Delta hold; and the
MLflow Datasets the train and predict runs logged."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

import sparkmlops
from sparkmlops.cli import main
from sparkmlops.features.step import FeaturesOutcome
from sparkmlops.ingest.step import IngestOutcome
from sparkmlops.lineage.step import lineage_step
from sparkmlops.lineage.walk import Lineage
from sparkmlops.predict.step import PredictOutcome
from sparkmlops.tables import dataset_tables, read_batch, read_table
from sparkmlops.tracking.registry import CHALLENGER, CHAMPION
from sparkmlops.train.step import TrainOutcome
from sparkmlops.validate.step import ValidateOutcome

pytestmark = pytest.mark.e2e

# the first bird of the sample (data/sample/penguins/landing/penguins_raw_PAL0708.csv)
KEY = {"study_name": "PAL0708", "species": "Adelie Penguin (Pygoscelis adeliae)",
       "sample_number": 1}
KEY_ARGS = [arg for k, v in KEY.items() for arg in ("--key", f"{k}={v}")]


@pytest.fixture(scope="module")
def walked(spark, pipeline_run) -> Lineage:
    return lineage_step(spark, pipeline_run.settings, dict(KEY))


@pytest.fixture(scope="module")
def client(pipeline_run) -> MlflowClient:
    return MlflowClient(tracking_uri=pipeline_run.settings.tracking.tracking_uri)


def _cli(pipeline_run, capsys, *args: str) -> tuple[int, str, str]:
    code = main(["lineage", *args, "--set", f"state_dir={pipeline_run.state_dir}"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_row_names_its_batch_model_version_and_training_run(walked, pipeline_run, client):
    result = pipeline_run.result
    train = result.step(TrainOutcome)
    champion = client.get_model_version_by_alias(train.model, CHAMPION)

    assert (walked.batch_id, walked.batches) == (result.batch_id, [result.batch_id])
    assert (walked.model_name, walked.model_version) == (train.model, str(champion.version))
    assert walked.model_version == train.model_version == "1"
    assert walked.model_aliases == sorted([CHALLENGER, CHAMPION])
    assert walked.training.run_id == train.run_id == champion.run_id
    assert walked.prediction["predicted_label"] in ("MALE", "FEMALE")


def test_the_training_data_is_the_gold_version_and_the_runs_that_made_it(walked, pipeline_run):
    result = pipeline_run.result
    tables = dataset_tables(pipeline_run.settings)
    features = result.step(FeaturesOutcome)
    validate = result.step(ValidateOutcome)
    ingest = result.step(IngestOutcome)

    assert (walked.gold.table, walked.gold.version) == (
        tables.gold.fqn, result.step(TrainOutcome).training_table_version)
    assert (walked.gold.version, walked.gold.written_by, walked.gold.step) == (
        features.gold_version, features.run_id, "features")
    assert (walked.silver.table, walked.silver.version, walked.silver.written_by) == (
        tables.silver.fqn, validate.silver_version, validate.run_id)
    assert (walked.bronze.table, walked.bronze.version, walked.bronze.written_by) == (
        tables.bronze.fqn, ingest.bronze_version, ingest.run_id)
    assert walked.training_inputs == {tables.gold.fqn: walked.gold.version}


def test_the_validation_behind_silver_is_its_results_rows(spark, walked, pipeline_run):
    validate = pipeline_run.result.step(ValidateOutcome)
    results = read_table(spark, dataset_tables(pipeline_run.settings).validation_results) \
        .where(f"validation_id = '{validate.run_id}'").collect()

    assert walked.validation.run_id == validate.run_id
    assert walked.validation.status == validate.status
    assert walked.validation.expectations == len(results) == len(
        pipeline_run.settings.dataset.validate_.expectations)
    assert len(walked.validation.failed) == sum(not r.success for r in results)
    assert walked.validation.gate_mode == validate.gate


def test_the_batch_landing_files_are_the_sample_files_by_their_bytes(walked, pipeline_run,
                                                                      sample_landing):
    expected = sorted((p.name, hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_size)
                      for p in sample_landing.glob("*.csv"))

    assert sorted((Path(f.path).name, f.content_sha256, f.size)
                  for f in walked.landing.files) == expected
    assert len(expected) == 3
    assert walked.landing.bronze_version == pipeline_run.result.step(IngestOutcome).bronze_version
    assert walked.landing.ingest_run == pipeline_run.result.step(IngestOutcome).run_id


def test_the_code_of_the_training_and_scoring_runs_is_their_tags(walked, pipeline_run, client):
    result = pipeline_run.result
    predict = result.step(PredictOutcome)
    for code, run_id in ((walked.training, result.step(TrainOutcome).run_id),
                         (walked.scoring, predict.run_id)):
        tags = client.get_run(run_id).data.tags
        assert code.run_id == run_id
        assert code.git_commit == tags["mlflow.source.git.commit"]
        assert code.config_hash == tags["sparkmlops.config_hash"] \
            == pipeline_run.settings.config_hash()
        assert code.sparkmlops_version == tags["sparkmlops.version"] == sparkmlops.__version__
        assert code.wheel_sha256 == tags["sparkmlops.wheel_sha256"]
    assert (walked.scored_from.table, walked.scored_from.version) == (
        dataset_tables(pipeline_run.settings).gold.fqn,
        result.step(FeaturesOutcome).gold_version)


def test_json_output_is_the_same_lineage_as_one_document(walked, pipeline_run, capsys):
    code, out, err = _cli(pipeline_run, capsys, *KEY_ARGS, "--json")

    assert code == 0
    assert json.loads(out) == walked.to_dict()
    assert err.splitlines()[-1].startswith("done in ")


@pytest.mark.parametrize(("args", "exit_code", "line"), [
    (["--key", "colour=red", *KEY_ARGS], 2,
     "sparkmlops lineage: ConfigError: --key colour: not a key column of dataset penguins; "
     "its key columns: study_name, species, sample_number"),
    (KEY_ARGS[:4], 2,
     "sparkmlops lineage: ConfigError: missing --key for sample_number: a prediction row of "
     "dataset penguins is named by all of study_name, species, sample_number"),
    ([*KEY_ARGS[:4], "--key", "sample_number=9999"], 3,
     "sparkmlops lineage: MissingInputError: no prediction row with key {study_name=PAL0708, "
     "species=Adelie Penguin (Pygoscelis adeliae), sample_number=9999} in "
     "predictions.penguins v0"),
])
def test_a_key_that_names_no_prediction_row_is_one_line_and_its_exit_code(
        pipeline_run, capsys, args, exit_code, line):
    code, out, err = _cli(pipeline_run, capsys, *args)

    assert (code, out) == (exit_code, "")
    assert [e for e in err.splitlines() if e.startswith("sparkmlops ")] == [line]


def _inputs(client: MlflowClient, run_id: str) -> list[tuple[str, str, dict, dict]]:
    """(name, context, source, profile) of each Dataset input of the run."""
    found = []
    for entry in client.get_run(run_id).inputs.dataset_inputs:
        tags = {t.key: t.value for t in entry.tags}
        found.append((entry.dataset.name, tags["mlflow.data.context"],
                      json.loads(entry.dataset.source), json.loads(entry.dataset.profile)))
    return found


def test_the_train_and_predict_runs_show_their_gold_version_as_datasets(spark, pipeline_run,
                                                                       client):
    result = pipeline_run.result
    gold = dataset_tables(pipeline_run.settings).gold
    version = result.step(FeaturesOutcome).gold_version
    train, predict = result.step(TrainOutcome), result.step(PredictOutcome)
    source = {"path": gold.path, "delta_table_version": version}
    # train read the whole version (no training window); predict the batch's rows of it
    gold_rows = read_table(spark, gold, version).count()
    batch_rows = read_batch(spark, gold, result.batch_id, version).count()

    assert _inputs(client, train.run_id) == [
        (f"gold.penguins_features@v{version}", "training", source,
         {"delta_table_version": version, "num_rows": gold_rows})]
    assert _inputs(client, predict.run_id) == [
        (f"gold.penguins_features@v{version}", "scoring", source,
         {"delta_table_version": version, "num_rows": batch_rows})]
    assert batch_rows == predict.rows + predict.quarantined == 342
