"""The files of a new project that uses sparkmlops: conf, example data, pins, tests, CI."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from sparkmlops import __version__
from sparkmlops.config import Settings, load_settings
from sparkmlops.deploy.azure import (
    AZURE_CONNECTION,
    azure_pipeline_texts,
    azure_platform_settings,
)
from sparkmlops.deploy.ci import SECRETS_BASELINE
from sparkmlops.deploy.common import PLACEHOLDER
from sparkmlops.deploy.render import render, write_files
from sparkmlops.errors import ConfigError

log = logging.getLogger(__name__)

CI_CHOICES = ("github", "azure-devops")
PLATFORM_CHOICES = ("emr", "databricks", "both")
TEMPLATE = "sparkmlops.init.template"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def packaged_lock() -> str:
    """The lock the platform's tests passed on (deps/requirements.lock, in the wheel)."""
    return resources.files("sparkmlops").joinpath("requirements.lock").read_text()


def scaffold_project(directory: Path, *, dataset: str = "penguins", ci: str = "github",
                     platforms: list[str] | None = None) -> list[Path]:
    """Write a new project into ``directory`` (absent or empty); return the files written.

    Raises:
        ConfigError: ``directory`` holds files, or a name is not one sparkmlops accepts.
    """
    platforms = platforms or ["emr", "databricks"]
    if ci not in CI_CHOICES:
        raise ConfigError(f"--ci: {ci!r} is not one of {', '.join(CI_CHOICES)}")
    if not _NAME.match(dataset):
        raise ConfigError(f"--dataset: {dataset!r} is not a dataset name (lower-case letters, "
                          "digits and _, starting with a letter)")
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ConfigError(f"{directory} is not empty: init writes a new project into an "
                          "empty or absent folder")
    project = _project_name(directory)
    files = {Path("conf/datasets") / f"{dataset}.yml": _dataset_yml(dataset),
             Path("data/README.md"): _template("penguins-README.md"),
             Path("requirements.txt"): _requirements(),
             Path("constraints.txt"): packaged_lock(),
             Path("tests/test_config.py"): TEST_CONFIG,
             Path("tests/test_pipeline.py"): TEST_PIPELINE,
             Path(".gitignore"): GITIGNORE,
             Path(SECRETS_BASELINE): secrets_baseline(),
             Path("README.md"): _readme(project, dataset, ci, platforms)}
    for csv in sorted(resources.files(TEMPLATE).iterdir(), key=lambda f: f.name):
        if csv.name.endswith(".csv"):
            files[Path("data/landing") / dataset / csv.name] = csv.read_text()
    if "emr" in platforms:
        files[Path("conf/emr.yml")] = EMR_OVERLAY.format(project=project, p=PLACEHOLDER)
    if "databricks" in platforms:
        files[Path("conf/databricks.yml")] = DATABRICKS_OVERLAY.format(project=project,
                                                                       p=PLACEHOLDER)
    written = write_files({directory / path: text for path, text in files.items()})
    settings = {platform: load_settings(platform, dataset, conf_dir=directory / "conf")
                for platform in platforms}
    written += _ci_files(directory, ci, settings)
    log.info("scaffolded %s (%d files)", directory, len(written))
    return written


def _ci_files(directory: Path, ci: str, settings: dict[str, Settings]) -> list[Path]:
    if ci == "github":
        # what `sparkmlops deploy --env <platform> --target github` writes, so the
        # project's tests can check that the workflows are regenerated after a change
        rendered: dict[Path, str] = {}
        for env_settings in settings.values():
            rendered.update(render(env_settings, ["github"], out_dir=directory))
        return write_files(rendered)
    # what `sparkmlops deploy --target azure-devops` writes from the same conf/, so the
    # project's tests can check that the pipeline is regenerated after a change
    first = next(iter(settings.values()))
    return write_files({directory / name: text for name, text in azure_pipeline_texts(
        azure_platform_settings(first)).items()})


