"""The generated bundle as the official Databricks CLI resolves it: `databricks bundle
validate -t dev|prod -o json`, run by scripts/bundle-check.sh against a loopback stub
workspace, once as each of two users. dev must be paused and each developer's own; prod
must be the same jobs, at the same root, run as a service principal, whoever deploys.

Reads SPARKMLOPS_BUNDLE_CHECK_DIR/validate/<target>-<user>.json; collected only by
`make bundle-check`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

WORK = Path(os.environ.get("SPARKMLOPS_BUNDLE_CHECK_DIR", "."))
USERS = os.environ.get("BUNDLE_CHECK_USERS", "").split()
SERVICE_PRINCIPAL = os.environ.get("BUNDLE_CHECK_SERVICE_PRINCIPAL", "")
SCHEMA_FIXTURE = (Path(__file__).resolve().parents[1]
                  / "fixtures/databricks/bundle-schema-v0.298.0.json")
# the keys of a job that start something: each can hold a pause_status
TRIGGERS = ("schedule", "trigger", "continuous")
# what a job runs and where it reads and writes: the keys two developers must not share
WORK_KEYS = ("tasks", "job_clusters", "parameters", "environments")


def _validated(target: str, user: str) -> dict[str, Any]:
    path = WORK / "validate" / f"{target}-{user}.json"
    if not path.is_file():
        err = path.with_name(path.name + ".err")
        pytest.fail(f"no output of `bundle validate -t {target}` as {user}: "
                    + (err.read_text() if err.is_file() else "the CLI did not run"))
    return json.loads(path.read_text())


def _jobs(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return bundle.get("resources", {}).get("jobs", {})


def _work(bundle: dict[str, Any], key: str) -> dict[str, Any]:
    """What job ``key`` runs, with the bundle's own root written ``<root>``: each user's
    dev copy of the synced files (the conf dir, say) is under their own root, but holds
    the same config, so a path into it isolates nothing."""
    job = _jobs(bundle)[key]
    text = json.dumps({k: job[k] for k in WORK_KEYS if k in job})
    return json.loads(text.replace(bundle["workspace"]["root_path"], "<root>"))


def _differences(first: Any, second: Any, where: str = "") -> list[str]:
    """Each leaf where two resolved bundles differ, as `path: first != second`."""
    if isinstance(first, dict) and isinstance(second, dict):
        return [line for key in sorted(first.keys() | second.keys())
                for line in _differences(first.get(key), second.get(key), f"{where}.{key}")]
    if isinstance(first, list) and isinstance(second, list) and len(first) == len(second):
        return [line for i, (a, b) in enumerate(zip(first, second, strict=True))
                for line in _differences(a, b, f"{where}[{i}]")]
    return [] if first == second else [f"{where.lstrip('.')}: {first!r} != {second!r}"]


@pytest.fixture(scope="module", params=USERS)
def user(request: pytest.FixtureRequest) -> str:
    return request.param


def test_two_users_were_validated():
    assert len(USERS) == 2, "scripts/bundle-check.sh names the two users in BUNDLE_CHECK_USERS"


def test_the_committed_bundle_schema_is_this_cli_s():
    printed = json.loads((WORK / "validate" / "bundle-schema.json").read_text())

    assert printed == json.loads(SCHEMA_FIXTURE.read_text())


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_validate_warns_of_nothing(user, target):
    _validated(target, user)
    printed = (WORK / "validate" / f"{target}-{user}.json.err").read_text()

    # e.g. "Warning: the bundle root path /Workspace/Shared/... is writable by all workspace
    # users": validate still exits 0
    assert [line for line in printed.splitlines()
            if line.startswith(("Warning:", "Error:", "Recommendation:"))] == [], printed


# ---------------------------------------------------------------- dev


def test_dev_pauses_every_schedule_and_trigger(user):
    jobs = _jobs(_validated("dev", user))
    triggers = {(key, kind): job[kind].get("pause_status")
                for key, job in jobs.items() for kind in TRIGGERS if kind in job}

    assert triggers, "the bundle schedules no job: nothing to check"
    assert triggers == dict.fromkeys(triggers, "PAUSED")


def test_dev_job_names_carry_the_developer_s_prefix(user):
    bundle = _validated("dev", user)
    short_name = bundle["workspace"]["current_user"]["short_name"]
    names = {key: job["name"] for key, job in _jobs(bundle).items()}

    assert names
    assert {key: name.startswith(f"[dev {short_name}] ") for key, name in names.items()} == (
        dict.fromkeys(names, True)), names


def test_two_developers_dev_jobs_do_not_share_tables_model_or_experiment():
    first, second = (_validated("dev", u) for u in USERS)

    assert sorted(_jobs(first)) == sorted(_jobs(second))
    shared = sorted(key for key in _jobs(first)
                    if _work(first, key) == _work(second, key))
    assert shared == [], (
        f"{USERS[0]} and {USERS[1]} deploying dev get the same tasks, clusters and "
        f"parameters (so the same tables, model and experiment) for {shared}")


# ---------------------------------------------------------------- prod


def test_prod_root_path_is_the_same_whoever_deploys():
    roots = {u: _validated("prod", u)["workspace"]["root_path"] for u in USERS}

    assert len(set(roots.values())) == 1, roots
    assert not any(u in root for u in USERS for root in roots.values()), roots


def test_prod_jobs_are_the_same_whoever_deploys():
    first, second = (_jobs(_validated("prod", u)) for u in USERS)

    differences = _differences(first, second)

    assert first
    assert not differences, "\n".join(differences)


def test_prod_runs_every_job_as_the_service_principal(user):
    bundle = _validated("prod", user)
    run_as = {"service_principal_name": SERVICE_PRINCIPAL}

    assert bundle["bundle"]["mode"] == "production"
    assert bundle.get("run_as") == run_as
    assert {key: job.get("run_as") for key, job in _jobs(bundle).items()} == (
        dict.fromkeys(_jobs(bundle), run_as))


def test_prod_grants_the_service_principal_only_what_the_jobs_use_of_its_schema(user):
    schemas = _validated("prod", user)["resources"]["schemas"]

    # the render's landing files are in a volume of that schema (main.sparkmlops.landing)
    assert sorted(schemas) == ["prod_schema"]
    schema = schemas["prod_schema"]
    assert (schema["catalog_name"], schema["name"]) == ("main", "sparkmlops")
    assert schema["grants"] == [{"principal": SERVICE_PRINCIPAL, "privileges": [
        "USE_SCHEMA", "SELECT", "MODIFY", "CREATE_TABLE", "CREATE_MODEL", "EXECUTE",
        "READ_VOLUME"]}]
