"""The platform run the way EMR runs it: an installed wheel, a conf dir outside the repo.

Builds the wheel; installs it into a fresh virtualenv that cannot see the repo (its
dependencies come from the shared venv through a .pth line, which adds that
site-packages folder to sys.path without processing the .pth files in it, so the
editable install of the repo stays out); copies a project (conf dir with a
cluster-like env + the sample landing files) to a temp folder; and from yet another
folder spark-submits a copy of jobs/pipeline.py with the wheel in --py-files to the
local standalone cluster, tracked by a real MLflow server. Path mode (tables by path);
catalog mode is proven elsewhere. It also covers what tests/e2e/test_cluster.py did
(spark-submit to the cluster, the server's artifact proxy) with one pipeline run less.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

import sparkmlops
from sparkmlops.pipeline import STEPS

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

REPO = Path(__file__).resolve().parents[2]
SHARED_SITE_PACKAGES = sysconfig.get_paths()["purelib"]
# a cluster-like env only the project defines: the session spark-submit made, the state
# (lake, Data Docs) under the project root by a relative path
CLUSTER_ENV = {"state_dir": "state",
               "spark": {"master": None, "use_existing_session": True}}
# The platform's session takes no settings from the config, so, as on EMR, the sizes go
# on the spark-submit line: local.yml's for 2 cores and a 344-row sample (with Spark's
# defaults the run took ~195 s instead of ~60 s in-process)
SMALL_DATA_CONF = [arg for key, value in [
    ("spark.sql.shuffle.partitions", "2"), ("spark.default.parallelism", "2"),
    ("spark.databricks.delta.snapshotPartitions", "2"),
    ("spark.sql.sources.parallelPartitionDiscovery.parallelism", "2")]
    for arg in ("--conf", f"{key}={value}")]


def _build_wheel(out: Path) -> Path:
    proc = subprocess.run([str(REPO / "scripts" / "build-wheel.sh"), str(out)],
                          env={**os.environ, "PYTHON": sys.executable}, capture_output=True,
                          text=True, timeout=300, check=True)
    return Path(proc.stdout.strip().splitlines()[-1])


def _fresh_venv(folder: Path, wheel: Path) -> Path:
    """A virtualenv with the wheel installed and the shared venv's packages, not the repo."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True,
                   timeout=120)
    python = folder / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; "
                           "print(sysconfig.get_paths()['purelib'])"], capture_output=True,
                          text=True, check=True).stdout.strip()
    (Path(site) / "_shared_dependencies.pth").write_text(SHARED_SITE_PACKAGES + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, timeout=300)
    return python


def _project(folder: Path) -> Path:
    """A project outside the repo: conf/ (penguins + cluster.yml) and its landing data."""
    conf = folder / "conf"
    (conf / "datasets").mkdir(parents=True)
    shutil.copy(REPO / "conf" / "datasets" / "penguins.yml", conf / "datasets")
    (conf / "cluster.yml").write_text(yaml.safe_dump(CLUSTER_ENV))
    # penguins.yml keeps its relative source.path: it must resolve against this project
    shutil.copytree(REPO / "data" / "sample" / "penguins" / "landing",
                    folder / "data" / "sample" / "penguins" / "landing")
    return conf


def _rows(table: Path) -> int:
    from deltalake import DeltaTable

    return int(DeltaTable(str(table)).to_pyarrow_table().num_rows)


def test_installed_wheel_runs_the_pipeline_on_the_cluster_from_outside_the_repo(
        spark_master, mlflow_server, tmp_path):
    master, cluster_state = spark_master
    started = time.monotonic()
    wheel = _build_wheel(tmp_path / "dist")
    wheel_sha256 = hashlib.sha256(wheel.read_bytes()).hexdigest()
    python = _fresh_venv(tmp_path / "venv", wheel)
    built = time.monotonic()

    probe = subprocess.run(
        [str(python), "-c", "import sys, sparkmlops; print(sparkmlops.__file__); "
         "print('\\n'.join(sys.path))"],
        cwd=tmp_path, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True, text=True, check=True)
    imported, *search_path = probe.stdout.splitlines()
    assert Path(imported).is_relative_to(tmp_path / "venv")
    # the repo's sources stay out (its editable-install .pth is not processed); the shared
    # venv's site-packages, which may sit inside the checkout (.venv), is on the path on purpose
    assert not [p for p in search_path if p and Path(p).resolve().is_relative_to(REPO / "lib")]

    project = tmp_path / "project"
    conf = _project(project)
    job = tmp_path / "job" / "pipeline.py"
    job.parent.mkdir()
    shutil.copy(REPO / "jobs" / "pipeline.py", job)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "SPARKMLOPS_CONF_DIR", "SPARKMLOPS_STATE_DIR")}
    env.update({"MLFLOW_TRACKING_URI": mlflow_server, "PYSPARK_PYTHON": str(python),
                "PYSPARK_DRIVER_PYTHON": str(python)})

    proc = subprocess.run(
        [str(Path(sys.executable).parent / "spark-submit"), "--master", master,
         "--conf", "spark.executor.memory=1g", "--conf", "spark.cores.max=2",
         "--conf", "spark.log.level=WARN", *SMALL_DATA_CONF, "--py-files", str(wheel),
         str(job), "--env", "cluster", "--conf-dir", str(conf)],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=1200,
    )
    pipeline_seconds = time.monotonic() - built

    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"wheel build + venv {built - started:.1f} s, spark-submit pipeline "
          f"{pipeline_seconds:.1f} s, wheel {wheel.stat().st_size} bytes")
    # the executors of the standalone worker did the work
    assert len(list((cluster_state / "work").glob("app-*"))) == 1
    # relative paths resolved against the project, not the working dir or the package
    lake = project / "state" / "lake"
    assert {
        "bronze": _rows(lake / "bronze" / "penguins"),
        "silver": _rows(lake / "silver" / "penguins"),
        "quarantine": _rows(lake / "quarantine" / "penguins"),
        "gold": _rows(lake / "gold" / "penguins_features"),
        "predictions": _rows(lake / "predictions" / "penguins"),
    } == {"bronze": 344, "silver": 342, "quarantine": 2, "gold": 342, "predictions": 342}
    assert list(elsewhere.iterdir()) == []

    client = MlflowClient(tracking_uri=mlflow_server)
    champion = client.get_model_version_by_alias("penguins_sex_classifier", "champion")
    assert champion.version == "1"
    assert "promoted to @champion; @champion is v1" in proc.stdout
    assert f"open {mlflow_server}" in proc.stdout
    # artifacts went through the server's artifact proxy, not to a folder of the driver
    assert client.get_run(champion.run_id).info.artifact_uri.startswith("mlflow-artifacts:")
    assert client.get_model_version_by_alias("penguins_sex_classifier",
                                             "challenger").version == "1"
    assert {k: champion.tags[k] for k in ("sparkmlops_version", "wheel_sha256", "git_commit")} \
        == {"sparkmlops_version": sparkmlops.__version__, "wheel_sha256": wheel_sha256,
            "git_commit": "unknown"}
    experiment = client.get_experiment_by_name("sparkmlops-penguins")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["sparkmlops.step"] for r in runs) == sorted([*STEPS, "pipeline"])
    # spark-submit puts --py-files first on the driver's path: the code ran from the wheel
    assert {(r.data.tags["sparkmlops.version"], r.data.tags["sparkmlops.wheel_sha256"],
             r.data.tags["sparkmlops.install"], r.data.tags["sparkmlops.env"]) for r in runs} \
        == {(sparkmlops.__version__, wheel_sha256, f"wheel on sys.path: {wheel}", "cluster")}
