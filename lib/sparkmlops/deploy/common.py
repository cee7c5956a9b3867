"""What every deploy target shares: the jobs, their arguments, the wheel, placeholders."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

from sparkmlops import __version__
from sparkmlops.config import DeploySettings, Settings
from sparkmlops.errors import ConfigError

log = logging.getLogger(__name__)


TARGETS = ("databricks", "emr", "github", "azure-devops")
PLATFORMS = ("databricks", "emr")
# the CLI arguments of each job, before --env/--dataset/--conf-dir
JOB_COMMANDS: dict[str, list[str]] = {
    "batch": ["pipeline", "--mode", "batch"],
    "continuous": ["pipeline", "--mode", "continuous"],
    "maintain": ["maintain"],
}
PLACEHOLDER = "CHANGE-ME"
JOB_CLUSTER_KEY = "sparkmlops"
# the pinned Databricks CLI of the generated workflows (mlops-stacks pins it the same way):
# a tag of databricks/setup-cli and of github.com/databricks/cli (v0.236.0 is neither
# served by the Go module proxy nor a setup-cli tag; v0.298.0 built here, FIELD-NOTES)
DATABRICKS_CLI_VERSION = "v0.298.0"


# ---------------------------------------------------------------- shared pieces


def resolve_targets(requested: list[str], settings: Settings) -> list[str]:
    """``--target`` values (repeatable, comma-separated, ``all``) → targets in TARGETS order.

    ``all`` means github plus every platform the env configures (``deploy.databricks``,
    ``deploy.emr``). A platform named explicitly must be configured. ``azure-devops``
    (azure-pipelines.yml, for the project's platforms) is never part of ``all``: a
    project has one CI.
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


def job_args(settings: Settings, job: str, *, conf_dir: str) -> list[str]:
    """The ``sparkmlops`` command line of a job on a platform, e.g. ``pipeline --mode batch
    --env emr --dataset penguins --conf-dir s3://acme/sparkmlops/conf``.

    Always names the conf dir: a cluster's working directory has no ``./conf``.
    """
    return [*JOB_COMMANDS[job], "--env", settings.env, "--dataset", settings.dataset.name,
            "--conf-dir", conf_dir]


def job_script(command: str) -> str:
    """The text of ``jobs/<command>.py``: the entry script ``spark-submit`` runs on EMR,
    the CLI with the command filled in. The deploy workflow writes it from the installed
    wheel, so a project needs no sparkmlops checkout."""
    if command not in {args[0] for args in JOB_COMMANDS.values()}:
        raise ConfigError(f"no job runs sparkmlops {command!r}; job commands: "
                          f"{', '.join(sorted({a[0] for a in JOB_COMMANDS.values()}))}")
    return (f'"""sparkmlops {command}, as an EMR step runs it (generated from sparkmlops '
            f'{__version__})."""\n'
            "import sys\n\n"
            "from sparkmlops.cli import job_main\n\n"
            f"sys.exit(job_main({command!r})(None))\n")


def secret_refs(settings: Settings, platform: str) -> dict[str, str]:
    """``{ENV_NAME: reference}`` of ``deploy.secrets`` on ``platform``: a Databricks
    ``scope/key`` or a Secrets Manager ARN. A secret without one for the platform is a
    ConfigError: the job would start without it."""
    field = "databricks" if platform == "databricks" else "aws_secret_arn"
    refs = {name: getattr(ref, field) for name, ref in settings.deploy.secrets.items()}
    missing = sorted(name for name, ref in refs.items() if ref is None)
    if missing:
        raise ConfigError(f"--target {platform}: deploy.secrets {missing} name no {field} "
                          f"(where the {platform} job reads them)")
    return refs


def artifact_dir(settings: Settings) -> str:
    """The folder of the wheel (``s3://...``, ``/Volumes/...``, ``dbfs:/...``)."""
    return wheel_location(settings).rsplit("/", 1)[0]


def check_cluster_paths(settings: Settings, platform: str, *, conf_dir: str) -> None:
    """Refuse, at deploy time, a path that resolves to this machine's project folder.

    On a cluster a relative path resolves against the project dir, which is the conf
    dir's parent there (``conf_dir``): nothing uploads landing files or a lake beside
    the conf dir. A path under this machine's project folder cannot exist there either.
    ``project_dir`` set to a URI names the project's root on the platform, and makes
    relative data paths resolve there.
    """
    project = settings.project_dir
    lake_root = is_remote(project)
    where = (f"on {platform} it would resolve against {project}" if lake_root else
             f"on {platform} the project dir is the conf dir's parent, "
             f"{conf_dir.rstrip('/').rsplit('/', 1)[0]}, where nothing uploads data")
    paths = {"dataset.source.path": settings.dataset.source.path}
    if settings.storage.catalog is None or settings.storage.external:
        paths["storage.root"] = settings.storage.root
    problems = []
    for key, path in paths.items():
        if _on_this_machine(path, settings):
            problems.append(f"{key} {path!r} is a path of this machine's project")
        elif not is_remote(path) and not path.startswith("/") and not lake_root:
            problems.append(f"{key} {path!r} is relative ({where})")
    state = settings.state_dir
    if is_remote(state) and not state.startswith(("/Volumes/", "/Workspace/")):
        problems.append(f"state_dir {state!r} must be a folder on the driver's disk")
    elif not state.startswith("/") or _on_this_machine(state, settings):
        problems.append(f"state_dir {state!r} is not a folder the {platform} driver has "
                        "(set an absolute path, e.g. /mnt/tmp/sparkmlops)")
    if problems:
        raise ConfigError(f"--target {platform}: " + "; ".join(problems)
                          + f"; set them in conf/{settings.env}.yml (a URI where the data is,"
                            " or project_dir: the project's root in the lake)")


def _on_this_machine(path: str, settings: Settings) -> bool:
    project = settings.project_dir
    if is_remote(project) or is_remote(path) or not path.startswith("/"):
        return False
    return path == project or path.startswith(project.rstrip("/") + "/")


def wheel_location(settings: Settings) -> str:
    return settings.deploy.wheel.replace("{version}", __version__)


def wheel_name(settings: Settings) -> str:
    return wheel_location(settings).rsplit("/", 1)[-1]


def job_name(settings: Settings, job: str) -> str:
    return f"sparkmlops-{settings.dataset.name}-{job}"


def placeholders(settings: Settings) -> list[str]:
    """Key paths of the effective settings whose value still holds CHANGE-ME, in the
    settings' order: ``init`` puts them in ``project_dir``, ``tracking.tracking_uri`` and
    ``storage`` as well as under ``deploy`` (a relative data path under a placeholder
    ``project_dir`` is listed as ``project_dir``)."""
    return [path for key, value in settings.model_dump(mode="json").items()
            for path, text in string_leaves(value, key) if PLACEHOLDER in text]


def string_leaves(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string under ``node`` (dicts and lists of a settings dump) with its key path,
    ``deploy.emr.cluster_id`` or ``deploy.permissions.0.level``, in document order."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from string_leaves(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from string_leaves(value, f"{path}.{i}")
    elif isinstance(node, str):
        yield path, node


def is_remote(path: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", path)) or path.startswith(
        ("/Volumes/", "/Workspace/"))