def secrets_baseline(now: datetime | None = None) -> str:
    """The project's detect-secrets baseline (the CI's secret scan compares with it): the
    format, plugins and filters detect-secrets 1.5.0 (the lock's) writes, and no finding,
    because none of the files ``init`` writes holds one. One filter beyond the defaults:
    a line ``aws_secret_arn: arn:aws:secretsmanager:...`` names a secret, it is not one
    (conf/emr.yml's ``deploy.secrets``); a token pasted there instead is still reported.
    Written from the template rather than by running detect-secrets, which the project
    may not have installed yet."""
    baseline = json.loads(_template("secrets.baseline.json"))
    baseline["generated_at"] = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps(baseline, indent=2) + "\n"


def _project_name(directory: Path) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", directory.resolve().name.lower()).strip("-")
    return name or "ml-project"


def _template(name: str) -> str:
    return resources.files(TEMPLATE).joinpath(name).read_text()


def _dataset_yml(dataset: str) -> str:
    text = _template("dataset.yml")
    text = text.replace(" See data/sample/penguins/README.md.", " See data/README.md.")
    text = text.replace("path: data/sample/penguins/landing ",
                        f"path: data/landing/{dataset} ")
    if dataset != "penguins":
        text = text.replace("name: penguins\n", f"name: {dataset}\n")
        text = text.replace("name: penguins_sex_classifier", f"name: {dataset}_sex_classifier")
    return text


def _requirements() -> str:
    return ("# sparkmlops, pinned: upgrade by changing the version here and replacing\n"
            "# constraints.txt with the one of that version (`sparkmlops init` in a new folder)\n"
            f"sparkmlops[local]=={__version__}\n")


def _readme(project: str, dataset: str, ci: str, platforms: list[str]) -> str:
    ci_text = ("GitHub Actions: `.github/workflows/`. Repository variables: "
               "`AWS_ROLE_ARN`, `AWS_REGION` (EMR, OIDC role), `DATABRICKS_HOST`, "
               "`DATABRICKS_CLIENT_ID` (Databricks, a service principal with a federation "
               "policy for this repository), optionally `PIP_INDEX_URL` / "
               "`PIP_EXTRA_INDEX_URL` (a private index)."
               if ci == "github" else
               "Azure Pipelines: `azure-pipelines.yml`. One Azure Resource Manager service "
               "connection with workload identity federation, named by "
               "`deploy.github.azure_service_connection` in `conf/base.yml` (until set, "
               f"`{AZURE_CONNECTION}`): the Databricks CLI signs in as its service "
               "principal, and the EMR stage assumes an AWS role with the connection's OIDC "
               "token (the role trusts an IAM OIDC provider for "
               "`https://vstoken.dev.azure.com/<organization id>`, audience "
               "`api://AzureADTokenExchange`); no AWS keys or AWS Toolkit connection. "
               "Pipeline variables: `DATABRICKS_HOST` (Databricks), `AWS_ROLE_ARN`, "
               "`AWS_REGION` (EMR), optionally `PIP_INDEX_URL` / `PIP_EXTRA_INDEX_URL` (a "
               "private index).")
    steps = [
        "python -m venv .venv && . .venv/bin/activate",
        "pip install -r requirements.txt -c constraints.txt",
        "python -m pytest tests                      # what a pull request runs",
        f"sparkmlops pipeline --env local --dataset {dataset}   # the example here (Java 17)",
    ]
    steps += [f"sparkmlops deploy --env {p} --dataset {dataset} --target {p} --out build"
              f"   # check the {p} files" for p in platforms]
    if ci == "github":
        steps += [f"sparkmlops deploy --env {p} --dataset {dataset} --target github --out ."
                  f"   # after changing conf/{p}.yml" for p in platforms]
    else:
        steps.append(f"sparkmlops deploy --env {platforms[0]} --dataset {dataset} --target "
                     "azure-devops --out .   # after changing conf/")
    return "\n".join([
        f"# {project}", "",
        f"A batch ML project on [sparkmlops](https://pypi.org/project/sparkmlops/) "
        f"{__version__}, written by `sparkmlops init`.", "",
        "- `conf/datasets/<name>.yml`: a dataset: source, schema, checks, features, model.",
        "- `conf/<env>.yml`: what differs per platform (" + ", ".join(platforms) + "), over "
        "the defaults in the wheel. Replace every `CHANGE-ME` (`sparkmlops deploy` lists "
        "those left).",
        f"- `data/landing/{dataset}/`: example landing files (the Palmer penguins sample).",
        "- `requirements.txt` pins sparkmlops; `constraints.txt` is the lock its tests passed "
        "on. Change them together.",
        "- `tests/test_config.py`: every env loads with every dataset, and `sparkmlops deploy` "
        "writes each platform's files.",
        "- `tests/test_pipeline.py`: the whole pipeline runs locally on each dataset's "
        "landing files (its checks, features and model gates; Java 17).",
        "- `.secrets.baseline`: the secret scan's audited findings (none yet). The CI's "
        "`security` job runs bandit on the project's Python code, detect-secrets against "
        "this baseline and pip-audit on `constraints.txt`, on pull requests and before "
        "every deploy. A false positive: `detect-secrets scan --baseline .secrets.baseline "
        "&& detect-secrets audit .secrets.baseline`, then commit the baseline.", "",
        "## Commands, in order", "", "```sh", *steps, "```", "",
        "## CI/CD", "", ci_text, "",
        "A push to the main branch deploys: it uploads the wheel, the job scripts, the "
        "constraints and the conf dir (EMR: a folder per commit) and updates job "
        "definitions and schedules. It runs no job: start the deploy by hand with "
        "`job` = batch, continuous or maintain to run one. To roll back, re-run the deploy "
        "of an older commit.", "",
        "Secrets go by reference, never by value: `deploy.secrets` in `conf/<env>.yml` "
        "(a Secrets Manager ARN on EMR, a secret scope/key on Databricks).", ""])


