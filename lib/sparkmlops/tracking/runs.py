"""MLflow tracking: one run per step, nested under one parent run per pipeline.

Every step run records its lineage: the Delta tables and versions it read and
wrote, row counts, the git commit, the hash of the effective config and the batch
id, as params/tags plus a ``lineage.json`` artifact. That is what lets anyone walk
back from a prediction row to the model version, its training run, the training
data version and the code.

Every param, tag, dict and text a run logs passes ``sparkmlops.redact.redact`` on its
way: the effective config (tracking URI and ``spark.conf`` included) is logged with its
credentials replaced, and so is anything a stage logs through its ``StepTracker``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import subprocess  # nosec B404: git only, see git_commit
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import mlflow
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from sparkmlops.config import Settings
from sparkmlops.errors import MissingInputError, SparkmlopsError
from sparkmlops.redact import redact, redact_text
from sparkmlops.tables import TableRef, TableWrite, check_batch_id
from sparkmlops.tracking.datasets import input_tags, table_dataset
from sparkmlops.tracking.owners import (
    TAG_DATASET,
    TAG_STEP,
    mark_orphans_killed,
    owner_tags,
)
from sparkmlops.tracking.provenance import code_identity
from sparkmlops.tracking.registry import ModelRegistry, json_artifact

log = logging.getLogger(__name__)

TAG_BATCH = "sparkmlops.batch_id"
TAG_CONFIG_HASH = "sparkmlops.config_hash"
TAG_OUTCOME = "sparkmlops.outcome"
TAG_GIT_COMMIT = "mlflow.source.git.commit"


# MLflow 3's UI opens an experiment in the view of its kind; without the tag it guesses,
# and an experiment with no traces opened in the GenAI view. A kind the user set is kept.
EXPERIMENT_KIND = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"


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
        experiment_id = client.create_experiment(
            name, artifact_location=artifact_uri, tags={EXPERIMENT_KIND: MODEL_TRAINING})
    else:
        experiment_id = experiment.experiment_id
        if EXPERIMENT_KIND not in experiment.tags:  # made before the tag, or by hand
            client.set_experiment_tag(experiment_id, EXPERIMENT_KIND, MODEL_TRAINING)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


@functools.cache
def git_commit(project_dir: str) -> str:
    """The checked-out commit (``+dirty`` when the tree has changes), or ``unknown``
    (no git, not a checkout, or a project dir that is a URI)."""
    git = shutil.which("git")  # called by its full path (bandit B607)
    if git is None or not Path(project_dir).is_dir():
        return "unknown"
    try:
        # fixed arguments, no shell: nothing from config or data reaches the command
        commit = subprocess.run(  # nosec B603
            [git, "rev-parse", "HEAD"], cwd=project_dir, capture_output=True, text=True,
            check=True, timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(  # nosec B603
            [git, "status", "--porcelain", "--untracked-files=no"], cwd=project_dir,
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


@dataclass
class StepTracker:
    """The lineage and counts of one step, logged to its MLflow run."""

    step: str
    run_id: str
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    dataset: str = ""
    experiment_id: str = ""
    # seconds spent in MLflow calls (tracking and registry) on behalf of this step
    mlflow_clock: Stopwatch = field(default_factory=Stopwatch)

    @property
    def mlflow_seconds(self) -> float:
        return self.mlflow_clock.seconds

    def timing(self) -> AbstractContextManager[None]:
        """Count the time of the MLflow calls inside the block as tracking time."""
        return self.mlflow_clock.timing()

    def read(self, ref: TableRef, version: int | None, rows: int | None = None, *,
             context: str | None = None) -> None:
        """Record a Delta table version this step read; with ``context`` (``training``,
        ``scoring``) also as an MLflow Dataset input of the run, which the UI lists."""
        self.inputs.append({"table": ref.fqn, "path": ref.path, "table_name": ref.table_name,
                            "version": version, "rows": rows})
        mlflow.log_param(f"input.{ref.fqn}.version", version)
        if rows is not None:
            self.count(f"rows_in.{ref.fqn}", rows)
        if context is not None and version is not None:
            self.log_table_input(ref, version, rows, context=context)

    def log_table_input(self, ref: TableRef, version: int, rows: int | None, *,
                        context: str) -> None:
        """``mlflow.log_input`` of a Delta table version (``tracking.datasets``): described
        from what the step knows, so logging it reads no data. Like ``read``'s param, timed
        by the caller (train counts its reads inside ``tracker.timing()``)."""
        dataset = table_dataset(fqn=ref.fqn, path=ref.path, table_name=ref.table_name,
                                version=version, rows=rows)
        mlflow.log_input(dataset, context=context, tags=input_tags(ref.fqn, version))

    def wrote(self, write: TableWrite, rows: int | None = None) -> None:
        """Record a Delta table version this step committed.

        A table committed again in the same run (the audit trail, once per judged version
        in ``promote``) keeps one entry: its last version and the rows of all its commits,
        with ``commits`` counting them. MLflow params cannot change, so the
        ``output.<table>.version`` param keeps the run's first commit of the table.
        """
        rows = write.rows if rows is None else rows
        fqn = write.table.fqn
        earlier = next((out for out in self.outputs if out["table"] == fqn), None)
        if earlier is not None:
            earlier.update(version=write.version, rows=earlier["rows"] + rows,
                           commits=earlier.get("commits", 1) + 1)
            self.count(f"rows_out.{fqn}", earlier["rows"])
            return
        self.outputs.append(
            {"table": fqn, "path": write.table.path,
             "table_name": write.table.table_name, "version": write.version, "rows": rows}
        )
        mlflow.log_param(f"output.{fqn}.version", write.version)
        self.count(f"rows_out.{fqn}", rows)

    def count(self, name: str, value: int) -> None:
        self.counts[name] = int(value)
        mlflow.log_metric(name, int(value))

    def lineage(self) -> dict[str, Any]:
        return {"step": self.step, "run_id": self.run_id, "inputs": self.inputs,
                "outputs": self.outputs, "counts": self.counts}

    # ---- the step's MLflow calls: stages log through these, never through mlflow.*

    def tags(self, tags: dict[str, Any]) -> None:
        with self.timing():
            mlflow.set_tags(redact(tags))

    def outcome(self, outcome: str) -> None:
        """The step's outcome tag (``ingested``, ``quality_passed``, ``promoted`` ...)."""
        self.tags({TAG_OUTCOME: outcome})

    def params(self, params: dict[str, Any]) -> None:
        with self.timing():
            mlflow.log_params(redact(params))

    def metrics(self, metrics: dict[str, float]) -> None:
        with self.timing():
            mlflow.log_metrics(metrics)

    def log_dict(self, data: Any, path: str) -> None:
        with self.timing():
            mlflow.log_dict(redact(data), path)

    def log_text(self, text: str, path: str) -> None:
        with self.timing():
            mlflow.log_text(redact_text(text), path)

    def log_artifacts(self, local_dir: str, path: str) -> str:
        """Upload a folder under ``path``; the artifact URI of the folder."""
        with self.timing():
            mlflow.log_artifacts(local_dir, path)
            return str(mlflow.get_artifact_uri(path))

    def log_spark_model(self, model: Any, **kwargs: Any) -> Any:
        """``mlflow.spark.log_model`` into this run; its ``ModelInfo``."""
        with self.timing():
            return mlflow.spark.log_model(model, **kwargs)

    def load_model(self, uri: str) -> Any:
        """A Spark model from the tracking store or the registry (``models:/name/1``)."""
        with self.timing():
            return mlflow.spark.load_model(uri)

    def model_info(self, uri: str) -> Any:
        from mlflow.models import get_model_info

        with self.timing():
            return get_model_info(uri)

    def run_tag(self, run_id: str, key: str, default: str = "unknown") -> str:
        with self.timing():
            return str(get_run(run_id).data.tags.get(key, default))

    def run_json(self, run_id: str, path: str) -> Any:
        """A JSON artifact of another run (a train run's reference profile, its batches)."""
        with self.timing():
            return run_json(run_id, path)

    @property
    def registry(self) -> ModelRegistry:
        """The model registry, its calls timed as this step's tracking time."""
        return ModelRegistry(MlflowClient(), self.mlflow_clock)

    @contextmanager
    def child_run(self, name: str) -> Iterator[StepTracker]:
        """A run nested under this step's run (a tuning candidate, an AutoML family)."""
        with self.timing():
            tags = {TAG_DATASET: self.dataset, **owner_tags()} if self.dataset else owner_tags()
            run = mlflow.start_run(run_name=name, nested=True, tags=tags)
        child = StepTracker(step=self.step, run_id=run.info.run_id, dataset=self.dataset,
                            mlflow_clock=self.mlflow_clock)
        status = "FAILED"
        try:
            yield child
            status = "FINISHED"
        finally:
            with self.timing():
                mlflow.end_run(status)


