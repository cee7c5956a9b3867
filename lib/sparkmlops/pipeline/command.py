"""``sparkmlops pipeline``: every step in one session under one parent run (``pipeline.py``)."""

from __future__ import annotations

import argparse
from typing import Any

from sparkmlops.command import Command
from sparkmlops.config import Settings
from sparkmlops.train.command import add_automl_arguments, automl_overrides


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    add_automl_arguments(parser)
    parser.add_argument(
        "--mode", choices=("batch", "continuous"), default="batch",
        help="batch: ingest → … → train → promote → predict; continuous: score and "
             "monitor with @champion, retrain and promote when dataset.retrain says so")


def _run(spark: Any, settings: Settings, batch_id: str, args: argparse.Namespace) -> str:
    if args.mode == "continuous":
        return _run_continuous(spark, settings, batch_id)
    from sparkmlops.pipeline.step import run_pipeline
    from sparkmlops.pipeline.summary import pipeline_summary

    return pipeline_summary(spark, settings, run_pipeline(spark, settings, batch_id))


def _run_continuous(spark: Any, settings: Settings, batch_id: str) -> str:
    from sparkmlops.pipeline.step import run_continuous

    result = run_continuous(spark, settings, batch_id)
    decision = result.decision
    assert decision is not None  # continuous mode always decides
    lines = [f"sparkmlops pipeline --mode continuous: dataset {settings.dataset.name}, "
             f"batch {batch_id}", f"  parent run {result.parent_run_id}"]
    lines += [f"  {s.step:<9} {s.run_id}" for s in result.steps]
    lines += [f"  scored by v{decision.scored_by}; monitoring {decision.monitoring}; "
              f"live {decision.live}",
              f"  retrain: {decision.retrain} ({'; '.join(decision.reasons)})",
              f"  champion now: v{decision.champion_after}"]
    return "\n".join(lines)


PIPELINE = Command("pipeline", "all steps, one session, one parent run", _run,
                   add_arguments=_add_arguments, overrides=automl_overrides)
