"""The continuous-training scenario: a stream of batches with a concept drift at batch K.

From batch K on, the birds' sex is recorded the other way round: the features
keep their distribution, their relation to the label flips. Nobody steps in: the
continuous pipeline scores each batch with the champion, monitors it (live
accuracy once its labels are in gold), retrains when accuracy falls under the
floor, and the gate promotes the new model only if it beats the champion on the
latest batch. A control run with retraining disabled sees the same stream.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyspark.sql.functions as F
import pytest

from sparkmlops.config import load_settings
from sparkmlops.datagen import generate_penguins
from sparkmlops.pipeline import PipelineResult, run_continuous

pytestmark = pytest.mark.e2e

BATCHES, DRIFT_AT, ROWS = 5, 2, 440  # 5 blocks of 88 birds per batch


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


def _stream(spark, root: Path, *, retrain: bool) -> list[PipelineResult]:
    landing = root / "landing"
    landing.mkdir(parents=True)
    settings = load_settings("local", "penguins", overrides=[
        f"state_dir={root / 'state'}", f"dataset.source.path={landing}",
        "dataset.model.window_batches=1",
        "dataset.retrain.on_alert=false",
        "dataset.retrain.live_floor={accuracy: 0.75}",
        f"dataset.retrain.enabled={str(retrain).lower()}",
        "dataset.monitoring.live={accuracy: {warn: 0.8, alert: 0.7}}"])
    results = []
    for index in range(BATCHES):
        _write_batch(spark, landing, index)
        results.append(run_continuous(spark, settings, f"b{index}"))
    return results


@pytest.fixture(scope="module")
def streams(spark, tmp_path_factory) -> dict[str, list[PipelineResult]]:
    root = tmp_path_factory.mktemp("continuous")
    return {"retrain": _stream(spark, root / "retrain", retrain=True),
            "control": _stream(spark, root / "control", retrain=False)}


def _accuracy(results: list[PipelineResult]) -> list[float]:
    return [r.decision["live"]["live_accuracy"] for r in results]


def test_drift_is_flagged_retrained_promoted_and_accuracy_recovers(streams, capsys):
    results = streams["retrain"]
    accuracy, control = _accuracy(results), _accuracy(streams["control"])
    lines = [f"live accuracy per batch (drift at batch {DRIFT_AT})",
             "  batch    continuous   control   scored by (continuous / control)"]
    lines += [f"  b{i:<8}{a:>10.3f}{c:>10.3f}   v{results[i].decision['scored_by']} / "
              f"v{streams['control'][i].decision['scored_by']}"
              for i, (a, c) in enumerate(zip(accuracy, control, strict=True))]
    with capsys.disabled():  # in the test output even when pytest captures it
        print("\n" + "\n".join(lines))

    before = sum(accuracy[:DRIFT_AT]) / DRIFT_AT
    assert before > 0.85
    # nothing retrains before the drift; the drift batch is flagged and retrains
    assert [r.decision["retrain"] for r in results[:DRIFT_AT]] == [False] * DRIFT_AT
    drift = results[DRIFT_AT].decision
    assert drift["monitoring"] == "alert"
    assert drift["retrain"] is True
    assert drift["reasons"][0].startswith("live accuracy 0.")
    assert drift["promoted"] is True and drift["champion_after"] == "2"
    # the batches after the drift are scored by the new champion, as well as before
    for later in results[DRIFT_AT + 1:]:
        assert later.decision["scored_by"] == "2"
        assert later.decision["retrain"] is False
    assert all(abs(a - before) < 0.05 for a in accuracy[DRIFT_AT + 1:])


def test_without_retraining_the_model_stays_degraded(streams):
    results = streams["control"]
    accuracy = _accuracy(results)

    assert [r.decision["scored_by"] for r in results] == ["1"] * BATCHES
    assert all(r.decision["retrain"] is False for r in results)
    assert results[DRIFT_AT].decision["reasons"][0].startswith("live accuracy 0.")
    assert all(a < 0.3 for a in accuracy[DRIFT_AT:])
