"""The packaged defaults, the project's conf dir (a path or a Hadoop URI) and the code identity."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import sparkmlops
from sparkmlops.cli import main
from sparkmlops.config import load_settings, packaged_spark_settings
from sparkmlops.config.confdir import join, parent
from sparkmlops.errors import ConfigError
from sparkmlops.preflight import load_checked_settings
from sparkmlops.tracking.provenance import TAG_INSTALL, TAG_VERSION, TAG_WHEEL_SHA256, code_identity

REPO = Path(__file__).resolve().parents[2]
PACKAGED = Path(sparkmlops.__file__).parent / "conf"


def _project(root: Path, **overlays: dict) -> Path:
    """``root/conf`` with the repo's penguins.yml and ``overlays`` as ``<name>.yml``."""
    conf = root / "conf"
    (conf / "datasets").mkdir(parents=True)
    (conf / "datasets" / "penguins.yml").write_text(
        (REPO / "conf/datasets/penguins.yml").read_text())
    for name, data in overlays.items():
        (conf / f"{name}.yml").write_text(yaml.safe_dump(data))
    return conf


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_the_repo_keeps_only_the_project_conf_and_the_package_the_defaults():
    assert sorted(p.name for p in PACKAGED.glob("*.yml")) == [
        "base.yml", "databricks.yml", "emr.yml", "local.yml"]
    assert sorted(str(p.relative_to(REPO / "conf")) for p in (REPO / "conf").rglob("*.yml")) \
        == ["datasets/flights.yml", "datasets/penguins.yml", "datasets/penguins_crowd.yml"]


def test_layers_merge_packaged_base_env_then_project_base_env_dataset_and_set(tmp_path):
    conf = _project(tmp_path, base={"spark": {"master": "local[1]"},
                                    "tracking": {"experiment": "from-project-base"}},
                    local={"tracking": {"experiment": "from-project-local"}})

    settings = load_settings("local", "penguins", conf_dir=conf,
                             overrides=["dataset.description=from --set"])

    assert settings.spark.log_level == "WARN"                          # packaged base
    assert settings.spark.conf["spark.sql.shuffle.partitions"] == "2"  # packaged local over it
    assert settings.spark.master == "local[1]"                 # project base over packaged local
    assert settings.tracking.experiment == "from-project-local"  # project local over its base
    assert settings.dataset.name == "penguins"                         # the dataset file
    assert settings.dataset.description == "from --set"                # --set over everything


def test_an_env_only_the_project_defines_overlays_the_packaged_base(tmp_path):
    conf = _project(tmp_path, cluster={"spark": {"master": None, "use_existing_session": True}})

    settings = load_settings("cluster", "penguins", conf_dir=conf)

    assert settings.env == "cluster"
    assert settings.spark.master is None
    assert settings.spark.use_existing_session is True
    assert settings.spark.app_name == "sparkmlops-penguins"  # from the packaged base


def test_an_env_in_neither_place_exits_2_naming_both(tmp_path, capsys):
    conf = _project(tmp_path)

    code = main(["ingest", "--env", "staging", "--conf-dir", str(conf)])

    assert code == 2
    assert _one_error_line(capsys) == (
        f"sparkmlops ingest: ConfigError: unknown env 'staging': no staging.yml in the "
        f"packaged defaults ({PACKAGED}) nor in the project conf dir ({conf})")


def test_no_conf_dir_anywhere_exits_2_naming_what_to_set(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SPARKMLOPS_CONF_DIR")
    monkeypatch.chdir(tmp_path)

    code = main(["ingest", "--env", "local"])

    assert code == 2
    assert _one_error_line(capsys) == (
        "sparkmlops ingest: ConfigError: no project conf dir: pass --conf-dir or set "
        f"SPARKMLOPS_CONF_DIR (there is no ./conf under {tmp_path})")


def test_conf_dir_from_cwd_then_environment_then_option(tmp_path, monkeypatch):
    by_cwd = _project(tmp_path / "cwd", local={"tracking": {"experiment": "cwd"}})
    by_env = _project(tmp_path / "env", local={"tracking": {"experiment": "env"}})
    by_option = _project(tmp_path / "option", local={"tracking": {"experiment": "option"}})
    monkeypatch.delenv("SPARKMLOPS_CONF_DIR")
    monkeypatch.chdir(by_cwd.parent)

    assert load_settings("local", "penguins").tracking.experiment == "cwd"
    monkeypatch.setenv("SPARKMLOPS_CONF_DIR", str(by_env))
    assert load_settings("local", "penguins").tracking.experiment == "env"
    assert load_settings("local", "penguins",
                         conf_dir=by_option).tracking.experiment == "option"


def test_relative_paths_resolve_against_the_conf_dirs_parent(tmp_path, monkeypatch):
    conf = _project(tmp_path / "proj")
    monkeypatch.chdir(REPO)  # not where the project is

    settings = load_settings("local", "penguins", conf_dir=conf)

    project = tmp_path / "proj"
    assert settings.project_dir == str(project)
    assert settings.state_dir == str(project / ".sparkmlops" / "local")
    assert settings.storage.root == f"{project}/.sparkmlops/local/lake"
    assert settings.resolve_path(settings.dataset.source.path) == \
        str(project / "data/sample/penguins/landing")


def test_an_explicit_project_dir_resolves_against_the_conf_dirs_parent(tmp_path):
    conf = _project(tmp_path / "proj", base={"project_dir": "../data-root"})

    settings = load_settings("local", "penguins", conf_dir=conf)

    assert settings.project_dir == str(tmp_path / "data-root")
    assert settings.resolve_path("x/y.csv") == str(tmp_path / "data-root/x/y.csv")


@pytest.mark.parametrize("env", ["../local", "a/b", ".hidden"])
def test_an_env_name_is_never_a_path(env):
    with pytest.raises(ConfigError, match=r"--env .*: expected letters, digits"):
        load_settings(env, "penguins")


def test_loading_from_a_local_conf_dir_imports_no_spark_feature_or_estimator_code(tmp_path):
    conf = _project(tmp_path)
    script = ("from sparkmlops.config import load_settings\n"
              f"load_settings('local', 'penguins', conf_dir={str(conf)!r})\n"
              "import sys\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyspark', 'py4j')\n"
              "             or m.startswith(('sparkmlops.features', 'sparkmlops.train',\n"
              "                              'sparkmlops.spark'))))\n"
              "from pyspark import SparkContext\n"
              "print(SparkContext._gateway is None, SparkContext._active_spark_context is None)")

    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=True)

    assert proc.stdout.splitlines() == ["[]", "True True"]


