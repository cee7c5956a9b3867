"""The security scans of `make audit`: code, secrets and the pinned dependencies.

    .venv/bin/python scripts/audit.py code    bandit on lib/ and jobs/, detect-secrets over the repo
    .venv/bin/python scripts/audit.py deps    pip-audit of deps/requirements.lock
    .venv/bin/python scripts/audit.py all     both (what `make audit` runs)

`code` works offline and the suite runs the same checks (tests/unit/test_security_scans.py),
so `.ci/run` fails on a new finding. `deps` needs a vulnerability service (PyPI's JSON API,
else OSV). Exit codes: 0 every check ran and found nothing; 1 a finding; 3 no finding, but
the dependency audit could not check some (or all) packages: they are named, and nothing is
claimed about them. `--allow-unchecked` turns that 3 into 0 (the NOT CHECKED line stays).

What is accepted, and why, is written here and nowhere else:
- bandit's B101 (assert) is skipped in `[bandit]` of setup.cfg because every assert in lib/
  and jobs/ only narrows an Optional for mypy (``assert x is not None``); `code` fails on an
  assert of any other form, which `python -O` would silently drop.
- other findings are fixed, or marked inline ``# nosec BXXX: <why>``, or listed in
  ACCEPTED_BANDIT below (files another change owns, with the fix to make there);
- detect-secrets: every entry of .secrets.baseline is audited ``"is_secret": false``; a new
  finding is one the baseline lacks, or one not audited yet.
"""

from __future__ import annotations

import argparse
import ast
import json
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASELINE = REPO / ".secrets.baseline"
LOCK = REPO / "deps" / "requirements.lock"
CODE = ("lib", "jobs")
# tried in order: the packages the first could not check go to the next
SERVICES = ("pypi", "osv")

# (file, bandit test id) -> how many findings are accepted there, each with why and the fix
# to make; empty: every finding is fixed or marked inline
ACCEPTED_BANDIT: dict[tuple[str, str], int] = {}

OK, FINDING, UNCHECKED = 0, 1, 3
NOT_ASKED = "no service asked yet"


class ToolMissingError(RuntimeError):
    """A scanner is not installed in this Python (`make setup` installs the `dev` extra)."""


def _run_tool(module: str, args: list[str], *,
              cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """``python -m <module> <args>`` in this interpreter, so the venv's pinned tool runs."""
    result = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd,
                            capture_output=True, text=True, check=False)
    if f"No module named {module}" in result.stderr:
        raise ToolMissingError(f"{module} is not installed in {sys.executable}: run `make setup` "
                               "(it installs the pinned scanners of the dev extra)")
    return result


# ---------------------------------------------------------------- bandit


def bandit_report(targets: list[str] | None = None, *, cwd: Path = REPO) -> dict[str, object]:
    """bandit's JSON report of ``targets`` (default: lib/ and jobs/) with setup.cfg's [bandit]."""
    args = ["--ini", str(REPO / "setup.cfg"), "-f", "json", "-q"]
    if targets is not None:
        args += ["-r", *targets]
    result = _run_tool("bandit", args, cwd=cwd)
    if result.returncode not in (0, 1) or not result.stdout.strip():
        raise RuntimeError(f"bandit failed (exit {result.returncode}): {result.stderr.strip()}")
    report: dict[str, object] = json.loads(result.stdout)
    return report


@dataclass(frozen=True)
class BanditVerdict:
    """Findings beyond ACCEPTED_BANDIT, acceptances no longer used, files bandit could not read."""

    new: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def judge_bandit(report: dict[str, object],
                 accepted: dict[tuple[str, str], int] | None = None) -> BanditVerdict:
    accepted = ACCEPTED_BANDIT if accepted is None else accepted
    results = report.get("results", [])
    assert isinstance(results, list)
    found = Counter((str(r["filename"]), str(r["test_id"])) for r in results)
    new = [f"{r['filename']}:{r['line_number']}: {r['test_id']} {r['issue_text']}"
           for r in results if found[(r["filename"], r["test_id"])]
           > accepted.get((r["filename"], r["test_id"]), 0)]
    stale = [f"{path}: {test} accepted {count}x, found {found[(path, test)]}x"
             for (path, test), count in accepted.items() if found[(path, test)] < count]
    errors = [f"{e['filename']}: {e['reason']}" for e in report.get("errors", [])]  # type: ignore[attr-defined]
    return BanditVerdict(new=new, stale=stale, errors=errors)


