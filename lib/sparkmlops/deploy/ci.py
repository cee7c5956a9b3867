"""What a project's CI runs, whichever CI it is (GitHub Actions, Azure Pipelines): shell
lines that install the released sparkmlops wheel, generate the platform files with
``sparkmlops deploy``, upload and update definitions, and run a job only when asked; and
the security scans of the project (``scan_steps``), before any of that.

Nothing here needs a sparkmlops checkout: the wheel comes from the package index
(``pip download sparkmlops==<version>``), the constraints are the project's
``constraints.txt`` (the lock the platform's tests passed on, written by ``init``), and
the EMR job scripts are written from the installed wheel (``common.job_script``).

The shell reads these variables, set by the CI file: ``COMMIT`` (the commit deployed),
``CONF_DIR`` (EMR: the per-commit conf dir, see ``emr_conf_dir_of_commit``) and ``JOB``
(the job to run: none, batch, continuous or maintain).
"""

from __future__ import annotations

import logging
import shlex
from importlib import resources
from pathlib import Path

from sparkmlops import __version__
from sparkmlops.config import Settings
from sparkmlops.deploy.common import (
    JOB_COMMANDS,
    is_remote,
    wheel_location,
    wheel_name,
)
from sparkmlops.deploy.databricks import bundle_name
from sparkmlops.deploy.emr import (
    constraints_location,
    delta_python_requirement,
    emr_artifact_dir,
    emr_conf_dir,
    emr_schedules,
    venv_archive_location,
)

log = logging.getLogger(__name__)

# what `init` pins and the CI installs: the released wheel of this version
SPARKMLOPS_PIN = f"sparkmlops=={__version__}"
SPARKMLOPS_AWS_PIN = f"sparkmlops[aws]=={__version__}"
EMR_RUN_DIR = "run/emr"
JOB_CHOICES = ["none", *JOB_COMMANDS]
PYTHON_VERSION = "3.11"


def install_lines(*, local: bool) -> list[str]:
    """Install the pinned sparkmlops and its locked dependencies from the index
    (``PIP_INDEX_URL`` / ``PIP_EXTRA_INDEX_URL`` name a private one). ``local``: with
    Spark and Delta (the project's requirements.txt), for tests that start a session."""
    # [aws]: botocore, which sends the generated EMR request bodies (python -m
    # sparkmlops.deploy.emr)
    what = "-r requirements.txt" if local else shlex.quote(SPARKMLOPS_AWS_PIN)
    return [f"python -m pip install {what} -c constraints.txt"]


def _deploy_command(settings: Settings, platform: str, out: str, *extra: str) -> str:
    return " ".join(["sparkmlops deploy", "--env", settings.env, "--dataset",
                     settings.dataset.name, "--conf-dir", "conf", "--target", platform,
                     "--out", out, *extra])


def _download_wheel() -> str:
    # a released wheel of a version never changes on the index, so the same path on the
    # platform is rewritten with the same bytes; what changes per push is the conf dir
    return f"python -m pip download --no-deps --dest dist {shlex.quote(SPARKMLOPS_PIN)}"


# ---------------------------------------------------------------- security scans

# what `make audit` runs on the platform, run on the project in its CI: the same tools at
# the versions of the lock the platform's tests passed on (the project's constraints.txt)
# detect-secrets last: its own pin followed by more text reads to it as a keyword with a value
SCANNERS = ("bandit", "pip-audit", "detect-secrets")
SECRETS_BASELINE = ".secrets.baseline"
# the project's own Python code is every .py its checkout holds outside these (a local
# venv, build output); tests/ is scanned on its own, without B101: an assert is how a
# pytest test checks, while in the project's code `python -O` would drop it
BANDIT_EXCLUDE = "./.git,./.venv,./venv,./build,./dist,./run,./tests"

_UNAUDITED_SECRETS = """\
import json, sys
results = json.load(open(sys.argv[1], encoding="utf-8"))["results"]
new = [f"{e['filename']}:{e['line_number']}: {e['type']}"
       for found in results.values() for e in found if e.get("is_secret") is not False]
for line in new:
    print(f"detect-secrets: NEW {line} (not audited as a false positive in {sys.argv[1]})")
if new:
    print("detect-secrets: remove the secret (and rotate it), or if it is none: "
          f"detect-secrets scan --baseline {sys.argv[1]} && detect-secrets audit {sys.argv[1]}"
          ", then commit the baseline")
print(f"detect-secrets: {len(new)} new finding(s)")
sys.exit(1 if new else 0)
"""

