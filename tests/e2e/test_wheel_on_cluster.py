"""The Databricks bundle's batch job, run the way Databricks runs it, on a local cluster.

Builds the wheel; installs it into a fresh virtualenv that cannot see the repo (its
dependencies come from the shared venv through a .pth line, which adds that
site-packages folder to sys.path without processing the .pth files in it, so the
editable install of the repo stays out). With that venv's own ``sparkmlops`` it inits a
project (``--platform databricks``), edits conf/databricks.yml as a user would for this
"workspace" and renders the bundle (``deploy --target databricks``). Then it does what
Databricks does with the bundle's batch job: copies what the bundle syncs to a
"workspace files" folder, substitutes the prod target's variables and
``${workspace.file_path}`` in the task's ``python_wheel_task.parameters``, puts the job
cluster's ``spark_env_vars`` (secrets resolved) in the env, and runs the wheel's entry
point ``sparkmlops <parameters>`` from an empty folder, with the "runtime" giving the
session (a SPARK_CONF_DIR: the local standalone cluster, Delta, the Hive metastore),
tracked by a real MLflow server. In catalog mode: the cluster has a Hive metastore
(embedded Derby in a temp dir, standing for Unity Catalog) in which a deployer's
process creates the schema first, and a separate driver finds every table by name
after the job has exited (tests/e2e/metastore_probe.py). It also covers what
tests/e2e/test_cluster.py did (a job on the cluster, the server's artifact proxy) with
one pipeline run less.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

import sparkmlops
from sparkmlops.pipeline.step import BATCH_STEPS
from sparkmlops.tracking.registry import ModelRegistry
from tests.conftest import SHORT_LIVED_JVM
from tests.e2e.conftest import CHECKOUT_ENV, MONITORING_ROWS, QUALITY_METRICS_ROWS, fresh_venv

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

REPO = Path(__file__).resolve().parents[2]
SHARED_SITE_PACKAGES = sysconfig.get_paths()["purelib"]
PROBE = Path(__file__).with_name("metastore_probe.py")
# the Derby metastore's only catalog; the bundle's variables default to these (set in
# the project's conf/databricks.yml, as a user sets their catalog and schema)
CATALOG, SCHEMA = "spark_catalog", "ml"
# the workspace's secrets: Databricks puts the value of {{secrets/ml/mlflow-token}} in
# the job cluster's env
TOKEN = "test-mlflow-token"
SECRETS = {"ml/mlflow-token": TOKEN}
PRINCIPAL = "00000000-0000-0000-0000-0000000000a1"  # the application id prod runs as
# The platform's session takes no settings from the config, so, as a Databricks
# cluster's Spark config, the sizes are the runtime's: local.yml's for 2 cores and a
# 344-row sample (with Spark's defaults the run took ~195 s instead of ~60 s in-process)
SMALL_DATA = {"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2",
              "spark.databricks.delta.snapshotPartitions": "2",
              "spark.sql.sources.parallelPartitionDiscovery.parallelism": "2"}


def _metastore(folder: Path) -> dict[str, str]:
    """Spark settings of the cluster's Hive metastore: an embedded Derby database in ``folder``.

    On Databricks the metastore (Unity Catalog) is the cluster's configuration, not the
    job's: the platform's session takes no settings from the conf dir
    (use_existing_session). Derby's log goes to its home, not the working directory.
    """
    return {"spark.sql.catalogImplementation": "hive",
            "spark.hadoop.javax.jdo.option.ConnectionURL":
                f"jdbc:derby:;databaseName={folder}/metastore_db;create=true",
            "spark.sql.warehouse.dir": str(folder / "warehouse"),
            # else each driver leaves a /tmp/<session id>_resources folder behind
            "spark.hadoop.hive.downloaded.resources.dir": str(folder / "resources"),
            "spark.driver.extraJavaOptions": f"-Dderby.system.home={folder}"}


def _conf_args(conf: dict[str, str]) -> list[str]:
    return [arg for key, value in conf.items() for arg in ("--conf", f"{key}={value}")]


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
                 "--conf", "spark.ui.enabled=false", *_conf_args(SMALL_DATA),
                 *_conf_args(_metastore(metastore)), str(PROBE), command,
                 f"{CATALOG}.{SCHEMA}"],
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
    python = fresh_venv(folder, SHARED_SITE_PACKAGES)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, timeout=300)
    return python


def _cli(python: Path, args: list[str], *, cwd: Path, env: dict[str, str]
         ) -> subprocess.CompletedProcess[str]:
    """The fresh venv's ``sparkmlops`` console script (the installed wheel's entry point)."""
    return subprocess.run([str(python.parent / "sparkmlops"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=1200)


def _workspace_conf(project: Path, *, volume: Path, state: Path, mlflow_server: str,
                    wheel: Path) -> None:
    """Fill conf/databricks.yml as a user does for this "workspace": the project's root in
    the volume (its landing files), the catalog and schema, the MLflow server, the driver's
    disk, the wheel, the service principal and the server's token by reference."""
    path = project / "conf" / "databricks.yml"
    conf = yaml.safe_load(path.read_text())
    conf["project_dir"] = volume.as_uri()
    conf["state_dir"] = str(state)
    # no lasting folder on a job cluster: Data Docs go to the validate run's artifacts (a
    # path here would also resolve against the file: project_dir, into a file: URI)
    conf["validate"] = {"data_docs_dir": None}
    conf["storage"] = {"catalog": CATALOG, "schema": SCHEMA}
    conf["tracking"] = {"tracking_uri": mlflow_server, "registry_uri": mlflow_server}
    conf["deploy"]["wheel"] = str(wheel)
    conf["deploy"]["secrets"] = {"MLFLOW_TRACKING_TOKEN": {"databricks": "ml/mlflow-token"}}
    conf["deploy"]["databricks"]["run_as_service_principal"] = PRINCIPAL
    path.write_text(yaml.safe_dump(conf, sort_keys=False))


