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
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from sparkmlops.config import Settings
from sparkmlops.errors import SparkmlopsError
from sparkmlops.provenance import code_identity
from sparkmlops.tables import TableRef, TableWrite, check_batch_id

log = logging.getLogger(__name__)

TAG_STEP = "sparkmlops.step"
TAG_DATASET = "sparkmlops.dataset"
TAG_BATCH = "sparkmlops.batch_id"
TAG_CONFIG_HASH = "sparkmlops.config_hash"
TAG_OUTCOME = "sparkmlops.outcome"
TAG_GIT_COMMIT = "mlflow.source.git.commit"
# the process that owns a run: a RUNNING run whose process is gone was killed
TAG_HOST = "sparkmlops.host"
TAG_PID = "sparkmlops.pid"
TAG_PROCESS_START = "sparkmlops.process_start"  # epoch seconds: a reused pid is not the owner
TAG_NOTE = "sparkmlops.note"
# two readings of one process's start time differ by rounding only
_START_TOLERANCE_S = 1.0


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
    """The checked-out commit (``+dirty`` when the tree has changes), or ``unknown``
    (no git, not a checkout, or a project dir that is a URI)."""
    if not Path(project_dir).is_dir():
        return "unknown"
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
        self.inputs.append({"table": ref.fqn, "path": ref.path, "table_name": ref.table_name,
                            "version": version, "rows": rows})
        mlflow.log_param(f"input.{ref.fqn}.version", version)
        if rows is not None:
            self.count(f"rows_in.{ref.fqn}", rows)

    def wrote(self, write: TableWrite, rows: int | None = None) -> None:
        """Record a Delta table version this step committed."""
        rows = write.rows if rows is None else rows
        self.outputs.append(
            {"table": write.table.fqn, "path": write.table.path,
             "table_name": write.table.table_name, "version": write.version, "rows": rows}
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
    with owned_run(f"pipeline {settings.dataset.name} {batch_id}",
                   dataset=settings.dataset.name) as run:
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
    with owned_run(step, dataset=settings.dataset.name, nested=nested) as run:
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


def child_run_tags() -> dict[str, str]:
    """Tags for a nested run (e.g. a tuning candidate): its parent's dataset, this process."""
    parent = mlflow.active_run()
    dataset = parent.data.tags.get(TAG_DATASET) if parent is not None else None
    return {**({TAG_DATASET: dataset} if dataset else {}), **owner_tags()}


def owner_tags() -> dict[str, str]:
    """Host, pid and start time of this process, as run tags."""
    pid = os.getpid()
    started = process_start(pid)
    return {TAG_HOST: socket.gethostname(), TAG_PID: str(pid),
            **({TAG_PROCESS_START: f"{started:.2f}"} if started is not None else {})}


def process_start(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds); None when gone or not readable."""
    return process_state(pid)[1]


def process_state(pid: int) -> tuple[bool | None, float | None]:
    """(alive, start time in epoch seconds) of process ``pid`` on this host.

    ``alive`` is None when this platform cannot tell, the start time None when it
    cannot be read. Reads ``/proc`` (Linux), else psutil when it happens to be
    installed, else asks the kernel with signal 0. A zombie (exited, not reaped yet)
    is not alive.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        # gone, or hidden from us (/proc mounted with hidepid): the kernel knows which
        return (_signal_zero(pid), None) if Path("/proc/self").exists() else _psutil_state(pid)
    except OSError:
        return _psutil_state(pid)
    # the command name (field 2) may hold spaces and parentheses: split after its last ")"
    fields = stat[stat.rfind(")") + 2:].split()
    if fields[0] in ("Z", "X"):
        return False, None
    return True, _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")


@functools.cache
def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


def _psutil_state(pid: int) -> tuple[bool | None, float | None]:
    try:
        import psutil  # type: ignore[import-untyped]  # optional: not a dependency
    except ImportError:
        return _signal_zero(pid), None
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False, None
        return True, float(process.create_time())
    except psutil.NoSuchProcess:
        return False, None
    except psutil.Error:
        return True, None


def _signal_zero(pid: int) -> bool | None:
    """Whether ``pid`` exists, by sending it no signal (POSIX only; None elsewhere)."""
    if os.name != "posix":  # os.kill terminates the process on Windows
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, belongs to another user
        return True
    return True


def owner_gone(tags: dict[str, str], *, host: str | None = None) -> str | None:
    """Why the process that owns a run with these tags is gone, or None if it may be alive.

    Only a process on this host can be checked; a run of another host, or one that
    predates the owner tags, is never judged gone.
    """
    owner_host, pid = tags.get(TAG_HOST), tags.get(TAG_PID)
    if owner_host is None or pid is None or not pid.isdigit():
        return None
    if owner_host != (host or socket.gethostname()):
        return None
    alive, started = process_state(int(pid))
    if alive is False:
        return f"its process (pid {pid} on host {owner_host}) is gone"
    try:
        recorded = float(tags[TAG_PROCESS_START])
    except (KeyError, ValueError):
        recorded = None
    if (alive and started is not None and recorded is not None
            and abs(recorded - started) > _START_TOLERANCE_S):
        return (f"its process (pid {pid} on host {owner_host}) is gone: pid {pid} now belongs "
                "to a process started later")
    return None


def mark_orphans_killed(experiment_id: str, dataset: str, *, by_run_id: str) -> list[str]:
    """Mark KILLED the RUNNING runs of ``dataset`` whose process is gone; their ids.

    One search per call. Bookkeeping only: an MLflow error is logged, never raised.
    """
    try:
        return _mark_orphans_killed(MlflowClient(), experiment_id, dataset, by_run_id)
    except Exception as exc:  # noqa: BLE001 - must never fail the run that started
        log.warning("could not check for runs left RUNNING by a killed process: %s: %s",
                    type(exc).__name__, str(exc).splitlines()[0][:300] if str(exc) else "")
        return []


def _mark_orphans_killed(
    client: MlflowClient, experiment_id: str, dataset: str, by_run_id: str
) -> list[str]:
    running = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{TAG_DATASET}` = '{dataset}' AND attributes.status = 'RUNNING'",
        max_results=1000,
    )
    host = socket.gethostname()
    killed = []
    for run in running:
        run_id = run.info.run_id
        tags = run.data.tags
        if run_id == by_run_id:
            continue
        gone = owner_gone(tags, host=host)
        if gone is None:
            if tags.get(TAG_HOST) not in (None, host):
                log.info("run %s is RUNNING on host %s: cannot tell from here whether its "
                         "process is alive; left as it is", run_id, tags[TAG_HOST])
            elif TAG_PID not in tags:
                log.info("run %s is RUNNING and records no owner process; left as it is",
                         run_id)
            continue
        at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        client.set_tag(run_id, TAG_NOTE, f"marked KILLED by run {by_run_id} at {at}: {gone}")
        client.set_terminated(run_id, "KILLED")
        log.warning("run %s (%s) was left RUNNING and %s: marked KILLED", run_id,
                    tags.get(TAG_STEP, run.info.run_name), gone)
        killed.append(run_id)
    return killed


def _tag_run(settings: Settings, step: str, batch_id: str) -> None:
    mlflow.set_tags(
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
    )
    mlflow.log_dict(
        json.loads(settings.model_dump_json(by_alias=True)), "config/effective_config.json"
    )


def _record_failure(exc: SparkmlopsError) -> None:
    mlflow.set_tag(TAG_OUTCOME, type(exc).__name__)
    mlflow.set_tag("sparkmlops.error", str(exc)[:5000])



@dataclass
class StepResult:
    """What a step did: its run, the table versions it wrote and a summary for people."""

    step: str
    run_id: str
    outputs: dict[str, int] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
