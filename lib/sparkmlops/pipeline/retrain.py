"""The retrain rules of ``pipeline --mode continuous``: why a batch calls for a new model."""

from __future__ import annotations

from sparkmlops.config import RetrainSettings
from sparkmlops.monitor.step import MonitorOutcome


def retrain_reasons(
    policy: RetrainSettings, monitor: MonitorOutcome, new_labelled: int,
    alerts: list[set[str]] | None = None,
) -> list[str]:
    """Why the policy wants a retrain after this batch (empty: it does not).

    Any of: monitoring says ``alert`` (``on_alert``; with ``of_last`` over 1, a metric
    at its alert level in the latest batch and in ``breaches`` of the last ``of_last``,
    judged on ``alerts``: see ``sustained_alerts``), a live metric of the batch is below
    its floor (``live_floor``), or at least ``min_new_labelled_rows`` labelled rows
    arrived since the champion's training data (0 turns that rule off).
    """
    reasons = []
    if policy.on_alert and policy.of_last == 1:
        if monitor.status == "alert":
            reasons.append("monitoring alert: " + ", ".join(monitor.flagged[:8]))
    elif policy.on_alert:
        window = (alerts or [])[-policy.of_last:]
        sustained = sustained_alerts(window, policy.breaches)
        if sustained:
            reasons.append(
                f"monitoring alert in the latest batch and in at least {policy.breaches} of "
                f"the last {len(window)} monitored: "
                + ", ".join(f"{m} ({n} of {len(window)})" for m, n in sustained.items()))
    for metric, floor in sorted(policy.live_floor.items()):
        value = monitor.live.get(f"live_{metric}")
        if value is not None and value < floor:
            reasons.append(f"live {metric} {value:.4f} below the floor {floor}")
    if policy.min_new_labelled_rows and new_labelled >= policy.min_new_labelled_rows:
        reasons.append(f"{new_labelled} new labelled rows since the champion's training data "
                       f"(threshold {policy.min_new_labelled_rows})")
    return reasons


def sustained_alerts(window: list[set[str]], breaches: int) -> dict[str, int]:
    """The metrics (``feature.metric``) at their alert level in the latest batch of
    ``window`` (the monitored batches oldest first, each with the metrics that alerted)
    and in at least ``breaches`` of its batches, with the number of batches, by name."""
    if not window:
        return {}
    counts = {m: sum(m in batch for batch in window) for m in window[-1]}
    return {m: n for m, n in sorted(counts.items()) if n >= breaches}