def _narrows_optional(test: ast.expr) -> bool:
    """``x is not None`` (``and`` of such): an assert that only tells mypy what is known."""
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        return all(_narrows_optional(v) for v in test.values)
    return (isinstance(test, ast.Compare) and len(test.ops) == 1
            and isinstance(test.ops[0], ast.IsNot)
            and isinstance(test.comparators[0], ast.Constant)
            and test.comparators[0].value is None)


def asserts_beyond_type_narrowing(roots: list[Path]) -> list[str]:
    """Asserts that are not ``x is not None``: the premise of skipping bandit's B101."""
    found = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
            found += [f"{shown}:{node.lineno}: assert {ast.unparse(node.test)}"
                      for node in ast.walk(tree)
                      if isinstance(node, ast.Assert) and not _narrows_optional(node.test)]
    return found


# ---------------------------------------------------------------- detect-secrets


def secrets_rescan(baseline: Path = BASELINE) -> dict[str, object]:
    """The baseline after detect-secrets rescans the repo's tracked files with its settings.

    Run on a copy, so the committed baseline is never rewritten by a test: entries whose
    secret is gone drop out, new findings come in without an ``is_secret`` verdict.
    """
    with tempfile.TemporaryDirectory(prefix="secrets-baseline-") as tmp:
        copy = Path(tmp) / "baseline.json"
        shutil.copyfile(baseline, copy)
        result = _run_tool("detect_secrets", ["scan", "--baseline", str(copy)])
        if result.returncode != 0:
            raise RuntimeError(f"detect-secrets failed (exit {result.returncode}): "
                               f"{result.stderr.strip()}")
        rescanned: dict[str, object] = json.loads(copy.read_text(encoding="utf-8"))
    return rescanned


def unaudited_secrets(baseline: dict[str, object]) -> list[str]:
    """Findings not audited as non-secrets (``"is_secret": false``) in the baseline."""
    results = baseline.get("results", {})
    assert isinstance(results, dict)
    return [f"{entry['filename']}:{entry['line_number']}: {entry['type']}"
            for entries in results.values() for entry in entries
            if entry.get("is_secret") is not False]


# ---------------------------------------------------------------- pip-audit


@dataclass(frozen=True)
class DependencyAudit:
    """What the vulnerability services said about each pinned package."""

    pinned: int
    checked: dict[str, str] = field(default_factory=dict)      # name -> service
    vulnerable: list[str] = field(default_factory=list)        # "name==version: ID (fix ...)"
    unchecked: dict[str, str] = field(default_factory=dict)    # name -> why (last service)

    @property
    def status(self) -> int:
        return FINDING if self.vulnerable else UNCHECKED if self.unchecked else OK

    def lines(self) -> list[str]:
        """The verdict: "no known vulnerabilities" only ever about the packages checked."""
        out = [f"dependency audit: VULNERABLE {v}" for v in self.vulnerable]
        services = sorted(set(self.checked.values()))
        if self.checked and not self.vulnerable:
            out.append(f"dependency audit: {len(self.checked)} of {self.pinned} pinned packages "
                       f"checked ({', '.join(services)}): no known vulnerabilities in those")
        if self.unchecked:
            reasons = Counter(self.unchecked.values()).most_common(3)
            out.append(f"dependency audit: NOT CHECKED {len(self.unchecked)} of {self.pinned} "
                       "pinned packages; nothing is known about their vulnerabilities. "
                       f"Why: {'; '.join(f'{why} ({n}x)' for why, n in reasons)}")
            out.append("dependency audit: NOT CHECKED: " + ", ".join(sorted(self.unchecked)))
        return out


def pinned_packages(lock: Path) -> dict[str, str]:
    """``name -> name==version`` of every pin in the lock."""
    pins = {}
    for raw in lock.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if "==" in line and not line.startswith("-"):
            pins[_normalize(line.split("==", 1)[0])] = line
    return pins


