"""``sparkmlops monitor``: drift and live metrics of a scored batch."""

from __future__ import annotations

import argparse
from typing import Any

from sparkmlops.command import Command, step_report
from sparkmlops.config import Settings


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gold-version", type=int)


def _run(spark: Any, settings: Settings, batch_id: str, args: argparse.Namespace) -> str:
    from sparkmlops.monitor.step import monitor_step

    result = monitor_step(spark, settings, batch_id, gold_version=args.gold_version)
    return step_report(settings, batch_id, result)


MONITOR = Command("monitor", "drift and live metrics of a scored batch → monitoring + report",
                  _run, add_arguments=_add_arguments)
