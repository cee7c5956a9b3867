"""A real standalone Spark cluster and a real MLflow server for the `cluster` tests, and
the EMR stand-in: an S3 store on 127.0.0.1 and a node of EMR's Spark and Delta versions.

All are started from the repo's scripts (scripts/spark-cluster.sh, mlflow-server.sh,
s3-server.sh, emr-standin.sh) on 127.0.0.1 with free ports, once per test module (each
module asserts on the apps and registry of its own), and stopped afterwards.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SHORT_LIVED_JVM

PROJECT = Path(__file__).resolve().parents[2]


# the sample's batch monitored against its model's reference (the last step of a batch
# pipeline): PSI, null rate and its increase of the 8 inputs, the score and the predicted
# class (10 x 3), KS and out-of-range rate of the 7 numbers (6 inputs and the score),
# chi-square and unseen rate of the 3 categories (2 inputs and the predicted class), and
# the batch's live accuracy
MONITORING_ROWS = 10 * 3 + 7 * 2 + 3 * 2 + 1
# the sample's batch measured by validate (quality_metrics.<dataset>): its row count, the
# null share and distinct count of its 17 columns, min, max and mean of the 7 numeric
# ones (sample_number and the 6 measurements)
QUALITY_METRICS_ROWS = 1 + 17 * 2 + 7 * 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def purelib(python: Path | str) -> str:
    """The site-packages folder of ``python``'s environment."""
    return subprocess.run([str(python), "-c", "import sysconfig; "
                           "print(sysconfig.get_paths()['purelib'])"], capture_output=True,
                          text=True, check=True).stdout.strip()


def fresh_venv(folder: Path, site_packages: str) -> Path:
    """A new virtualenv (its python) that sees ``site_packages`` through a .pth line: the
    dependencies, standing in for the package index. A folder added by a .pth line has its
    own .pth files skipped, so an editable install of the repo there stays out."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True,
                   timeout=120)
    python = folder / "bin" / "python"
    (Path(purelib(python)) / "_dependencies.pth").write_text(site_packages + "\n")
    return python


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


# --- The EMR stand-in: S3 on 127.0.0.1 and a node of emr-spark-8.0.0 ---------------------

# Dummy credentials: S3A and boto3 find them in the environment, where an EMR node's
# instance profile would give them; moto accepts any key.
AWS_TEST_ENV = {"AWS_ACCESS_KEY_ID": "standin", "AWS_SECRET_ACCESS_KEY": "standin",
                "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}
# Variables of the suite's own environment that must not reach a job "on the cluster":
# the checkout's conf dir, state dir, jars, venv and Python path
CHECKOUT_ENV = ("PYTHONPATH", "SPARKMLOPS_CONF_DIR", "SPARKMLOPS_STATE_DIR",
                "SPARKMLOPS_JARS_DIR", "SPARKMLOPS_VENV", "SPARK_HOME", "SPARK_CONF_DIR",
                "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "VIRTUAL_ENV",
                "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@dataclass(frozen=True)
class S3Store:
    """moto's server (scripts/s3-server.sh): S3 and Secrets Manager at one endpoint."""

    endpoint: str

    def client(self, service: str = "s3") -> Any:
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint,
                            region_name=AWS_TEST_ENV["AWS_REGION"],
                            aws_access_key_id=AWS_TEST_ENV["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=AWS_TEST_ENV["AWS_SECRET_ACCESS_KEY"])

    def storage_options(self) -> dict[str, str]:
        """delta-rs (``deltalake``) options to read ``s3://`` tables at this endpoint."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ALLOW_HTTP": "true",
                **{k: v for k, v in AWS_TEST_ENV.items() if k != "AWS_DEFAULT_REGION"}}

    def upload_tree(self, folder: Path, bucket: str, prefix: str) -> list[str]:
        """Every file under ``folder`` to ``s3://bucket/prefix/<relative path>``; the keys."""
        s3 = self.client()
        keys = []
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            keys.append(f"{prefix}/{file.relative_to(folder).as_posix()}")
            s3.upload_file(str(file), bucket, keys[-1])
        return keys


@pytest.fixture(scope="module")
def s3_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Store]:
    state = tmp_path_factory.mktemp("s3_server")
    try:
        yield S3Store(run_script("s3-server.sh", "start", str(state), str(free_port())))
    finally:
        run_script("s3-server.sh", "stop", str(state))


@pytest.fixture(scope="session")
def emr_standin() -> Path:
    """The stand-in's folder (scripts/emr-standin.sh): built once, then reused while its
    inputs (the poms, the lock, setup.cfg, the script) are unchanged."""
    return Path(run_script("emr-standin.sh", "build"))


