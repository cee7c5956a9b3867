"""The ``security`` job of a project's CI (``sparkmlops.deploy.ci.scan_steps``): its own
``run:`` scripts, run with bash in a project ``init`` wrote, with the scanners of this
Python (the dev extra: bandit, detect-secrets, pip-audit) first on PATH, as a runner runs
them after ``pip install``. A clean project passes; a planted secret, a planted shell call
and a vulnerable pin each fail their step; a dependency audit that could not reach its
service fails and says NOT CHECKED. The vulnerability service is made unreachable on
purpose (a proxy on a closed port), so the outcome does not depend on this machine."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

import pytest
import yaml

from sparkmlops.cli import main
from sparkmlops.deploy.ci import SCANNERS, scan_install_lines, scan_steps
from sparkmlops.deploy.github import SCANS_RUN
from sparkmlops.init.project import secrets_baseline
from tests.unit.deploy.test_workflows import _workflows
from tests.unit.deploy.test_workflows_azure import _pipeline

BIN = Path(sys.executable).parent
TESTS_WORKFLOW = ".github/workflows/sparkmlops-penguins-tests.yml"
# pins the planted dependency audits see (the lock's 179 would take 10 s offline)
PINS = ["requests==2.32.3", "urllib3==2.2.2", "idna==3.7"]


def _bash(project: Path, script: str, **env: str) -> subprocess.CompletedProcess[str]:
    """A ``run:`` script as the runner runs it after the install step: bash, in the
    checkout, the scanners' Python first on PATH; no network (a closed proxy port)."""
    return subprocess.run(
        ["bash", "-c", script], cwd=project, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
             "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
             "NO_PROXY": "", "no_proxy": "", **env})


def _scripts(project: Path) -> dict[str, str]:
    """The security job's scan steps of the committed tests workflow: name -> run."""
    workflow = yaml.safe_load((project / TESTS_WORKFLOW).read_text())
    return {step["name"].split(" ")[0].split(":")[0]: step["run"]
            for step in workflow["jobs"]["security"]["steps"] if step.get("if") == SCANS_RUN}


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory) -> Path:
    assert (BIN / "python").exists() and shutil.which("bandit", path=str(BIN)), (
        f"{BIN} lacks the scanners: the dev extra (make setup) installs them")
    project = tmp_path_factory.mktemp("scan") / "acme-ml"
    assert main(["init", str(project)]) == 0
    return project


@pytest.fixture
def project(scaffolded, tmp_path) -> Path:
    """A fresh copy of the new project, a git checkout with every file added (the
    secret scan reads the files git tracks, as in CI)."""
    copy = tmp_path / "acme-ml"
    shutil.copytree(scaffolded, copy)
    subprocess.run(["git", "init", "-q"], cwd=copy, check=True)
    subprocess.run(["git", "add", "-A"], cwd=copy, check=True)
    return copy


def _git_add(project: Path) -> None:
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)


def test_a_new_projects_code_and_secret_scans_pass(project):
    scripts = _scripts(project)
    before = json.loads((project / ".secrets.baseline").read_text())

    bandit = _bash(project, scripts["bandit"])
    secrets = _bash(project, scripts["Secret"])

    assert bandit.returncode == 0, bandit.stdout + bandit.stderr
    assert secrets.returncode == 0, secrets.stdout + secrets.stderr
    # detect-secrets rewrote the baseline after its scan: the one init wrote is what it
    # writes itself for this project (its format, plugins and filters), with no finding
    after = json.loads((project / ".secrets.baseline").read_text())
    assert after["results"] == {}
    assert {k: v for k, v in after.items() if k != "generated_at"} == {
        k: v for k, v in before.items() if k != "generated_at"}
    assert before["version"] == "1.5.0"


def test_a_planted_secret_fails_the_secret_scan(project):
    (project / "conf/credentials.py").write_text(
        'AWS_ACCESS_KEY_ID = "AKIAZ7XQ3RMPL2HW4VTN"  # pragma: allowlist secret\n'
        .replace("  # pragma: allowlist secret", ""))
    _git_add(project)

    result = _bash(project, _scripts(project)["Secret"])

    assert result.returncode == 1
    found = json.loads((project / ".secrets.baseline").read_text())["results"]
    assert {name: [(e["line_number"], e["type"], e.get("is_secret")) for e in entries]
            for name, entries in found.items()} == {
        "conf/credentials.py": [(1, "AWS Access Key", None)]}
    assert ("detect-secrets: NEW conf/credentials.py:1: AWS Access Key (not audited as a "
            "false positive in .secrets.baseline)") in result.stdout.splitlines()


