"""The generated Databricks Asset Bundle against the bundle JSON schema of the official CLI
(`databricks bundle schema` of v0.298.0, committed as a fixture): every file the renderer
writes, and the bundle they make together, whatever targets, variables and resources the
renderer puts in. test_deploy.py checks each job's Jobs API fields with databricks-sdk's
JobSettings; this checks the bundle's own keys around them (targets, modes, run_as,
permissions, include, presets, variables) and the types and enums of the CLI that
deploys it. `make bundle-check` runs the CLI itself on the bundle (tests/platform/).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from sparkmlops.config import load_settings
from sparkmlops.deploy import render

SCHEMA = (Path(__file__).resolve().parents[2]
          / "fixtures/databricks/bundle-schema-v0.298.0.json")
# what every project sets before deploying: a landing path the cluster can read
PROJECT = ["dataset.source.path=/Volumes/main/sparkmlops/landing/penguins"]
# what a project may configure beside: every option the bundle renders differently for
EVERY_OPTION = [
    "deploy.schedule.batch=0 30 1 ? * MON",
    "deploy.notifications.on_failure=[ml-oncall@example.com]",
    "deploy.permissions=[{level: CAN_MANAGE_RUN, group_name: ml-team},"
    " {level: CAN_VIEW, user_name: ana@example.com},"
    " {level: CAN_MANAGE, service_principal_name: 6a1f3b2c-0d4e-4f5a-9b8c-7d6e5f4a3b2c}]",
    "deploy.databricks.run_as_service_principal=6a1f3b2c-0d4e-4f5a-9b8c-7d6e5f4a3b2c",
    "deploy.databricks.num_workers=null",
    "deploy.databricks.autoscale={min_workers: 1, max_workers: 4}",
    "deploy.wheel=dist/sparkmlops-{version}-py3-none-any.whl",
    "deploy.conf_dir=dbfs:/Volumes/main/ml/conf",
    "deploy.env={MLFLOW_EXPERIMENT_NAME: /Shared/penguins}",
    "deploy.secrets={MLFLOW_TRACKING_TOKEN: {databricks: ml-scope/mlflow-token}}",
]


@cache
def _validator() -> jsonschema.protocols.Validator:
    # the CLI's schema names no draft: it is written for 2020-12 ($defs)
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _bundle_files(tmp_path: Path, *overrides: str) -> dict[str, Any]:
    settings = load_settings("databricks", "penguins",
                             overrides=[f"project_dir={tmp_path}", *PROJECT, *overrides])
    files = render(settings, ["databricks"], out_dir=tmp_path)
    return {path.relative_to(tmp_path).as_posix(): yaml.safe_load(text)
            for path, text in files.items() if path.suffix == ".yml"}


def _merged(documents: list[dict[str, Any]], where: str = "") -> dict[str, Any]:
    """The documents as the CLI merges a bundle's root with its includes: mappings merge,
    and a key two files both set is an error, as the CLI's duplicate-resource check."""
    merged: dict[str, Any] = {}
    for document in documents:
        for key, value in document.items():
            if key not in merged:
                merged[key] = value
            elif isinstance(merged[key], dict) and isinstance(value, dict):
                merged[key] = _merged([merged[key], value], f"{where}.{key}")
            else:
                raise AssertionError(f"{where}.{key}".lstrip(".") + " is set by two files")
    return merged


def _errors(document: dict[str, Any]) -> list[str]:
    """`path: message` of each error, at the key that is wrong: every level of the CLI's
    schema is a oneOf (the value, or a ${...} reference), which alone would report the
    whole section."""
    errors = (jsonschema.exceptions.best_match([e]) for e in _validator().iter_errors(document))
    return sorted(f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
                  for e in errors)


@pytest.mark.parametrize("overrides", [[], EVERY_OPTION], ids=["packaged", "every-option"])
def test_every_bundle_file_and_the_whole_bundle_fit_the_cli_schema(tmp_path, overrides):
    files = _bundle_files(tmp_path, *overrides)
    root = files.pop("databricks/databricks.yml")

    assert files, "the bundle has no resource file"
    assert sorted(files) == sorted(f for f in files if f.startswith("databricks/resources/"))
    for name, document in {"databricks/databricks.yml": root, **files}.items():
        assert _errors(document) == [], name
    bundle = _merged([root, *files.values()])
    assert _errors(bundle) == []
    assert bundle["resources"]["jobs"], "the bundle defines no job"


def _first_job(bundle: dict[str, Any]) -> dict[str, Any]:
    return next(iter(bundle["resources"]["jobs"].values()))


@pytest.mark.parametrize(("mutate", "expected"), [
    (lambda bundle: bundle["targets"]["dev"].update(mdoe="development"),
     "targets.dev: Additional properties are not allowed ('mdoe' was unexpected)"),
    (lambda bundle: _first_job(bundle).update(max_concurent_runs=1),
     "resources.jobs.{job}: Additional properties are not allowed "
     "('max_concurent_runs' was unexpected)"),
    (lambda bundle: _first_job(bundle).update(schedule={
        "quartz_cron_expression": "0 0 3 * * ?", "timezone_id": "UTC",
        "pause_status": "SOMETIMES"}),
     "resources.jobs.{job}.schedule.pause_status: 'SOMETIMES' is not valid under any of the "
     "given schemas"),
], ids=["unknown-target-key", "misspelt-job-key", "bad-pause-status"])
def test_the_schema_check_bites(tmp_path, mutate, expected):
    files = _bundle_files(tmp_path)
    bundle = _merged(list(files.values()))
    mutate(bundle)

    assert _errors(bundle) == [expected.format(job=next(iter(bundle["resources"]["jobs"])))]
