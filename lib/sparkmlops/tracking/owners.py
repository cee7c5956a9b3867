"""Which process owns an MLflow run, and marking KILLED the runs whose process is gone.

Every run is tagged with its host, pid and process start time. A top-level run first
marks KILLED the RUNNING runs of its dataset whose owner process is gone on this host
(a pid reused by a later process is not the owner), so a killed job does not stay
RUNNING for ever. Runs of other hosts are left alone: from here one cannot tell.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

TAG_STEP = "sparkmlops.step"
TAG_DATASET = "sparkmlops.dataset"
TAG_HOST = "sparkmlops.host"
TAG_PID = "sparkmlops.pid"
TAG_PROCESS_START = "sparkmlops.process_start"  # epoch seconds: a reused pid is not the owner
TAG_NOTE = "sparkmlops.note"
# two readings of one process's start time differ by rounding only
_START_TOLERANCE_S = 1.0


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
