"""The pipeline by spark-submit on a real standalone cluster, tracked by a real MLflow server.

Both are started from the repo's scripts (scripts/spark-cluster.sh, scripts/mlflow-server.sh)
on 127.0.0.1 with free ports, and stopped afterwards.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from sparkmlops.pipeline import STEPS

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

PROJECT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _script(*args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([str(PROJECT / "scripts" / args[0]), *args[1:]], cwd=PROJECT,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    return lines[-1] if lines else ""


@pytest.fixture(scope="module")
def spark_master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    state = tmp_path_factory.mktemp("spark_cluster")
    env = {"SPARK_MASTER_PORT": str(_free_port()), "SPARK_WORKER_MEMORY": "2g"}
    try:
        yield _script("spark-cluster.sh", "start", str(state), env=env), state
    finally:
        _script("spark-cluster.sh", "stop", str(state), env=env)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state = tmp_path_factory.mktemp("mlflow_server")
    try:
        yield _script("mlflow-server.sh", "start", str(state), str(_free_port()))
    finally:
        _script("mlflow-server.sh", "stop", str(state))


def test_pipeline_on_standalone_cluster_with_mlflow_server(spark_master, mlflow_server,
                                                           tmp_path):
    master, cluster_state = spark_master
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server,
           "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}

    proc = subprocess.run(
        [str(Path(sys.executable).parent / "spark-submit"), "--master", master,
         "--conf", "spark.executor.memory=1g", "--conf", "spark.cores.max=2",
         "jobs/pipeline.py", "--env", "local", "--set", f"state_dir={tmp_path}"],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=1200,
    )

    assert proc.returncode == 0, proc.stderr[-3000:]
    # the work really ran in the worker's executors, not in a local[*] driver
    apps = list((cluster_state / "work").glob("app-*"))
    assert len(apps) == 1
    assert list(apps[0].glob("*/stderr"))
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("sparkmlops-penguins")
    parents = client.search_runs([experiment.experiment_id],
                                 "tags.`sparkmlops.step` = 'pipeline'")
    assert len(parents) == 1
    children = client.search_runs([experiment.experiment_id],
                                  f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'")
    assert sorted(r.data.tags["sparkmlops.step"] for r in children) == sorted(STEPS)
    champion = client.get_model_version_by_alias("penguins_sex_classifier", "champion")
    assert str(champion.version) == "1"
    # artifacts went through the server's artifact proxy, not to a local folder
    assert client.get_run(champion.run_id).info.artifact_uri.startswith("mlflow-artifacts:")
    assert "promoted to @champion; @champion is v1" in proc.stdout
    assert f"open {mlflow_server}" in proc.stdout
    assert (tmp_path / "lake" / "predictions" / "penguins" / "_delta_log").is_dir()
