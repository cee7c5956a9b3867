"""The platform run the way EMR runs it: an installed wheel, a conf dir outside the repo.

Builds the wheel; installs it into a fresh virtualenv that cannot see the repo (its
dependencies come from the shared venv through a .pth line, which adds that
site-packages folder to sys.path without processing the .pth files in it, so the
editable install of the repo stays out); copies a project (conf dir with a
cluster-like env + the sample landing files) to a temp folder; and from yet another
folder spark-submits a copy of jobs/pipeline.py with the wheel in --py-files to the
local standalone cluster, tracked by a real MLflow server. In catalog mode: the cluster
has a Hive metastore (embedded Derby in a temp dir, so it outlives every process) in
which a deployer's process creates the schema first, and a separate driver finds every
table by name after the job has exited (tests/e2e/metastore_probe.py). It also covers
what tests/e2e/test_cluster.py did (spark-submit to the cluster, the server's artifact
proxy) with one pipeline run less.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

import sparkmlops
from sparkmlops.pipeline import STEPS

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

REPO = Path(__file__).resolve().parents[2]
SHARED_SITE_PACKAGES = sysconfig.get_paths()["purelib"]
PROBE = Path(__file__).with_name("metastore_probe.py")
CATALOG, SCHEMA = "spark_catalog", "ml"
# a cluster-like env only the project defines: the session spark-submit made, the state
# (Data Docs) under the project root by a relative path, every table a managed table of
# the cluster's metastore (as databricks.yml does with Unity Catalog)
CLUSTER_ENV = {"state_dir": "state",
               "spark": {"master": None, "use_existing_session": True},
               "storage": {"catalog": CATALOG, "schema": SCHEMA}}
# The platform's session takes no settings from the config, so, as on EMR, the sizes go
# on the spark-submit line: local.yml's for 2 cores and a 344-row sample (with Spark's
# defaults the run took ~195 s instead of ~60 s in-process)
SMALL_DATA_CONF = [arg for key, value in [
    ("spark.sql.shuffle.partitions", "2"), ("spark.default.parallelism", "2"),
    ("spark.databricks.delta.snapshotPartitions", "2"),
    ("spark.sql.sources.parallelPartitionDiscovery.parallelism", "2")]
    for arg in ("--conf", f"{key}={value}")]


def _metastore_conf(folder: Path) -> list[str]:
    """``--conf`` of the cluster's Hive metastore: an embedded Derby database in ``folder``.

    On EMR the metastore is cluster configuration (the Glue Data Catalog or a Hive
    metastore, set in spark-defaults / hive-site), not the job's: the platform's session
    takes no settings from the conf dir (use_existing_session), so these go on every
    spark-submit line. Derby's log goes to its home, not the working directory.
    """
    return [arg for key, value in [
        ("spark.sql.catalogImplementation", "hive"),
        ("spark.hadoop.javax.jdo.option.ConnectionURL",
         f"jdbc:derby:;databaseName={folder}/metastore_db;create=true"),
        ("spark.sql.warehouse.dir", str(folder / "warehouse")),
        # else each driver leaves a /tmp/<session id>_resources folder behind
        ("spark.hadoop.hive.downloaded.resources.dir", str(folder / "resources")),
        ("spark.driver.extraJavaOptions", f"-Dderby.system.home={folder}")]
        for arg in ("--conf", f"{key}={value}")]


@dataclass
class Probe:
    """tests/e2e/metastore_probe.py running on the metastore, in a local driver of its own."""

    command: str
    metastore: Path
    proc: subprocess.Popen[str]

    @classmethod
    def start(cls, command: str, metastore: Path) -> Probe:
        with (metastore / f"{command}.log").open("w") as log:
            proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[1]",
                 "--conf", "spark.ui.enabled=false", *SMALL_DATA_CONF,
                 *_metastore_conf(metastore), str(PROBE), command, f"{CATALOG}.{SCHEMA}"],
                cwd=metastore, env={**os.environ, "PYSPARK_PYTHON": sys.executable,
                                    "PYSPARK_DRIVER_PYTHON": sys.executable},
                stdout=subprocess.PIPE, stderr=log, text=True)
        return cls(command, metastore, proc)

    def result(self) -> dict:
        """Its ``PROBE {json}`` line, once it has exited (and released the metastore)."""
        out, _ = self.proc.communicate(timeout=300)
        assert self.proc.returncode == 0, \
            (self.metastore / f"{self.command}.log").read_text()[-3000:]
        [line] = [x for x in out.splitlines() if x.startswith("PROBE ")]
        return dict(json.loads(line.removeprefix("PROBE ")))


@pytest.fixture(scope="module")
def schema_being_created(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    """The deployer's ``CREATE SCHEMA`` on a new metastore (the jobs never create one).

    Module-scoped and named first by the test so that it runs while the cluster and
    the MLflow server start and the wheel builds, not before them.
    """
    probe = Probe.start("create-schema", tmp_path_factory.mktemp("metastore"))
    yield probe
    if probe.proc.poll() is None:  # the test failed before it waited for it
        probe.proc.kill()
        probe.proc.wait()


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


def _written_by_the_runs(client: MlflowClient, runs: list, folder: Path
                         ) -> dict[str, tuple[int, int]]:
    """What the step runs' lineage says they wrote: table name -> (last version, rows)."""
    written: dict[str, tuple[int, int]] = {}
    for run in runs:
        if run.data.tags["sparkmlops.step"] == "pipeline":
            continue
        into = folder / run.info.run_id
        into.mkdir(parents=True)
        lineage = json.loads(Path(client.download_artifacts(
            run.info.run_id, "lineage.json", str(into))).read_text())
        for out in lineage["outputs"]:
            assert out["path"] is None, f"{out['table']} was addressed by a path"
            version, rows = written.get(out["table_name"], (-1, 0))
            written[out["table_name"]] = (max(version, out["version"]), rows + out["rows"])
    return written


