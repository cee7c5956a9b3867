"""``sparkmlops pipeline``: every step in one session under one parent run (``step.py``);
what it prints is ``summary.py``."""

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
        help="batch: ingest → … → train → promote → predict → monitor; continuous: "
             "score and monitor with @champion, retrain and promote when dataset.retrain "
             "says so")


def _run(spark: Any, settings: Settings, batch_id: str, args: argparse.Namespace) -> str:
    from sparkmlops.pipeline.step import run_continuous, run_pipeline
    from sparkmlops.pipeline.summary import continuous_summary, pipeline_summary

    if args.mode == "continuous":
        return continuous_summary(settings, run_continuous(spark, settings, batch_id))
    return pipeline_summary(spark, settings, run_pipeline(spark, settings, batch_id))


PIPELINE = Command("pipeline", "all steps, one session, one parent run", _run,
                   add_arguments=_add_arguments, overrides=automl_overrides)
