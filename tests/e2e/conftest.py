"""A real standalone Spark cluster and a real MLflow server for the `cluster` tests.

Both are started from the repo's scripts (scripts/spark-cluster.sh,
scripts/mlflow-server.sh) on 127.0.0.1 with free ports, once per test module (each
module asserts on the apps and registry of its own), and stopped afterwards.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_script(*args: str, env: dict[str, str] | None = None) -> str:
    """Run ``scripts/<args[0]> args[1:]``; its last stdout line (the URL it printed)."""
    proc = subprocess.run([str(PROJECT / "scripts" / args[0]), *args[1:]], cwd=PROJECT,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    return lines[-1] if lines else ""


@pytest.fixture(scope="module")
def spark_master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(master URL, the cluster's state dir: logs/ and the worker's work/)."""
    state = tmp_path_factory.mktemp("spark_cluster")
    env = {"SPARK_MASTER_PORT": str(free_port()), "SPARK_WORKER_MEMORY": "2g"}
    try:
        yield run_script("spark-cluster.sh", "start", str(state), env=env), state
    finally:
        run_script("spark-cluster.sh", "stop", str(state), env=env)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The tracking URI of a fresh `mlflow server` (SQLite store, proxied artifacts)."""
    state = tmp_path_factory.mktemp("mlflow_server")
    try:
        yield run_script("mlflow-server.sh", "start", str(state), str(free_port()))
    finally:
        run_script("mlflow-server.sh", "stop", str(state))
