"""The MLflow model registry, as the steps use it: versions, aliases and their tags.

Stages never call ``MlflowClient`` themselves: a step gets a ``ModelRegistry`` from its
tracker (``tracker.registry``), so its registry calls are timed as tracking time, and
the code that decides (``promote.promotion``) can be read without MLflow in mind.
"""

from __future__ import annotations

import json
import logging
import tempfile
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from sparkmlops.errors import MissingInputError
from sparkmlops.redact import redact, redact_text

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
# written on a version by the promotion gate: a version without it was never judged
DECIDED_TAG = "promotion.mode"
# written by ``rollback`` on the version @champion moved back from: the gate leaves it
# alone (it would promote it again) unless it is named with ``--challenger-version``
ROLLED_BACK_TAG = "rollback.rolled_back"

# What train tags a version with: the few keys a user filters or sorts versions on in the
# MLflow UI (``sparkmlops.dataset`` is the runs' dataset tag, ``sparkmlops.batch_id`` their
# batch tag). Everything else about the version (the training table and where it is, the
# code, the config hash, every holdout metric, crowd labels) is in its model card, one
# JSON artifact of the training run that ``TAG_MODEL_CARD`` names: one tag per detail was 16
# from train (9 of lineage, 7 holdout metrics of a binary classifier), crowding its page.
TAG_TRAINING_RUN = "sparkmlops.training_run"
TAG_TRAINING_TABLE_VERSION = "sparkmlops.training_table_version"
TAG_METRIC = "sparkmlops.metric."  # + the model's primary metric: the one the gate judges
TAG_MODEL_CARD = "sparkmlops.model_card"
MODEL_CARD_ARTIFACT = "model_card.json"


@dataclass
class ModelRegistry:
    """Registry calls on one client; ``clock.timing()`` wraps each of them."""

    client: MlflowClient
    clock: Any = None

    def _timed(self) -> AbstractContextManager[None]:
        return self.clock.timing() if self.clock is not None else nullcontext()

    def version(self, name: str, version: str) -> ModelVersion:
        with self._timed():
            return self.client.get_model_version(name, version)

    def by_alias(self, name: str, alias: str) -> ModelVersion | None:
        """The version carrying ``alias``, or None when the model or alias does not exist."""
        with self._timed():
            try:
                return self.client.get_model_version_by_alias(name, alias)
            except MlflowException:
                return None

    def require(self, name: str, alias_or_version: str) -> ModelVersion:
        """Resolve ``@alias`` or a version number to a ModelVersion, or MissingInputError."""
        if alias_or_version.isdigit():
            try:
                return self.version(name, alias_or_version)
            except MlflowException:
                raise MissingInputError(
                    f"model {name} has no version {alias_or_version}") from None
        version = self.by_alias(name, alias_or_version)
        if version is None:
            raise MissingInputError(f"model {name} has no version with alias @{alias_or_version}")
        return version

    @staticmethod
    def trained_on(version: ModelVersion) -> int | None:
        """The gold version a model version was trained on (its
        ``sparkmlops.training_table_version`` tag, written by train), or None when the
        tag is missing or empty."""
        value = (version.tags or {}).get(TAG_TRAINING_TABLE_VERSION)
        return int(value) if value is not None and value.isdigit() else None

    def model_card(self, version: ModelVersion) -> dict[str, Any]:
        """The version's model card (``model_card.json`` of its training run, which the
        ``sparkmlops.model_card`` tag names): every detail train recorded about it.

        Raises:
            MissingInputError: the version has no card (registered by hand, or before
                versions had one), or its artifact store no longer holds it.
        """
        uri = (version.tags or {}).get(TAG_MODEL_CARD)
        where = f"model {version.name} version {version.version}"
        if not uri:
            raise MissingInputError(f"{where} has no {TAG_MODEL_CARD} tag: it was not "
                                    "registered by train, or before versions had a model card")
        run_id, _, path = uri.removeprefix("runs:/").partition("/")
        with self._timed():
            try:  # through this client: its tracking store, not the process's default
                return dict(json_artifact(self.client, run_id, path))
            except (MlflowException, OSError, ValueError):
                raise MissingInputError(f"{where}: its model card {uri} cannot be read; "
                                        "is the artifact store gone?") from None

    def set_alias(self, name: str, alias: str, version: str) -> None:
        with self._timed():
            self.client.set_registered_model_alias(name, alias, version)

    def tag_version(self, name: str, version: str, tags: dict[str, object]) -> None:
        with self._timed():
            for key, value in redact({k: str(v) for k, v in tags.items()}).items():
                self.client.set_model_version_tag(name, version, key, value)

    def describe_version(self, name: str, version: str, description: str) -> None:
        with self._timed():
            self.client.update_model_version(name, version,
                                             description=redact_text(description))

    def versions_to_judge(self, name: str, *, asked: str | None) -> list[str]:
        """The versions ``promote`` judges, oldest first.

        Every version registered after the current champion (every version when there
        is none) that carries no promotion decision, plus ``asked`` (the challenger the
        caller named, judged again even if it was judged before), plus the champion
        itself when it carries no decision (it got the alias without the gate's record).
        Versions older than the champion are left alone: the champion they lost to
        already replaced them; so are versions ``rollback`` moved @champion away from.
        """
        champion = self.by_alias(name, CHAMPION)
        after = int(champion.version) if champion is not None else 0
        versions = self.all_versions(name)
        chosen = {int(v.version) for v in versions
                  if int(v.version) >= after and DECIDED_TAG not in (v.tags or {})
                  and ROLLED_BACK_TAG not in (v.tags or {})}
        if asked is not None:
            chosen.add(int(asked))
        return [str(v) for v in sorted(chosen)]

    def all_versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name`` with its tags (none when the model does not exist)."""
        with self._timed():
            return list(self.client.search_model_versions(f"name = '{name}'"))

    def versions_tagged(self, name: str, key: str, value: str) -> list[str]:
        """The versions of ``name`` whose tag ``key`` is ``value``, oldest first."""
        with self._timed():
            versions = self.client.search_model_versions(f"name = '{name}'")
        return [str(v) for v in sorted(int(v.version) for v in versions
                                       if (v.tags or {}).get(key) == value)]

    def unfinished_run_note(self, name: str, version: str) -> str | None:
        """Why the run that registered ``version`` cannot vouch for it, or None if it finished."""
        model_version = self.version(name, version)
        run_id = model_version.run_id or (model_version.tags or {}).get(TAG_TRAINING_RUN)
        if not run_id:
            return None
        try:
            with self._timed():
                status = self.client.get_run(run_id).info.status
        except MlflowException:
            return f"run {run_id} that registered v{version} is not in the tracking store"
        if status == "FINISHED":
            return None
        return f"registered by run {run_id}, which did not finish (status {status})"


def json_artifact(client: MlflowClient, run_id: str, path: str) -> Any:
    """A JSON artifact of a run, read through ``client`` (its tracking store). Downloaded
    into a temporary folder that is removed afterwards: MLflow's own default is a new
    folder per call, left behind. Raises what the download or the parse raises."""
    with tempfile.TemporaryDirectory(prefix="sparkmlops-artifact-") as folder:
        return json.loads(Path(client.download_artifacts(run_id, path, folder)).read_text())
