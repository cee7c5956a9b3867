"""What the runs recorded, read back: the MLflow side of ``sparkmlops lineage``.

Every step run tags its step, dataset, batch, git commit, config hash and code identity,
and logs the Delta versions it read and wrote as ``input.<table>.version`` /
``output.<table>.version`` params (``runs.py``); train tags the model version it
registers with its training run and table version. This module reads those back as plain
values (:class:`RecordedRun`, :class:`RecordedModelVersion`), without touching MLflow's
global state: it neither sets the tracking URI nor creates the experiment, so looking at
a store that holds no run leaves it as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from sparkmlops.config import Settings
from sparkmlops.errors import MissingInputError
from sparkmlops.tables import check_batch_id
from sparkmlops.tracking.owners import TAG_DATASET, TAG_STEP
from sparkmlops.tracking.provenance import TAG_VERSION, TAG_WHEEL_SHA256
from sparkmlops.tracking.runs import TAG_BATCH, TAG_CONFIG_HASH, TAG_GIT_COMMIT


@dataclass(frozen=True)
class RecordedRun:
    """One step run as recorded: identity, the table versions it read and wrote, its code."""

    run_id: str
    step: str
    status: str
    start_time: int  # ms since the epoch
    batch_id: str | None = None
    inputs: dict[str, int] = field(default_factory=dict)  # table fqn -> version read
    outputs: dict[str, int] = field(default_factory=dict)  # table fqn -> version written
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def code(self) -> dict[str, str | None]:
        """The code and config of the run: git commit, package version, wheel, config hash."""
        return {"git_commit": self.tags.get(TAG_GIT_COMMIT),
                "sparkmlops_version": self.tags.get(TAG_VERSION),
                "wheel_sha256": self.tags.get(TAG_WHEEL_SHA256),
                "config_hash": self.tags.get(TAG_CONFIG_HASH)}


@dataclass(frozen=True)
class RecordedModelVersion:
    """A registered model version: the run that logged it and the tags train wrote on it."""

    name: str
    version: str
    run_id: str
    aliases: list[str]
    tags: dict[str, str]


def recorded_run(run: Run) -> RecordedRun:
    """The values of an MLflow run that lineage needs."""
    params, tags = dict(run.data.params), dict(run.data.tags)
    return RecordedRun(
        run_id=run.info.run_id, step=tags.get(TAG_STEP, ""), status=run.info.status,
        start_time=int(run.info.start_time or 0), batch_id=tags.get(TAG_BATCH),
        inputs=_versions(params, "input."), outputs=_versions(params, "output."),
        params=params, tags=tags)


def _versions(params: dict[str, str], prefix: str) -> dict[str, int]:
    """``{table: version}`` from the ``<prefix><table>.version`` params (a table that did
    not exist when read is logged as ``None`` and left out)."""
    return {key.removeprefix(prefix).removesuffix(".version"): int(value)
            for key, value in params.items()
            if key.startswith(prefix) and key.endswith(".version") and value.isdigit()}


@dataclass
class RunRecords:
    """The recorded runs and model versions of one dataset's experiment, read only."""

    client: MlflowClient
    experiment_id: str
    dataset: str

    @classmethod
    def of(cls, settings: Settings) -> RunRecords:
        """The records of the settings' tracking store and experiment.

        Raises:
            MissingInputError: the experiment does not exist (no run ever recorded there).
        """
        tracking = settings.tracking
        client = MlflowClient(tracking_uri=tracking.tracking_uri,
                              registry_uri=tracking.registry_uri)
        experiment = client.get_experiment_by_name(tracking.experiment)
        if experiment is None:
            raise MissingInputError(
                f"no MLflow experiment {tracking.experiment!r} in this tracking store: "
                "no run of this dataset was recorded there")
        return cls(client, experiment.experiment_id, settings.dataset.name)

    def run(self, run_id: str) -> RecordedRun:
        try:
            return recorded_run(self.client.get_run(run_id))
        except MlflowException:
            raise MissingInputError(f"no MLflow run {run_id} in this tracking store") from None

    def runs(self, step: str, *, batch_id: str | None = None) -> list[RecordedRun]:
        """Every run of ``step`` for the dataset (of one batch when given), oldest first."""
        # MLflow's filter is text: the dataset is an identifier (config), the step one of
        # ours and the batch id checked (letters, digits, '._-'), so none can close a quote
        conditions = [f"tags.`{TAG_DATASET}` = '{self.dataset}'", f"tags.`{TAG_STEP}` = '{step}'"]
        if batch_id is not None:
            conditions.append(f"tags.`{TAG_BATCH}` = '{check_batch_id(batch_id)}'")
        found: list[RecordedRun] = []
        token: str | None = None
        while True:
            page = self.client.search_runs(
                [self.experiment_id], filter_string=" AND ".join(conditions),
                order_by=["attributes.start_time ASC"], max_results=1000, page_token=token)
            found += [recorded_run(run) for run in page]
            token = page.token
            if not token:
                return found

    def model_version(self, name: str, version: str) -> RecordedModelVersion | None:
        """The registered version, or None when the registry no longer has it."""
        try:
            found = self.client.get_model_version(name, version)
        except MlflowException:
            return None
        return RecordedModelVersion(name=name, version=str(found.version),
                                    run_id=str(found.run_id), aliases=list(found.aliases or []),
                                    tags=dict(found.tags or {}))
