"""``sparkmlops predict``: score a batch with @champion (or another alias or version)."""

from __future__ import annotations

import argparse
from typing import Any

from sparkmlops.command import Command, step_report
from sparkmlops.config import Settings


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="champion", help="alias or version number")
    parser.add_argument("--gold-version", type=int)


def _run(spark: Any, settings: Settings, batch_id: str, args: argparse.Namespace) -> str:
    from sparkmlops.predict.step import predict_step

    result = predict_step(spark, settings, batch_id, model=args.model,
                          gold_version=args.gold_version)
    return step_report(settings, batch_id, result)


PREDICT = Command("predict", "score with @champion", _run, add_arguments=_add_arguments)