def test_a_finding_audited_as_a_false_positive_passes(project):
    (project / "conf/credentials.py").write_text(
        'EXAMPLE = "AKIAZ7XQ3RMPL2HW4VTN"  # pragma: allowlist secret\n'
        .replace("  # pragma: allowlist secret", ""))
    _git_add(project)
    script = _scripts(project)["Secret"]
    assert _bash(project, script).returncode == 1
    # what `detect-secrets audit` records when a person answers "not a secret"
    baseline = json.loads((project / ".secrets.baseline").read_text())
    baseline["results"]["conf/credentials.py"][0]["is_secret"] = False
    (project / ".secrets.baseline").write_text(json.dumps(baseline, indent=2) + "\n")

    assert _bash(project, script).returncode == 0


def test_a_planted_shell_call_fails_bandit_and_tests_keep_their_asserts(project):
    (project / "features").mkdir()
    (project / "features/shell.py").write_text(
        "import subprocess\n\n\ndef run(command):\n"
        "    return subprocess.call(command, shell=True)\n")
    # an assert in the project's code is reported (python -O drops it), in tests/ not
    (project / "tests/test_more.py").write_text("def test_x():\n    assert 1 + 1 == 2\n")
    (project / "features/guard.py").write_text("def f(x):\n    assert x > 0\n    return x\n")

    result = _bash(project, _scripts(project)["bandit"])

    assert result.returncode == 1
    issues = re.findall(r">> Issue: \[(\S+)\].*?Location: (\S+)", result.stdout, re.S)
    assert sorted(issues) == [
        ("B101:assert_used", "./features/guard.py:2:4"),
        ("B404:blacklist", "./features/shell.py:1:0"),
        ("B602:subprocess_popen_with_shell_equals_true", "./features/shell.py:5:11")]


def test_the_dependency_audit_fails_and_says_not_checked_when_pypi_is_unreachable(project):
    (project / "constraints.txt").write_text("\n".join(PINS) + "\n")

    result = _bash(project, _scripts(project)["pip-audit"])

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith(
        "dependency audit: NOT CHECKED 3 of 3 packages; nothing is known about their "
        "vulnerabilities. Why: pip-audit exit 1 without a report on it (")
    assert "ProxyError" in lines[0]  # pip-audit's own last line: the service is unreachable
    assert lines[1:] == ["dependency audit: NOT CHECKED: idna, requests, urllib3",
                         "dependency audit: pip-audit failed (exit 1)"]


def _fake_pip_audit(tmp_path: Path, report: dict, exit_code: int) -> str:
    """A ``pip_audit`` module that writes ``report`` where ``-o`` says, as pip-audit does
    when the service answered: the verdict is then tested on planted answers."""
    fake = tmp_path / "fake" / "pip_audit"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "__main__.py").write_text(textwrap.dedent(f"""\
        import json, sys
        out = sys.argv[sys.argv.index("-o") + 1]
        open(out, "w").write(json.dumps({report!r}))
        sys.exit({exit_code})
        """))
    return str(tmp_path / "fake")


def test_the_dependency_audit_names_a_vulnerable_pin_and_an_unchecked_one(project, tmp_path):
    (project / "constraints.txt").write_text("\n".join(PINS) + "\n")
    (project / "requirements.txt").write_text(
        (project / "requirements.txt").read_text() + "xgboost>=2\n")
    report = {"dependencies": [
        {"name": "requests", "version": "2.32.3", "vulns": [
            {"id": "GHSA-9hjg-9r4m-mvj7", "fix_versions": ["2.32.4"]}]},
        {"name": "urllib3", "version": "2.2.2", "vulns": []},
        {"name": "idna", "skip_reason": "Dependency not found on PyPI and could not be "
                                        "audited: idna (3.7)"}]}

    result = _bash(project, _scripts(project)["pip-audit"],
                   PYTHONPATH=_fake_pip_audit(tmp_path, report, 1))

    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "dependency audit: VULNERABLE requests==2.32.3: GHSA-9hjg-9r4m-mvj7 (fix: 2.32.4)",
        "dependency audit: NOT CHECKED 2 of 4 packages; nothing is known about their "
        "vulnerabilities. Why: Dependency not found on PyPI and could not be audited; a "
        "requirement not pinned in constraints.txt",
        "dependency audit: NOT CHECKED: idna, xgboost"]


def test_the_dependency_audit_passes_only_when_every_pin_was_checked(project, tmp_path):
    (project / "constraints.txt").write_text("\n".join(PINS) + "\n")
    report = {"dependencies": [{"name": p.split("==")[0], "version": p.split("==")[1],
                                "vulns": []} for p in PINS]}

    result = _bash(project, _scripts(project)["pip-audit"],
                   PYTHONPATH=_fake_pip_audit(tmp_path, report, 0))

    assert (result.returncode, result.stdout.splitlines()) == (0, [
        "dependency audit: 3 of 3 packages checked (PyPI): no known vulnerabilities in those"])