def get_run(run_id: str) -> Run:
    """A run of the tracking store, or MissingInputError."""
    try:
        return MlflowClient().get_run(run_id)
    except MlflowException:
        raise MissingInputError(f"no MLflow run {run_id} in this tracking store") from None


def run_json(run_id: str, path: str) -> Any:
    """A JSON artifact of a run, or MissingInputError."""
    try:
        return json_artifact(MlflowClient(), run_id, path)
    except (MlflowException, OSError):
        raise MissingInputError(f"run {run_id} has no artifact {path}") from None


def infer_signature(inputs: Any, outputs: Any) -> Any:
    """The MLflow model signature of sample inputs and outputs (pandas frames)."""
    from mlflow.models import infer_signature as infer

    return infer(inputs, outputs)


@contextmanager
def tool_run(run_name: str, *, dataset: str, step: str) -> Iterator[StepTracker]:
    """A top-level run of a command that is not a batch step (``reproduce``)."""
    with owned_run(run_name, dataset=dataset) as run:
        mlflow.set_tags({TAG_STEP: step})
        yield StepTracker(step=step, run_id=run.info.run_id, dataset=dataset,
                          experiment_id=run.info.experiment_id)


@contextmanager
def pipeline_run(settings: Settings, batch_id: str) -> Iterator[StepTracker]:
    """The parent run of one pipeline run; steps started inside it nest under it."""
    check_batch_id(batch_id)
    configure_mlflow(settings)
    with owned_run(f"pipeline {settings.dataset.name} {batch_id}",
                   dataset=settings.dataset.name) as run:
        _tag_run(settings, "pipeline", batch_id)
        try:
            yield StepTracker(step="pipeline", run_id=run.info.run_id,
                              dataset=settings.dataset.name,
                              experiment_id=run.info.experiment_id)
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
    with owned_run(step, dataset=settings.dataset.name, nested=nested) as run:
        _tag_run(settings, step, batch_id)
        tracker = StepTracker(step=step, run_id=run.info.run_id, started=started,
                              dataset=settings.dataset.name,
                              mlflow_clock=Stopwatch(time.monotonic() - started))
        try:
            yield tracker
        except SparkmlopsError as exc:
            _record_failure(exc)
            raise
        finally:
            mlflow.log_metric("step_seconds", round(time.monotonic() - tracker.started, 3))
            mlflow.log_dict(redact(tracker.lineage()), "lineage.json")


