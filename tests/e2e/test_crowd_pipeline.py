"""The pipeline of the crowd-labelled sample (conf/datasets/penguins_crowd.yml): labels runs
before features, the accepted consensus labels are the only ones gold trains on, the model
names the labels version it trained on, and the labels match the birds' recorded sex.

One pipeline run proves the path (the other cases of the stage are integration tests).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pyspark.sql.functions as F
import pytest
from mlflow.tracking import MlflowClient

from sparkmlops.config import load_settings
from sparkmlops.features.mllib import LABEL_COLUMN, LABEL_RAW_COLUMN
from sparkmlops.ingest.step import default_batch_id
from sparkmlops.labels.step import LabelsOutcome
from sparkmlops.pipeline.step import BATCH_STEPS, run_pipeline, steps_of
from sparkmlops.pipeline.summary import pipeline_summary
from sparkmlops.predict.step import PredictOutcome
from sparkmlops.tables import crowd_tables, current_version, dataset_tables, read_table
from sparkmlops.tracking.registry import ModelRegistry
from sparkmlops.tracking.runs import configure_mlflow
from sparkmlops.train.step import TrainOutcome

pytestmark = pytest.mark.e2e

PROJECT = Path(__file__).resolve().parents[2]
ANNOTATIONS = PROJECT / "data" / "sample" / "penguins_crowd" / "annotations"


@pytest.fixture(scope="module")
def crowd_run(spark, tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("crowd_pipeline")
    settings = load_settings("local", "penguins_crowd", overrides=[f"state_dir={state_dir}"])
    result = run_pipeline(spark, settings, default_batch_id(spark, settings))
    return settings, result


def _recorded_sex(sample_landing: Path) -> dict[tuple[str, str, int], str]:
    """The sex the field team recorded for each bird (the crowd's planted truth)."""
    truth = {}
    for path in sample_landing.glob("*.csv"):
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row["Sex"] in ("MALE", "FEMALE"):
                    key = (row["studyName"], row["Species"], int(row["Sample Number"]))
                    truth[key] = row["Sex"]
    return truth


def test_labels_run_before_features_and_land_every_judgment(spark, crowd_run):
    settings, result = crowd_run
    steps = [s.step for s in result.steps]
    assert steps == list(steps_of(settings, BATCH_STEPS))
    assert steps.index("labels") == steps.index("features") - 1
    labels = result.step(LabelsOutcome)
    judgments = sum(len(p.read_text().splitlines()) - 1 for p in ANNOTATIONS.glob("*.csv"))
    # three judgments of the sample are refused on purpose (see its README)
    assert (labels.judgments_in, labels.quarantined) == (judgments, 3)
    assert labels.judgments == judgments - 3
    # what make run prints: the crowd's tables and one line of what the labels step did
    summary = pipeline_summary(spark, settings, result).splitlines()
    assert [line.split()[0] for line in summary if "_annotations" in line] == [
        "bronze.penguins_crowd_annotations", "manifest.penguins_crowd_annotations",
        "ingest_log.penguins_crowd_annotations"]
    assert [line for line in summary if line.startswith("Crowd labels")] == [
        f"Crowd labels (dawid_skene, {labels.iterations} iterations): {labels.judgments} "
        f"judgments (+3 quarantined) on {labels.items} items -> {labels.accepted} accepted, "
        f"{labels.needs_review} to review; {labels.workers} workers, {labels.spammers} "
        f"flagged spammers; 0 gold rows took a label"]
    quarantine = read_table(spark, dataset_tables(settings).quarantine).where(
        F.col("step") == "labels")
    assert sorted(r.reason.split(":")[0] for r in quarantine.collect()) == [
        "null in required column worker_id", "repeated judgment",
        "unknown label 'UNSURE'"]


def test_accepted_labels_match_the_recorded_sex(spark, crowd_run, sample_landing):
    settings, result = crowd_run
    labels = result.step(LabelsOutcome)
    truth = _recorded_sex(sample_landing)
    accepted = read_table(spark, crowd_tables(settings).labels).collect()

    assert labels.items == len(truth) == 333
    # 7 agreeing of 9 is a strict bar with a third of the crowd hurried, spamming or
    # adversarial: 205 birds clear it, every one with its recorded sex
    assert labels.accepted == len(accepted) == 205
    right = sum(truth[(r.study_name, r.species, r.sample_number)] == r.label for r in accepted)
    assert right == 205
    # the five-label birds can never clear 9 labels
    review = read_table(spark, crowd_tables(settings).needs_review)
    assert review.where(F.col("n_labels") == 5).count() == review.where(
        F.array_contains("reasons", "too_few_labels")).count() > 0
    # the planted spammers (w26-w28) are flagged, the careful labelers (w01-w20) are not,
    # and the two adversarial ones (w29, w30) are told apart from spammers
    quality = read_table(spark, crowd_tables(settings).worker_quality)
    flagged = {r.worker for r in quality.where(F.col("spammer")).collect()}
    assert {"w26", "w27", "w28"} <= flagged
    assert not flagged & {f"w{i:02d}" for i in range(1, 21)}
    assert {r.worker for r in quality.where(F.col("adversarial")).collect()} == {"w29", "w30"}


def test_gold_trains_only_on_accepted_labels_and_scores_every_row(spark, crowd_run):
    settings, result = crowd_run
    gold = read_table(spark, dataset_tables(settings).gold)
    accepted = read_table(spark, crowd_tables(settings).labels)
    keys = settings.dataset.keys

    labelled = gold.where(F.col(LABEL_COLUMN).isNotNull())
    expected = gold.join(accepted.select(*keys, F.col("label").alias("_accepted")), keys)
    assert labelled.count() == expected.count()
    assert expected.where(F.col(LABEL_RAW_COLUMN) != F.col("_accepted")).count() == 0
    train = result.step(TrainOutcome)
    assert train.rows_train + train.rows_test == labelled.count()
    # predict scores every gold row, labelled or not
    assert result.step(PredictOutcome).rows == gold.count()


def test_the_model_names_the_labels_version_it_trained_on(spark, crowd_run):
    settings, result = crowd_run
    train = result.step(TrainOutcome)
    configure_mlflow(settings)
    version = MlflowClient().get_model_version(train.model, train.model_version)
    labels = crowd_tables(settings).labels

    card = ModelRegistry(MlflowClient()).model_card(version)
    assert (card["labels_table"], card["labels_table_version"]) == (
        labels.fqn, current_version(spark, labels))
    run = MlflowClient().get_run(train.run_id)
    assert run.data.params[f"input.{labels.fqn}.version"] == str(current_version(spark, labels))
