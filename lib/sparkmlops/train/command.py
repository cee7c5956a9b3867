"""``sparkmlops train`` (gold → model → @challenger) and ``sparkmlops reproduce``.

``--automl`` / ``--time-budget`` are declared here and reused by ``pipeline``, which
trains too: they stand for ``--set dataset.model.automl.*`` config overrides.
"""

from __future__ import annotations

import argparse
from typing import Any

from sparkmlops.command import Command, step_report
from sparkmlops.config import Settings


def add_automl_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--automl", action="store_true",
                        help="AutoML: try estimator families, keep the best (model.automl)")
    parser.add_argument("--time-budget", type=float, metavar="SECONDS",
                        help="AutoML time budget (default: model.automl.time_budget_s)")


def automl_overrides(args: argparse.Namespace) -> list[str]:
    """What ``--automl`` / ``--time-budget`` stand for, as ``--set`` overrides."""
    overrides = ["dataset.model.automl.enabled=true"] if args.automl else []
    if args.time_budget is not None:
        overrides.append(f"dataset.model.automl.time_budget_s={args.time_budget}")
    return overrides


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    add_automl_arguments(parser)
    parser.add_argument("--gold-version", type=int)


def _train(spark: Any, settings: Settings, batch_id: str, args: argparse.Namespace) -> str:
    from sparkmlops.train.step import train_step

    result = train_step(spark, settings, batch_id, gold_version=args.gold_version)
    return step_report(settings, batch_id, result)


def _reproduce_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", help="the MLflow run id of a train step")
    parser.add_argument("--tolerance", type=float, default=1e-9,
                        help="largest metric difference that counts as the same "
                             "(default: 1e-9); above it the exit code is 6")


def _reproduce(spark: Any, settings: Settings, batch_id: str, args: argparse.Namespace) -> str:
    from sparkmlops.train.step import reproduce_step

    return reproduce_step(spark, settings, args.run_id, tolerance=args.tolerance).report()


TRAIN = Command("train", "gold → MLlib model → registry @challenger", _train,
                add_arguments=_train_arguments, overrides=automl_overrides)
REPRODUCE = Command("reproduce", "retrain a train run from its lineage, compare metrics",
                    _reproduce, add_arguments=_reproduce_arguments, scope="tables")
