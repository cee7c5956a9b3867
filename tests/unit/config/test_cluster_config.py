"""Catalog mode, Unity Catalog model names and cluster envs, checked at config load.

No Spark and no MLflow here: every check is a pure config check, and every failure
is one ``ConfigError`` line (exit 2 through the CLI) naming the key to set.
"""

from __future__ import annotations

import re

import pytest

from sparkmlops.cli import main
from sparkmlops.config import IDENTIFIER, load_settings
from sparkmlops.errors import ConfigError
from sparkmlops.tables import dataset_tables

CATALOG = ("storage.catalog=main", "storage.schema=ml")
EMR_BUCKET = "storage.root=s3a://my-bucket/sparkmlops/lake"
SERVER = "http://127.0.0.1:5999"
# where a problem was found, before its key path
CONF_PREFIX = r"^\S+\.yml over the packaged defaults: "

PLACEHOLDER_ROOT = (
    "storage.root: Value error, s3a://CHANGE-ME/sparkmlops/lake is a placeholder; set "
    "storage.root to a location this job may write (e.g. --set "
    "storage.root=s3a://<bucket>/<prefix>)")
EMR_TRACKING = (
    "tracking: Value error, tracking.tracking_uri: sqlite:////mnt/tmp/sparkmlops/mlflow.db "
    "would keep MLflow runs and the model registry on the driver, lost with the cluster "
    "(tracking.require_server: true); set MLFLOW_TRACKING_URI to an http(s):// MLflow server "
    "(or 'databricks' on Databricks)")
SCHEMA_MISSING = (
    "storage: Value error, storage.schema: required with storage.catalog (catalog mode names "
    "every table <catalog>.<schema>.<layer>_<dataset>); set both, or neither for tables by path")
CATALOG_MISSING = (
    "storage: Value error, storage.catalog: required with storage.schema (catalog mode names "
    "every table <catalog>.<schema>.<layer>_<dataset>); set both, or neither for tables by path")
EXTERNAL_ALONE = (
    "storage: Value error, storage.external: only with storage.catalog and storage.schema "
    "(tables by path are always at storage.root)")


def uc_name_error(name: str) -> str:
    return (f"Value error, dataset.model.name: {name!r} is not a Unity Catalog model name "
            "(tracking.registry_uri: databricks-uc needs catalog.schema.model); set "
            "dataset.model.name to catalog.schema.model, or storage.catalog and storage.schema "
            "to register it there")


@pytest.fixture(autouse=True)
def no_tracking_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


