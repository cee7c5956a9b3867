"""``sparkmlops init DIR``: a new project that uses sparkmlops (``init/project.py``).

Reads no config (it writes the conf dir): the CLI loads no settings and starts no
Spark session for it. ``--dataset`` names the example dataset.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sparkmlops.command import Command
from sparkmlops.config import Settings


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    from sparkmlops.init import CI_CHOICES, PLATFORM_CHOICES

    parser.add_argument("directory", metavar="DIR", help="the new project (absent or empty)")
    parser.add_argument("--ci", choices=CI_CHOICES, default="github",
                        help="GitHub Actions workflows or azure-pipelines.yml (default github)")
    parser.add_argument("--platform", choices=PLATFORM_CHOICES, default="both",
                        help="the env overlays and deploy files to write (default both)")


def _run(spark: Any, settings: Settings, batch_id: str, args: argparse.Namespace) -> str:
    from sparkmlops.init import scaffold_project

    directory = Path(args.directory)
    platforms = ["emr", "databricks"] if args.platform == "both" else [args.platform]
    written = scaffold_project(directory, dataset=args.dataset, ci=args.ci,
                               platforms=platforms)
    lines = [f"sparkmlops init: project {directory}, dataset {args.dataset}, "
             f"ci {args.ci}, platforms {', '.join(platforms)}"]
    lines += [f"  wrote {path.relative_to(directory)}" for path in written]
    lines.append(f"  next: see {directory / 'README.md'}")
    return "\n".join(lines)


INIT = Command("init", "scaffold a project that uses sparkmlops: conf, example dataset, "
                       "pins, tests, CI/CD", _run, add_arguments=_add_arguments, scope="none")
