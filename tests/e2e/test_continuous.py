"""The continuous-training scenario: a stream of batches with a concept drift at batch K.

From batch K on, the birds' sex is recorded the other way round: the features
keep their distribution, their relation to the label flips. Nobody steps in: the
continuous pipeline scores each batch with the champion, monitors it (live
accuracy once its labels are in gold), retrains when accuracy falls under the
floor, and the gate promotes the new model only if it beats the champion on the
latest batch.

One stream, in one state dir, with retraining switched off while the drift
arrives (the control: the decision is recorded, the champion stays, accuracy stays
low batch after batch) and switched on again for the batches after that (the
next drifted batch retrains, the new model is promoted, accuracy recovers). One
stream instead of a control stream beside the retraining one: it bootstraps one
champion, not two, and runs no batch twice.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import mlflow
import pyspark.sql.functions as F
import pytest
from benchmarks.datagen import generate_penguins

from sparkmlops.config import load_settings
from sparkmlops.ingest.step import IngestOutcome
from sparkmlops.monitor.drift import STATUS_ORDER
from sparkmlops.pipeline.step import PipelineResult, run_continuous
from sparkmlops.predict.step import PredictOutcome
from sparkmlops.tracking.runs import configure_mlflow
from sparkmlops.train.step import TrainOutcome
from sparkmlops.validate.step import ValidateOutcome

pytestmark = pytest.mark.e2e

ROWS = 440  # 5 blocks of 88 birds per batch
DRIFT_AT = 1
# retraining on/off per batch: on for the batch before the drift (it bootstraps the
# champion, nothing to retrain), off for the first drifted batch (the control), on again
# from the second drifted batch, which the old champion still scores, as badly: the
# degradation stays while nothing retrains. No second batch before the drift: that a
# quiet batch the champion did not train on retrains nothing, with retraining on, is what
# the batch after the retrain shows (scored by the new champion). Each batch is a whole
# continuous run (~35 s): a second control batch showed nothing the next batch does not.
RETRAIN = [True, False, True, True]
CONTROL = [i for i, on in enumerate(RETRAIN) if not on]  # b1
RETRAINED_AT = CONTROL[-1] + 1  # b2


def _write_batch(spark, landing: Path, index: int) -> None:
    """Batch ``index`` as landing CSV: its own sample numbers, sex flipped from DRIFT_AT."""
    birds = generate_penguins(spark, ROWS, seed=100 + index, partitions=1)
    birds = birds.withColumn("Sample Number", F.col("`Sample Number`") + 10_000 * index)
    if index >= DRIFT_AT:
        sex = F.col("Sex")
        birds = birds.withColumn("Sex", F.when(sex == "MALE", "FEMALE")
                                 .when(sex == "FEMALE", "MALE").otherwise(sex))
    staging = landing.parent / f"staging-{index}"
    (birds.write.mode("overwrite").option("header", "true").option("nullValue", "NA")
     .option("dateFormat", "yyyy-MM-dd").csv(str(staging)))
    for part in sorted(staging.glob("part-*.csv")):
        shutil.move(str(part), landing / f"batch{index}-{part.name}")
    shutil.rmtree(staging)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("continuous")


@pytest.fixture(scope="module")
def stream(spark, root) -> list[PipelineResult]:
    landing = root / "landing"
    landing.mkdir(parents=True)

    def settings(retrain: bool):
        return load_settings("local", "penguins", overrides=[
            f"state_dir={root / 'state'}", f"dataset.source.path={landing}",
            "dataset.model.window_batches=1",
            "dataset.retrain.on_alert=false",
            "dataset.retrain.live_floor={accuracy: 0.75}",
            f"dataset.retrain.enabled={str(retrain).lower()}",
            "dataset.monitor.live={accuracy: {warn: 0.8, alert: 0.7}}"])

    by_switch = {True: settings(True), False: settings(False)}
    results = []
    handler, logger = _ProgressLines(), logging.getLogger("sparkmlops.pipeline.step")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        for index, retrain in enumerate(RETRAIN):
            _write_batch(spark, landing, index)
            results.append(run_continuous(spark, by_switch[retrain], f"b{index}"))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    PROGRESS.extend(handler.lines)
    return results


# the "[n/total] step (batch b)" lines the continuous runs logged, in order
PROGRESS: list[str] = []


class _ProgressLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("["):
            self.lines.append(record.getMessage())


def test_each_batch_counts_its_own_steps_in_the_progress_lines(stream):
    steps = ["ingest", "validate", "features", "train + promote", "predict", "monitor",
             "retrain"]
    assert len(PROGRESS) == len(RETRAIN) * len(steps)
    for index in range(len(RETRAIN)):
        lines = PROGRESS[index * len(steps):(index + 1) * len(steps)]
        assert [line.split(" (batch ")[1] for line in lines] == [f"b{index})"] * len(steps)
        numbered = [line.split(" ", 1)[0] for line in lines]
        assert numbered == [f"[{n}/{len(steps)}]" for n in range(1, len(steps) + 1)]
        named = [line.split(" ", 1)[1].split(" (batch")[0].split(":")[0] for line in lines]
        assert named == steps  # "retrain: not needed", "retrain: train + promote: ..."


def _accuracy(results: list[PipelineResult]) -> list[float]:
    return [r.decision.live["live_accuracy"] for r in results]


def test_drift_is_flagged_retrained_promoted_and_accuracy_recovers(stream, capsys):
    accuracy = _accuracy(stream)
    lines = [f"live accuracy per batch (drift at batch {DRIFT_AT})",
             "  batch    retraining   accuracy   scored by   retrained"]
    for i, (on, a, r) in enumerate(zip(RETRAIN, accuracy, stream, strict=True)):
        d = r.decision
        retrained = ("no" if not d.retrain else
                     f"yes, v{d.champion_after} promoted" if d.promoted else "yes, kept")
        lines.append(f"  b{i:<8}{'on' if on else 'off':<13}{a:>8.3f}   "
                     f"v{d.scored_by:<10}{retrained}")
    with capsys.disabled():  # in the test output even when pytest captures it
        print("\n" + "\n".join(lines))

    before = sum(accuracy[:DRIFT_AT]) / DRIFT_AT
    assert before > 0.85
    # nothing retrains before the drift (retraining is on there); the first drifted
    # batch with retraining on is flagged and retrains
    assert all(RETRAIN[:DRIFT_AT])
    assert [r.decision.retrain for r in stream[:DRIFT_AT]] == [False] * DRIFT_AT
    drift = stream[RETRAINED_AT].decision
    assert drift.monitoring == "alert"
    assert drift.scored_by == "1"
    assert drift.retrain is True
    assert drift.reasons[0].startswith("live accuracy 0.")
    assert drift.promoted is True and drift.champion_after == "2"
    # the batches after the retrain are scored by the new champion, as well as before;
    # quiet batches it did not train on, with retraining on: none of them retrains
    later = stream[RETRAINED_AT + 1:]
    assert later
    for result in later:
        assert result.decision.scored_by == "2"
        assert result.decision.retrain is False
    assert all(abs(a - before) < 0.05 for a in accuracy[RETRAINED_AT + 1:])


def test_without_retraining_the_model_stays_degraded(stream):
    control = [stream[i] for i in CONTROL]

    # the control batch is the first drifted one; the next is scored by the same champion,
    # as badly: degraded, and it stays so
    assert CONTROL == [DRIFT_AT]
    assert [r.decision.scored_by for r in stream[:RETRAINED_AT + 1]] == \
        ["1"] * (RETRAINED_AT + 1)
    assert all(r.decision.retrain is False and r.decision.retrain_enabled is False
               for r in control)
    assert all(r.decision.champion_after == "1" for r in control)
    # the policy's reason is recorded, and not acted on
    assert all(r.decision.reasons[0].startswith("live accuracy 0.") for r in control)
    # every drifted batch the old champion scored (the control's, and the one that retrains)
    assert all(a < 0.3 for a in _accuracy(stream[DRIFT_AT:RETRAINED_AT + 1]))


def test_each_decision_is_recorded_on_its_parent_run(stream, root):
    configure_mlflow(load_settings("local", "penguins", overrides=[f"state_dir={root / 'state'}"]))
    drift = stream[RETRAINED_AT]
    run = mlflow.get_run(drift.parent_run_id)

    assert mlflow.artifacts.load_dict(
        f"{run.info.artifact_uri}/retrain_decision.json") == drift.decision.as_dict()
    assert (run.data.tags["retrain.decision"], run.data.tags["sparkmlops.mode"]) == (
        "retrain", "continuous")
    assert json.loads(run.data.tags["retrain.reasons"]) == drift.decision.reasons
    quiet = mlflow.get_run(stream[0].parent_run_id).data.tags
    assert (quiet["retrain.decision"], json.loads(quiet["retrain.reasons"])) == (
        "keep", ["no retrain trigger"])


def test_each_batch_run_carries_its_headline_numbers(stream, root):
    """As in batch mode; a batch that did not retrain has no holdout metric nor promotion."""
    configure_mlflow(load_settings("local", "penguins", overrides=[f"state_dir={root / 'state'}"]))
    drift, control = stream[RETRAINED_AT], stream[DRIFT_AT]
    retrained = mlflow.get_run(drift.parent_run_id).data
    kept = mlflow.get_run(control.parent_run_id).data

    assert retrained.metrics == {
        "rows_in": drift.step(IngestOutcome).rows_in,
        "rows_quarantined": drift.step(IngestOutcome).quarantined
        + drift.step(ValidateOutcome).quarantined,
        "rows_kept_failing": drift.step(ValidateOutcome).kept_failing,
        "holdout.areaUnderROC": drift.step(TrainOutcome).metrics["areaUnderROC"],
        "promoted": int(drift.decision.promoted),
        "rows_predicted": drift.step(PredictOutcome).rows,
        "monitoring_status": STATUS_ORDER[drift.decision.monitoring]}
    assert retrained.tags["monitoring.status"] == drift.decision.monitoring
    assert set(kept.metrics) == {"rows_in", "rows_quarantined", "rows_kept_failing",
                                 "rows_predicted", "monitoring_status"}
    assert (kept.metrics["rows_predicted"], kept.metrics["monitoring_status"]) == (
        control.step(PredictOutcome).rows, STATUS_ORDER[control.decision.monitoring])