# pip-audit says "No known vulnerabilities found" (exit 0) when PyPI could not be reached:
# every package is then skipped. This reads its report and says what was checked, what was
# found, and what was NOT CHECKED; anything not checked fails the job.
_DEPENDENCY_VERDICT = """\
import json, re, sys
report, status = sys.argv[1], int(sys.argv[2])
def name(req):
    bare = re.split(r"[\\s\\[<>=!~;@]", req, maxsplit=1)[0]
    return bare.lower().replace("_", "-").replace(".", "-")
def lines(path):
    with open(path, encoding="utf-8") as f:
        return [ln.split("#", 1)[0].strip() for ln in f]
pins = {name(ln) for ln in lines("constraints.txt") if "==" in ln and not ln.startswith("-")}
unchecked = {n: "a requirement not pinned in constraints.txt" for n in (
    {name(ln) for ln in lines("requirements.txt") if ln and not ln.startswith("-")}
    - pins - {"sparkmlops"})}
try:
    with open(report, encoding="utf-8") as f:
        deps = json.load(f)["dependencies"]
except (OSError, ValueError, KeyError):
    deps = []
checked = {name(d["name"]): d for d in deps if not d.get("skip_reason")}
for d in deps:
    if d.get("skip_reason"):
        unchecked[name(d["name"])] = d["skip_reason"].split(":")[0]
with open(sys.argv[3], encoding="utf-8") as f:
    said = [ln.strip() for ln in f if ln.strip()]
for n in pins - set(checked) - set(unchecked):
    unchecked[n] = (f"pip-audit exit {status} without a report on it"
                    + (f" ({said[-1][:200]})" if said else ""))
vulnerable = [f"{d['name']}=={d['version']}: {v['id']} (fix: "
              f"{', '.join(v.get('fix_versions') or []) or 'none'})"
              for d in checked.values() for v in d.get("vulns", [])]
for line in vulnerable:
    print(f"dependency audit: VULNERABLE {line}")
total = len(pins) + len(unchecked.keys() - pins)
if checked and not vulnerable:
    print(f"dependency audit: {len(checked)} of {total} packages checked (PyPI): "
          "no known vulnerabilities in those")
if unchecked:
    why = "; ".join(sorted(set(unchecked.values())))
    print(f"dependency audit: NOT CHECKED {len(unchecked)} of {total} packages; nothing is "
          f"known about their vulnerabilities. Why: {why}")
    print("dependency audit: NOT CHECKED: " + ", ".join(sorted(unchecked)))
if status and not vulnerable:
    print(f"dependency audit: pip-audit failed (exit {status})")
sys.exit(1 if vulnerable or unchecked or status else 0)
"""


def _locked_pin(name: str) -> str:
    """``name==version`` of a package in the lock the platform's tests passed on (the
    constraints.txt ``init`` writes)."""
    lock = resources.files("sparkmlops").joinpath("requirements.lock").read_text()
    for line in lock.splitlines():
        if line.split("==", 1)[0].strip().lower() == name:
            return line.split("#", 1)[0].strip()
    raise LookupError(f"{name} is not pinned in sparkmlops/requirements.lock")


def scan_install_lines() -> list[str]:
    """The scanners at the lock's versions; their own dependencies from constraints.txt."""
    pins = " ".join(_locked_pin(name) for name in SCANNERS)
    return [f"python -m pip install -c constraints.txt {pins}"]


