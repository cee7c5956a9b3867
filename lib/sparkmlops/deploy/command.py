"""``sparkmlops deploy``: job definitions from the env's ``deploy:`` section (``deploy.py``).

Reads config only: the CLI starts no Spark session for it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sparkmlops.command import Command
from sparkmlops.config import Settings


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", action="append", required=True,
                        help="databricks, emr, github, azure-devops or all (repeatable or "
                             "comma-separated; github deploys to the platforms named with "
                             "it, else to all the env configures; azure-devops writes "
                             "azure-pipelines.yml for every conf/<platform>.yml; all: github "
                             "and the platforms)")
    parser.add_argument("--out", required=True,
                        help="folder to write into (the root of your repository: the "
                             "workflows go to <out>/.github/workflows)")


def _run(spark: Any, settings: Settings, batch_id: str, args: argparse.Namespace) -> str:
    from sparkmlops.deploy import placeholders, render, resolve_targets, write_files
    from sparkmlops.deploy.emr import emr_encryption_missing

    targets = resolve_targets(args.target, settings)
    written = write_files(render(settings, targets, out_dir=Path(args.out)))
    lines = [f"sparkmlops deploy: dataset {settings.dataset.name}, env {settings.env}, "
             f"targets {', '.join(targets)}"]
    lines += [f"  wrote {path}" for path in written]
    todo = placeholders(settings)
    if todo:
        lines.append(f"  fill before deploying (CHANGE-ME): {', '.join(todo)}")
    unencrypted = emr_encryption_missing(settings) if "emr" in targets else []
    if unencrypted:
        lines.append(f"  no EMR encryption (no emr/security-configuration.json): set "
                     f"{', '.join(unencrypted)}")
    return "\n".join(lines)


DEPLOY = Command("deploy", "write Databricks / EMR / GitHub Actions job definitions "
                           "from the env's deploy: section",
                 _run, add_arguments=_add_arguments, scope="config")
