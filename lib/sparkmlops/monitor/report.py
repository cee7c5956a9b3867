"""The monitoring report: drift per feature for a batch and metrics over batches.

Charts (PNG) and one ``index.html`` that shows them with the batch's table of
metrics, statuses coloured, so a person looks rather than reads. Written to a
local folder and logged to the monitor run.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import matplotlib

from sparkmlops.monitor.drift import MonitoringRow

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the headless backend

COLOURS = {"ok": "#2e7d32", "warn": "#f9a825", "alert": "#c62828"}
# matplotlib hides legend labels that start with "_"
DISPLAY = {"_score": "prediction score", "_predicted": "predicted class"}


def _display(feature: str) -> str:
    return DISPLAY.get(feature, feature)


def write_report(
    out: Path, batch_id: str, rows: list[MonitoringRow], history: list[MonitoringRow],
    live: list[MonitoringRow], status: str,
) -> Path:
    """Write ``drift.png``, ``history.png`` and ``index.html`` into ``out``; return the index.

    ``rows``: this batch's judged drift metrics; ``history``: the drift rows of every
    monitor run; ``live``: one live metric row per scored batch and metric.
    """
    out.mkdir(parents=True, exist_ok=True)
    _drift_chart(out / "drift.png", batch_id, rows)
    _history_chart(out / "history.png", history, live)
    index = out / "index.html"
    index.write_text(_html(batch_id, rows, live, status))
    return index


def _drift_chart(path: Path, batch_id: str, rows: list[MonitoringRow]) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.45 * max(4, len(rows) // 4) + 1.5))
    for ax, metric in zip(axes, ("psi", "ks"), strict=True):
        chosen = [r for r in rows if r.metric == metric]
        if not chosen:
            ax.set_visible(False)
            continue
        names = [_display(r.feature) for r in chosen]
        ax.barh(names, [r.value for r in chosen], color=[COLOURS[r.status] for r in chosen])
        for key, level, style in (("warn", chosen[0].warn, ":"),
                                  ("alert", chosen[0].alert, "--")):
            if level is not None:
                ax.axvline(level, color="grey", linestyle=style, label=f"{key} {level:g}")
        ax.set_title(f"{metric.upper()} per feature, batch {batch_id}")
        ax.invert_yaxis()
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _history_chart(path: Path, history: list[MonitoringRow], live: list[MonitoringRow]) -> None:
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7))
    runs = sorted({(r.monitored_at, r.batch_id) for r in history})
    order = {batch: i for i, (_, batch) in enumerate(runs)}
    features = sorted({r.feature for r in history if r.metric == "psi"})
    for feature in features:
        points = sorted((order[r.batch_id], r.value) for r in history
                        if r.metric == "psi" and r.feature == feature)
        top.plot([p[0] for p in points], [p[1] for p in points], marker="o",
                 label=_display(feature))
    top.set_xticks(range(len(runs)), [b[:10] for _, b in runs], rotation=30, fontsize=7)
    top.set_title("PSI per feature over monitored batches")
    if features:
        top.legend(fontsize=7, ncol=2)
    metrics = sorted({r.metric for r in live})
    batches = [b for _, b in runs if any(r.scored_batch == b for r in live)]
    for metric in metrics:
        points = [(i, r.value) for i, b in enumerate(batches) for r in live
                  if r.scored_batch == b and r.metric == metric]
        bottom.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=metric)
    bottom.set_xticks(range(len(batches)), [b[:10] for b in batches], rotation=30, fontsize=7)
    bottom.set_title("live model metrics per scored batch (labels joined by key)")
    if metrics:
        bottom.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _html(batch_id: str, rows: list[MonitoringRow], live: list[MonitoringRow],
          status: str) -> str:
    def cell(value: Any) -> str:
        return "" if value is None else (f"{value:.4g}" if isinstance(value, float)
                                         else html.escape(str(value)))

    body = "".join(
        f"<tr><td>{cell(_display(r.feature))}</td><td>{cell(r.metric)}</td>"
        f"<td>{cell(r.value)}</td><td>{cell(r.p_value)}</td><td>{cell(r.warn)}</td>"
        f"<td>{cell(r.alert)}</td><td style='color:{COLOURS[r.status]}'>"
        f"{r.status}</td><td>{cell(r.note)}</td></tr>" for r in rows)
    live_rows = "".join(f"<tr><td>{cell(r.scored_batch)}</td><td>{cell(r.metric)}</td>"
                        f"<td>{cell(r.value)}</td></tr>" for r in live)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Monitoring batch {html.escape(batch_id)}</title></head><body>"
        f"<h1>Batch {html.escape(batch_id)}: <span style='color:{COLOURS[status]}'>"
        f"{status}</span></h1><img src='drift.png' alt='drift per feature'>"
        "<img src='history.png' alt='drift and live metrics over batches'>"
        "<h2>Drift</h2><table border='1' cellpadding='3'><tr><th>feature</th><th>metric</th>"
        f"<th>value</th><th>p-value</th><th>warn</th><th>alert</th><th>status</th><th>note</th></tr>{body}"
        "</table><h2>Live metrics</h2><table border='1' cellpadding='3'><tr>"
        f"<th>scored batch</th><th>metric</th><th>value</th></tr>{live_rows}</table>"
        "</body></html>")
