"""The ``[n/total]`` progress lines of both pipeline modes: each step numbered by its place
in the mode's plan, so no line can say ``[7/6]``; no Spark, no MLflow.

tests/e2e/test_continuous.py asserts the lines a real continuous stream logs; this pins the
plans (with and without a crowd) and the numbering of a step that runs steps of its own.
"""

from __future__ import annotations

import logging

import pytest

from sparkmlops.pipeline.step import (
    BATCH_STEPS,
    CONTINUOUS_STEPS,
    DECISION,
    RETRAIN,
    _Progress,
    steps_of,
)


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "sparkmlops.pipeline.step"]


@pytest.mark.parametrize(("dataset", "mode", "plan"), [
    ("penguins", BATCH_STEPS,
     ["ingest", "validate", "features", "train", "promote", "predict", "monitor"]),
    ("penguins", CONTINUOUS_STEPS,
     ["ingest", "validate", "features", "train + promote", "predict", "monitor", "retrain"]),
    ("penguins_crowd", BATCH_STEPS,
     ["ingest", "validate", "labels", "features", "train", "promote", "predict", "monitor"]),
    ("penguins_crowd", CONTINUOUS_STEPS,
     ["ingest", "validate", "labels", "features", "train + promote", "predict", "monitor",
      "retrain"]),
])
def test_each_step_is_numbered_by_its_place_in_the_plan(make_settings, caplog, dataset, mode,
                                                        plan):
    steps = steps_of(make_settings(dataset=dataset), mode)
    progress = _Progress(steps, "b1")

    with caplog.at_level(logging.INFO, logger="sparkmlops.pipeline.step"):
        for step in steps:
            progress(step)

    assert list(steps) == plan
    assert _lines(caplog) == [f"[{n}/{len(plan)}] {step} (batch b1)"
                              for n, step in enumerate(plan, 1)]


def test_the_retrain_decision_keeps_its_number_when_it_trains_and_promotes(caplog):
    progress = _Progress(CONTINUOUS_STEPS, "b3")

    with caplog.at_level(logging.INFO, logger="sparkmlops.pipeline.step"):
        progress(RETRAIN, "skipped, @champion scores the batch")
        progress(DECISION, f"{RETRAIN}: live accuracy 0.1000 below the floor 0.75")

    assert _lines(caplog) == [
        "[4/7] train + promote: skipped, @champion scores the batch (batch b3)",
        "[7/7] retrain: train + promote: live accuracy 0.1000 below the floor 0.75 (batch b3)"]


def test_a_step_the_plan_does_not_name_is_refused_not_numbered_past_the_total():
    with pytest.raises(ValueError, match="progress of 'train', not a step of"):
        _Progress(CONTINUOUS_STEPS, "b1")("train")