EMR_OVERLAY = """\
# EMR: over the wheel's own emr.yml. Fill every {p}; `sparkmlops deploy --target emr`
# lists the ones left.
# The project's root on S3: relative paths (dataset source.path, storage.root) resolve under
# it, so the landing files go to <project_dir>/data/landing/<dataset>/.
project_dir: s3a://{p}-bucket/{project}
storage:
  root: lake
tracking:
  # runs and models outlive the cluster: an MLflow server every job reaches
  tracking_uri: https://{p}-mlflow.example.com
deploy:
  # a released wheel of a version never changes, so its path is stable; the conf dir goes
  # to <wheel folder>/conf/<commit> on every deploy (the jobs name it with --conf-dir)
  wheel: s3://{p}-bucket/{project}/artifacts/sparkmlops-{{version}}-py3-none-any.whl
  secrets:
    # read by the job at start from Secrets Manager (the instance profile may read it)
    MLFLOW_TRACKING_TOKEN:
      aws_secret_arn: arn:aws:secretsmanager:eu-west-1:000000000000:secret:{p}-mlflow-token
  emr:
    cluster_id: j-{p}
    steps: [batch]
    serverless: null        # EMR Serverless: set application_id, execution_role_arn
"""

DATABRICKS_OVERLAY = """\
# Databricks: over the wheel's own databricks.yml. Fill every {p}; `sparkmlops deploy
# --target databricks` lists the ones left.
# The project's root in a Unity Catalog volume: the landing files go to
# <project_dir>/data/landing/<dataset>/.
project_dir: /Volumes/{p}/{project}/files
storage:
  catalog: main             # your catalog and schema (it must exist)
  schema: sparkmlops
deploy:
  wheel: /Volumes/{p}/{project}/artifacts/sparkmlops-{{version}}-py3-none-any.whl
  # secrets by reference, e.g. a token for an MLflow server outside the workspace:
  # secrets:
  #   MLFLOW_TRACKING_TOKEN: {{databricks: <scope>/<key>}}
  databricks:
    spark_version: 18.0.x-cpu-ml-scala2.13
    node_type_id: i3.xlarge                 # Standard_D4ds_v5 on Azure
    num_workers: 2
    run_as_service_principal: {p}           # the application id prod jobs run as
"""