@dataclass(frozen=True)
class EmrNode:
    """The primary node of an emr-spark-8.0.0 cluster, as far as a step can tell.

    Spark 4.0.2 (a standalone master and worker of its own: a Spark 4.1 master refuses a
    4.0.2 driver, `InvalidClassException: scala.collection.immutable.ArraySeq`), Delta
    4.0.0 and S3 as the cluster's configuration (``conf_dir``/spark-defaults.conf), the
    wheel's dependencies installed by the bootstrap in ``python``'s venv.
    """

    standin: Path
    master: str
    conf_dir: Path
    env: dict[str, str]

    @property
    def python(self) -> Path:
        return self.standin / "venv" / "bin" / "python"

    def command(self, args: list[str]) -> list[str]:
        """A step's arguments as they run here.

        ``spark-submit`` is the stand-in's; ``--deploy-mode cluster`` becomes ``client``
        (a standalone master runs no Python driver in cluster mode; YARN would);
        EMR's ``/usr/share/aws/`` is the stand-in's ``aws/`` folder.
        """
        assert args and args[0] == "spark-submit", args
        out = [str(self.python.parent / "spark-submit")]
        for arg, previous in zip(args[1:], args[:-1], strict=True):
            if previous == "--deploy-mode" and arg == "cluster":
                arg = "client"
            out.append(arg.replace("/usr/share/aws/", f"{self.standin}/aws/"))
        return out

    def spark_submit(self, args: list[str], *, cwd: Path, env: dict[str, str] | None = None,
                     timeout: float = 1200) -> subprocess.CompletedProcess[str]:
        """Run a step's ``spark-submit ...`` arguments on this node, with the node's
        environment plus ``env`` (the step's own variables), from ``cwd``."""
        return subprocess.run(self.command(args), cwd=cwd, env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def emr_node(emr_standin: Path, s3_store: S3Store,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmrNode]:
    """A stand-in node whose cluster reads and writes S3 at ``s3_store``'s endpoint."""
    python = emr_standin / "venv" / "bin" / "python"
    base = {k: v for k, v in os.environ.items() if k not in CHECKOUT_ENV}
    base["PATH"] = f"{python.parent}{os.pathsep}{base.get('PATH', '')}"
    node_env = {**base, **AWS_TEST_ENV, "SPARK_LOCAL_IP": "127.0.0.1",
                "PYSPARK_PYTHON": str(python), "PYSPARK_DRIVER_PYTHON": str(python)}
    state = tmp_path_factory.mktemp("emr_cluster")
    cluster_env = {**AWS_TEST_ENV, "SPARKMLOPS_VENV": str(emr_standin / "venv"),
                   "SPARK_MASTER_PORT": str(free_port()), "SPARK_WORKER_MEMORY": "2g"}
    conf_dir = tmp_path_factory.mktemp("emr_spark_conf")
    try:
        master = run_script("spark-cluster.sh", "start", str(state), env=cluster_env)
        cluster_conf = {
            "spark.master": master,
            "spark.hadoop.fs.s3a.endpoint": s3_store.endpoint,
            "spark.hadoop.fs.s3a.endpoint.region": AWS_TEST_ENV["AWS_REGION"],
            "spark.hadoop.fs.s3a.path.style.access": "true",
            "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
            # sized for 2 cores and the 344-row sample, as an EMR cluster's spark-defaults
            # is sized for its instances (with Spark's defaults a pipeline run took ~195 s
            # instead of ~60 s: tests/e2e/test_wheel_on_cluster.py)
            "spark.executor.memory": "1g", "spark.cores.max": "2",
            "spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2",
            "spark.databricks.delta.snapshotPartitions": "2",
            "spark.sql.sources.parallelPartitionDiscovery.parallelism": "2",
            "spark.ui.enabled": "false", "spark.log.level": "WARN",
            # an executor lives as long as its one job (SHORT_LIVED_JVM: tests/conftest.py)
            "spark.executor.extraJavaOptions": SHORT_LIVED_JVM,
        }
        (conf_dir / "spark-defaults.conf").write_text(
            (emr_standin / "conf" / "spark-defaults.conf").read_text()
            + "".join(f"{key} {value}\n" for key, value in cluster_conf.items()))
        yield EmrNode(emr_standin, master, conf_dir,
                      {**node_env, "SPARK_CONF_DIR": str(conf_dir)})
    finally:
        run_script("spark-cluster.sh", "stop", str(state), env=cluster_env)