def scan_steps() -> list[tuple[str, list[str]]]:
    """The project's security scans, (step name, shell lines), each failing on a finding:

    - bandit over the project's own Python code, and over tests/ without B101 (assert);
    - detect-secrets over the tracked files against the committed .secrets.baseline
      (``init`` writes it): a finding the baseline lacks, or has not audited as a false
      positive, fails;
    - pip-audit of every pin in constraints.txt (the lock requirements.txt installs from)
      on PyPI. A package it could not check (PyPI unreachable, a package PyPI does not
      know, a requirement not pinned in constraints.txt) is named NOT CHECKED and fails
      the job: a CI runner reaches PyPI, so an unreachable service is an error here, never
      "no vulnerabilities". sparkmlops itself is audited by the platform's `make audit`.
    """
    bandit = ["set -euo pipefail",
              f"python -m bandit -q -r . -x {BANDIT_EXCLUDE}",
              "python -m bandit -q -r tests -s B101"]
    secrets = ["set -euo pipefail",
               f"test -f {SECRETS_BASELINE} || {{ echo 'no {SECRETS_BASELINE}: write one "
               f"(detect-secrets scan > {SECRETS_BASELINE}), audit it (detect-secrets audit "
               f"{SECRETS_BASELINE}) and commit it' >&2; exit 1; }}",
               # rescans the tracked files into the baseline of this throwaway checkout:
               # audited entries keep their verdict, new findings come in without one
               f"python -m detect_secrets scan --baseline {SECRETS_BASELINE}",
               f"python - {SECRETS_BASELINE} <<'EOF'", *_UNAUDITED_SECRETS.splitlines(), "EOF"]
    dependencies = ["set -euo pipefail",
                    "status=0",
                    "python -m pip_audit -r constraints.txt --no-deps --disable-pip "
                    "--progress-spinner off -f json -o pip-audit.json 2> pip-audit.log "
                    "|| status=$?",
                    "cat pip-audit.log >&2",
                    "python - pip-audit.json \"$status\" pip-audit.log <<'EOF'",
                    *_DEPENDENCY_VERDICT.splitlines(), "EOF"]
    # no "detect-secrets: <text>" in a step's name: a keyword and a value to detect-secrets
    return [("bandit: the project's Python code", bandit),
            ("Secret scan (detect-secrets): nothing beyond the audited baseline", secrets),
            ("pip-audit: the pinned dependencies (constraints.txt)", dependencies)]


# ---------------------------------------------------------------- EMR


def emr_conf_dir_of_commit(settings: Settings, commit: str) -> str:
    """``<emr_conf_dir>/<commit>``: each push uploads the conf dir to a new folder and
    points the schedules at it, so a job running during a deploy keeps reading the files
    it started with, and re-running the deploy of an older commit rolls back."""
    return f"{emr_conf_dir(settings)}/{commit}"


def emr_deploy_lines(settings: Settings) -> list[str]:
    """Generate the EMR files for this commit's conf dir, upload the wheel, job scripts,
    constraints, bootstrap and conf dir, update the schedules and failure rule."""
    artifacts = emr_artifact_dir(settings)
    commands = sorted({JOB_COMMANDS[job][0] for job in JOB_COMMANDS})
    lines = [_deploy_command(settings, "emr", ".", "--set", '"deploy.conf_dir=$CONF_DIR"'),
             _download_wheel(), "mkdir -p dist/jobs"]
    lines += [f"python -c 'import sys; from sparkmlops.deploy.common import job_script; "
              f"sys.stdout.write(job_script(sys.argv[1]))' {c} > dist/jobs/{c}.py"
              for c in commands]
    lines += [
        # the conf dir first: the schedules updated below name it
        'aws s3 sync --only-show-errors --delete conf "${CONF_DIR/#s3a:/s3:}"',
        f"aws s3 cp --only-show-errors dist/{wheel_name(settings)} {wheel_location(settings)}",
        f"aws s3 cp --only-show-errors constraints.txt {constraints_location(settings)}",
        f"aws s3 cp --only-show-errors --recursive dist/jobs {artifacts}/jobs",
        f"aws s3 cp --only-show-errors emr/bootstrap.sh {artifacts}/bootstrap.sh",
    ]
    spec = settings.deploy.emr
    assert spec is not None
    if spec.serverless is not None:
        lines += [_serverless_venv_command(settings),
                  f"aws s3 cp --only-show-errors dist/{VENV_ARCHIVE} "
                  f"{venv_archive_location(settings)}"]
    lines += [f"aws scheduler update-schedule --cli-input-json file://emr/schedule-{job}.json"
              f" || aws scheduler create-schedule --cli-input-json "
              f"file://emr/schedule-{job}.json" for job in emr_schedules(settings)]
    if spec.failure_topic_arn is not None:
        lines += ["aws events put-rule --cli-input-json file://emr/failure-rule.json",
                  "aws events put-targets --cli-input-json file://emr/failure-targets.json"]
    return lines


