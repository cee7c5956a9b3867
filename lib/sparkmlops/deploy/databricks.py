"""A Databricks Asset Bundle: one job per sparkmlops job, on a job cluster with the wheel."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from sparkmlops.config import Settings
from sparkmlops.deploy.common import (
    JOB_CLUSTER_KEY,
    JOB_COMMANDS,
    is_remote,
    job_args,
    job_name,
    secret_refs,
    wheel_location,
)

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- Databricks Asset Bundle


def bundle_name(settings: Settings) -> str:
    return f"sparkmlops_{settings.dataset.name}"


def databricks_bundle(settings: Settings, *, out_dir: Path) -> dict[str, dict[str, Any]]:
    """The bundle's files, path relative to ``out_dir`` → content: databricks.yml and
    one resources/<job>-job.yml per job (the layout of mlops-stacks)."""
    files = {"databricks/databricks.yml": _bundle_root(settings)}
    library = _bundle_wheel(settings, resources_dir=out_dir / "databricks" / "resources")
    for job in JOB_COMMANDS:
        files[f"databricks/resources/{job}-job.yml"] = {
            "resources": {"jobs": {f"{bundle_name(settings)}_{job}":
                                   databricks_job(settings, job, wheel=library)}}}
    return files


def _bundle_root(settings: Settings) -> dict[str, Any]:
    prod: dict[str, Any] = {
        "mode": "production",
        # set explicitly, as production mode asks: one copy per deploying identity (the
        # CI's), and not under /Workspace/Shared, which every workspace user can write
        "workspace": {"root_path": "/Workspace/Users/${workspace.current_user.userName}"
                                   "/.bundle/${bundle.name}/${bundle.target}"},
    }
    principal = settings.deploy.databricks and settings.deploy.databricks.run_as_service_principal
    if principal:
        prod["run_as"] = {"service_principal_name": principal}
    return {
        "bundle": {"name": bundle_name(settings)},
        "include": ["resources/*.yml"],
        "targets": {
            # development: resources prefixed "[dev <user>]", schedules paused
            "dev": {"mode": "development", "default": True},
            "prod": prod,
        },
    }


def _bundle_wheel(settings: Settings, *, resources_dir: Path) -> str:
    """A remote wheel as is; a local one relative to the resource file (the bundle
    CLI resolves it there and uploads it on deploy)."""
    location = wheel_location(settings)
    if is_remote(location):
        return location
    local = Path(settings.project_dir) / location
    return os.path.relpath(local, resources_dir.resolve())


def databricks_conf_dir(settings: Settings) -> str:
    """Where Databricks jobs read the project's conf dir: ``deploy.conf_dir``, else the
    conf/ folder the bundle syncs into the workspace beside its own files."""
    return settings.deploy.conf_dir or "${workspace.file_path}/conf"


def databricks_job(settings: Settings, job: str, *, wheel: str) -> dict[str, Any]:
    """One bundle job: a python_wheel_task on a job cluster, schedule, notifications,
    permissions. ``permissions`` is a bundle key, not a Jobs API field."""
    deploy = settings.deploy
    definition: dict[str, Any] = {
        "name": job_name(settings, job),
        "max_concurrent_runs": 1,
        "tags": {"sparkmlops_dataset": settings.dataset.name, "sparkmlops_job": job},
        "job_clusters": [{"job_cluster_key": JOB_CLUSTER_KEY,
                          "new_cluster": _databricks_cluster(settings)}],
        "tasks": [{
            "task_key": JOB_COMMANDS[job][0],
            "job_cluster_key": JOB_CLUSTER_KEY,
            "python_wheel_task": {"package_name": "sparkmlops", "entry_point": "sparkmlops",
                                  "parameters": job_args(
                                      settings, job, conf_dir=databricks_conf_dir(settings))},
            "libraries": [{"whl": wheel}],
        }],
    }
    cron = getattr(deploy.schedule, job)
    if cron:
        definition["schedule"] = {"quartz_cron_expression": cron,
                                  "timezone_id": deploy.schedule.timezone,
                                  "pause_status": "UNPAUSED"}
    if deploy.notifications.on_failure:
        definition["email_notifications"] = {"on_failure": list(deploy.notifications.on_failure)}
    if deploy.permissions:
        definition["permissions"] = [p.model_dump(exclude_none=True) for p in deploy.permissions]
    return definition


def _databricks_cluster(settings: Settings) -> dict[str, Any]:
    spec = settings.deploy.databricks
    assert spec is not None  # resolve_targets checked it
    cluster: dict[str, Any] = {
        "spark_version": spec.spark_version,
        "node_type_id": spec.node_type_id,
        # dedicated (single user) access: Unity Catalog, and MLlib runs there (not on
        # standard access mode)
        "data_security_mode": "SINGLE_USER",
    }
    if spec.autoscale is not None:
        cluster["autoscale"] = spec.autoscale.model_dump()
    else:
        cluster["num_workers"] = spec.num_workers
    secrets = secret_refs(settings, "databricks")
    env = {**settings.deploy.env,
           **{name: f"{{{{secrets/{ref}}}}}" for name, ref in secrets.items()}}
    if env:
        # {{secrets/<scope>/<key>}}: Databricks puts the value in the env at cluster start
        cluster["spark_env_vars"] = env
    return cluster
