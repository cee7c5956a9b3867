"""Issue 21, the Databricks bundle side of faults 1, 4, 6 and Azure: the conf dir travels
with the bundle, dev is not prod, the task's dependencies are the lock's, and the same
bundle works on Azure Databricks. The layout and presets asserted here were checked with
the official CLI (v0.298.0, ``bundle validate -t dev|prod -o json``)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from databricks.sdk.service.jobs import JobSettings

import sparkmlops.deploy.databricks as databricks_module
from sparkmlops.config import load_settings
from sparkmlops.deploy import databricks_bundle, render
from sparkmlops.deploy.databricks import (
    conf_dir_upload,
    databricks_conf_dir,
    pinned_requirements,
    read_lock,
)
from tests.conftest import REPO
from tests.unit.deploy.test_deploy import DATABRICKS_PROJECT, _bundle_jobs, _deploy, _error_line

SP = "6a1f0c2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"


def _databricks(tmp_path: Path, *extra: str):
    return load_settings("databricks", "penguins", overrides=[
        f"project_dir={tmp_path}", *DATABRICKS_PROJECT,
        f"deploy.databricks.run_as_service_principal={SP}", *extra])


def _root(settings, tmp_path: Path) -> dict:
    return databricks_bundle(settings, out_dir=tmp_path)["databricks/databricks.yml"]


# ---------------------------------------------------------------- fault 1: the conf dir


def test_the_bundle_syncs_the_projects_conf_dir_where_the_jobs_read_it(tmp_path):
    settings = _databricks(tmp_path)

    # the sync root becomes the project (the common parent), so conf/ lands at
    # ${workspace.file_path}/conf, the jobs' --conf-dir
    assert _root(settings, tmp_path)["sync"] == {"paths": [".", "../conf"]}
    assert databricks_conf_dir(settings) == "${workspace.file_path}/conf"
    assert conf_dir_upload(settings) is None


def test_a_conf_dir_on_a_volume_is_for_the_workflow_to_upload(tmp_path):
    settings = _databricks(tmp_path, "deploy.conf_dir=/Volumes/main/ml/conf/penguins")

    assert conf_dir_upload(settings) == "/Volumes/main/ml/conf/penguins"
    assert conf_dir_upload(_databricks(tmp_path, "deploy.conf_dir=dbfs:/ml/conf")) == (
        "dbfs:/ml/conf")


# ---------------------------------------------------------------- fault 4: dev is not prod


def test_no_schedule_is_explicitly_unpaused_so_development_mode_pauses_them(tmp_path):
    jobs = _bundle_jobs(databricks_bundle(_databricks(tmp_path), out_dir=tmp_path))

    assert {key: job["schedule"] for key, job in jobs.items() if "schedule" in job} == {
        "sparkmlops_penguins_continuous": {"quartz_cron_expression": "0 0 * * * ?",
                                           "timezone_id": "UTC"},
        "sparkmlops_penguins_maintain": {"quartz_cron_expression": "0 0 3 * * ?",
                                         "timezone_id": "UTC"}}


def test_dev_gets_its_own_schema_experiment_and_model_and_prod_the_configured_ones(tmp_path):
    root = _root(_databricks(tmp_path), tmp_path)
    jobs = _bundle_jobs(databricks_bundle(_databricks(tmp_path), out_dir=tmp_path))

    assert {name: v["default"] for name, v in root["variables"].items()} == {
        "catalog": "main", "schema": "sparkmlops",
        "experiment": "/Shared/sparkmlops-penguins", "model_name": "penguins_sex_classifier"}
    assert root["targets"]["dev"]["variables"] == {
        "schema": "dev_${workspace.current_user.short_name}_sparkmlops",
        "experiment": "/Users/${workspace.current_user.userName}/sparkmlops-penguins"}
    # development mode renames the schema resource dev_<short_name>_sparkmlops (CLI
    # v0.298.0): the name the jobs' storage.schema gets in dev
    assert root["targets"]["dev"]["resources"] == {"schemas": {"dev_schema": {
        "catalog_name": "${var.catalog}", "name": "sparkmlops",
        "comment": "sparkmlops penguins: a developer's dev tables"}}}
    for key, job in jobs.items():
        parameters = job["tasks"][0]["python_wheel_task"]["parameters"]
        assert parameters[parameters.index("penguins") + 1:-2] == [
            "--set", "storage.catalog=${var.catalog}", "--set", "storage.schema=${var.schema}",
            "--set", "tracking.experiment=${var.experiment}",
            "--set", "dataset.model.name=${var.catalog}.${var.schema}.${var.model_name}"], key


def test_prod_has_one_fixed_root_and_runs_as_the_service_principal(tmp_path):
    prod = _root(_databricks(tmp_path), tmp_path)["targets"]["prod"]

    # its schema resource and grants: test_least_privilege.py
    assert {k: v for k, v in prod.items() if k != "resources"} == {"mode": "production",
                    "workspace": {"root_path": f"/Workspace/Users/{SP}/.bundle/${{bundle.name}}"
                                               "/prod"},
                    "run_as": {"service_principal_name": SP}}
    assert "current_user" not in json.dumps(prod)


def test_a_bundle_without_a_service_principal_is_refused(tmp_path, capsys):
    code = _deploy(tmp_path, "databricks", "--target", "databricks",
                   "--set", "deploy.databricks.run_as_service_principal=null")

    assert code == 2
    assert _error_line(capsys) == (
        "sparkmlops deploy: ConfigError: --target databricks: "
        "deploy.databricks.run_as_service_principal is not set; the prod target runs as a "
        "service principal (its application id), never as whoever deployed")
    assert not (tmp_path / "databricks").exists()


def test_path_tables_and_a_workspace_registry_get_a_per_user_root_and_model_in_dev(tmp_path):
    settings = _databricks(tmp_path, "storage.catalog=null", "storage.schema=null",
                           "storage.root=abfss://lake@acme.dfs.core.windows.net/sparkmlops",
                           "tracking.registry_uri=databricks")
    root = _root(settings, tmp_path)

    assert root["targets"]["dev"]["variables"] == {
        "storage_root": "abfss://lake@acme.dfs.core.windows.net/sparkmlops/dev/"
                        "${workspace.current_user.short_name}",
        "experiment": "/Users/${workspace.current_user.userName}/sparkmlops-penguins",
        "model_name": "dev_${workspace.current_user.short_name}_penguins_sex_classifier"}
    assert "resources" not in root["targets"]["dev"]
    job = _bundle_jobs(databricks_bundle(settings, out_dir=tmp_path))["sparkmlops_penguins_batch"]
    parameters = job["tasks"][0]["python_wheel_task"]["parameters"]
    assert parameters[parameters.index("penguins") + 1:-2] == [
        "--set", "storage.root=${var.storage_root}",
        "--set", "tracking.experiment=${var.experiment}",
        "--set", "dataset.model.name=${var.model_name}"]


# ---------------------------------------------------------------- fault 6: pinned libraries


def test_the_task_installs_the_locks_pins_before_the_wheel(tmp_path):
    files = render(_databricks(tmp_path), ["databricks"], out_dir=tmp_path)
    job = yaml.safe_load(files[tmp_path / "databricks/resources/batch-job.yml"])[
        "resources"]["jobs"]["sparkmlops_penguins_batch"]
    pins = [line for line in files[tmp_path / "databricks/requirements.txt"].splitlines()
            if not line.startswith("#")]
    lock = set(read_lock().splitlines())

    assert job["tasks"][0]["libraries"][0] == {"requirements": "../requirements.txt"}
    assert pins == pinned_requirements()
    assert set(pins) <= lock
    names = {pin.split("==")[0].lower() for pin in pins}
    assert {"mlflow", "great_expectations", "pydantic", "pyyaml", "pandas",
            "matplotlib"} <= names
    # the runtime's own Spark and Delta stay; test tooling of the lock never ships
    assert names.isdisjoint({"pyspark", "delta-spark", "py4j", "pytest", "chispa", "ruff"})


@pytest.mark.parametrize("deploying", [
    {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt"},
    {"python_version": "3.10", "python_full_version": "3.10.14"},
])
def test_the_pins_are_the_clusters_whatever_python_deploys(monkeypatch, deploying):
    # DBR 18 installs requirements.txt into Python 3.12 on Linux: mlflow's closure on
    # Windows has colorama, pywin32 and waitress (unpinned) instead of gunicorn, and on
    # Python 3.10 tomli and exceptiongroup
    on_linux_312 = pinned_requirements()
    here = databricks_module.default_environment()
    monkeypatch.setattr(databricks_module, "default_environment",
                        lambda: {**here, **deploying})

    assert pinned_requirements() == on_linux_312
    names = {pin.split("==")[0].lower() for pin in on_linux_312}
    assert "gunicorn" in names
    assert names.isdisjoint({"colorama", "pywin32", "waitress", "tomli", "exceptiongroup"})


def test_the_lock_is_read_from_the_checkout_when_the_package_has_none():
    assert read_lock() == (REPO / "deps/requirements.lock").read_text()


# ---------------------------------------------------------------- Azure Databricks


def test_the_bundle_renders_for_azure_with_abfss_storage_and_unity_catalog(tmp_path):
    settings = _databricks(
        tmp_path, "deploy.databricks.node_type_id=Standard_D4ds_v5", "storage.external=true",
        "storage.root=abfss://lake@acme.dfs.core.windows.net/sparkmlops",
        "dataset.source.path=abfss://landing@acme.dfs.core.windows.net/penguins")
    files = render(settings, ["databricks"], out_dir=tmp_path)
    text = "".join(t for p, t in files.items() if p.suffix == ".yml")

    for name in ("batch", "continuous", "maintain"):
        job = yaml.safe_load(files[tmp_path / f"databricks/resources/{name}-job.yml"])[
            "resources"]["jobs"][f"sparkmlops_penguins_{name}"]
        job = copy.deepcopy(job)
        assert job["job_clusters"][0]["new_cluster"]["node_type_id"] == "Standard_D4ds_v5"
        assert JobSettings.from_dict(job).as_dict() == job, name
    root = yaml.safe_load(files[tmp_path / "databricks/databricks.yml"])
    assert root["variables"]["storage_root"]["default"] == (
        "abfss://lake@acme.dfs.core.windows.net/sparkmlops")
    assert root["targets"]["dev"]["variables"]["storage_root"] == (
        "abfss://lake@acme.dfs.core.windows.net/sparkmlops/dev/"
        "${workspace.current_user.short_name}")
    # nothing of one cloud baked in besides the configured node type
    for aws_only in ("i3.", "aws_attributes", "s3://", "dbfs:"):
        assert aws_only not in text, aws_only
