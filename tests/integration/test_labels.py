"""The labels step against Delta and MLflow: judgments land like data (bronze annotations,
quarantine with a reason), consensus routes items by the 7-of-9 bar into labels and
needs_review, a re-run changes nothing, the review export is a CSV task file, and with
``label.from: crowd`` the accepted labels reach the gold rows already written.

Items are Adelie birds of study PAL0708 told apart by sample number; workers w1..w9 are
the regular crowd.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pyspark.sql.functions as F
import pytest
from mlflow.entities.model_registry import ModelVersion, ModelVersionTag
from mlflow.tracking import MlflowClient

from sparkmlops.config import load_settings
from sparkmlops.features.mllib import LABEL_COLUMN, LABEL_RAW_COLUMN
from sparkmlops.labels.step import default_labels_batch_id, labels_step
from sparkmlops.pipeline.step import _new_labelled_rows
from sparkmlops.tables import crowd_tables, current_version, dataset_tables, read_table
from sparkmlops.tracking.registry import TAG_TRAINING_TABLE_VERSION, ModelRegistry
from sparkmlops.tracking.runs import configure_mlflow

ADELIE = "Adelie Penguin (Pygoscelis adeliae)"
HEADER = "study_name,species,sample_number,worker_id,label"
WORKERS = [f"w{i}" for i in range(1, 10)]


def _votes(sample: int, labels: list[str], workers: list[str] | None = None) -> list[str]:
    """One judgment line per label, by w1, w2, ... in order."""
    return [f"PAL0708,{ADELIE},{sample},{w},{label}"
            for w, label in zip(workers or WORKERS, labels, strict=False)]


def _write(folder: Path, name: str, lines: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("\n".join([HEADER, *lines]) + "\n")


# sample 1: 9 labels, 8 MALE → accepted; 2: 9 labels, 7 FEMALE → accepted (7 of 9 exactly);
# 3: 9 labels, 6 MALE → low agreement; 4: 5 labels, all FEMALE → too few labels
ROUND_ONE = [
    *_votes(1, ["MALE"] * 8 + ["FEMALE"]),
    *_votes(2, ["FEMALE"] * 7 + ["MALE"] * 2),
    *_votes(3, ["MALE"] * 6 + ["FEMALE"] * 3),
    *_votes(4, ["FEMALE"] * 5),
]
# refused: an unknown label, no worker, no item key, w1 twice on sample 4 in this file
BAD = [
    f"PAL0708,{ADELIE},4,w6,UNSURE",
    f"PAL0708,{ADELIE},4,,MALE",
    f"PAL0708,{ADELIE},,w7,MALE",
    f"PAL0708,{ADELIE},5,w1,MALE",
    f"PAL0708,{ADELIE},5,w1,FEMALE",
]


def _settings(tmp_path: Path, *overrides: str):
    return load_settings("local", "penguins_crowd", overrides=[
        f"state_dir={tmp_path}", f"dataset.crowd.source.path={tmp_path / 'annotations'}",
        "dataset.crowd.method=majority_vote", *overrides])


def test_judgments_land_in_bronze_and_bad_ones_go_to_quarantine_with_why(spark, tmp_path):
    settings = _settings(tmp_path)
    _write(tmp_path / "annotations", "round1.csv", ROUND_ONE + BAD)

    result = labels_step(spark, settings, "a1")

    tables = crowd_tables(settings)
    assert (result.judgments_in, result.quarantined, result.judgments) == (37, 4, 33)
    bronze = read_table(spark, tables.annotations)
    assert bronze.count() == 33
    assert set(bronze.columns) >= {"study_name", "species", "sample_number", "worker_id",
                                   "label", "_batch_id", "_ingested_at", "_source_file"}
    quarantine = read_table(spark, dataset_tables(settings).quarantine)
    assert sorted((r.step, r.reason) for r in quarantine.collect()) == [
        ("labels", "null in required column sample_number"),
        ("labels", "null in required column worker_id"),
        ("labels", "repeated judgment: worker worker_id=w1 judged this item earlier in the "
                   "same batch"),
        ("labels", "unknown label 'UNSURE': not one of crowd.classes ['FEMALE', 'MALE']"),
    ]

    # a later batch: w2 judges sample 1 again (refused, naming a1) and w1 judges sample 6
    _write(tmp_path / "annotations", "round2.csv",
           [f"PAL0708,{ADELIE},1,w2,FEMALE", f"PAL0708,{ADELIE},6,w1,MALE"])
    second = labels_step(spark, settings, "a2")

    assert (second.judgments_in, second.quarantined, second.judgments) == (2, 1, 34)
    refused = read_table(spark, dataset_tables(settings).quarantine).where(
        F.col("_batch_id") == "a2").collect()
    assert [r.reason for r in refused] == [
        "repeated judgment: worker worker_id=w2 already judged this item in batch a1"]


@pytest.fixture(scope="module")
def round_one(spark, tmp_path_factory):
    """ROUND_ONE's labels step, once: the bar's routing and a re-run are read from it."""
    root = tmp_path_factory.mktemp("round_one")
    settings = _settings(root)
    _write(root / "annotations", "round1.csv", ROUND_ONE)
    return root, settings, labels_step(spark, settings, "a1")


def test_the_7_of_9_bar_accepts_and_routes_exactly_the_expected_items(spark, round_one):
    _, settings, result = round_one

    tables = crowd_tables(settings)
    labels = read_table(spark, tables.labels)
    assert sorted((r.sample_number, r.label, r.agreement, r.n_labels, r.method)
                  for r in labels.collect()) == [
        (1, "MALE", 8, 9, "majority_vote"), (2, "FEMALE", 7, 9, "majority_vote")]
    assert {r.confidence for r in labels.collect()} == {8 / 9, 7 / 9}
    assert {r._run_id for r in labels.collect()} == {result.run_id}
    review = read_table(spark, tables.needs_review)
    assert sorted((r.sample_number, r.label, r.reason) for r in review.collect()) == [
        (3, "MALE", "low_agreement: 6 of 9 < 7 of 9"),
        (4, "FEMALE", "too_few_labels: 5 < 9; low_agreement: 5 of 5 < 7 of 9"),
    ]
    quality = read_table(spark, tables.worker_quality)
    assert quality.count() == 9
    w9 = quality.where(F.col("worker") == "w9").first()
    # w9 judged samples 1, 2, 3: against the consensus MALE, FEMALE, MALE it said
    # FEMALE, MALE, FEMALE
    assert (w9.judgments, w9.agreement) == (3, 0.0)
    assert (result.items, result.accepted, result.needs_review, result.workers) == (4, 2, 2, 9)

    configure_mlflow(settings)
    run = MlflowClient().get_run(result.run_id)
    assert run.data.params["method"] == "majority_vote"
    assert run.data.metrics["accepted"] == 2
    assert run.data.metrics["share_accepted"] == 0.5
    artifacts = {a.path for a in MlflowClient().list_artifacts(result.run_id, "labels")}
    assert {"labels/consensus.json", "labels/worker_accuracy.png"} <= artifacts


def test_a_rerun_writes_nothing_and_exports_one_review_task_per_item(spark, round_one):
    root, settings, _ = round_one
    tables = crowd_tables(settings)
    before = {t.fqn: current_version(spark, t) for t in tables}
    tasks = root / "out" / "review.csv"

    again = labels_step(spark, settings, default_labels_batch_id(spark, settings),
                        export_review=tasks)

    assert again.skipped
    assert {t.fqn: current_version(spark, t) for t in tables} == before
    with tasks.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["study_name", "species", "sample_number", "current_label",
                       "confidence", "n_labels", "agreement", "reason"]
    assert [(r[2], r[3], r[5], r[6], r[7]) for r in rows[1:]] == [
        ("3", "MALE", "9", "6", "low_agreement: 6 of 9 < 7 of 9"),
        ("4", "FEMALE", "5", "5", "too_few_labels: 5 < 9; low_agreement: 5 of 5 < 7 of 9"),
    ]


class _Registry:
    """The registry as the retrain trigger reads it: the champion and its training version."""

    def __init__(self, champion: ModelVersion) -> None:
        self.champion = champion

    def by_alias(self, name: str, alias: str) -> ModelVersion:
        return self.champion

    trained_on = staticmethod(ModelRegistry.trained_on)


def replace_key(settings, key: str, value: int):
    retrain = settings.dataset.retrain.model_copy(update={key: value})
    dataset = settings.dataset.model_copy(update={"retrain": retrain})
    return settings.model_copy(update={"dataset": dataset})


@pytest.fixture
def gold_waiting_for_labels(spark, tmp_path):
    """Gold rows of samples 1-4 written before any label was accepted (label null)."""
    settings = _settings(tmp_path)
    gold = dataset_tables(settings).gold
    spark.createDataFrame(
        [("PAL0708", ADELIE, n, 40.0, None, None, "b1") for n in (1, 2, 3, 4)],
        "study_name string, species string, sample_number int, culmen_length_mm double, "
        f"{LABEL_RAW_COLUMN} string, {LABEL_COLUMN} double, _batch_id string",
    ).write.format("delta").save(gold.path)
    return settings


def test_accepted_labels_reach_gold_rows_written_before_them(spark, tmp_path,
                                                             gold_waiting_for_labels):
    settings = gold_waiting_for_labels
    gold = dataset_tables(settings).gold
    _write(tmp_path / "annotations", "round1.csv", ROUND_ONE)

    result = labels_step(spark, settings, "a1")

    assert result.gold_updated == 2
    rows = sorted((r.sample_number, r[LABEL_RAW_COLUMN], r[LABEL_COLUMN])
                  for r in read_table(spark, gold).collect())
    assert rows == [(1, "MALE", 1.0), (2, "FEMALE", 0.0), (3, None, None), (4, None, None)]
    # the retrain trigger counts them: a champion trained on gold v0 (no label) sees 2 new
    champion = ModelVersion("m", "1", 0, tags=[ModelVersionTag(TAG_TRAINING_TABLE_VERSION, "0")])
    assert _new_labelled_rows(spark, replace_key(settings, "min_new_labelled_rows", 1),
                              _Registry(champion), current_version(spark, gold)) == 2

    # four more judgments of sample 4 (now 9, all FEMALE): accepted; and six more of sample
    # 2 by new workers, all MALE: 8 MALE of 15 is a majority, but under the bar's share
    # (7 of 9), so no label is accepted any more and gold's is cleared
    _write(tmp_path / "annotations", "round2.csv", [
        *_votes(4, ["FEMALE"] * 4, ["w6", "w7", "w8", "w9"]),
        *_votes(2, ["MALE"] * 6, [f"x{i}" for i in range(6)]),
    ])
    labels_step(spark, settings, "a2")

    rows = sorted((r.sample_number, r[LABEL_RAW_COLUMN], r[LABEL_COLUMN])
                  for r in read_table(spark, gold).collect())
    assert rows == [(1, "MALE", 1.0), (2, None, None), (3, None, None), (4, "FEMALE", 0.0)]


def test_a_dataset_without_a_crowd_says_so(spark, make_settings):
    from sparkmlops.errors import ConfigError

    with pytest.raises(ConfigError, match="has no crowd section"):
        labels_step(spark, make_settings(), "a1")
