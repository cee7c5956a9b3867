"""``sparkmlops maintain`` (OPTIMIZE / VACUUM) and ``sparkmlops show-table`` (time travel),
the whole-table commands of ``maintenance.py``."""

from __future__ import annotations

import argparse
from typing import Any

from sparkmlops.command import Command
from sparkmlops.config import Settings


def _maintain_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-vacuum", dest="vacuum", action="store_false",
                        help="skip VACUUM (maintenance.vacuum_retention_hours)")
    parser.add_argument("--no-optimize", dest="optimize", action="store_false",
                        help="skip OPTIMIZE / Z-ORDER (maintenance.zorder_by)")


def _maintain(spark: Any, settings: Settings, batch_id: str, args: argparse.Namespace) -> str:
    from sparkmlops.maintain.step import maintain_step

    result = maintain_step(spark, settings, batch_id, vacuum=args.vacuum, optimize=args.optimize)
    lines = [f"sparkmlops maintain: dataset {settings.dataset.name}",
             f"  MLflow run {result.run_id}"]
    lines += [_table_line(table, r) for table, r in result.tables.items()]
    if result.missing:
        lines.append(f"  not there yet: {', '.join(result.missing)}")
    return "\n".join(lines)


def _table_line(table: str, r: dict[str, Any]) -> str:
    line = (f"  {table} v{r['version_before']} → v{r['version_after']}, "
            f"{r['files_before']} → {r['files_after']} files")
    if r["optimize"]:
        zorder = r["optimize"]["zorder_by"]
        line += f"; Z-ORDER by {', '.join(zorder)}" if zorder else "; OPTIMIZE"
    if r["vacuum"]:
        line += f"; VACUUM deleted {r['vacuum']['files_deleted']} files"
    return line


def _show_table_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("layer", help="bronze, quarantine, manifest, ingest_log, silver, "
                                      "validation_results, gold or predictions")
    as_of = parser.add_mutually_exclusive_group()
    as_of.add_argument("--version", type=int, help="Delta version (default: the latest)")
    as_of.add_argument("--timestamp", help="the version current at this time, e.g. "
                                           "'2026-11-26 12:00:00'")
    parser.add_argument("--limit", type=int, default=20, help="rows to print (default: 20)")


def _show_table(spark: Any, settings: Settings, batch_id: str, args: argparse.Namespace) -> str:
    from sparkmlops.maintain.step import read_as_of
    from sparkmlops.tables import current_version, dataset_tables, read_table

    ref = dataset_tables(settings).layer(args.layer)
    if args.version is None and args.timestamp is None:
        frame, as_of = read_table(spark, ref), f"v{current_version(spark, ref)} (latest)"
    else:
        frame = read_as_of(spark, ref, version=args.version, timestamp=args.timestamp)
        as_of = f"v{args.version}" if args.version is not None else f"as of {args.timestamp}"
    frame.show(args.limit, truncate=False)
    return f"{ref.fqn} {as_of}, first {args.limit} rows"


MAINTAIN = Command("maintain", "OPTIMIZE (Z-ORDER) and VACUUM the dataset's tables", _maintain,
                   add_arguments=_maintain_arguments, scope="tables")
SHOW_TABLE = Command("show-table", "print a table as of a version", _show_table,
                     add_arguments=_show_table_arguments, scope="tables")
