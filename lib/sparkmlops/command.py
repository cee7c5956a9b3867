"""A command of the ``sparkmlops`` CLI: its name, its own options and how it runs.

Each stage declares its commands beside its code (``sparkmlops/<stage>/command.py``);
``cli.py`` builds the parser from the registry of these values and runs the chosen
one. A command module imports no step at load time (only when it runs), so the
parser, ``--help`` and the tests of dispatch start neither Spark nor MLflow.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

if TYPE_CHECKING:
    from sparkmlops.config import Settings

# what a command runs over, which decides its session and its default batch id:
#   batch  - one batch; --batch-id defaults to a hash of the landing files not ingested yet
#   tables - whole tables; the batch id is "all"
#   config - only reads config: no Spark session (run gets spark=None, batch id "all")
#   none   - reads no config (init writes it): run gets spark=None, settings=None
Scope = Literal["batch", "tables", "config", "none"]

Run = Callable[[Any, "Settings", str, argparse.Namespace], str]
# (spark, settings) -> the batch id a batch command runs when --batch-id is not given
DefaultBatchId = Callable[[Any, "Settings"], str]


def no_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``add_arguments`` of a command with only the common options."""


def no_overrides(args: argparse.Namespace) -> list[str]:
    """The ``overrides`` of a command whose options stand for no config key."""
    return []


@dataclass(frozen=True)
class Command:
    """One ``sparkmlops <name>`` command.

    ``run(spark, settings, batch_id, args)`` returns the text printed on stdout (the
    CLI adds the "done in" line) and raises a ``SparkmlopsError`` for an expected
    failure (its exit code ends the job). ``overrides(args)`` turns the command's own
    options into ``KEY.PATH=VALUE`` config overrides, applied after ``--set``.
    ``default_batch_id`` names the batch when ``--batch-id`` is not given (default: the
    dataset's landing files not ingested yet, see ``cli``).
    """

    name: str
    help: str
    run: Run
    add_arguments: Callable[[argparse.ArgumentParser], None] = no_arguments
    overrides: Callable[[argparse.Namespace], list[str]] = no_overrides
    scope: Scope = "batch"
    default_batch_id: DefaultBatchId | None = None


class Outcome(Protocol):
    """What ``step_report`` reads of a step's outcome (a ``tracking.runs.StepOutcome``,
    which sits in a layer above this module)."""

    step: ClassVar[str]

    @property
    def run_id(self) -> str: ...

    @property
    def outputs(self) -> dict[str, int]: ...

    @property
    def summary(self) -> dict[str, Any]: ...


def step_report(settings: Settings, batch_id: str, result: Outcome,
                extra: list[str] | None = None) -> str:
    """What a single step prints: its run, the table versions it wrote, its summary.

    The step is named by its outcome (``result.step``: ``ingest``, ``maintain`` ...),
    so a command names no step twice; ``extra`` lines follow the summary (promote's
    one line per version judged).
    """
    lines = [f"sparkmlops {result.step}: dataset {settings.dataset.name}, batch {batch_id}",
             f"  MLflow run {result.run_id}"]
    lines += [f"  wrote {table} v{version}" for table, version in result.outputs.items()]
    lines += [f"  {key}: {value}" for key, value in result.summary.items()]
    return "\n".join(lines + (extra or []))
