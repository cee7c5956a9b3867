"""MLflow tracking: one run per step, nested under one parent run per pipeline.

Every step run records its lineage: the Delta tables and versions it read and
wrote, row counts, the git commit, the hash of the effective config and the batch
id, as params/tags plus a ``lineage.json`` artifact. That is what lets anyone walk
back from a prediction row to the model version, its training run, the training
data version and the code.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import mlflow
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from sparkmlops.config import Settings
from sparkmlops.errors import SparkmlopsError
from sparkmlops.tables import TableRef, TableWrite, check_batch_id

log = logging.getLogger(__name__)

TAG_STEP = "sparkmlops.step"
TAG_DATASET = "sparkmlops.dataset"
TAG_BATCH = "sparkmlops.batch_id"
TAG_CONFIG_HASH = "sparkmlops.config_hash"
TAG_OUTCOME = "sparkmlops.outcome"
TAG_GIT_COMMIT = "mlflow.source.git.commit"


def configure_mlflow(settings: Settings) -> str:
    """Point MLflow at the settings' tracking store; create the experiment if needed."""
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(settings.tracking.tracking_uri)
    # MLflow exports the URI into os.environ for its subprocesses; put the user's
    # environment back so the next load_settings() is not steered by this run's URI.
    if previous is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous
    if settings.tracking.registry_uri:
        mlflow.set_registry_uri(settings.tracking.registry_uri)
    name = settings.tracking.experiment
    client = MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        location = settings.tracking.artifact_location
        # A tracking server decides where artifacts go (its proxied artifact store).
        if settings.tracking.tracking_uri.startswith(("http://", "https://", "databricks")):
            location = None
        artifact_uri = settings.resolve_path(location) if location else None
        if artifact_uri and "://" not in artifact_uri:
            artifact_uri = f"file://{artifact_uri}"
        experiment_id = client.create_experiment(name, artifact_location=artifact_uri)
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


@functools.cache
def git_commit(project_dir: str) -> str:
    """The checked-out commit (``+dirty`` when the tree has changes), or ``unknown``."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=project_dir, capture_output=True, text=True,
            check=True, timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=project_dir,
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}+dirty" if dirty else commit


@dataclass
class Stopwatch:
    """Seconds accumulated over timed blocks (e.g. MLflow calls made deep in a search)."""

    seconds: float = 0.0

    @contextmanager
    def timing(self) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds += time.monotonic() - started


# MLflow calls made by library code that has no StepTracker (nested candidate runs)
MLFLOW_CLOCK = Stopwatch()


@dataclass
class StepTracker:
    """The lineage and counts of one step, logged to its MLflow run."""

    step: str
    run_id: str
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    # seconds spent in MLflow calls (tracking and registry) on behalf of this step
    mlflow_clock: Stopwatch = field(default_factory=Stopwatch)

    @property
    def mlflow_seconds(self) -> float:
        return self.mlflow_clock.seconds

    def timing(self) -> AbstractContextManager[None]:
        """Count the time of the MLflow calls inside the block as tracking time."""
        return self.mlflow_clock.timing()

    def read(self, ref: TableRef, version: int | None, rows: int | None = None) -> None:
        """Record a Delta table version this step read."""
        self.inputs.append({"table": ref.fqn, "path": ref.path, "version": version, "rows": rows})
        mlflow.log_param(f"input.{ref.fqn}.version", version)
        if rows is not None:
            self.count(f"rows_in.{ref.fqn}", rows)

    def wrote(self, write: TableWrite, rows: int | None = None) -> None:
        """Record a Delta table version this step committed."""
        rows = write.rows if rows is None else rows
        self.outputs.append(
            {"table": write.table.fqn, "path": write.table.path, "version": write.version,
             "rows": rows}
        )
        mlflow.log_param(f"output.{write.table.fqn}.version", write.version)
        self.count(f"rows_out.{write.table.fqn}", rows)

    def count(self, name: str, value: int) -> None:
        self.counts[name] = int(value)
        mlflow.log_metric(name, int(value))

    def lineage(self) -> dict[str, Any]:
        return {"step": self.step, "run_id": self.run_id, "inputs": self.inputs,
                "outputs": self.outputs, "counts": self.counts}


@contextmanager
def pipeline_run(settings: Settings, batch_id: str) -> Iterator[Run]:
    """The parent run of one pipeline run; steps started inside it nest under it."""
    check_batch_id(batch_id)
    configure_mlflow(settings)
    with mlflow.start_run(run_name=f"pipeline {settings.dataset.name} {batch_id}") as run:
        _tag_run(settings, "pipeline", batch_id)
        try:
            yield run
        except SparkmlopsError as exc:
            _record_failure(exc)
            raise


@contextmanager
def step_run(settings: Settings, step: str, batch_id: str) -> Iterator[StepTracker]:
    """One step's MLflow run: nested when a pipeline run is active, else top-level.

    The batch id is checked before anything starts: a bad one writes nothing.
    """
    check_batch_id(batch_id)
    if mlflow.active_run() is None:
        configure_mlflow(settings)
    nested = mlflow.active_run() is not None
    started = time.monotonic()
    with mlflow.start_run(run_name=step, nested=nested) as run:
        _tag_run(settings, step, batch_id)
        tracker = StepTracker(step=step, run_id=run.info.run_id, started=started,
                              mlflow_clock=Stopwatch(time.monotonic() - started))
        try:
            yield tracker
        except SparkmlopsError as exc:
            _record_failure(exc)
            raise
        finally:
            mlflow.log_metric("step_seconds", round(time.monotonic() - tracker.started, 3))
            mlflow.log_dict(tracker.lineage(), "lineage.json")


def _tag_run(settings: Settings, step: str, batch_id: str) -> None:
    mlflow.set_tags(
        {
            TAG_STEP: step,
            TAG_DATASET: settings.dataset.name,
            TAG_BATCH: batch_id,
            TAG_CONFIG_HASH: settings.config_hash(),
            TAG_GIT_COMMIT: git_commit(settings.project_dir),
            "sparkmlops.env": settings.env,
        }
    )
    mlflow.log_dict(
        json.loads(settings.model_dump_json(by_alias=True)), "config/effective_config.json"
    )


def _record_failure(exc: SparkmlopsError) -> None:
    mlflow.set_tag(TAG_OUTCOME, type(exc).__name__)
    mlflow.set_tag("sparkmlops.error", str(exc)[:5000])
