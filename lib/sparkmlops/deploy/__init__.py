"""``sparkmlops deploy``: job definitions for Databricks, EMR and GitHub Actions from config.

The same settings a job runs with (``--env``, ``--dataset``, ``--conf-dir``, ``--set``)
say what to deploy; the ``deploy:`` section of the env file adds the schedule, cluster
size, notifications, wheel location and permissions. Three jobs are defined once and
written for each platform:

- ``batch``: ``sparkmlops pipeline --mode batch`` (ingest → … → train → promote → predict)
- ``continuous``: ``sparkmlops pipeline --mode continuous`` (score with @champion,
  monitor, retrain and promote when ``dataset.retrain`` says so)
- ``maintain``: ``sparkmlops maintain`` (OPTIMIZE / Z-ORDER and VACUUM)

Each job is one ``pipeline`` (or ``maintain``) task, not a task per step: the pipeline
computes the batch id once, hands each step the exact Delta version the previous one
wrote, nests every step under one parent MLflow run, and treats a challenger that fails
the promotion gate as an outcome (the batch is still scored by the champion). Separate
tasks would each recompute the batch id (a file landing between tasks would split the
batch), lose the parent run, and a failed gate (exit 5) would stop the predict task.
A retry re-runs the whole pipeline, which is idempotent by design.

Example::

    files = render(settings, resolve_targets(["all"], settings), out_dir=Path("deploy"))
    write_files(files)
"""

from sparkmlops.deploy.common import placeholders, resolve_targets
from sparkmlops.deploy.databricks import databricks_bundle
from sparkmlops.deploy.emr import (
    aws_cron,
    emr_add_steps,
    emr_failure_rule,
    emr_schedules,
    emr_start_job_run,
)
from sparkmlops.deploy.github import github_workflows
from sparkmlops.deploy.render import render, write_files

__all__ = [
    "aws_cron", "databricks_bundle", "emr_add_steps", "emr_failure_rule", "emr_schedules",
    "emr_start_job_run", "github_workflows", "placeholders", "render", "resolve_targets",
    "write_files",
]