def _normalize(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def pip_audit(requirements: list[str], service: str, *, timeout: int = 15) -> dict[str, object]:
    """pip-audit's JSON report of ``requirements`` (pins) against one service; the report
    ``{"error": ...}`` when pip-audit could not produce one (service unreachable)."""
    with tempfile.TemporaryDirectory(prefix="pip-audit-") as tmp:
        reqs = Path(tmp) / "requirements.txt"
        reqs.write_text("\n".join(requirements) + "\n", encoding="utf-8")
        result = _run_tool("pip_audit", [
            "-r", str(reqs), "--no-deps", "--disable-pip", "-s", service, "-f", "json",
            "--progress-spinner", "off", "--timeout", str(timeout),
            "--cache-dir", str(Path(tmp) / "cache")])
    # exit 1 with a report is "found vulnerabilities"; without one, pip-audit itself failed
    try:
        report: dict[str, object] = json.loads(result.stdout)
    except json.JSONDecodeError:
        lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
        last = lines[-1] if lines else f"pip-audit exit {result.returncode}"
        # requests' ConnectionError repeats the host three times: its cause is at the end
        return {"error": last if len(last) <= 160 else f"...{last[-157:]}"}
    return report


def judge_pip_audit(audit: DependencyAudit, report: dict[str, object],
                    service: str, asked: dict[str, str]) -> DependencyAudit:
    """Fold one service's report on ``asked`` (name -> pin) into ``audit``: a package it
    could not check keeps the reasons of every service tried (``pypi: ...; osv: ...``)."""
    checked, vulnerable = dict(audit.checked), list(audit.vulnerable)
    unchecked = {name: why for name, why in audit.unchecked.items() if name not in asked}

    def why(name: str, reason: str) -> str:
        before = audit.unchecked.get(name, NOT_ASKED)
        return reason if before == NOT_ASKED else f"{before}; {reason}"

    if "error" in report:
        unchecked.update({name: why(name, f"{service}: unreachable ({report['error']})")
                          for name in asked})
        return DependencyAudit(audit.pinned, checked, vulnerable, unchecked)
    seen = set()
    for dep in report.get("dependencies", []):  # type: ignore[attr-defined]
        name = _normalize(dep["name"])
        seen.add(name)
        if dep.get("skip_reason"):
            # e.g. "Dependency not found on PyPI and could not be audited": NOT "no vulnerability"
            unchecked[name] = why(name, f"{service}: {dep['skip_reason'].split(':')[0]}")
            continue
        checked[name] = service
        vulnerable += [f"{dep['name']}=={dep['version']}: {v['id']} (fix: "
                       f"{', '.join(v.get('fix_versions') or []) or 'none'})"
                       for v in dep.get("vulns", [])]
    unchecked.update({name: why(name, f"{service}: not in pip-audit's report")
                      for name in asked if name not in seen})
    return DependencyAudit(audit.pinned, checked, vulnerable, unchecked)


def audit_dependencies(lock: Path = LOCK, services: tuple[str, ...] = SERVICES) -> DependencyAudit:
    pins = pinned_packages(lock)
    audit = DependencyAudit(pinned=len(pins), unchecked={n: NOT_ASKED for n in pins})
    for service in services:
        asked = {name: pins[name] for name in audit.unchecked}
        if not asked:
            break
        audit = judge_pip_audit(audit, pip_audit(list(asked.values()), service), service, asked)
    return audit


# ---------------------------------------------------------------- the command


def check_code() -> int:
    verdict = judge_bandit(bandit_report())
    asserts = asserts_beyond_type_narrowing([REPO / d for d in CODE])
    secrets = unaudited_secrets(secrets_rescan())
    for line in verdict.new:
        print(f"bandit: NEW {line}")
    for line in verdict.stale:
        print(f"bandit: accepted finding gone, remove it from ACCEPTED_BANDIT: {line}")
    for line in verdict.errors:
        print(f"bandit: could not scan {line}")
    for line in asserts:
        print(f"bandit: assert beyond `x is not None` (B101 is skipped on that premise): {line}")
    for line in secrets:
        print(f"detect-secrets: NEW {line} (not in .secrets.baseline, or not audited)")
    failed = bool(verdict.new or verdict.stale or verdict.errors or asserts or secrets)
    accepted = sum(ACCEPTED_BANDIT.values())
    print(f"code audit: {'FINDINGS' if failed else 'clean'} (bandit on {', '.join(CODE)}: "
          f"{len(verdict.new)} new, {accepted} accepted; detect-secrets: {len(secrets)} new)")
    return FINDING if failed else OK


def check_dependencies() -> int:
    audit = audit_dependencies()
    for line in audit.lines():
        print(line)
    return audit.status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("what", choices=("code", "deps", "all"))
    parser.add_argument("--allow-unchecked", action="store_true",
                        help="exit 0 when the only problem is packages no service could check")
    args = parser.parse_args(argv)
    codes = []
    if args.what in ("code", "all"):
        codes.append(check_code())
    if args.what in ("deps", "all"):
        codes.append(check_dependencies())
    status = FINDING if FINDING in codes else UNCHECKED if UNCHECKED in codes else OK
    return OK if status == UNCHECKED and args.allow_unchecked else status


if __name__ == "__main__":
    sys.exit(main())
