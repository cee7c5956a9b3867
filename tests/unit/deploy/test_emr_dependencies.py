"""Issue 21, fault 5 (second half): a running EMR cluster keeps the dependencies it
installed at boot. bootstrap.sh records them; the first step of every submission runs
``bootstrap.sh --check`` and refuses a cluster whose dependencies are stale, instead of
running new code on old libraries. The script runs here for real, with ``aws`` and
``sudo`` stand-ins on PATH and a folder standing in for the bucket."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from sparkmlops import __version__
from sparkmlops.config import load_settings
from sparkmlops.deploy import emr_add_steps, emr_schedules, render
from sparkmlops.deploy.emr import DEPENDENCIES_STATE, emr_check_dependencies_step
from tests.unit.deploy.test_deploy import EMR_SETTINGS, WHEEL, _validate

CHECK_STEP = {
    "Name": "sparkmlops-penguins-check-dependencies",
    "ActionOnFailure": "CANCEL_AND_WAIT",
    "HadoopJarStep": {"Jar": "command-runner.jar", "Args": [
        "bash", "-c", 'f=$(mktemp) && aws s3 cp --only-show-errors '
                      's3://acme-ml/sparkmlops/bootstrap.sh "$f" && bash "$f" --check']},
}
STALE = ("sparkmlops: this cluster installed other dependencies at boot than "
         f"s3://acme-ml/sparkmlops/{WHEEL} and "
         f"s3://acme-ml/sparkmlops/sparkmlops-{__version__}-constraints.txt need; start a new "
         "cluster (emr/run-job-flow.json) and set deploy.emr.cluster_id to it")


def _emr(tmp_path: Path, *extra: str):
    return load_settings("emr", "penguins",
                         overrides=[f"project_dir={tmp_path}", *EMR_SETTINGS, *extra])


def test_every_submission_starts_with_the_dependency_check(tmp_path):
    settings = _emr(tmp_path)
    body = emr_add_steps(settings)

    _validate("emr", "AddJobFlowSteps", body)
    assert emr_check_dependencies_step(settings) == CHECK_STEP
    assert body["Steps"][0] == CHECK_STEP
    for schedule in emr_schedules(settings).values():
        assert f'"Steps": [{{"Name": "{CHECK_STEP["Name"]}"' in schedule["Target"]["Input"]


def test_the_readme_says_new_dependencies_need_a_new_cluster(tmp_path):
    readme = render(_emr(tmp_path), ["emr"], out_dir=tmp_path)[tmp_path / "emr/README.md"]

    assert ("New code needs no new cluster (every step ships the wheel in `--py-files`); new "
            "dependencies do: create a cluster from `run-job-flow.json`, set "
            "`deploy.emr.cluster_id` to its id, deploy, then terminate the old cluster.") in readme


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_bootstrap_is_shellcheck_clean(tmp_path):
    script = tmp_path / "bootstrap.sh"
    script.write_text(render(_emr(tmp_path), ["emr"], out_dir=tmp_path)[
        tmp_path / "emr/bootstrap.sh"])

    result = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def _wheel(path: Path, requires: list[str], code: str) -> None:
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("sparkmlops/__init__.py", code)
        wheel.writestr(f"sparkmlops-{__version__}.dist-info/METADATA",
                       "Metadata-Version: 2.1\nName: sparkmlops\n"
                       + "".join(f"Requires-Dist: {r}\n" for r in requires))


@pytest.fixture
def cluster(tmp_path):
    """bootstrap.sh against a folder standing in for s3://acme-ml: ``run(*args)`` runs
    it and returns (exit code, stderr); pip calls are recorded, not made."""
    bucket = tmp_path / "bucket" / "sparkmlops"
    bucket.mkdir(parents=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "aws").write_text(  # aws s3 cp --only-show-errors s3://acme-ml/<key> <dest>
        f'#!/bin/bash\ncp "{tmp_path}/bucket/${{4#s3://acme-ml/}}" "$5"\n')
    (bin_dir / "sudo").write_text(
        f'#!/bin/bash\nif [ "$2" = -m ]; then echo "$*" >> "{tmp_path}/pip.log"; exit 0; fi\n'
        'exec "$@"\n')
    for stub in ("aws", "sudo"):
        (bin_dir / stub).chmod(0o755)
    script = render(_emr(tmp_path, f"deploy.emr.python={sys.executable}"), ["emr"],
                    out_dir=tmp_path)[tmp_path / "emr/bootstrap.sh"]
    state = tmp_path / "state" / "dependencies.sha256"
    (tmp_path / "bootstrap.sh").write_text(
        script.replace(f"STATE={DEPENDENCIES_STATE}\n", f"STATE={state}\n"))

    def run(*args: str) -> tuple[int, str]:
        result = subprocess.run(["bash", str(tmp_path / "bootstrap.sh"), *args],
                                capture_output=True, text=True,
                                env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
        return result.returncode, result.stderr.strip()

    _wheel(bucket / WHEEL, ["mlflow<3.18,>=3.17", 'botocore<2,>=1.44; extra == "aws"'], "v1")
    (bucket / f"sparkmlops-{__version__}-constraints.txt").write_text("mlflow==3.17.0\n")
    return bucket, run, tmp_path


def test_bootstrap_installs_and_records_what_it_installed(cluster):
    _, run, tmp_path = cluster

    assert run() == (0, "")
    pip = (tmp_path / "pip.log").read_text().splitlines()
    assert len(pip) == 2
    assert re.fullmatch(rf"{re.escape(sys.executable)} -m pip install --quiet "
                        rf"-c (/\S+)/constraints\.txt \1/{re.escape(WHEEL)}\[aws\]", pip[0])
    assert pip[1] == f"{sys.executable} -m pip install --quiet --no-deps delta-spark==4.0.0"
    assert len((tmp_path / "state/dependencies.sha256").read_text().strip()) == 64


def test_the_check_passes_after_a_code_change_and_refuses_a_dependency_change(cluster):
    bucket, run, _ = cluster
    assert run() == (0, "")

    assert run("--check") == (0, "")
    _wheel(bucket / WHEEL, ["mlflow<3.18,>=3.17", 'botocore<2,>=1.44; extra == "aws"'], "v2")
    assert run("--check") == (0, "")  # new code, same requirements: it ships in --py-files

    (bucket / f"sparkmlops-{__version__}-constraints.txt").write_text("mlflow==3.17.1\n")
    assert run("--check") == (1, STALE)


def test_a_new_requirement_of_the_wheel_is_refused(cluster):
    bucket, run, _ = cluster
    assert run() == (0, "")

    _wheel(bucket / WHEEL, ["mlflow<3.18,>=3.17", "scipy>=1.13"], "v2")
    assert run("--check") == (1, STALE)


def test_a_cluster_that_never_ran_this_bootstrap_is_refused(cluster):
    _, run, _ = cluster

    assert run("--check") == (1, STALE)
