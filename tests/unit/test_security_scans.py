"""The offline security scans run in the suite, so `.ci/run` fails on a new finding.

bandit on lib/ and jobs/ and detect-secrets over the repo, run by scripts/audit.py (the same
policy `make audit` applies): nothing beyond what is accepted there and in .secrets.baseline.
The pip-audit verdict is checked on planted reports: this machine's services cannot check the
lock (docs/security.md), and that must read as NOT CHECKED, never as clean.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load_audit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sparkmlops_audit", REPO / "scripts/audit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


audit = _load_audit()


# ---------------------------------------------------------------- bandit


def test_bandit_finds_nothing_in_lib_and_jobs_beyond_the_accepted_list():
    report = audit.bandit_report()

    verdict = audit.judge_bandit(report)
    assert verdict.new == []
    assert verdict.stale == []
    assert verdict.errors == []
    # it scanned the code (setup.cfg's [bandit] targets), not an empty folder
    scanned = {Path(name).parts[0] for name in report["metrics"] if name != "_totals"}
    assert scanned == {"lib", "jobs"}
    assert report["metrics"]["_totals"]["loc"] > 10_000


def test_bandit_reports_a_planted_shell_call_as_new(tmp_path):
    (tmp_path / "job.py").write_text(
        "import subprocess\n\n\ndef run(command):\n"
        "    return subprocess.call(command, shell=True)\n")

    verdict = audit.judge_bandit(audit.bandit_report([str(tmp_path)], cwd=tmp_path))

    assert [line.split(": ")[1].split()[0] for line in verdict.new] == ["B404", "B602"]


def test_an_accepted_finding_that_is_gone_is_reported_stale():
    report = {"results": [], "errors": []}

    verdict = audit.judge_bandit(report, {("lib/x.py", "B603"): 2})

    assert verdict.stale == ["lib/x.py: B603 accepted 2x, found 0x"]


def test_every_assert_in_lib_and_jobs_only_narrows_an_optional():
    # the premise of skipping bandit's B101: `python -O` drops asserts, so none may guard
    assert audit.asserts_beyond_type_narrowing([REPO / "lib", REPO / "jobs"]) == []


def test_an_assert_that_guards_a_value_is_reported(tmp_path):
    (tmp_path / "step.py").write_text(
        "def f(x, y):\n    assert x is not None and y is not None\n    assert x > 0\n")

    found = audit.asserts_beyond_type_narrowing([tmp_path])

    assert found == [f"{tmp_path / 'step.py'}:3: assert x > 0"]


# ---------------------------------------------------------------- detect-secrets


def test_detect_secrets_finds_only_the_audited_non_secrets_of_the_baseline():
    committed = json.loads((REPO / ".secrets.baseline").read_text(encoding="utf-8"))

    rescanned = audit.secrets_rescan()

    assert audit.unaudited_secrets(committed) == []
    assert audit.unaudited_secrets(rescanned) == []

    def entries(baseline: dict) -> set[tuple[str, str, str]]:
        return {(e["filename"], e["type"], e["hashed_secret"])
                for found in baseline["results"].values() for e in found}

    # the baseline is exactly what is accepted: no entry for a secret that is gone
    assert entries(rescanned) == entries(committed)
    assert len(entries(committed)) == 12


def test_detect_secrets_reports_a_planted_credential_as_unaudited(tmp_path):
    planted = tmp_path / "settings.py"
    # written at run time, so this file holds no credential-looking line itself
    planted.write_text("aws_secret" "_access_key = 'planted-credential-0042'\n")
    result = audit._run_tool("detect_secrets", ["scan", "--no-verify", str(planted)],
                             cwd=tmp_path)

    found = audit.unaudited_secrets(json.loads(result.stdout))

    assert found == ["settings.py:1: Secret Keyword"]


# ---------------------------------------------------------------- pip-audit verdicts


LOCK_PINS = {"requests": "requests==2.34.2", "flask": "Flask==3.1.3"}


def _fresh():
    return audit.DependencyAudit(pinned=2, unchecked={n: audit.NOT_ASKED for n in LOCK_PINS})


def test_packages_the_index_does_not_serve_are_not_checked_not_clean():
    # what pip-audit says here for every pin (and then prints "No known vulnerabilities")
    report = {"dependencies": [
        {"name": "requests", "skip_reason":
         "Dependency not found on PyPI and could not be audited: requests (2.34.2)"},
        {"name": "flask", "skip_reason":
         "Dependency not found on PyPI and could not be audited: flask (3.1.3)"}], "fixes": []}

    result = audit.judge_pip_audit(_fresh(), report, "pypi", LOCK_PINS)

    assert result.status == audit.UNCHECKED == 3
    assert result.checked == {}
    assert result.unchecked == {
        "requests": "pypi: Dependency not found on PyPI and could not be audited",
        "flask": "pypi: Dependency not found on PyPI and could not be audited"}
    assert not any("no known vulnerabilities" in line for line in result.lines())


def test_an_unreachable_service_is_said_and_the_next_one_checks_what_is_left():
    unreachable = {"error": "ConnectionError: Failed to resolve 'api.osv.dev'"}
    first = audit.judge_pip_audit(_fresh(), unreachable, "osv", LOCK_PINS)
    clean = {"dependencies": [{"name": "requests", "version": "2.34.2", "vulns": []},
                              {"name": "flask", "version": "3.1.3", "vulns": []}]}

    second = audit.judge_pip_audit(first, clean, "pypi", LOCK_PINS)
    third = audit.judge_pip_audit(first, unreachable | {"error": "HTTP 404"}, "pypi", LOCK_PINS)

    assert first.status == audit.UNCHECKED
    assert set(first.unchecked.values()) == {
        "osv: unreachable (ConnectionError: Failed to resolve 'api.osv.dev')"}
    assert third.unchecked["flask"] == (
        "osv: unreachable (ConnectionError: Failed to resolve 'api.osv.dev'); "
        "pypi: unreachable (HTTP 404)")
    assert second.status == audit.OK == 0
    assert second.checked == {"requests": "pypi", "flask": "pypi"}
    assert second.lines() == ["dependency audit: 2 of 2 pinned packages checked (pypi): "
                              "no known vulnerabilities in those"]


def test_a_vulnerable_pin_is_a_finding_even_when_others_were_not_checked():
    report = {"dependencies": [
        {"name": "requests", "version": "2.34.2", "vulns": [
            {"id": "GHSA-xxxx-yyyy-zzzz", "fix_versions": ["2.35.0"], "aliases": []}]},
        {"name": "flask", "skip_reason": "Dependency not found on PyPI and could not be "
                                         "audited: flask (3.1.3)"}]}

    result = audit.judge_pip_audit(_fresh(), report, "pypi", LOCK_PINS)

    assert result.status == audit.FINDING == 1
    assert result.vulnerable == ["requests==2.34.2: GHSA-xxxx-yyyy-zzzz (fix: 2.35.0)"]
    assert list(result.unchecked) == ["flask"]
    assert not any("no known vulnerabilities" in line for line in result.lines())


def test_every_pin_of_the_lock_is_audited_by_name():
    pins = audit.pinned_packages(REPO / "deps/requirements.lock")

    assert {"bandit==1.9.4", "pip-audit==2.10.1", "detect-secrets==1.5.0"} <= set(pins.values())
    assert len(pins) == len((REPO / "deps/requirements.lock").read_text().split())


@pytest.mark.parametrize("codes, allow, expected", [
    ([0, 3], False, 3), ([0, 3], True, 0), ([1, 3], True, 1), ([0, 0], False, 0)])
def test_the_exit_code_puts_a_finding_before_an_unchecked_package(monkeypatch, codes, allow,
                                                                  expected):
    monkeypatch.setattr(audit, "check_code", lambda: codes[0])
    monkeypatch.setattr(audit, "check_dependencies", lambda: codes[1])

    assert audit.main(["all", *(["--allow-unchecked"] if allow else [])]) == expected
