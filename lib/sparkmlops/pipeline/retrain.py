"""The retrain rules of ``pipeline --mode continuous``: why a batch calls for a new model."""

from __future__ import annotations

from sparkmlops.config import RetrainSettings
from sparkmlops.monitor.step import MonitorOutcome


def retrain_reasons(
    policy: RetrainSettings, monitor: MonitorOutcome, new_labelled: int
) -> list[str]:
    """Why the policy wants a retrain after this batch (empty: it does not).

    Any of: monitoring says ``alert`` (``on_alert``), a live metric of the batch is
    below its floor (``live_floor``), or at least ``min_new_labelled_rows`` labelled
    rows arrived since the champion's training data (0 turns that rule off).
    """
    reasons = []
    if policy.on_alert and monitor.status == "alert":
        reasons.append("monitoring alert: " + ", ".join(monitor.flagged[:8]))
    for metric, floor in sorted(policy.live_floor.items()):
        value = monitor.live.get(f"live_{metric}")
        if value is not None and value < floor:
            reasons.append(f"live {metric} {value:.4f} below the floor {floor}")
    if policy.min_new_labelled_rows and new_labelled >= policy.min_new_labelled_rows:
        reasons.append(f"{new_labelled} new labelled rows since the champion's training data "
                       f"(threshold {policy.min_new_labelled_rows})")
    return reasons
