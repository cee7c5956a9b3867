"""The dataset's ``monitor`` and ``retrain`` sections: how a model in service is watched,
and when ``pipeline --mode continuous`` retrains it."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from sparkmlops.config.base import StrictModel


class Levels(StrictModel):
    """Warn and alert levels of one metric: a ceiling when warn < alert (drift), a
    floor when warn > alert (live accuracy)."""

    warn: float
    alert: float

    def status(self, value: float) -> str:
        if self.warn <= self.alert:
            return "alert" if value >= self.alert else "warn" if value >= self.warn else "ok"
        return "alert" if value <= self.alert else "warn" if value <= self.warn else "ok"


def _default_drift_levels() -> dict[str, Levels]:
    return {"psi": Levels(warn=0.1, alert=0.25), "ks": Levels(warn=0.1, alert=0.2),
            "null_rate_increase": Levels(warn=0.05, alert=0.2),
            "out_of_range_rate": Levels(warn=0.02, alert=0.1),
            "unseen_rate": Levels(warn=0.02, alert=0.1)}


class MonitorSettings(StrictModel):
    """Thresholds of ``monitor``: drift metrics per feature and live model metrics.

    ``drift`` applies to every model input and to the prediction (``_score``, the
    positive-class probability, and ``_predicted``, the class); a batch's status is
    its worst row's. ``live`` levels apply once labels for scored rows arrive.
    """

    drift: dict[str, Levels] = Field(default_factory=_default_drift_levels)
    live: dict[str, Levels] = Field(default_factory=dict)

    @field_validator("drift")
    @classmethod
    def _known_drift_metrics(cls, drift: dict[str, Levels]) -> dict[str, Levels]:
        known = {"psi", "ks", "chi_square", "null_rate", "null_rate_increase",
                 "out_of_range_rate", "unseen_rate"}
        unknown = sorted(set(drift) - known)
        if unknown:
            raise ValueError(f"unknown drift metric(s) {unknown}; known: {sorted(known)}")
        return drift


class RetrainSettings(StrictModel):
    """When ``pipeline --mode continuous`` retrains after scoring and monitoring a batch.

    Any of: monitoring says ``alert`` (``on_alert``), a live metric of the batch is
    below its floor (``live_floor``), or at least ``min_new_labelled_rows`` labelled
    rows arrived since the champion's training data (0 turns it off). ``enabled:
    false`` records the decision but never retrains (a control run).

    ``on_alert`` fires when one metric (a feature's PSI, live accuracy, ...) is at its
    alert level in the latest batch and in at least ``breaches`` of the last
    ``of_last`` monitored batches (the monitoring table's history), as mlops-stacks
    retrains: one noisy batch is not a changed world. 1 of 1, the default: an alert in
    the latest batch.
    """

    enabled: bool = True
    on_alert: bool = True
    breaches: int = Field(1, ge=1)
    of_last: int = Field(1, ge=1)
    live_floor: dict[str, float] = Field(default_factory=dict)
    min_new_labelled_rows: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _breaches_within_the_window(self) -> RetrainSettings:
        if self.breaches > self.of_last:
            raise ValueError(f"retrain.breaches ({self.breaches}) cannot exceed retrain.of_last "
                             f"({self.of_last}): the breaches are counted in the last of_last "
                             "monitored batches")
        return self
