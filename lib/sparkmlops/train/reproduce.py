"""Reproduce a training run from its recorded lineage and compare the metrics.

A train run records everything needed to refit its model: the effective config
(``config/effective_config.json``), the estimator that won with its parameters
(``training/estimator.json``, after any search or AutoML) and the Delta table and
version it read (``lineage.json``). ``reproduce_step`` (train's I/O edge) reads that
record and that table version by time travel; ``refit`` here makes the same seeded
split, fits the same estimator and evaluates on the same holdout, and the
``Reproduction`` reports each metric's difference. The reproduction is itself an MLflow
run, tagged with the run it reproduces.

Example::

    sparkmlops reproduce 3f2a... --tolerance 1e-9
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import pyspark.sql.functions as F
from pyspark.sql import DataFrame

from sparkmlops.config import DatasetSettings, EstimatorSettings, Settings, TuningSettings
from sparkmlops.metrics import TASK_METRICS
from sparkmlops.tables import BATCH_COLUMN, TableRef
from sparkmlops.train import fitting, tuning


@dataclass(frozen=True)
class Reproduction:
    """The original and reproduced metrics of one training run."""

    run_id: str
    reproduce_run_id: str
    table_path: str
    table_version: int
    estimator: EstimatorSettings
    original: dict[str, float]
    reproduced: dict[str, float]
    seconds: float
    step: ClassVar[str] = "reproduce"  # its runs' step tag

    @property
    def differences(self) -> dict[str, float]:
        return {m: self.reproduced[m] - self.original[m] for m in self.original
                if m in self.reproduced}

    @property
    def max_abs_difference(self) -> float:
        return max((abs(d) for d in self.differences.values()), default=0.0)

    def matches(self, tolerance: float) -> bool:
        """Every metric reproduced within ``tolerance``."""
        return self.max_abs_difference <= tolerance

    def report(self) -> str:
        lines = [f"reproduced train run {self.run_id} as run {self.reproduce_run_id}",
                 f"  data: {self.table_path} v{self.table_version} (time travel)",
                 f"  estimator: {self.estimator.type} {self.estimator.params}",
                 f"  {'metric':<14}{'original':>14}{'reproduced':>14}{'difference':>14}"]
        for metric, diff in sorted(self.differences.items()):
            lines.append(f"  {metric:<14}{self.original[metric]:>14.6f}"
                         f"{self.reproduced[metric]:>14.6f}{diff:>14.2e}")
        lines.append(f"  largest difference {self.max_abs_difference:.2e} "
                     f"in {self.seconds:.1f} s")
        return "\n".join(lines)


@dataclass(frozen=True)
class RecordedTraining:
    """What a train run recorded that refitting its model needs."""

    run_id: str
    dataset: DatasetSettings  # the run's effective config
    estimator: EstimatorSettings  # the estimator that won, with its parameters
    table: TableRef
    version: int
    metrics: dict[str, float]  # the run's holdout metrics


def recorded_training(
    run_id: str, *, config: dict[str, Any], estimator: dict[str, Any], lineage: dict[str, Any],
    run_metrics: dict[str, float],
) -> RecordedTraining:
    """A train run's record from its artifacts (``config/effective_config.json``,
    ``training/estimator.json``, ``lineage.json``) and its logged metrics."""
    dataset = Settings.model_validate(config).dataset
    source = lineage["inputs"][0]
    # a catalog-mode table by its recorded name (a managed table has no path to use)
    layer, _, name = str(source["table"]).partition(".")
    table = TableRef(layer=layer, name=name, path=source.get("path"),
                     table_name=source.get("table_name"))
    names = TASK_METRICS[dataset.model.task]
    return RecordedTraining(
        run_id, dataset, EstimatorSettings.model_validate(estimator), table,
        int(source["version"]), {m: float(v) for m, v in run_metrics.items() if m in names})


def in_batches(data: DataFrame, batches: list[str] | None) -> DataFrame:
    """The rows of the recorded training window's ``batches`` (all rows when None)."""
    return data if batches is None else data.where(F.col(BATCH_COLUMN).isin(batches))


def refit(data: DataFrame, recorded: RecordedTraining) -> dict[str, float]:
    """The recorded run's seeded split of ``data``, its estimator fitted without a search;
    the holdout metrics."""
    dataset = recorded.dataset
    train, test = fitting.split_train_test(data, dataset)
    trained = tuning.search(train, dataset, estimator=recorded.estimator,
                            tuning=TuningSettings())
    return fitting.evaluate(trained.model.transform(test), dataset.model.task)
