"""``sparkmlops features``: silver → gold feature table."""

from __future__ import annotations

import argparse
from typing import Any

from sparkmlops.command import Command, step_report
from sparkmlops.config import Settings


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--silver-version", type=int)


def _run(spark: Any, settings: Settings, batch_id: str, args: argparse.Namespace) -> str:
    from sparkmlops.features.step import features_step

    result = features_step(spark, settings, batch_id, silver_version=args.silver_version)
    return step_report(settings, batch_id, result)


FEATURES = Command("features", "silver → gold feature table", _run, add_arguments=_add_arguments)
