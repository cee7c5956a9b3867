"""``sparkmlops maintain`` (OPTIMIZE / VACUUM) and ``sparkmlops show-table`` (time travel),
the whole-table commands of ``maintain/step.py``."""

from __future__ import annotations

import argparse
from typing import Any

from sparkmlops.command import Command, step_report
from sparkmlops.config import Settings


def _maintain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-vacuum", dest="vacuum", action="store_false",
                        help="skip VACUUM (dataset.maintain.vacuum_retention_hours)")
    parser.add_argument("--no-optimize", dest="optimize", action="store_false",
                        help="skip OPTIMIZE / Z-ORDER (dataset.maintain.zorder_by)")


def _maintain(spark: Any, settings: Settings, batch_id: str, args: argparse.Namespace) -> str:
    from sparkmlops.maintain.step import maintain_step

    result = maintain_step(spark, settings, batch_id, vacuum=args.vacuum, optimize=args.optimize)
    return step_report(settings, batch_id, result)


def _show_table_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("layer", help="bronze, quarantine, manifest, ingest_log, silver, "
                                      "validation_results, quality_metrics, gold, "
                                      "predictions or monitoring")
    as_of = parser.add_mutually_exclusive_group()
    as_of.add_argument("--version", type=int, help="Delta version (default: the latest)")
    as_of.add_argument("--timestamp", help="the version current at this time, e.g. "
                                           "'2026-11-26 12:00:00'")
    parser.add_argument("--limit", type=int, default=20, help="rows to print (default: 20)")


def _show_table(spark: Any, settings: Settings, batch_id: str, args: argparse.Namespace) -> str:
    from sparkmlops.maintain.step import read_as_of_or_latest
    from sparkmlops.tables import dataset_tables

    ref = dataset_tables(settings).layer(args.layer)
    frame, as_of = read_as_of_or_latest(spark, ref, version=args.version,
                                        timestamp=args.timestamp)
    frame.show(args.limit, truncate=False)
    return f"{ref.fqn} {as_of}, first {args.limit} rows"


MAINTAIN = Command("maintain", "OPTIMIZE (Z-ORDER) and VACUUM the dataset's tables", _maintain,
                   add_arguments=_maintain_arguments, scope="tables")
SHOW_TABLE = Command("show-table", "print a table as of a version", _show_table,
                     add_arguments=_show_table_arguments, scope="tables")