def problems(excinfo: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    """The problems of one ``invalid config:`` line, without the conf file part."""
    text = str(excinfo.value)
    assert "\n" not in text
    assert text.startswith("invalid config: ")
    # each problem is "<conf dir>/(base|<env>).yml over the packaged defaults: <key path>: ..."
    return [re.sub(CONF_PREFIX, "", p) for p in text.removeprefix("invalid config: ")
            .split("; /")]


# ---------------------------------------------------------------- tables by name


def test_path_mode_stays_the_default_and_names_no_catalog_table(tmp_path):
    settings = load_settings("local", "penguins", overrides=[f"state_dir={tmp_path}"])

    gold = dataset_tables(settings).gold
    assert (gold.fqn, gold.path, gold.table_name) == (
        "gold.penguins_features", f"{tmp_path}/lake/gold/penguins_features", None)
    assert gold.address == gold.path


def test_catalog_mode_names_every_table_catalog_schema_layer_dataset(tmp_path):
    settings = load_settings("local", "penguins",
                             overrides=[f"state_dir={tmp_path}", *CATALOG])

    refs = dataset_tables(settings)

    assert [(r.fqn, r.table_name, r.path) for r in refs] == [
        ("bronze.penguins", "main.ml.bronze_penguins", None),
        ("quarantine.penguins", "main.ml.quarantine_penguins", None),
        ("manifest.penguins", "main.ml.manifest_penguins", None),
        ("ingest_log.penguins", "main.ml.ingest_log_penguins", None),
        ("silver.penguins", "main.ml.silver_penguins", None),
        ("validation_results.penguins", "main.ml.validation_results_penguins", None),
        ("quality_metrics.penguins", "main.ml.quality_metrics_penguins", None),
        ("gold.penguins_features", "main.ml.gold_penguins_features", None),
        ("predictions.penguins", "main.ml.predictions_penguins", None),
        ("monitoring.penguins", "main.ml.monitoring_penguins", None),
    ]
    assert all(re.fullmatch(IDENTIFIER, r.table_name.split(".")[2]) for r in refs)
    assert refs.bronze.address == "main.ml.bronze_penguins"


def test_a_layer_named_at_run_time_is_the_attribute_and_an_unknown_one_is_refused(tmp_path):
    tables = dataset_tables(load_settings("local", "penguins", overrides=[f"state_dir={tmp_path}"]))

    assert tables.layer("gold") == tables.gold
    assert [ref.layer for ref in tables] == ["bronze", "quarantine", "manifest", "ingest_log",
                                             "silver", "validation_results",
                                             "quality_metrics", "gold", "predictions",
                                             "monitoring"]
    with pytest.raises(ConfigError) as caught:
        tables.layer("platinum")
    assert str(caught.value) == (
        "unknown table layer 'platinum'; known: bronze, quarantine, manifest, ingest_log, "
        "silver, validation_results, quality_metrics, gold, predictions, monitoring")


def test_external_catalog_tables_keep_their_location_under_the_root(tmp_path):
    settings = load_settings("local", "penguins", overrides=[
        f"state_dir={tmp_path}", *CATALOG, "storage.external=true"])

    bronze = dataset_tables(settings).bronze

    assert (bronze.table_name, bronze.path) == ("main.ml.bronze_penguins",
                                                f"{tmp_path}/lake/bronze/penguins")


@pytest.mark.parametrize(("overrides", "expected"), [
    (["storage.catalog=main"], SCHEMA_MISSING),
    (["storage.schema=ml"], CATALOG_MISSING),
    (["storage.external=true"], EXTERNAL_ALONE),
    (["storage.catalog=main", "storage.schema=my-schema"],
     "storage.schema: String should match pattern '^[A-Za-z_][A-Za-z0-9_]*$'"),
])
def test_catalog_settings_are_checked_at_load(tmp_path, overrides, expected):
    with pytest.raises(ConfigError) as excinfo:
        load_settings("local", "penguins", overrides=[f"state_dir={tmp_path}", *overrides])

    assert problems(excinfo) == [expected]


# ---------------------------------------------------------------- Unity Catalog model names


def test_databricks_registers_the_model_beside_its_tables():
    settings = load_settings("databricks", "penguins")

    assert (settings.storage.catalog, settings.storage.schema_) == ("main", "sparkmlops")
    assert settings.tracking.unity_catalog_registry
    assert settings.dataset.model.name == "main.sparkmlops.penguins_sex_classifier"
    assert dataset_tables(settings).bronze.table_name == "main.sparkmlops.bronze_penguins"


def test_a_three_part_model_name_is_kept_as_given():
    settings = load_settings("databricks", "penguins",
                             overrides=["dataset.model.name=models.prod.penguins"])

    assert settings.dataset.model.name == "models.prod.penguins"


@pytest.mark.parametrize(("overrides", "name"), [
    # Unity Catalog registry, tables by path: nowhere to derive the name from
    (["tracking.registry_uri=databricks-uc"], "penguins_sex_classifier"),
    # MLflow 3 registers in Unity Catalog by default when tracking is on Databricks
    (["tracking.tracking_uri=databricks"], "penguins_sex_classifier"),
    (["tracking.registry_uri=databricks-uc", *CATALOG, "dataset.model.name=ml.penguins"],
     "ml.penguins"),
    (["tracking.registry_uri=databricks-uc", "dataset.model.name=a.b-c.d"], "a.b-c.d"),
])
def test_unity_catalog_needs_a_three_part_model_name(tmp_path, overrides, name):
    with pytest.raises(ConfigError) as excinfo:
        load_settings("local", "penguins", overrides=[f"state_dir={tmp_path}", *overrides])

    assert problems(excinfo) == [uc_name_error(name)]


def test_mlflow_registry_uri_from_the_environment_is_checked_like_the_config(
        tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "databricks-uc")

    with pytest.raises(ConfigError) as excinfo:
        load_settings("local", "penguins", overrides=[f"state_dir={tmp_path}"])
    assert problems(excinfo) == [uc_name_error("penguins_sex_classifier")]

    settings = load_settings("local", "penguins", overrides=[f"state_dir={tmp_path}", *CATALOG])
    assert settings.tracking.registry_uri == "databricks-uc"
    assert settings.dataset.model.name == "main.ml.penguins_sex_classifier"


def test_the_workspace_registry_keeps_a_one_part_name(tmp_path):
    settings = load_settings("local", "penguins", overrides=[
        f"state_dir={tmp_path}", "tracking.tracking_uri=databricks",
        "tracking.registry_uri=databricks"])

    assert settings.dataset.model.name == "penguins_sex_classifier"


# ---------------------------------------------------------------- no state on the driver


def test_emr_needs_a_bucket_and_a_tracking_server():
    with pytest.raises(ConfigError) as excinfo:
        load_settings("emr", "penguins")

    assert problems(excinfo) == [PLACEHOLDER_ROOT, EMR_TRACKING]


def test_emr_with_a_bucket_and_mlflow_tracking_uri_loads(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", SERVER)

    settings = load_settings("emr", "penguins", overrides=[EMR_BUCKET])

    assert settings.tracking.tracking_uri == SERVER
    assert settings.tracking.require_server is True
    # the server decides where artifacts go, never the driver's /mnt/tmp
    assert settings.tracking.artifact_location is None
    assert settings.storage.root == "s3a://my-bucket/sparkmlops/lake"


def test_in_a_project_in_the_lake_relative_paths_resolve_there_and_absolute_ones_stay(
        monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", SERVER)

    settings = load_settings("emr", "penguins", overrides=[
        EMR_BUCKET, "project_dir=s3a://my-bucket/acme-ml", "state_dir=/mnt/tmp/sparkmlops"])

    assert settings.resolve_path("data/landing/penguins") == \
        "s3a://my-bucket/acme-ml/data/landing/penguins"
    # the driver's disk, not s3a://my-bucket/mnt/tmp/... (Great Expectations refused that)
    assert settings.resolve_path("/mnt/tmp/sparkmlops/docs") == "/mnt/tmp/sparkmlops/docs"


def test_a_cluster_env_rejects_a_local_artifact_location(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", SERVER)

    with pytest.raises(ConfigError) as excinfo:
        load_settings("emr", "penguins", overrides=[
            EMR_BUCKET, "tracking.artifact_location=/mnt/tmp/mlartifacts"])

    assert problems(excinfo) == [
        "tracking: Value error, tracking.artifact_location: /mnt/tmp/mlartifacts is on the "
        "driver's disk (tracking.require_server: true); set it to null (the server's artifact "
        "store) or an s3://, dbfs:/, abfss:// ... location"]


def test_databricks_tracks_in_the_workspace():
    settings = load_settings("databricks", "penguins")

    assert (settings.tracking.tracking_uri, settings.tracking.registry_uri) == (
        "databricks", "databricks-uc")
    assert settings.tracking.require_server is True


def test_a_cluster_env_cannot_be_pointed_back_at_sqlite(tmp_path):
    with pytest.raises(ConfigError) as excinfo:
        load_settings("databricks", "penguins",
                      overrides=[f"tracking.tracking_uri=sqlite:///{tmp_path}/mlflow.db"])

    assert problems(excinfo)[0].startswith(
        f"tracking: Value error, tracking.tracking_uri: sqlite:///{tmp_path}/mlflow.db would "
        "keep MLflow runs and the model registry on the driver")


def test_local_env_keeps_sqlite_tracking(tmp_path):
    settings = load_settings("local", "penguins", overrides=[f"state_dir={tmp_path}"])

    assert settings.tracking.tracking_uri == f"sqlite:///{tmp_path}/mlflow.db"
    assert settings.tracking.require_server is False


# ---------------------------------------------------------------- through the CLI: exit 2


@pytest.mark.parametrize(("argv", "expected"), [
    (["--env", "emr", "--set", EMR_BUCKET], [EMR_TRACKING]),
    (["--env", "emr", "--set", "storage.root=s3a://CHANGE-ME/sparkmlops/lake"],
     [PLACEHOLDER_ROOT, EMR_TRACKING]),
    (["--env", "local", "--set", "storage.catalog=main"], [SCHEMA_MISSING]),
    (["--env", "local", "--set", "tracking.registry_uri=databricks-uc"],
     [uc_name_error("penguins_sex_classifier")]),
])
def test_config_errors_exit_2_with_one_line(capsys, argv, expected):
    code = main(["pipeline", "--batch-id", "b1", *argv])

    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("sparkmlops ")]
    assert code == 2
    assert captured.out == ""
    assert len(lines) == 1
    prefix = "sparkmlops pipeline: ConfigError: invalid config: "
    assert lines[0].startswith(prefix)
    assert [re.sub(CONF_PREFIX, "", p)
            for p in lines[0].removeprefix(prefix).split("; /")] == expected


def test_emr_placeholder_error_names_the_key_to_set(capsys, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", SERVER)

    code = main(["ingest", "--env", "emr", "--batch-id", "b1"])

    err = capsys.readouterr().err
    assert code == 2
    assert err.endswith(f"(base|emr).yml over the packaged defaults: {PLACEHOLDER_ROOT}\n")
