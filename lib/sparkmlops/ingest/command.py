"""``sparkmlops ingest``: landing files → bronze (+ quarantine)."""

from __future__ import annotations

import argparse
from typing import Any

from sparkmlops.command import Command, step_report
from sparkmlops.config import Settings


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true",
                        help="re-read exactly the files the manifest records for the batch "
                             "(e.g. after a schema change), replacing it in bronze")


def _run(spark: Any, settings: Settings, batch_id: str, args: argparse.Namespace) -> str:
    from sparkmlops.ingest.step import ingest_step

    result = ingest_step(spark, settings, batch_id, force=args.force)
    return step_report(settings, batch_id, result)


INGEST = Command("ingest", "landing files → bronze (+ quarantine)", _run,
                 add_arguments=_add_arguments)
