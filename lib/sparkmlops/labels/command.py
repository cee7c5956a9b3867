"""``sparkmlops labels``: the crowd's annotation files → consensus labels."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sparkmlops.command import Command, step_report
from sparkmlops.config import Settings


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true",
                        help="re-read the batch's recorded annotation files and make the "
                             "labels again even when no judgment is new")
    parser.add_argument("--export-review", type=Path, default=None, metavar="FILE",
                        help="write the items below the acceptance bar as a CSV task file, "
                             "one row per item, to send back to the labelers")


def _run(spark: Any, settings: Settings, batch_id: str, args: argparse.Namespace) -> str:
    from sparkmlops.labels.step import labels_step

    result = labels_step(spark, settings, batch_id, force=args.force,
                         export_review=args.export_review)
    extra = [f"  review tasks: {args.export_review}"] if args.export_review else []
    return step_report(settings, batch_id, result, extra)


def _default_batch_id(spark: Any, settings: Settings) -> str:
    from sparkmlops.labels.step import default_labels_batch_id

    return default_labels_batch_id(spark, settings)


LABELS = Command("labels", "annotation files → bronze annotations → consensus labels, "
                 "needs_review, worker_quality (+ gold labels)", _run,
                 add_arguments=_add_arguments, default_batch_id=_default_batch_id)
