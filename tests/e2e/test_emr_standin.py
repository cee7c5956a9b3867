"""The platform on the EMR stand-in, with nothing from the checkout.

The node runs EMR's versions, not the suite's: emr-spark-8.0.0 has Spark 4.0.2 and Delta
4.0.0 (`emr_node` in tests/e2e/conftest.py, built by scripts/emr-standin.sh). The bucket
(moto on 127.0.0.1) holds the project's conf dir, the landing files, the wheel and the
job script. s3:// goes through hadoop-aws, as EMRFS serves it on EMR. The lake is in the
bucket too, and runs and models go to a real MLflow server. The step's spark-submit runs
from an empty working dir, and the checkout's environment does not reach it.

The delta-spark jar is named in the step's --py-files: a job's --py-files replaces the
cluster's spark.submit.pyFiles, so without it `import delta` fails.
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
from sparkmlops.pipeline import STEPS

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

REPO = Path(__file__).resolve().parents[2]
BUCKET = "sparkmlops-standin"


def _build_wheel(out: Path) -> Path:
    proc = subprocess.run([str(REPO / "scripts" / "build-wheel.sh"), str(out)],
                          env={**os.environ, "PYTHON": sys.executable}, capture_output=True,
                          text=True, timeout=300, check=True)
    return Path(proc.stdout.strip().splitlines()[-1])


def _project(folder: Path, scratch: Path) -> Path:
    """A user's project: the penguins dataset reading its landing files from the bucket,
    and an emr overlay that puts the lake in the bucket and scratch on the driver."""
    conf = folder / "conf"
    (conf / "datasets").mkdir(parents=True)
    dataset = (REPO / "conf" / "datasets" / "penguins.yml").read_text()
    relative = "  path: data/sample/penguins/landing"
    assert relative in dataset
    (conf / "datasets" / "penguins.yml").write_text(
        dataset.replace(relative, f"  path: s3://{BUCKET}/landing/penguins"))
    (conf / "emr.yml").write_text(yaml.safe_dump(
        {"state_dir": str(scratch), "storage": {"root": f"s3a://{BUCKET}/lake"}}))
    return conf


def _delta_rows(s3_store, table: str) -> tuple[int, int]:
    """(version, rows) of the Delta table at s3://BUCKET/lake/<table>, read by delta-rs."""
    from deltalake import DeltaTable

    delta = DeltaTable(f"s3://{BUCKET}/lake/{table}", storage_options=s3_store.storage_options())
    return delta.version(), delta.to_pyarrow_table().num_rows


def test_the_s3_store_also_serves_secrets_manager(s3_store):
    """What an EMR job resolves its MLflow token from: a secret by ARN, at the same endpoint."""
    secrets = s3_store.client("secretsmanager")
    arn = secrets.create_secret(Name="sparkmlops/mlflow-token", SecretString="s3cr3t")["ARN"]

    assert arn.startswith("arn:aws:secretsmanager:us-east-1:")
    assert secrets.get_secret_value(SecretId=arn)["SecretString"] == "s3cr3t"


def test_a_steps_py_files_replace_the_clusters_so_delta_must_be_named_in_them(
        emr_node, s3_store, tmp_path):
    """The cluster puts the delta-spark jar on spark.submit.pyFiles (delta-defaults); a
    step's own --py-files replaces that list, so `import delta` then fails."""
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


def test_pipeline_runs_on_emrs_spark_and_delta_from_a_bucket(
        emr_node, s3_store, mlflow_server, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    started = time.monotonic()
    s3 = s3_store.client()
    s3.create_bucket(Bucket=BUCKET)
    wheel = _build_wheel(tmp_path / "dist")
    wheel_sha256 = hashlib.sha256(wheel.read_bytes()).hexdigest()
    # the bootstrap's install on the node: this wheel (its dependencies are there already)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(emr_node.python), "install",
                    "-q", "--no-deps", "--no-index", "--force-reinstall", str(wheel)],
                   check=True, timeout=300)
    scratch = tmp_path / "driver-scratch"
    conf = _project(tmp_path / "project", scratch)
    s3_store.upload_tree(conf, BUCKET, "conf")
    s3_store.upload_tree(REPO / "data" / "sample" / "penguins" / "landing", BUCKET,
                         "landing/penguins")
    s3.upload_file(str(wheel), BUCKET, f"artifacts/{wheel.name}")
    s3.upload_file(str(REPO / "jobs" / "pipeline.py"), BUCKET, "artifacts/jobs/pipeline.py")
    shutil.rmtree(tmp_path / "project")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    uploaded = time.monotonic()

    proc = emr_node.spark_submit(
        ["spark-submit", "--deploy-mode", "client",
         "--py-files", f"s3://{BUCKET}/artifacts/{wheel.name},"
                       "/usr/share/aws/delta/lib/delta-spark.jar",
         f"s3://{BUCKET}/artifacts/jobs/pipeline.py", "--mode", "batch",
         "--env", "emr", "--dataset", "penguins", "--conf-dir", f"s3://{BUCKET}/conf"],
        cwd=elsewhere, env={"MLFLOW_TRACKING_URI": mlflow_server})
    ran = time.monotonic()
    assert proc.returncode == 0, proc.stderr[-4000:]
    print(f"bucket + wheel {uploaded - started:.1f} s, spark-submit pipeline "
          f"{ran - uploaded:.1f} s")
    assert list(elsewhere.iterdir()) == []

    expectations = yaml.safe_load((REPO / "conf" / "datasets" / "penguins.yml").read_text())[
        "quality"]["expectations"]
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix="lake/") for o in page.get("Contents", [])]
    tables = {"/".join(key.split("/")[1:3]) for key in keys if "/_delta_log/" in key}
    assert {table: _delta_rows(s3_store, table)[1] for table in tables} == {
        "bronze/penguins": 344, "silver/penguins": 342, "quarantine/penguins": 2,
        "gold/penguins_features": 342, "predictions/penguins": 342,
        # the three landing files; one ingest_log row and one result per expectation
        "manifest/penguins": 3, "ingest_log/penguins": 1,
        "validation_results/penguins": len(expectations)}
    first_commit = s3.get_object(Bucket=BUCKET, Key="lake/bronze/penguins/_delta_log/"
                                 "00000000000000000000.json")["Body"].read().decode()
    [info] = [json.loads(line)["commitInfo"] for line in first_commit.splitlines()
              if "commitInfo" in line]
    # written by EMR's versions, not the suite's
    assert info["engineInfo"] == "Apache-Spark/4.0.2 Delta-Lake/4.0.0"
    # the driver kept no table: the lake is in the bucket
    assert not (scratch / "lake").exists()

    client = MlflowClient(tracking_uri=mlflow_server)
    champion = client.get_model_version_by_alias("penguins_sex_classifier", "champion")
    assert champion.version == "1"
    assert "promoted to @champion; @champion is v1" in proc.stdout
    assert client.get_run(champion.run_id).info.artifact_uri.startswith("mlflow-artifacts:")
    experiment = client.get_experiment_by_name("sparkmlops-penguins")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["sparkmlops.step"] for r in runs) == sorted([*STEPS, "pipeline"])
    assert {(r.data.tags["sparkmlops.version"], r.data.tags["sparkmlops.wheel_sha256"],
             r.data.tags["sparkmlops.env"]) for r in runs} \
        == {(sparkmlops.__version__, wheel_sha256, "emr")}
