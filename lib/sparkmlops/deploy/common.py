"""What every deploy target shares: the jobs, their arguments, the wheel, placeholders."""

from __future__ import annotations

import logging
import re
from typing import Any

from sparkmlops import __version__
from sparkmlops.config import DeploySettings, Settings
from sparkmlops.errors import ConfigError

log = logging.getLogger(__name__)


TARGETS = ("databricks", "emr", "github")
PLATFORMS = ("databricks", "emr")
# the CLI arguments of each job, before --env/--dataset/--conf-dir
JOB_COMMANDS: dict[str, list[str]] = {
    "batch": ["pipeline", "--mode", "batch"],
    "continuous": ["pipeline", "--mode", "continuous"],
    "maintain": ["maintain"],
}
PLACEHOLDER = "CHANGE-ME"
JOB_CLUSTER_KEY = "sparkmlops"
# the pinned Databricks CLI of the generated workflows (mlops-stacks pins it the same way)
DATABRICKS_CLI_VERSION = "v0.236.0"


# ---------------------------------------------------------------- shared pieces


def resolve_targets(requested: list[str], settings: Settings) -> list[str]:
    """``--target`` values (repeatable, comma-separated, ``all``) → targets in TARGETS order.

    ``all`` means github plus every platform the env configures (``deploy.databricks``,
    ``deploy.emr``). A platform named explicitly must be configured.
    """
    names = {name.strip() for value in requested for name in value.split(",") if name.strip()}
    unknown = sorted(names - {*TARGETS, "all"})
    if unknown or not names:
        raise ConfigError(f"--target: unknown target(s) {unknown or ['(none)']}; choose from "
                          f"{', '.join(TARGETS)} or all (comma-separated or repeated)")
    deploy = settings.deploy
    if "all" in names:
        names = {"github", *(p for p in PLATFORMS if getattr(deploy, p) is not None)}
    for platform in PLATFORMS:
        if platform in names and getattr(deploy, platform) is None:
            raise ConfigError(f"deploy.{platform}: not set for env {settings.env!r}; "
                              f"--target {platform} needs it (see conf/{platform}.yml)")
    if "github" in names and not deployed_platforms(names, deploy):
        raise ConfigError(f"--target github: env {settings.env!r} configures no platform "
                          "to deploy to (deploy.databricks or deploy.emr)")
    return [t for t in TARGETS if t in names]


def deployed_platforms(targets: set[str] | list[str], deploy: DeploySettings) -> list[str]:
    """The platforms the GitHub workflows deploy to: those asked for, else all configured."""
    asked = [p for p in PLATFORMS if p in targets]
    return asked or [p for p in PLATFORMS if getattr(deploy, p) is not None]


def job_args(settings: Settings, job: str) -> list[str]:
    """The ``sparkmlops`` command line of a job, e.g. ``pipeline --mode batch --env emr ...``."""
    args = [*JOB_COMMANDS[job], "--env", settings.env, "--dataset", settings.dataset.name]
    if settings.deploy.conf_dir:
        args += ["--conf-dir", settings.deploy.conf_dir]
    return args


def wheel_location(settings: Settings) -> str:
    return settings.deploy.wheel.replace("{version}", __version__)


def wheel_name(settings: Settings) -> str:
    return wheel_location(settings).rsplit("/", 1)[-1]


def job_name(settings: Settings, job: str) -> str:
    return f"sparkmlops-{settings.dataset.name}-{job}"


def placeholders(settings: Settings) -> list[str]:
    """Key paths under ``deploy`` whose value still holds CHANGE-ME."""
    found: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}.{i}")
        elif isinstance(node, str) and PLACEHOLDER in node:
            found.append(path)

    walk(settings.deploy.model_dump(mode="json"), "deploy")
    return found


def is_remote(path: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", path)) or path.startswith(
        ("/Volumes/", "/Workspace/"))
