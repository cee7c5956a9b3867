"""The dataset's ``crowd`` section: judgments of several labelers per item, turned into
one accepted label per item by the ``labels`` stage (``sparkmlops.labels``).

Example (the key names are the public contract)::

    crowd:
      source: {path: data/sample/penguins_crowd/annotations, format: csv,
               options: {header: "true"}}
      item_keys: [study_name, species, sample_number]  # match the dataset's `keys`, in order
      worker: worker_id
      label: label
      classes: [FEMALE, MALE]
      method: dawid_skene      # majority_vote | wawa | one_coin | dawid_skene
      accept: {min_labels: 9, min_agreement: 7}   # and/or {min_confidence: 0.99}
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from sparkmlops.config.base import IDENTIFIER, StrictModel
from sparkmlops.config.ingest import SourceSettings

Method = Literal["majority_vote", "wawa", "one_coin", "dawid_skene"]


class AcceptSettings(StrictModel):
    """The bar an item's consensus label must clear to be accepted (``crowd.accept``).

    ``min_labels`` judgments on the item, at least ``min_agreement`` of them equal to the
    consensus label ("7 of 9": ``{min_labels: 9, min_agreement: 7}``), and a confidence
    (posterior, or agreement share for majority vote) of at least ``min_confidence``.
    Every bar given must hold; an item below one goes to ``needs_review`` with why.
    """

    min_labels: int | None = Field(None, ge=1)
    min_agreement: int | None = Field(None, ge=1)
    min_confidence: float | None = Field(None, gt=0, le=1)

    @model_validator(mode="after")
    def _a_bar_is_set(self) -> AcceptSettings:
        if self.min_labels is None and self.min_agreement is None and self.min_confidence is None:
            raise ValueError("crowd.accept: set min_labels and min_agreement (k of n), "
                             "min_confidence, or both")
        if (self.min_labels is not None and self.min_agreement is not None
                and self.min_agreement > self.min_labels):
            raise ValueError(f"crowd.accept.min_agreement: {self.min_agreement} agreeing "
                             f"labels can never come from min_labels {self.min_labels}")
        return self


class EmSettings(StrictModel):
    """How the EM methods (``one_coin``, ``dawid_skene``) iterate (``crowd.em``): until the
    log-likelihood moves less than ``tolerance`` or ``max_iterations``; ``smoothing`` is
    the pseudo-count added to every confusion cell and class prior, so a worker with one
    judgment cannot produce a zero probability."""

    max_iterations: int = Field(100, ge=1, le=10_000)
    tolerance: float = Field(1e-6, gt=0)
    smoothing: float = Field(0.01, gt=0)


class SpammerSettings(StrictModel):
    """When a worker is flagged a spammer in ``worker_quality`` (``crowd.spammers``): a
    spammer score (how little the answers depend on the truth) below ``max_score`` over
    at least ``min_judgments`` judgments."""

    max_score: float = Field(0.2, ge=0, le=1)
    min_judgments: int = Field(5, ge=1)


class CrowdSettings(StrictModel):
    """Where the judgments land and how they become labels (see the module docstring)."""

    source: SourceSettings
    item_keys: list[str] = Field(min_length=1)
    worker: str = Field(pattern=IDENTIFIER)
    label: str = Field(pattern=IDENTIFIER)
    classes: list[str] = Field(min_length=2)
    method: Method = "dawid_skene"
    accept: AcceptSettings
    em: EmSettings = Field(default_factory=EmSettings)
    spammers: SpammerSettings = Field(default_factory=SpammerSettings)

    @field_validator("classes", mode="before")
    @classmethod
    def _classes_as_text(cls, value: Any) -> Any:
        # YAML's [0, 1] are the labels "0" and "1" as the files carry them
        if isinstance(value, list):
            return [str(v).lower() if isinstance(v, bool) else str(v) for v in value]
        return value

    @model_validator(mode="after")
    def _distinct_names(self) -> CrowdSettings:
        for key in self.item_keys:
            if not isinstance(key, str) or not key:
                raise ValueError(f"crowd.item_keys: {key!r} is not a column name")
        names = [*self.item_keys, self.worker, self.label]
        if len(set(names)) != len(names):
            raise ValueError(f"crowd: item_keys, worker and label name the same column twice "
                             f"({names})")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"crowd.classes: {self.classes} repeats a class")
        return self