def test_installed_wheel_runs_the_pipeline_on_the_cluster_from_outside_the_repo(
        schema_being_created, spark_master, mlflow_server, tmp_path, monkeypatch):
    master, cluster_state = spark_master
    metastore = schema_being_created.metastore
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    started = time.monotonic()
    wheel = _build_wheel(tmp_path / "dist")
    wheel_sha256 = hashlib.sha256(wheel.read_bytes()).hexdigest()
    python = _fresh_venv(tmp_path / "venv", wheel)
    built = time.monotonic()
    assert schema_being_created.result() == {"created": f"{CATALOG}.{SCHEMA}"}
    schema_created = time.monotonic()

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
         "--conf", "spark.log.level=WARN", *SMALL_DATA_CONF, *_metastore_conf(metastore),
         "--py-files", str(wheel), str(job), "--env", "cluster", "--conf-dir", str(conf)],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=1200,
    )
    ran = time.monotonic()
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the job has exited: a driver of its own finds the tables in the metastore by name
    tables = Probe.start("describe", metastore).result()
    print(f"wheel build + venv {built - started:.1f} s, then waited for the schema "
          f"{schema_created - built:.1f} s, spark-submit pipeline {ran - schema_created:.1f} s, "
          f"describe the tables {time.monotonic() - ran:.1f} s, wheel "
          f"{wheel.stat().st_size} bytes")
    # the executors of the standalone worker did the work
    assert len(list((cluster_state / "work").glob("app-*"))) == 1

    schema = f"{CATALOG}.{SCHEMA}"
    expectations = yaml.safe_load((conf / "datasets" / "penguins.yml").read_text())[
        "quality"]["expectations"]
    assert {name: t["rows"] for name, t in tables.items()} == {
        f"{schema}.bronze_penguins": 344, f"{schema}.silver_penguins": 342,
        f"{schema}.quarantine_penguins": 2, f"{schema}.gold_penguins_features": 342,
        f"{schema}.predictions_penguins": 342,
        # the three landing files; one ingest_log row and one result per expectation
        f"{schema}.manifest_penguins": 3, f"{schema}.ingest_log_penguins": 1,
        f"{schema}.validation_results_penguins": len(expectations)}
    # managed Delta tables in the cluster's warehouse, each under its own name
    assert {name: (t["type"], t["format"], t["name"], t["location"])
            for name, t in tables.items()} == {
        name: ("MANAGED", "delta", name,
               f"file:{metastore}/warehouse/{SCHEMA}.db/{name.rsplit('.', 1)[1]}")
        for name in tables}
    # nothing by path: no lake under the project, nothing in the working dir; the
    # relative state_dir resolved against the project, not the working dir or the package
    assert not (project / "state" / "lake").exists()
    assert list(elsewhere.iterdir()) == []
    assert f"Data Docs:  file://{project / 'state' / 'data_docs' / 'index.html'}\n" \
        in proc.stdout

    client = MlflowClient(tracking_uri=mlflow_server)
    champion = client.get_model_version_by_alias("penguins_sex_classifier", "champion")
    assert champion.version == "1"
    assert "promoted to @champion; @champion is v1" in proc.stdout
    assert f"open {mlflow_server}" in proc.stdout
    assert f"Delta tables in {schema}:" in proc.stdout
    # artifacts went through the server's artifact proxy, not to a folder of the driver
    assert client.get_run(champion.run_id).info.artifact_uri.startswith("mlflow-artifacts:")
    assert client.get_model_version_by_alias("penguins_sex_classifier",
                                             "challenger").version == "1"
    assert {k: champion.tags[k] for k in ("sparkmlops_version", "wheel_sha256", "git_commit",
                                          "training_table_name")} \
        == {"sparkmlops_version": sparkmlops.__version__, "wheel_sha256": wheel_sha256,
            "git_commit": "unknown", "training_table_name": f"{schema}.gold_penguins_features"}
    experiment = client.get_experiment_by_name("sparkmlops-penguins")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["sparkmlops.step"] for r in runs) == sorted([*STEPS, "pipeline"])
    # spark-submit puts --py-files first on the driver's path: the code ran from the wheel
    assert {(r.data.tags["sparkmlops.version"], r.data.tags["sparkmlops.wheel_sha256"],
             r.data.tags["sparkmlops.install"], r.data.tags["sparkmlops.env"]) for r in runs} \
        == {(sparkmlops.__version__, wheel_sha256, f"wheel on sys.path: {wheel}", "cluster")}
    # counts reconcile: every table holds exactly the rows and version its writers recorded
    assert {name: (t["version"], t["rows"]) for name, t in tables.items()} \
        == _written_by_the_runs(client, runs, tmp_path / "lineage")