def owned_run(run_name: str, *, dataset: str, nested: bool = False) -> mlflow.ActiveRun:
    """``mlflow.start_run`` tagged with its dataset and the process that owns it.

    A top-level run first marks KILLED the RUNNING runs of its dataset whose process
    is gone (``mark_orphans_killed``), so a killed job does not stay RUNNING for ever.
    """
    run = mlflow.start_run(run_name=run_name, nested=nested,
                           tags={TAG_DATASET: dataset, **owner_tags()})
    if not nested:
        mark_orphans_killed(run.info.experiment_id, dataset, by_run_id=run.info.run_id)
    return run


def _tag_run(settings: Settings, step: str, batch_id: str) -> None:
    """The run's identity tags and its effective config (``config/effective_config.json``),
    both redacted: a password in the tracking URI or a key in ``spark.conf`` stays out."""
    mlflow.set_tags(redact(
        {
            TAG_STEP: step,
            TAG_DATASET: settings.dataset.name,
            TAG_BATCH: batch_id,
            TAG_CONFIG_HASH: settings.config_hash(),
            TAG_GIT_COMMIT: git_commit(settings.project_dir),
            # on a cluster there is no checkout: the version and wheel hash say which code
            **code_identity().tags(),
            "sparkmlops.env": settings.env,
        }
    ))
    mlflow.log_dict(
        redact(json.loads(settings.model_dump_json(by_alias=True))), "config/effective_config.json"
    )


def _record_failure(exc: SparkmlopsError) -> None:
    mlflow.set_tag(TAG_OUTCOME, type(exc).__name__)
    # an error names what it could not reach: a URI, with its credentials replaced
    mlflow.set_tag("sparkmlops.error", redact_text(str(exc))[:5000])


@dataclass(frozen=True)
class StepOutcome:
    """What a step did: its MLflow run and the Delta table versions it wrote.

    Each step returns its own subclass (``IngestOutcome``, ``TrainOutcome`` ...) whose
    fields say what happened; ``summary`` is the same, as the lines people read.
    """

    run_id: str
    outputs: dict[str, int]
    step: ClassVar[str] = ""

    @property
    def summary(self) -> dict[str, Any]:
        return {}
