"""Runs record the process that owns them; a top-level run marks dead owners' runs KILLED."""

from __future__ import annotations

import logging
import os
import re
import socket

import mlflow
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from sparkmlops.tracking.owners import (
    TAG_DATASET,
    TAG_HOST,
    TAG_NOTE,
    TAG_PID,
    TAG_PROCESS_START,
    mark_orphans_killed,
    owner_tags,
    process_start,
)
from sparkmlops.tracking.runs import (
    EXPERIMENT_KIND,
    configure_mlflow,
    pipeline_run,
    step_run,
)

HOST = socket.gethostname()
NOTE = re.compile(r"marked KILLED by run (\w+) at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: (.*)$")


@pytest.fixture
def settings(make_settings):
    return make_settings()


@pytest.fixture
def experiment_id(settings) -> str:
    return configure_mlflow(settings)


def test_the_experiment_is_tagged_for_model_training_and_a_users_kind_is_kept(settings):
    created = configure_mlflow(settings)
    client = MlflowClient()
    assert client.get_experiment(created).tags[EXPERIMENT_KIND] == "custom_model_development"
    # an experiment made before the tag gets it; a kind someone chose stays
    client.delete_experiment_tag(created, EXPERIMENT_KIND)
    assert configure_mlflow(settings) == created
    assert client.get_experiment(created).tags[EXPERIMENT_KIND] == "custom_model_development"
    client.set_experiment_tag(created, EXPERIMENT_KIND, "forecasting")
    configure_mlflow(settings)
    assert client.get_experiment(created).tags[EXPERIMENT_KIND] == "forecasting"


def _running(experiment_id: str, *, dataset: str = "penguins", host: str = HOST,
             pid: int, start: float | None = None, parent: str | None = None) -> str:
    """A RUNNING run that claims to belong to process ``pid`` on ``host``."""
    tags = {TAG_DATASET: dataset, TAG_HOST: host, TAG_PID: str(pid)}
    if start is not None:
        tags[TAG_PROCESS_START] = f"{start:.2f}"
    if parent is not None:
        tags["mlflow.parentRunId"] = parent
    return MlflowClient().create_run(experiment_id, tags=tags).info.run_id


def _state(run_id: str) -> tuple[str, str | None]:
    run = MlflowClient().get_run(run_id)
    return run.info.status, run.data.tags.get(TAG_NOTE)


def test_a_nested_run_inherits_the_dataset_and_names_the_same_owner(settings, experiment_id):
    with step_run(settings, "train", "b1") as tracker, tracker.child_run("candidate") as child:
        pass

    tags = MlflowClient().get_run(child.run_id).data.tags
    assert tags["mlflow.parentRunId"] == tracker.run_id
    assert {k: tags[k] for k in (TAG_DATASET, *owner_tags())} == {
        TAG_DATASET: "penguins", **owner_tags()}


def test_a_step_marks_killed_only_the_runs_whose_process_is_gone(
    settings, experiment_id, dead_pid
):
    me = os.getpid()
    dead = _running(experiment_id, pid=dead_pid, start=1.0)
    dead_child = _running(experiment_id, pid=dead_pid, start=1.0, parent=dead)
    reused = _running(experiment_id, pid=me, start=process_start(me) - 3600)
    alive = _running(experiment_id, pid=me, start=process_start(me))
    elsewhere = _running(experiment_id, host="another-host", pid=dead_pid, start=1.0)
    other_dataset = _running(experiment_id, dataset="other", pid=dead_pid, start=1.0)
    unowned = MlflowClient().create_run(experiment_id, tags={TAG_DATASET: "penguins"})

    with step_run(settings, "maintain", "b1") as tracker:
        pass

    gone = f"its process (pid {dead_pid} on host {HOST}) is gone"
    for run_id in (dead, dead_child):
        status, note = _state(run_id)
        assert status == "KILLED"
        assert NOTE.match(note).groups() == (tracker.run_id, gone)
    status, note = _state(reused)
    assert status == "KILLED"
    assert NOTE.match(note).groups() == (
        tracker.run_id, f"its process (pid {me} on host {HOST}) is gone: pid {me} now belongs "
                        "to a process started later")
    for run_id in (alive, elsewhere, other_dataset, unowned.info.run_id):
        assert _state(run_id) == ("RUNNING", None)
    mine = MlflowClient().get_run(tracker.run_id)
    assert mine.info.status == "FINISHED"
    assert {k: mine.data.tags[k] for k in (TAG_DATASET, TAG_HOST, TAG_PID)} == {
        TAG_DATASET: "penguins", TAG_HOST: HOST, TAG_PID: str(me)}


def test_a_pipeline_run_marks_them_and_its_nested_steps_do_not_search_again(
    settings, experiment_id, dead_pid
):
    before = _running(experiment_id, pid=dead_pid)

    with pipeline_run(settings, "b1") as parent:
        during = _running(experiment_id, pid=dead_pid)
        with step_run(settings, "maintain", "b1") as step:
            pass
        mlflow.set_tag("probe", "x")

    assert _state(before)[0] == "KILLED"
    assert NOTE.match(_state(before)[1]).group(1) == parent.run_id
    assert _state(during) == ("RUNNING", None)  # found by the next top-level run
    child = MlflowClient().get_run(step.run_id).data.tags
    assert child["mlflow.parentRunId"] == parent.run_id
    assert child[TAG_PID] == str(os.getpid())


def test_the_sweep_called_directly_returns_what_it_marked(experiment_id, dead_pid):
    dead = _running(experiment_id, pid=dead_pid)
    alive = _running(experiment_id, pid=os.getpid())

    killed = mark_orphans_killed(experiment_id, "penguins", by_run_id="r0")

    assert killed == [dead]
    assert _state(alive) == ("RUNNING", None)
    assert NOTE.match(_state(dead)[1]).groups() == (
        "r0", f"its process (pid {dead_pid} on host {HOST}) is gone")


def test_an_mlflow_error_in_the_sweep_does_not_fail_the_step(
    settings, experiment_id, dead_pid, monkeypatch, caplog
):
    dead = _running(experiment_id, pid=dead_pid)

    def broken(*_args, **_kwargs):
        raise MlflowException("store unavailable")

    monkeypatch.setattr(MlflowClient, "search_runs", broken)
    with caplog.at_level(logging.WARNING, logger="sparkmlops.tracking.runs"):
        with step_run(settings, "maintain", "b1") as tracker:
            pass

    assert MlflowClient().get_run(tracker.run_id).info.status == "FINISHED"
    assert _state(dead) == ("RUNNING", None)
    assert ("could not check for runs left RUNNING by a killed process: MlflowException: "
            "store unavailable") in caplog.messages
