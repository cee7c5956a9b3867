"""A user's project deployed to the EMR stand-in, with nothing from the checkout.

The node runs EMR's versions, not the suite's: emr-spark-8.0.0 has Spark 4.0.2 and Delta
4.0.0 (`emr_node` in tests/e2e/conftest.py, built by scripts/emr-standin.sh), its own
standalone master and worker. The bucket (moto on 127.0.0.1, also Secrets Manager) holds
what the deploy workflow uploads; s3:// goes through hadoop-aws, as EMRFS serves it on EMR.

The one pipeline run goes the user's way: `sparkmlops init` in an empty folder (the wheel's
console script, in a venv of its own), the overlay filled as a user fills it, `sparkmlops
deploy --target emr` as the workflow runs it (a conf dir per commit), the uploads of the
workflow's lines, the generated bootstrap.sh installing the wheel from the bucket into a
fresh node venv, then the generated add-steps.json as EMR runs it: the dependency check
step, then the batch step's own spark-submit arguments from an empty working dir (client
mode; `spark.yarn.appMasterEnv.*` become the driver's env, as YARN makes them), its MLflow
token read from Secrets Manager by reference.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

import sparkmlops
from sparkmlops.pipeline.step import BATCH_STEPS
from tests.e2e.conftest import MONITORING_ROWS, QUALITY_METRICS_ROWS, fresh_venv, purelib

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

REPO = Path(__file__).resolve().parents[2]
BUCKET = "sparkmlops-standin"


def _build_wheel(out: Path) -> Path:
    proc = subprocess.run([str(REPO / "scripts" / "build-wheel.sh"), str(out)],
                          env={**os.environ, "PYTHON": sys.executable}, capture_output=True,
                          text=True, timeout=300, check=True)
    return Path(proc.stdout.strip().splitlines()[-1])


def _delta_rows(s3_store, location: str) -> int:
    """The rows of the Delta table at ``location`` (s3a://...), read by delta-rs."""
    from deltalake import DeltaTable

    table = DeltaTable(location.replace("s3a://", "s3://", 1),
                       storage_options=s3_store.storage_options())
    return table.to_pyarrow_table().num_rows


# `aws s3 cp` and `sudo` of the node, for bootstrap.sh and the check step: the AWS CLI is
# not installed here; this copies through boto3 at the store's endpoint
AWS_SHIM = """#!{python}
import sys, boto3
args = [a for a in sys.argv[1:] if a != "--only-show-errors"]
assert args[:2] == ["s3", "cp"] and len(args) == 4, args
source, target = args[2:]
s3 = boto3.client("s3")
def split(uri):
    bucket, _, key = uri.split("://", 1)[1].partition("/")
    return bucket, key
if source.startswith("s3://"):
    s3.download_file(*split(source), target)
else:
    s3.upload_file(source, *split(target))
"""


def _node_tools(folder: Path, python: Path) -> Path:
    folder.mkdir()
    (folder / "aws").write_text(AWS_SHIM.format(python=python))
    (folder / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    for tool in ("aws", "sudo"):
        (folder / tool).chmod(0o755)
    return folder


def test_the_s3_store_also_serves_secrets_manager(s3_store):
    """What an EMR job resolves its MLflow token from: a secret by ARN, at the same endpoint."""
    secrets = s3_store.client("secretsmanager")
    arn = secrets.create_secret(Name="sparkmlops/mlflow-token", SecretString="s3cr3t")["ARN"]

    assert arn.startswith("arn:aws:secretsmanager:us-east-1:")
    assert secrets.get_secret_value(SecretId=arn)["SecretString"] == "s3cr3t"


def test_a_steps_py_files_replace_the_clusters_so_delta_comes_from_the_bootstrap(
        emr_node, s3_store, tmp_path):
    """Why bootstrap.sh pip-installs the `delta` module (delta-spark==<release's> --no-deps)
    rather than counting on the delta jar in the cluster's spark.submit.pyFiles: a step's
    own --py-files (every step names the wheel there) replaces that list, so `import delta`
    would fail. The stand-in's spark-defaults puts the jar on spark.submit.pyFiles."""
    s3 = s3_store.client()
    s3.create_bucket(Bucket="py-files-probe")
    s3.put_object(Bucket="py-files-probe", Key="probe.py", Body=(
        b"import importlib.util\n"
        b"print('delta importable:', importlib.util.find_spec('delta') is not None)\n"))
    (tmp_path / "helpers.py").write_text("")

    def delta_importable(*py_files: str) -> str:
        proc = emr_node.spark_submit(["spark-submit", *py_files, "s3://py-files-probe/probe.py"],
                                     cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stdout.strip()

    assert delta_importable() == "delta importable: True"
    assert delta_importable("--py-files", str(tmp_path / "helpers.py")) \
        == "delta importable: False"




def _run(command: list[str], *, cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 600) -> str:
    proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, (command, proc.stdout[-2000:], proc.stderr[-4000:])
    return proc.stdout


def test_a_project_from_init_deploys_and_runs_on_emrs_spark_and_delta(
        emr_node, s3_store, mlflow_server, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    started = time.monotonic()
    s3, secrets = s3_store.client(), s3_store.client("secretsmanager")
    s3.create_bucket(Bucket=BUCKET)
    token_arn = secrets.create_secret(Name="acme-ml/mlflow-token",
                                      SecretString="token-from-secrets-manager")["ARN"]
    wheel = _build_wheel(tmp_path / "dist")
    wheel_sha256 = hashlib.sha256(wheel.read_bytes()).hexdigest()
    clean_env = {k: v for k, v in os.environ.items()
                 if k not in ("PYTHONPATH", "SPARKMLOPS_CONF_DIR", "SPARKMLOPS_STATE_DIR",
                              "MLFLOW_TRACKING_URI", "VIRTUAL_ENV")}

    # a developer's machine: the released wheel in a venv of its own, init, the overlay
    dev = fresh_venv(tmp_path / "dev-venv", purelib(sys.executable))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(dev), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, timeout=300)
    sparkmlops_cli = str(dev.parent / "sparkmlops")
    _run([sparkmlops_cli, "init", "acme-ml", "--platform", "emr"], cwd=tmp_path, env=clean_env)
    project = tmp_path / "acme-ml"
    node_python = tmp_path / "node-venv" / "bin" / "python"
    scratch = tmp_path / "driver-scratch"
    overlay = (project / "conf" / "emr.yml").read_text()
    filled = (overlay.replace("CHANGE-ME-bucket", BUCKET)
              .replace("https://CHANGE-ME-mlflow.example.com", mlflow_server)
              .replace("arn:aws:secretsmanager:eu-west-1:000000000000:secret:"
                       "CHANGE-ME-mlflow-token", token_arn)
              .replace("j-CHANGE-ME", "j-STANDIN"))
    assert "CHANGE-ME" not in json.dumps(yaml.safe_load(filled)), filled
    # the node's interpreter (bootstrap.sh installs into it), executors the size of its
    # worker (2 cores, 2 GiB; the packaged 2 x 4 cores x 8g would never be granted), scratch
    # on the driver
    filled = filled.replace("  emr:\n", f"  emr:\n    python: {node_python}\n"
                            "    executors: {instances: 1, cores: 2, memory: 1g}\n", 1)
    (project / "conf" / "emr.yml").write_text(filled + yaml.safe_dump({"state_dir": str(scratch)}))

    # the deploy workflow: the files for this commit's conf dir, then its uploads
    overlay = yaml.safe_load((project / "conf" / "emr.yml").read_text())
    artifacts = overlay["deploy"]["wheel"].rsplit("/", 1)[0]
    conf_dir = f"{artifacts}/conf/c0ffee1"
    out = _run([sparkmlops_cli, "deploy", "--env", "emr", "--dataset", "penguins",
                "--conf-dir", "conf", "--target", "emr", "--out", ".",
                "--set", f"deploy.conf_dir={conf_dir}"], cwd=project, env=clean_env)
    assert "CHANGE-ME" not in out, out
    steps = json.loads((project / "emr" / "add-steps.json").read_text())["Steps"]
    assert [s["Name"] for s in steps] == ["sparkmlops-penguins-check-dependencies",
                                          "sparkmlops-penguins-batch"]
    bucket_of = len(f"s3://{BUCKET}/")
    s3_store.upload_tree(project / "conf", BUCKET, conf_dir[bucket_of:])
    s3_store.upload_tree(project / "data" / "landing", BUCKET, "acme-ml/data/landing")
    s3.upload_file(str(wheel), BUCKET, f"{artifacts[bucket_of:]}/{wheel.name}")
    s3.upload_file(str(project / "constraints.txt"), BUCKET,
                   f"{artifacts[bucket_of:]}/sparkmlops-{sparkmlops.__version__}"
                   "-constraints.txt")
    script = _run([str(dev), "-c", "from sparkmlops.deploy.common import job_script; "
                   "print(job_script('pipeline'), end='')"], cwd=tmp_path, env=clean_env)
    s3.put_object(Bucket=BUCKET, Key=f"{artifacts[bucket_of:]}/jobs/pipeline.py",
                  Body=script.encode())
    # the cluster's record of what it installed goes to a temp folder, not /var/lib
    state = tmp_path / "node-state" / "dependencies.sha256"
    bootstrap = (project / "emr" / "bootstrap.sh").read_text()
    assert "\nSTATE=/var/lib/sparkmlops/dependencies.sha256\n" in bootstrap
    bootstrap = bootstrap.replace("\nSTATE=/var/lib/sparkmlops/dependencies.sha256\n",
                                  f"\nSTATE={state}\n")
    s3.put_object(Bucket=BUCKET, Key=f"{artifacts[bucket_of:]}/bootstrap.sh",
                  Body=bootstrap.encode())
    shutil.rmtree(project)  # nothing of the project is left on the machine
    uploaded = time.monotonic()

    # the cluster boots: the bootstrap action installs the wheel from the bucket
    fresh_venv(tmp_path / "node-venv", purelib(emr_node.python))
    tools = _node_tools(tmp_path / "node-tools", emr_node.python)
    node_env = {**emr_node.env, "PATH": f"{tools}{os.pathsep}{emr_node.env['PATH']}",
                "AWS_ENDPOINT_URL": s3_store.endpoint}
    s3.download_file(BUCKET, f"{artifacts[bucket_of:]}/bootstrap.sh",
                     str(tmp_path / "bootstrap.sh"))
    _run(["bash", str(tmp_path / "bootstrap.sh")], cwd=tmp_path, env=node_env, timeout=600)
    installed = _run([str(node_python), "-c", "import sparkmlops, delta, importlib.metadata as m; "
                      "print(sparkmlops.__file__, m.version('delta-spark'))"],
                     cwd=tmp_path, env=node_env)
    assert installed.startswith(str(tmp_path / "node-venv")) and installed.endswith(" 4.0.0\n")
    booted = time.monotonic()

    # the steps, as EMR runs them: the check, then the batch job's own arguments
    check = steps[0]["HadoopJarStep"]["Args"]
    _run(check, cwd=tmp_path, env=node_env)
    args = steps[1]["HadoopJarStep"]["Args"]
    driver_env = {arg.split("=", 1)[0].removeprefix("spark.yarn.appMasterEnv."):
                  arg.split("=", 1)[1] for arg in args
                  if arg.startswith("spark.yarn.appMasterEnv.")}
    assert driver_env["PYSPARK_PYTHON"] == str(node_python)
    assert driver_env["SPARKMLOPS_AWS_SECRETS"] == f"MLFLOW_TRACKING_TOKEN={token_arn}"
    assert args[args.index("--conf-dir") + 1] == conf_dir
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = emr_node.spark_submit(
        args, cwd=elsewhere, env={"AWS_ENDPOINT_URL": s3_store.endpoint, **driver_env,
                                  "PYSPARK_DRIVER_PYTHON": driver_env["PYSPARK_PYTHON"]},
        timeout=900)
    ran = time.monotonic()
    assert proc.returncode == 0, proc.stderr[-4000:]
    print(f"init + deploy + uploads {uploaded - started:.1f} s, bootstrap "
          f"{booted - uploaded:.1f} s, check + batch step {ran - booted:.1f} s")
    assert list(elsewhere.iterdir()) == []
    # the token came by reference, read at the job's start
    # (PySpark under spark-submit writes the job's stderr, where the log goes, to stdout)
    assert f"INFO sparkmlops.secrets: secret MLFLOW_TRACKING_TOKEN: read from {token_arn}" \
        in proc.stdout

    lake = f"s3a://{BUCKET}/acme-ml/lake"
    expectations = yaml.safe_load((REPO / "conf" / "datasets" / "penguins.yml").read_text())[
        "validate"]["expectations"]
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix="acme-ml/lake/") for o in page.get("Contents", [])]
    tables = {"/".join(key.split("/")[2:4]) for key in keys if "/_delta_log/" in key}
    assert {table: _delta_rows(s3_store, f"{lake}/{table}") for table in tables} == {
        "bronze/penguins": 344, "silver/penguins": 342, "quarantine/penguins": 2,
        "gold/penguins_features": 342, "predictions/penguins": 342,
        # the three landing files; one ingest_log row and one result per expectation
        "manifest/penguins": 3, "ingest_log/penguins": 1,
        "validation_results/penguins": len(expectations),
        "quality_metrics/penguins": QUALITY_METRICS_ROWS,
        # registered, @challenger moved, the gate's decision, @champion moved
        "model_events/penguins": 4, "monitoring/penguins": MONITORING_ROWS}
    first_commit = s3.get_object(Bucket=BUCKET, Key="acme-ml/lake/bronze/penguins/_delta_log/"
                                 "00000000000000000000.json")["Body"].read().decode()
    [info] = [json.loads(line)["commitInfo"] for line in first_commit.splitlines()
              if "commitInfo" in line]
    # written by EMR's versions, not the suite's
    assert info["engineInfo"] == "Apache-Spark/4.0.2 Delta-Lake/4.0.0"
    assert not (scratch / "lake").exists()

    client = MlflowClient(tracking_uri=mlflow_server)
    champion = client.get_model_version_by_alias("penguins_sex_classifier", "champion")
    assert champion.version == "1"
    assert "promoted to @champion; @champion is v1" in proc.stdout
    assert client.get_run(champion.run_id).info.artifact_uri.startswith("mlflow-artifacts:")
    experiment = client.get_experiment_by_name("sparkmlops-penguins")
    runs = client.search_runs([experiment.experiment_id])
    steps = sorted(r.data.tags["sparkmlops.step"] for r in runs)
    assert steps == sorted([*BATCH_STEPS, "pipeline"])
    assert {(r.data.tags["sparkmlops.version"], r.data.tags["sparkmlops.wheel_sha256"],
             r.data.tags["sparkmlops.env"]) for r in runs} \
        == {(sparkmlops.__version__, wheel_sha256, "emr")}
