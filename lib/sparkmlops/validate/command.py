"""``sparkmlops validate`` (GX suite on bronze) and ``sparkmlops profile`` (a starter suite)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sparkmlops.command import Command, step_report
from sparkmlops.config import Settings


def _validate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bronze-version", type=int)


def _validate(spark: Any, settings: Settings, batch_id: str, args: argparse.Namespace) -> str:
    from sparkmlops.validate.step import validate_step

    result = validate_step(spark, settings, batch_id, bronze_version=args.bronze_version)
    return step_report(settings, batch_id, result)


def _profile_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layer", default="bronze", help="table to profile (default: bronze)")
    parser.add_argument("--version", type=int, help="Delta version (default: the latest)")
    parser.add_argument("--out", help="write the YAML here (default: print it)")


def _profile(spark: Any, settings: Settings, batch_id: str, args: argparse.Namespace) -> str:
    from sparkmlops.validate.step import profile_step

    proposal = profile_step(spark, settings, layer=args.layer, version=args.version)
    if not args.out:
        return proposal.text
    Path(args.out).write_text(proposal.text)
    return f"proposed suite for {proposal.table.fqn} v{proposal.version} written to {args.out}"


VALIDATE = Command("validate", "GX suite on bronze → silver/quarantine", _validate,
                   add_arguments=_validate_arguments)
PROFILE = Command("profile", "propose a starter expectation suite (YAML) from a table", _profile,
                  add_arguments=_profile_arguments, scope="tables")