# ---------------------------------------------------------------- where the job runs


def _lock_pins() -> dict[str, str]:
    lock = resources.files("sparkmlops").joinpath("requirements.lock").read_text()
    return {line.split("==")[0].lower(): line for line in lock.splitlines() if "==" in line}


def test_the_scanners_are_the_locks_and_the_job_only_reads_the_repository(tmp_path):
    workflows = _workflows(tmp_path, "emr")
    tests = workflows[TESTS_WORKFLOW]
    deploy = workflows[".github/workflows/sparkmlops-penguins-deploy-emr.yml"]

    lock = _lock_pins()
    assert scan_install_lines() == [
        "python -m pip install -c constraints.txt "
        + " ".join(lock[name] for name in SCANNERS)]
    assert [lock[name] for name in SCANNERS] == [
        "bandit==1.9.4", "pip-audit==2.10.1", "detect-secrets==1.5.0"]
    for workflow in (tests, deploy):
        job = workflow["jobs"]["security"]
        assert job["permissions"] == {"contents": "read"}
        assert job["steps"][0] == {"uses": "actions/checkout@v4",
                                   "with": {"persist-credentials": False}}
        assert [s.get("run") for s in job["steps"]][2:] == [
            "\n".join(scan_install_lines()) + "\n",
            *["\n".join(lines) + "\n" for _, lines in scan_steps()]]
    # on pull requests, and before every deploy of the branch: the deploy waits for them
    assert tests["on"]["pull_request"] == {"branches": ["main"]}
    assert deploy["on"]["push"] == {"branches": ["main"]}
    assert deploy["jobs"]["deploy"]["needs"] == "security"
    assert "id-token" not in json.dumps(deploy["jobs"]["security"])


@pytest.mark.parametrize("platform", ["emr", "databricks"])
def test_every_deploy_workflow_waits_for_the_scans(tmp_path, platform):
    deploy = _workflows(tmp_path, platform)[
        f".github/workflows/sparkmlops-penguins-deploy-{platform}.yml"]

    assert list(deploy["jobs"]) == ["security", "deploy"]
    assert deploy["jobs"]["deploy"]["needs"] == "security"


def test_the_azure_pipeline_scans_beside_the_tests_and_deploys_after_both(tmp_path):
    pipeline = _pipeline(tmp_path)
    tests, *deploys = pipeline["stages"]

    assert [job["job"] for job in tests["jobs"]] == ["tests", "security"]
    scripts = [s["script"] for s in tests["jobs"][1]["steps"] if "script" in s]
    assert scripts[2:] == ["\n".join(lines) + "\n" for _, lines in scan_steps()]
    assert scripts[0].splitlines() == scan_install_lines()
    # a deploy stage starts only when the whole tests stage, scans included, passed
    assert [(s["stage"], s["dependsOn"]) for s in deploys] == [
        ("deploy_emr", "tests"), ("deploy_databricks", "tests")]
    assert pipeline["pr"] == pipeline["trigger"] == {"branches": {"include": ["main"]}}


def test_the_azure_scan_scripts_pass_shellcheck(tmp_path):
    # GitHub's are checked by actionlint (test_actionlint); Azure's bash here
    assert shutil.which("shellcheck"), "no shellcheck"
    job = _pipeline(tmp_path)["stages"][0]["jobs"][1]
    for n, step in enumerate(s for s in job["steps"] if "script" in s):
        script = tmp_path / f"step{n}.sh"
        script.write_text("#!/bin/bash\n" + step["script"])
        result = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True,
                                timeout=60)
        assert (result.returncode, result.stdout) == (0, ""), step["displayName"]


def test_init_writes_the_baseline_of_detect_secrets_1_5_with_the_arn_filter():
    baseline = json.loads(secrets_baseline(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)))

    assert (baseline["version"], baseline["results"], baseline["generated_at"]) == (
        "1.5.0", {}, "2026-01-02T03:04:05Z")
    assert baseline["filters_used"][-1] == {
        "path": "detect_secrets.filters.regex.should_exclude_line",
        "pattern": ["^\\s*aws_secret_arn:\\s*[\"']?arn:aws:secretsmanager:[^\\s\"']*[\"']?$"]}


def test_the_azure_pipeline_of_a_new_project_holds_no_secret_finding(tmp_path):
    project = tmp_path / "churn-ml"
    assert main(["init", str(project), "--ci", "azure-devops"]) == 0
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    _git_add(project)
    script = next(s["script"] for s in yaml.safe_load(
        (project / "azure-pipelines.yml").read_text())["stages"][0]["jobs"][1]["steps"]
        if "detect_secrets" in s.get("script", ""))

    result = _bash(project, script)

    assert result.returncode == 0, result.stdout
    assert json.loads((project / ".secrets.baseline").read_text())["results"] == {}