@pytest.mark.parametrize(("location", "expected_parent", "joined"), [
    ("s3a://bucket/proj/conf", "s3a://bucket/proj", "s3a://bucket/proj/data/x.csv"),
    ("dbfs:/proj/conf", "dbfs:/proj", "dbfs:/proj/data/x.csv"),
    ("file:///tmp/proj/conf", "file:///tmp/proj", "file:///tmp/proj/data/x.csv"),
    ("abfss://lake@acct.dfs.core.windows.net/conf", "abfss://lake@acct.dfs.core.windows.net/",
     "abfss://lake@acct.dfs.core.windows.net/data/x.csv"),
])
def test_uri_parent_and_join(location, expected_parent, joined):
    assert parent(location) == expected_parent
    assert join(parent(location), "./data/../data/x.csv") == joined


def test_a_file_uri_conf_dir_is_read_through_hadoop(spark, tmp_path):
    conf = _project(tmp_path / "proj", local={"tracking": {"experiment": "read-by-hadoop"}})
    uri = f"file://{conf}"

    # no session given: the one the env would use (here the suite's, already running)
    settings = load_checked_settings("local", "penguins", conf_dir=uri,
                                     overrides=[f"state_dir={tmp_path / 'state'}"])

    assert settings.tracking.experiment == "read-by-hadoop"
    assert settings.project_dir == f"file://{tmp_path}/proj"
    assert settings.resolve_path(settings.dataset.source.path) == \
        f"file://{tmp_path}/proj/data/sample/penguins/landing"
    with pytest.raises(ConfigError) as missing:
        load_settings("local", "nosuch", conf_dir=uri, spark=spark)
    assert str(missing.value) == f"config file not found: {uri}/datasets/nosuch.yml"
    with pytest.raises(ConfigError) as absent:
        load_settings("local", "penguins", conf_dir=f"file://{tmp_path}/elsewhere/conf",
                      spark=lambda: spark)
    assert str(absent.value) == f"conf dir not found: file://{tmp_path}/elsewhere/conf"


def test_another_hadoop_scheme_is_read_through_its_filesystem(spark, tmp_path):
    """viewfs:// (Hadoop's mount-table FileSystem, offline) stands in for s3a:// or dbfs:/."""
    _project(tmp_path / "proj", local={"tracking": {"experiment": "read-by-viewfs"}})
    table = f"t{abs(hash(str(tmp_path)))}"  # a fresh authority: a fresh FileSystem instance
    spark.sparkContext._jsc.hadoopConfiguration().set(
        f"fs.viewfs.mounttable.{table}.link./proj", f"file://{tmp_path}/proj")

    settings = load_settings("local", "penguins", conf_dir=f"viewfs://{table}/proj/conf",
                             spark=spark, overrides=[f"state_dir={tmp_path / 'state'}"])

    assert settings.tracking.experiment == "read-by-viewfs"
    assert settings.project_dir == f"viewfs://{table}/proj"
    assert settings.resolve_path(settings.dataset.source.path) == \
        f"viewfs://{table}/proj/data/sample/penguins/landing"


def test_a_uri_conf_dir_needs_a_session_to_be_read(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_settings("local", "penguins", conf_dir=f"file://{tmp_path}/conf")

    assert str(caught.value) == (
        f"conf dir file://{tmp_path}/conf: a URI is read through Spark's Hadoop FileSystem, "
        "and no Spark session was given")


def test_a_uri_conf_dir_session_starts_from_the_packaged_env_settings():
    settings = packaged_spark_settings("local", "penguins")

    assert (settings.master, settings.app_name) == ("local[2]", "sparkmlops-penguins")
    assert settings.conf["spark.sql.shuffle.partitions"] == "2"


def test_an_unreadable_uri_is_one_config_error_line(spark):
    with pytest.raises(ConfigError) as caught:
        load_checked_settings("local", "penguins", conf_dir="nosuchfs://bucket/conf")

    assert str(caught.value).startswith(
        "cannot read nosuchfs://bucket/conf: org.apache.hadoop.fs.UnsupportedFileSystemException"
        ": No FileSystem for scheme \"nosuchfs\"")
    assert "\n" not in str(caught.value)


def test_runs_of_a_source_tree_record_the_version_and_editable(make_settings):
    from mlflow.tracking import MlflowClient

    from sparkmlops.tracking.runs import step_run

    with step_run(make_settings(), "ingest", "b1") as tracker:
        pass

    tags = MlflowClient().get_run(tracker.run_id).data.tags
    assert tags[TAG_VERSION] == sparkmlops.__version__
    assert tags[TAG_WHEEL_SHA256] == "editable"
    assert tags[TAG_INSTALL] in (f"source tree {REPO / 'lib'}",
                                 f"editable install of file://{REPO}")
    assert code_identity().tags() == {k: tags[k] for k in (TAG_VERSION, TAG_WHEEL_SHA256,
                                                           TAG_INSTALL)}