GITIGNORE = """\
.venv/
__pycache__/
.pytest_cache/
dist/
build/
run/
.sparkmlops/
lake/
mlruns/
spark-warehouse/
metastore_db/
derby.log
pip-audit.json
pip-audit.log
# generated in CI by `sparkmlops deploy`
/emr/
/databricks/
"""

TEST_PIPELINE = '''\
"""The project's pull-request check of its data and features: the whole pipeline (ingest,
validate, features, train, promote, predict) runs locally on each dataset's landing files
in data/landing/, as the local env reads them. A feature expression that fails on a row,
a check the sample no longer passes, or a model below its minimums fails the test with the
job's own one-line error. Needs Java 17 (the CI workflow sets it up)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparkmlops.cli import main

CONF = Path(__file__).resolve().parents[1] / "conf"
DATASETS = sorted(p.stem for p in (CONF / "datasets").glob("*.yml"))


@pytest.mark.parametrize("dataset", DATASETS)
def test_the_pipeline_runs_on_the_landing_files(dataset, tmp_path, monkeypatch):
    # tables, runs and models of this test in a temp folder, not in the project
    monkeypatch.setenv("SPARKMLOPS_STATE_DIR", str(tmp_path / "state"))

    code = main(["pipeline", "--env", "local", "--dataset", dataset, "--conf-dir", str(CONF)])

    assert code == 0
'''

TEST_CONFIG = '''\
"""The project's pull-request check: every env loads with every dataset, `sparkmlops
deploy` writes each platform's files, and the CI workflows are the generated ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparkmlops.cli import main
from sparkmlops.config import load_settings

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
PLATFORMS = sorted(p.stem for p in CONF.glob("*.yml") if p.stem in ("emr", "databricks"))
ENVS = sorted({"local", *(p.stem for p in CONF.glob("*.yml") if p.stem != "base")})
DATASETS = sorted(p.stem for p in (CONF / "datasets").glob("*.yml"))


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("env", ENVS)
def test_every_env_loads(env, dataset):
    settings = load_settings(env, dataset, conf_dir=CONF)

    assert settings.dataset.name == dataset


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("platform", PLATFORMS)
def test_deploy_writes_the_platform_files(platform, dataset, tmp_path):
    code = main(["deploy", "--env", platform, "--dataset", dataset, "--conf-dir", str(CONF),
                 "--target", platform, "--out", str(tmp_path)])

    assert code == 0
    assert (tmp_path / platform).is_dir()


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("platform", PLATFORMS)
def test_the_deploy_workflow_is_regenerated(platform, dataset, tmp_path):
    name = f".github/workflows/sparkmlops-{dataset}-deploy-{platform}.yml"
    if not (ROOT / name).exists():
        pytest.skip("no GitHub workflow for this platform")
    code = main(["deploy", "--env", platform, "--dataset", dataset, "--conf-dir", str(CONF),
                 "--target", f"github,{platform}", "--out", str(tmp_path)])

    assert code == 0
    assert (tmp_path / name).read_text() == (ROOT / name).read_text(), (
        f"run: sparkmlops deploy --env {platform} --dataset {dataset} --target github --out .")


def test_the_azure_pipeline_is_regenerated(tmp_path):
    pipeline = ROOT / "azure-pipelines.yml"
    if not pipeline.exists():
        pytest.skip("no Azure pipeline")
    # its first line names the command that wrote it: `sparkmlops deploy ... --out .`
    command = pipeline.read_text().split("`")[1].split()
    assert command[:2] == ["sparkmlops", "deploy"], "azure-pipelines.yml was edited by hand"
    code = main([*command[1:-1], str(tmp_path), "--conf-dir", str(CONF)])

    assert code == 0
    assert (tmp_path / "azure-pipelines.yml").read_text() == pipeline.read_text(), (
        "run: " + " ".join(command))
'''