def emr_run_lines(settings: Settings) -> list[str]:
    """Run ``$JOB`` once, on this commit's conf dir: a step on the cluster, or an EMR
    Serverless job run when the schedules start those."""
    spec = settings.deploy.emr
    assert spec is not None
    lines = [_deploy_command(settings, "emr", "run", "--set", '"deploy.conf_dir=$CONF_DIR"',
                             "--set", '"deploy.emr.steps=[$JOB]"')]
    if spec.schedule_on == "serverless":
        lines.append("aws emr-serverless start-job-run --cli-input-json "
                     "file://run/emr/start-job-run.json")
    else:
        # the AWS CLI's `emr add-steps` takes --cluster-id/--steps, not the API's body
        lines.append(f"python -m sparkmlops.deploy.emr emr add_job_flow_steps "
                     f"{EMR_RUN_DIR}/add-steps.json")
    return lines


VENV_ARCHIVE = "sparkmlops-venv.tar.gz"
VENV_PACK = "venv-pack==0.2.0"
# EMR Serverless images run Amazon Linux 2023: the packed venv is built on it, so its
# compiled wheels (numpy, pyarrow) match the workers'
SERVERLESS_BUILD_IMAGE = "public.ecr.aws/amazonlinux/amazonlinux:2023"


def _serverless_venv_command(settings: Settings) -> str:
    """EMR Serverless has no bootstrap actions: a virtualenv with the wheel and the
    project's constraints, packed with venv-pack for ``spark.archives``."""
    spec = settings.deploy.emr
    assert spec is not None
    python = Path(spec.python).name
    script = " && ".join([
        f"dnf install -y -q {python} {python}-pip tar gzip",
        f"{python} -m venv --copies /opt/venv",
        f"/opt/venv/bin/pip install -q -c constraints.txt {VENV_PACK} "
        f"dist/{wheel_name(settings)}",
        # the `delta` module of the release's Delta, without the pyspark it would pull
        f"/opt/venv/bin/pip install -q --no-deps {delta_python_requirement(settings)}",
        f"/opt/venv/bin/venv-pack -p /opt/venv -o dist/{VENV_ARCHIVE}",
    ])
    return (f'docker run --rm -v "$PWD:/work" -w /work {SERVERLESS_BUILD_IMAGE} '
            f"bash -c '{script}'")


# ---------------------------------------------------------------- Databricks


def databricks_deploy_lines(settings: Settings) -> list[str]:
    """Generate the bundle, upload the wheel (and a conf dir kept outside the bundle, per
    commit), validate and deploy the prod target. Deploying runs no job."""
    conf_dir = settings.deploy.conf_dir
    extra = ["--set", '"deploy.conf_dir=$CONF_DIR"'] if conf_dir else []
    lines = [_deploy_command(settings, "databricks", ".", *extra)]
    location = wheel_location(settings)
    if is_remote(location):
        target = location if ":" in location.split("/", 1)[0] else f"dbfs:{location}"
        lines += [_download_wheel(),
                  f"databricks fs cp --overwrite dist/{wheel_name(settings)} {target}"]
    else:
        # a local wheel path: `bundle deploy` uploads it from there
        lines.append(_download_wheel())
    if conf_dir:
        # `databricks fs` names a volume or DBFS path dbfs:/...; a bare /Volumes/... is a
        # local path to it
        scheme = "" if ":" in conf_dir.split("/", 1)[0] else "dbfs:"
        lines.append(f'databricks fs cp --recursive --overwrite conf "{scheme}$CONF_DIR"')
    lines += ["cd databricks", "databricks bundle validate -t prod",
              "databricks bundle deploy -t prod"]
    return lines


def databricks_conf_dir_of_commit(settings: Settings, commit: str) -> str | None:
    """A ``deploy.conf_dir`` outside the bundle gets one folder per commit (as on EMR);
    None: the conf dir travels inside the bundle, which ``bundle deploy`` replaces."""
    conf_dir = settings.deploy.conf_dir
    return f"{conf_dir.rstrip('/')}/{commit}" if conf_dir else None


def databricks_run_lines(settings: Settings) -> list[str]:
    """Run ``$JOB`` once (``bundle run``), without waiting for it to end."""
    return ["cd databricks",
            f'databricks bundle run -t prod --no-wait "{bundle_name(settings)}_$JOB"']
