"""A pipeline SIGKILLed after its train registered a model: the next run cleans up.

``sparkmlops pipeline`` runs on the bundled sample in its own process group and is
killed (the whole group) as soon as its model version is in the registry, i.e.
between train and the end of promote. Then ``promote`` runs in this process: its
run marks the dead pipeline's RUNNING runs KILLED with a note, and the orphaned
version gets its promotion decision (on the sample it becomes @champion).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from sparkmlops.config import load_settings
from sparkmlops.promote.promotion import decision_record
from sparkmlops.promote.step import promote_step
from sparkmlops.tracking.registry import CHALLENGER, CHAMPION, ModelRegistry
from sparkmlops.tracking.runs import configure_mlflow

pytestmark = pytest.mark.e2e

PROJECT = Path(__file__).resolve().parents[2]
TAG_STEP, TAG_PID, TAG_NOTE = "sparkmlops.step", "sparkmlops.pid", "sparkmlops.note"
MODEL = "penguins_sex_classifier"  # model.name in conf/datasets/penguins.yml
PIPELINE_TIMEOUT = 300


def _registered(db: Path) -> list[tuple[int, str]]:
    """(version, run_id) of the model's versions, read straight from MLflow's SQLite store."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT version, run_id FROM model_versions WHERE name = ?",
                                (MODEL,)).fetchall()
    except sqlite3.OperationalError:  # not created yet, or its tables are not
        return []


def _kill_after_registration(state_dir: Path, logs: Path) -> subprocess.Popen[bytes]:
    """Start the pipeline; SIGKILL its process group once a model version is registered."""
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("SPARKMLOPS_STATE_DIR", None)
    logs.mkdir(parents=True)
    with (logs / "out").open("wb") as out, (logs / "err").open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sparkmlops.cli", "pipeline", "--env", "local",
             "--dataset", "penguins", "--set", f"state_dir={state_dir}"],
            cwd=PROJECT, env=env, stdout=out, stderr=err, start_new_session=True)
    deadline = time.monotonic() + PIPELINE_TIMEOUT
    try:
        while not _registered(state_dir / "mlflow.db"):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"pipeline exited {proc.returncode} or timed out before "
                            f"registering a model; stderr tail:\n"
                            f"{(logs / 'err').read_text(errors='replace')[-3000:]}")
            time.sleep(0.05)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=60)
    return proc


def _runs(client: MlflowClient, experiment_id: str) -> dict[str, tuple[str, str]]:
    """step tag -> (run id, status) of every sparkmlops run in the experiment."""
    runs = client.search_runs([experiment_id], max_results=100)
    return {r.data.tags[TAG_STEP]: (r.info.run_id, r.info.status)
            for r in runs if TAG_STEP in r.data.tags}


def test_killed_pipeline_runs_are_marked_killed_and_its_model_is_judged(spark, tmp_path):
    state_dir = tmp_path / "state"
    proc = _kill_after_registration(state_dir, tmp_path / "logs")
    assert proc.returncode == -signal.SIGKILL

    settings = load_settings("local", "penguins", overrides=[f"state_dir={state_dir}"])
    experiment_id = configure_mlflow(settings)
    client = MlflowClient()
    before = _runs(client, experiment_id)
    version = client.get_model_version(MODEL, "1")
    # the kill landed between train's registration and promote's decision
    assert not any(k.startswith("promotion.") for k in version.tags), version.tags
    challenger_at_kill = ModelRegistry(client).by_alias(MODEL, CHALLENGER)
    assert {step: status for step, (_, status) in before.items()} == {
        "pipeline": "RUNNING", "ingest": "FINISHED", "validate": "FINISHED",
        "features": "FINISHED", "train": "RUNNING"}
    train_run = before["train"][0]
    assert version.run_id == train_run

    result = promote_step(spark, settings, "after-kill")

    after = _runs(client, experiment_id)
    assert {step: status for step, (_, status) in after.items()} == {
        "pipeline": "KILLED", "ingest": "FINISHED", "validate": "FINISHED",
        "features": "FINISHED", "train": "KILLED", "promote": "FINISHED"}
    note = re.compile(rf"marked KILLED by run {result.run_id} at "
                      r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: "
                      rf"its process \(pid {proc.pid} on host "
                      rf"{re.escape(socket.gethostname())}\) is gone$")
    for step in ("pipeline", "train"):
        assert note.match(client.get_run(after[step][0]).data.tags[TAG_NOTE]), step
    unfinished = f"registered by run {train_run}, which did not finish (status KILLED)"
    assert [(d.challenger_version, d.champion_before, d.promoted)
            for d in result.decisions] == [("1", None, True)]
    assert result.decision is not None
    assert result.decision.reasons[0] == unfinished
    assert result.decision.reasons[-1] == "no champion yet"
    judged = client.get_model_version(MODEL, "1")
    assert judged.tags["promotion.promoted"] == "True"
    assert decision_record(judged.tags)["reasons"][0] == unfinished
    assert str(ModelRegistry(client).by_alias(MODEL, CHAMPION).version) == "1"
    # promote moves only @champion: @challenger is as the killed train left it
    challenger_now = ModelRegistry(client).by_alias(MODEL, CHALLENGER)
    assert (challenger_now and challenger_now.version) == (
        challenger_at_kill and challenger_at_kill.version)
    assert client.get_run(train_run).data.tags[TAG_PID] == str(proc.pid)
