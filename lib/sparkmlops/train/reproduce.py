"""Reproduce a training run from its recorded lineage and compare the metrics.

A train run records everything needed to refit its model: the effective config
(``config/effective_config.json``), the estimator that won with its parameters
(``training/estimator.json``, after any search or AutoML) and the Delta table and
version it read (``lineage.json``). ``reproduce_run`` reads that table version by
time travel, makes the same seeded split, fits the same estimator, evaluates on
the same holdout and reports each metric's difference. It is itself an MLflow run
tagged with the run it reproduces.

Example::

    sparkmlops reproduce 3f2a... --tolerance 1e-9
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import pyspark.sql.functions as F
from pyspark.sql import SparkSession

from sparkmlops.config import EstimatorSettings, Settings, TuningSettings
from sparkmlops.errors import MissingInputError, ReproductionMismatch
from sparkmlops.metrics import TASK_METRICS
from sparkmlops.tables import TableRef, read_table
from sparkmlops.tracking.runs import TAG_STEP, configure_mlflow, get_run, run_json, tool_run
from sparkmlops.train import fitting, tuning
from sparkmlops.train.window import WINDOW_ARTIFACT

log = logging.getLogger(__name__)


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

    @property
    def differences(self) -> dict[str, float]:
        return {m: self.reproduced[m] - self.original[m] for m in self.original
                if m in self.reproduced}

    @property
    def max_abs_difference(self) -> float:
        return max((abs(d) for d in self.differences.values()), default=0.0)

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


def reproduce_run(
    spark: SparkSession, settings: Settings, run_id: str, *, tolerance: float = 1e-9
) -> Reproduction:
    """Refit the model of train run ``run_id`` from its lineage; compare the metrics.

    ``settings`` only locate the tracking store; everything about the model comes
    from the run. Raises ReproductionMismatch when a metric differs by more than
    ``tolerance`` (the result is recorded in MLflow either way).
    """
    configure_mlflow(settings)
    run = _train_run(run_id)
    recorded = Settings.model_validate(_artifact(run_id, "config/effective_config.json"))
    estimator = EstimatorSettings.model_validate(_artifact(run_id, "training/estimator.json"))
    source = _artifact(run_id, "lineage.json")["inputs"][0]
    # a catalog-mode table by its recorded name (a managed table has no path to use)
    layer, _, name = str(source["table"]).partition(".")
    table = TableRef(layer=layer, name=name, path=source.get("path"),
                     table_name=source.get("table_name"))
    path, version = table.address, int(source["version"])
    dataset = recorded.dataset
    started = time.monotonic()
    # checked: a version gone from the log or vacuumed is one line naming the retention
    data = read_table(spark, table, version)
    if "window_batches" in run.data.params:
        batches = _artifact(run_id, WINDOW_ARTIFACT)["batches"]
        data = data.where(F.col("_batch_id").isin(batches))
    train, test = fitting.split_train_test(data, dataset)
    with tool_run(f"reproduce {run_id[:8]}", dataset=dataset.name, step="reproduce") as current:
        current.tags({"sparkmlops.reproduces": run_id})
        trained = tuning.search(train, dataset, estimator=estimator, tuning=TuningSettings())
        reproduced = fitting.evaluate(trained.model.transform(test), dataset.model.task)
        names = TASK_METRICS[dataset.model.task]
        original = {m: float(v) for m, v in run.data.metrics.items() if m in names}
        result = Reproduction(run_id, current.run_id, path, version, estimator, original,
                              reproduced, time.monotonic() - started)
        current.params({"reproduces": run_id, "table_path": path, "table_version": version,
                        "estimator": estimator.type, "tolerance": tolerance})
        current.metrics({**{f"reproduced.{k}": v for k, v in reproduced.items()},
                         **{f"difference.{k}": v for k, v in result.differences.items()},
                         "max_abs_difference": result.max_abs_difference})
        matched = result.max_abs_difference <= tolerance
        current.outcome("reproduced" if matched else "mismatch")
        current.log_text(result.report(), "reproduce.txt")
    log.info("%s", result.report())
    if not matched:
        raise ReproductionMismatch(
            f"run {run_id}: metrics differ by up to {result.max_abs_difference:.3g} "
            f"(tolerance {tolerance:g}); see run {result.reproduce_run_id}")
    return result


def _train_run(run_id: str) -> Any:
    run = get_run(run_id)
    step = run.data.tags.get(TAG_STEP)
    if step != "train":
        raise MissingInputError(f"run {run_id} is a {step or 'non-sparkmlops'} run, "
                                "not a train run")
    return run


def _artifact(run_id: str, path: str) -> dict[str, Any]:
    try:
        return dict(run_json(run_id, path))
    except MissingInputError:
        raise MissingInputError(f"run {run_id} has no artifact {path}; it was trained before "
                                "runs recorded it, or the artifact store is gone") from None
