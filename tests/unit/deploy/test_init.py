"""``sparkmlops init DIR``: a project of its own for a team that uses sparkmlops, in which
``sparkmlops deploy`` runs (its own tests pass: tests/e2e/test_new_project.py). No Spark,
no network."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
import yaml

from sparkmlops import __version__
from sparkmlops.cli import main
from sparkmlops.config import load_settings
from tests.conftest import REPO

LIB = str(Path(resources.files("sparkmlops")).parent)  # type: ignore[arg-type]


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    return err[0]


def test_init_writes_a_project_of_its_own_with_the_pinned_wheel_and_its_lock(tmp_path, capsys):
    project = tmp_path / "acme-ml"

    code = main(["init", str(project)])

    assert code == 0
    assert _files(project) == [
        ".github/workflows/sparkmlops-penguins-deploy-databricks.yml",
        ".github/workflows/sparkmlops-penguins-deploy-emr.yml",
        ".github/workflows/sparkmlops-penguins-tests.yml",
        ".gitignore", ".secrets.baseline", "README.md", "conf/databricks.yml",
        "conf/datasets/penguins.yml",
        "conf/emr.yml", "constraints.txt", "data/README.md",
        "data/landing/penguins/penguins_raw_PAL0708.csv",
        "data/landing/penguins/penguins_raw_PAL0809.csv",
        "data/landing/penguins/penguins_raw_PAL0910.csv",
        "requirements.txt", "tests/test_config.py", "tests/test_pipeline.py"]
    assert (project / "requirements.txt").read_text().splitlines()[-1] == (
        f"sparkmlops[local]=={__version__}")
    assert (project / "constraints.txt").read_text() == (
        REPO / "deps/requirements.lock").read_text()
    assert "sparkmlops init: project" in capsys.readouterr().out


def test_deploy_runs_in_the_new_project_from_its_cwd(tmp_path, monkeypatch, capsys):
    project = tmp_path / "acme-ml"
    assert main(["init", str(project)]) == 0
    monkeypatch.chdir(project)
    monkeypatch.delenv("SPARKMLOPS_CONF_DIR")  # ./conf of the cwd, as on a user's machine
    capsys.readouterr()

    code = main(["deploy", "--env", "emr", "--target", "emr", "--out", "build"])

    out = capsys.readouterr().out
    assert code == 0
    args = json.loads((project / "build/emr/add-steps.json").read_text())["Steps"][1][
        "HadoopJarStep"]["Args"]
    assert args[args.index("--conf-dir") + 1] == "s3://CHANGE-ME-bucket/acme-ml/artifacts/conf"
    # every placeholder init wrote, not only those under deploy:
    assert ("  fill before deploying (CHANGE-ME): project_dir, tracking.tracking_uri, "
            "deploy.wheel, deploy.secrets.MLFLOW_TRACKING_TOKEN.aws_secret_arn, "
            "deploy.emr.cluster_id") in out.splitlines()
    settings = load_settings("emr", "penguins", conf_dir=project / "conf")
    assert settings.resolve_path(settings.dataset.source.path) == (
        "s3a://CHANGE-ME-bucket/acme-ml/data/landing/penguins")
    assert settings.deploy.emr is not None and settings.deploy.emr.serverless is None


def test_init_with_another_dataset_one_platform_and_azure_devops(tmp_path):
    project = tmp_path / "churn-ml"

    code = main(["init", str(project), "--dataset", "churn", "--platform", "databricks",
                 "--ci", "azure-devops"])

    assert code == 0
    assert [f for f in _files(project) if not f.startswith("data/landing/")] == [
        ".gitignore", ".secrets.baseline", "README.md", "azure-pipelines.yml",
        "conf/databricks.yml",
        "conf/datasets/churn.yml", "constraints.txt", "data/README.md", "requirements.txt",
        "tests/test_config.py", "tests/test_pipeline.py"]
    settings = load_settings("local", "churn", conf_dir=project / "conf")
    assert settings.dataset.name == "churn"
    assert settings.resolve_path(settings.dataset.source.path) == str(
        project / "data/landing/churn")
    assert sorted(p.name for p in (project / "data/landing/churn").iterdir()) == [
        "penguins_raw_PAL0708.csv", "penguins_raw_PAL0809.csv", "penguins_raw_PAL0910.csv"]


def test_init_refuses_a_folder_that_holds_files(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")

    code = main(["init", str(tmp_path)])

    assert code == 2
    assert _error_line(capsys) == (
        f"sparkmlops init: ConfigError: {tmp_path} is not empty: init writes a new project "
        "into an empty or absent folder")
    assert _files(tmp_path) == ["notes.txt"]


def test_init_refuses_a_dataset_name_that_is_not_one(tmp_path, capsys):
    code = main(["init", str(tmp_path / "p"), "--dataset", "My Data"])

    assert code == 2
    assert _error_line(capsys) == (
        "sparkmlops init: ConfigError: --dataset: 'My Data' is not a dataset name "
        "(lower-case letters, digits and _, starting with a letter)")
    assert not (tmp_path / "p").exists()


def test_the_packaged_lock_is_the_lock_the_tests_pass_on():
    packaged = resources.files("sparkmlops").joinpath("requirements.lock").read_text()

    assert packaged == (REPO / "deps/requirements.lock").read_text(), (
        "deps/requirements.lock must be the link to lib/sparkmlops/requirements.lock")


def test_the_packaged_example_is_the_sample_dataset():
    template = resources.files("sparkmlops.init.template")

    assert template.joinpath("dataset.yml").read_text() == (
        REPO / "conf/datasets/penguins.yml").read_text()
    assert template.joinpath("penguins-README.md").read_text() == (
        REPO / "data/sample/penguins/README.md").read_text()
    landing = REPO / "data/sample/penguins/landing"
    assert sorted(p.name for p in landing.iterdir()) == sorted(
        f.name for f in template.iterdir() if f.name.endswith(".csv"))
    for csv in landing.iterdir():
        assert template.joinpath(csv.name).read_text() == csv.read_text()


def test_the_emr_job_script_is_the_cli_with_its_command(tmp_path):
    from sparkmlops.deploy.common import job_script

    text = job_script("pipeline")

    assert text.splitlines()[1:] == [
        "import sys", "", "from sparkmlops.cli import job_main", "",
        "sys.exit(job_main('pipeline')(None))"]
    script = tmp_path / "pipeline.py"
    script.write_text(text)
    result = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": LIB}, timeout=120)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: sparkmlops pipeline")


def test_a_job_script_only_for_a_job_command():
    from sparkmlops.deploy.common import job_script
    from sparkmlops.errors import ConfigError

    with pytest.raises(ConfigError, match="no job runs sparkmlops 'train'; job commands: "
                                          "maintain, pipeline"):
        job_script("train")


def test_the_deploy_workflows_own_sparkmlops_commands_run_in_the_new_project(
        tmp_path, monkeypatch, capsys):
    project = tmp_path / "acme-ml"
    assert main(["init", str(project), "--platform", "emr"]) == 0
    monkeypatch.chdir(project)
    monkeypatch.delenv("SPARKMLOPS_CONF_DIR")
    workflow = yaml.safe_load(
        (project / ".github/workflows/sparkmlops-penguins-deploy-emr.yml").read_text())
    conf_dir = "s3://CHANGE-ME-bucket/acme-ml/artifacts/conf/0123abc"
    steps = workflow["jobs"]["deploy"]["steps"]
    commands = [line for step in steps[-2:] for line in step["run"].splitlines()
                if line.startswith("sparkmlops deploy")]

    for command in commands:  # as bash expands them on a push, then a dispatch with batch
        line = command.replace("$CONF_DIR", conf_dir).replace("$JOB", "batch")
        assert main(shlex.split(line)[1:]) == 0, capsys.readouterr().err

    for folder in ("emr", "run/emr"):  # the deploy's files, the manual run's
        steps = json.loads((project / folder / "add-steps.json").read_text())["Steps"]
        # bootstrap.sh --check first: a cluster with stale dependencies runs nothing
        assert [s["Name"] for s in steps] == ["sparkmlops-penguins-check-dependencies",
                                              "sparkmlops-penguins-batch"]
        args = steps[1]["HadoopJarStep"]["Args"]
        assert args[args.index("--conf-dir") + 1] == conf_dir


def test_the_azure_devops_readme_names_the_connection_and_variables_the_pipeline_uses(
        tmp_path):
    # azure.py signs in to AWS with the Azure Resource Manager connection's OIDC token
    # and $AWS_ROLE_ARN; there is no AWS Toolkit service connection
    project = tmp_path / "churn-ml"
    assert main(["init", str(project), "--ci", "azure-devops"]) == 0

    readme = (project / "README.md").read_text()
    pipeline = (project / "azure-pipelines.yml").read_text()
    assert "AWS Toolkit one" not in readme
    assert ("Pipeline variables: `DATABRICKS_HOST` (Databricks), `AWS_ROLE_ARN`, `AWS_REGION` "
            "(EMR), optionally `PIP_INDEX_URL` / `PIP_EXTRA_INDEX_URL` (a private index)."
            ) in readme
    assert "`CHANGE-ME-azure-service-connection`" in readme
    assert "azureSubscription: CHANGE-ME-azure-service-connection" in pipeline
    assert '--role-arn "$AWS_ROLE_ARN"' in pipeline


def test_deploy_regenerates_the_azure_pipeline_from_the_filled_conf(tmp_path):
    # init wrote azure-pipelines.yml with CHANGE-ME paths and nothing rewrote it after
    # conf/emr.yml was filled; the project's test now checks it is deploy's output
    project = tmp_path / "acme-ml"
    assert main(["init", str(project), "--ci", "azure-devops"]) == 0
    emr = project / "conf/emr.yml"
    emr.write_text(emr.read_text().replace("CHANGE-ME-bucket", "acme-bucket"))

    def project_test() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests",
             "-k", "azure_pipeline"], cwd=project, capture_output=True, text=True,
            timeout=300, env={**{k: v for k, v in os.environ.items()
                                 if k != "SPARKMLOPS_CONF_DIR"}, "PYTHONPATH": LIB})

    stale = project_test()
    assert stale.returncode == 1
    assert ("AssertionError: run: sparkmlops deploy --env emr --dataset penguins --target "
            "azure-devops --out .") in stale.stdout
    assert main(["deploy", "--env", "emr", "--dataset", "penguins", "--conf-dir",
                 str(project / "conf"), "--target", "azure-devops", "--out", str(project)]) == 0
    pipeline = yaml.safe_load((project / "azure-pipelines.yml").read_text())
    assert [s["stage"] for s in pipeline["stages"]] == ["tests", "deploy_emr",
                                                        "deploy_databricks"]
    assert pipeline["stages"][1]["jobs"][0]["variables"] == {
        "CONF_DIR": "s3://acme-bucket/acme-ml/artifacts/conf/$(Build.SourceVersion)"}
    fresh = project_test()
    assert fresh.returncode == 0, fresh.stdout[-2000:]
    assert "1 passed" in fresh.stdout.splitlines()[-1]