def _sync(project: Path, bundle: dict, into: Path) -> Path:
    """What ``bundle deploy`` syncs (sync.paths, relative to the bundle's folder) copied
    under ``into`` as the workspace lays it out: relative to the paths' common root, the
    project. ``into`` stands for ``${workspace.file_path}``."""
    for relative in bundle["sync"]["paths"]:
        source = (project / "databricks" / relative).resolve()
        shutil.copytree(source, into / source.relative_to(project))
    return into


def _substitute(text: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    return text


def _resolved_secrets(env: dict[str, str]) -> dict[str, str]:
    """``spark_env_vars`` as the cluster starts with them: each ``{{secrets/<scope>/<key>}}``
    replaced by the secret's value in SECRETS (one the workspace lacks fails the start)."""
    return {name: re.sub(r"\{\{secrets/([^{}]+)\}\}", lambda ref: SECRETS[ref[1]], value)
            for name, value in env.items()}


def _runtime_conf(folder: Path, *, master: str, metastore: Path) -> Path:
    """A SPARK_CONF_DIR with what a Databricks cluster's Spark config holds: the master,
    Delta (jars, extension, catalog), the metastore and sizes for 2 cores."""
    from sparkmlops.spark import DELTA_CATALOG, DELTA_EXTENSION, delta_jars

    jars = delta_jars()
    assert jars, "no Delta jars (SPARKMLOPS_JARS_DIR)"
    conf = {"spark.master": master, "spark.jars": ",".join(jars),
            "spark.sql.extensions": DELTA_EXTENSION,
            "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
            "spark.executor.memory": "1g", "spark.cores.max": "2",
            # an executor lives as long as its one job (SHORT_LIVED_JVM: tests/conftest.py)
            "spark.executor.extraJavaOptions": SHORT_LIVED_JVM,
            "spark.log.level": "WARN", **SMALL_DATA, **_metastore(metastore)}
    folder.mkdir(parents=True)
    (folder / "spark-defaults.conf").write_text(
        "".join(f"{key} {value}\n" for key, value in conf.items()))
    return folder


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


def test_databricks_batch_job_runs_from_the_installed_wheel_on_the_cluster(
        schema_being_created, spark_master, mlflow_server, tmp_path, monkeypatch):
    master, cluster_state = spark_master
    metastore = schema_being_created.metastore
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    started = time.monotonic()
    wheel = _build_wheel(tmp_path / "dist")
    wheel_sha256 = hashlib.sha256(wheel.read_bytes()).hexdigest()
    # the wheel ships the package's modules and nothing else: no test or benchmark code
    # (datagen left it), and its top level is what lib/sparkmlops/README.md documents
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.namelist()
    package = REPO / "lib" / "sparkmlops"
    assert [name for name in shipped if "datagen" in name] == []
    assert {name for name in shipped if name.endswith(".py")} == {
        f"sparkmlops/{p.relative_to(package)}" for p in package.rglob("*.py")
        if "__pycache__" not in p.parts}
    documented = re.findall(r"`([A-Za-z0-9_]+\.py)`", (package / "README.md").read_text())
    assert {name.removeprefix("sparkmlops/") for name in shipped
            if re.fullmatch(r"sparkmlops/\w+\.py", name)} == {"__init__.py", *documented}
    python = _fresh_venv(tmp_path / "venv", wheel)
    # no variable of the checkout reaches the deployer's shell or the job
    clean = {k: v for k, v in os.environ.items() if k not in CHECKOUT_ENV}

    probe = subprocess.run(
        [str(python), "-c", "import sys, sparkmlops; print(sparkmlops.__file__); "
         "print('\\n'.join(sys.path))"],
        cwd=tmp_path, env=clean, capture_output=True, text=True, check=True)
    imported, *search_path = probe.stdout.splitlines()
    assert Path(imported).is_relative_to(tmp_path / "venv")
    # the repo's sources stay out (its editable-install .pth is not processed); the shared
    # venv's site-packages, which may sit inside the checkout (.venv), is on the path on purpose
    assert not [p for p in search_path if p and Path(p).resolve().is_relative_to(REPO / "lib")]

    # the user's side: init, fill conf/databricks.yml, render the bundle, all with the
    # installed wheel's CLI
    project = tmp_path / "project"
    init = _cli(python, ["init", str(project), "--platform", "databricks"], cwd=tmp_path,
                env=clean)
    assert init.returncode == 0, init.stderr
    volume = tmp_path / "volume"  # the project's root in a UC volume: its landing files
    shutil.copytree(project / "data" / "landing", volume / "data" / "landing")
    driver_disk = tmp_path / "local_disk0" / "sparkmlops"
    _workspace_conf(project, volume=volume, state=driver_disk, mlflow_server=mlflow_server,
                    wheel=wheel)
    deploy = _cli(python, ["deploy", "--env", "databricks", "--dataset", "penguins",
                           "--target", "databricks", "--out", "."], cwd=project, env=clean)
    assert deploy.returncode == 0, deploy.stderr
    bundle = yaml.safe_load((project / "databricks" / "databricks.yml").read_text())
    [job] = yaml.safe_load((project / "databricks" / "resources" / "batch-job.yml")
                           .read_text())["resources"]["jobs"].values()
    [task] = job["tasks"]
    [cluster] = job["job_clusters"]
    assert task["job_cluster_key"] == cluster["job_cluster_key"]
    assert task["python_wheel_task"]["package_name"] == "sparkmlops"
    assert task["python_wheel_task"]["entry_point"] == "sparkmlops"
    requirements, whl = (library.get("requirements") or library["whl"]
                         for library in task["libraries"])
    resources = project / "databricks" / "resources"
    assert (resources / whl).resolve() == wheel
    # the job cluster installs exactly the pins: the versions this venv runs on
    pins_text = (resources / requirements).read_text().splitlines()
    lines = [line for line in pins_text if line and not line.startswith("#")]
    assert lines and all(re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.+!-]+", line)
                         for line in lines), lines
    pins = dict(line.split("==") for line in lines)
    installed = json.loads(subprocess.run(
        [str(python), "-c", "import json, sys, importlib.metadata as m\n"
         "found = {}\n"
         "for name in sys.argv[1:]:\n"
         "    try: found[name] = m.version(name)\n"
         "    except m.PackageNotFoundError: pass\n"
         "print(json.dumps(found))", *pins],
        cwd=tmp_path, env=clean, capture_output=True, text=True, check=True).stdout)
    assert installed and installed == {name: pins[name] for name in installed}

    # Databricks' side: sync, substitute the prod target's variables, start the cluster
    files = _sync(project, bundle, tmp_path / "workspace" / "files")
    prod = bundle["targets"]["prod"].get("variables", {})
    values = {f"var.{name}": str(prod.get(name, variable["default"]))
              for name, variable in bundle["variables"].items()}
    values["workspace.file_path"] = str(files)
    parameters = [_substitute(arg, values)
                  for arg in task["python_wheel_task"]["parameters"]]
    assert not [arg for arg in parameters if "${" in arg or "{{" in arg], parameters
    sets = dict(parameters[i + 1].split("=", 1) for i, arg in enumerate(parameters)
                if arg == "--set")
    assert (sets["storage.catalog"], sets["storage.schema"]) == (CATALOG, SCHEMA)
    model, experiment = sets["dataset.model.name"], sets["tracking.experiment"]
    spark_env = cluster["new_cluster"]["spark_env_vars"]
    assert spark_env["MLFLOW_TRACKING_TOKEN"] == "{{secrets/ml/mlflow-token}}"
    spark_env = _resolved_secrets(spark_env)
    assert spark_env["MLFLOW_TRACKING_TOKEN"] == TOKEN
    assert not [v for v in spark_env.values() if "{{" in v], spark_env
    runtime = {**clean, **spark_env, "SPARK_LOCAL_IP": "127.0.0.1",
               "SPARK_CONF_DIR": str(_runtime_conf(tmp_path / "spark_conf", master=master,
                                                   metastore=metastore)),
               # the runtime's Python, where the job cluster installed the libraries
               "PYSPARK_PYTHON": str(python), "PYSPARK_DRIVER_PYTHON": str(python)}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    built = time.monotonic()
    assert schema_being_created.result() == {"created": f"{CATALOG}.{SCHEMA}"}
    schema_created = time.monotonic()

    proc = _cli(python, parameters, cwd=elsewhere, env=runtime)
    ran = time.monotonic()
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the job has exited: a driver of its own finds the tables in the metastore by name
    tables = Probe.start("describe", metastore).result()
    print(f"wheel build + venv + init + deploy {built - started:.1f} s, then waited for the "
          f"schema {schema_created - built:.1f} s, the batch job "
          f"{ran - schema_created:.1f} s, describe the tables {time.monotonic() - ran:.1f} s, "
          f"wheel {wheel.stat().st_size} bytes")
    # the executors of the standalone worker did the work
    assert len(list((cluster_state / "work").glob("app-*"))) == 1

    schema = f"{CATALOG}.{SCHEMA}"
    expectations = yaml.safe_load((files / "conf" / "datasets" / "penguins.yml").read_text())[
        "validate"]["expectations"]
    assert {name: t["rows"] for name, t in tables.items()} == {
        f"{schema}.bronze_penguins": 344, f"{schema}.silver_penguins": 342,
        f"{schema}.quarantine_penguins": 2, f"{schema}.gold_penguins_features": 342,
        f"{schema}.predictions_penguins": 342,
        # the three landing files; one ingest_log row and one result per expectation
        f"{schema}.manifest_penguins": 3, f"{schema}.ingest_log_penguins": 1,
        f"{schema}.validation_results_penguins": len(expectations),
        f"{schema}.quality_metrics_penguins": QUALITY_METRICS_ROWS,
        # registered, @challenger moved, the gate's decision, @champion moved
        f"{schema}.model_events_penguins": 4,
        f"{schema}.monitoring_penguins": MONITORING_ROWS}
    # managed Delta tables in the cluster's warehouse, each under its own name
    assert {name: (t["type"], t["format"], t["name"], t["location"])
            for name, t in tables.items()} == {
        name: ("MANAGED", "delta", name,
               f"file:{metastore}/warehouse/{SCHEMA}.db/{name.rsplit('.', 1)[1]}")
        for name in tables}
    # nothing by path: the volume holds only the landing files, nothing went to the
    # synced files or the working dir
    assert sorted(p.relative_to(volume).as_posix() for p in volume.rglob("*")
                  if p.is_file()) == sorted(
        p.relative_to(project).as_posix() for p in (project / "data" / "landing").rglob("*")
        if p.is_file())
    assert sorted(p.relative_to(files).parts[0] for p in files.iterdir()) == ["conf",
                                                                          "databricks"]
    assert list(elsewhere.iterdir()) == []

    client = MlflowClient(tracking_uri=mlflow_server)
    champion = client.get_model_version_by_alias(model, "champion")
    assert champion.version == "1"
    assert "promoted to @champion; @champion is v1" in proc.stdout
    assert f"open {mlflow_server}" in proc.stdout
    assert f"Delta tables in {schema}:" in proc.stdout
    # artifacts went through the server's artifact proxy, not to a folder of the driver
    assert client.get_run(champion.run_id).info.artifact_uri.startswith("mlflow-artifacts:")
    assert client.get_model_version_by_alias(model, "challenger").version == "1"
    card = ModelRegistry(client).model_card(champion)
    assert {k: card[k] for k in ("sparkmlops_version", "wheel_sha256", "git_commit",
                                 "training_table_name")} \
        == {"sparkmlops_version": sparkmlops.__version__, "wheel_sha256": wheel_sha256,
            "git_commit": "unknown", "training_table_name": f"{schema}.gold_penguins_features"}
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    steps = sorted(r.data.tags["sparkmlops.step"] for r in runs)
    assert steps == sorted([*BATCH_STEPS, "pipeline"])
    # the validation's Data Docs went through the artifact proxy too
    [validate] = [r for r in runs if r.data.tags["sparkmlops.step"] == "validate"]
    assert validate.data.tags["quality.data_docs"] \
        == f"{validate.info.artifact_uri}/data_docs/index.html"
    assert "data_docs/index.html" in {
        a.path for a in client.list_artifacts(validate.info.run_id, "data_docs")}
    # the summary links the artifact as it is, not as file://mlflow-artifacts:/...
    assert f"  Data Docs:  {validate.info.artifact_uri}/data_docs/index.html" in \
        proc.stdout.splitlines()
    # the code ran from the wheel pip installed (the job's whl library), not the checkout
    assert {(r.data.tags["sparkmlops.version"], r.data.tags["sparkmlops.wheel_sha256"],
             r.data.tags["sparkmlops.install"], r.data.tags["sparkmlops.env"]) for r in runs} \
        == {(sparkmlops.__version__, wheel_sha256, f"pip install {wheel.as_uri()}",
             "databricks")}
    # counts reconcile: every table holds exactly the rows and version its writers recorded
    assert {name: (t["version"], t["rows"]) for name, t in tables.items()} \
        == _written_by_the_runs(client, runs, tmp_path / "lineage")
