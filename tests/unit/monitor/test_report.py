"""The monitoring report from typed rows: the batch's drift table, the live metrics, charts."""

from __future__ import annotations

from datetime import datetime

from sparkmlops.monitor.drift import MonitoringRow
from sparkmlops.monitor.report import write_report

AT = datetime(2026, 11, 26, 12, 0, 0)


def _row(batch: str, feature: str, metric: str, value: float, status: str, *,
         scored_batch: str | None = None, warn: float | None = 0.1,
         alert: float | None = 0.25) -> MonitoringRow:
    return MonitoringRow(batch, scored_batch or batch, feature, metric, value, None, warn,
                         alert, status, 40, "m", "3", "train1", "mon1", AT)


def test_the_report_shows_the_batch_rows_its_live_metrics_and_both_charts(tmp_path):
    rows = [_row("b2", "body_mass_g", "psi", 0.31, "alert"),
            _row("b2", "_score", "psi", 0.05, "ok")]
    history = [_row("b1", "body_mass_g", "psi", 0.02, "ok"), *rows]
    live = [_row("b2", "_model", "live_accuracy", 0.6, "alert", scored_batch="b1",
                 warn=0.8, alert=0.65)]

    index = write_report(tmp_path / "b2", "b2", rows, history, live, "alert")

    page = index.read_text()
    assert index == tmp_path / "b2" / "index.html"
    assert "Batch b2: <span style='color:#c62828'>alert</span>" in page
    assert ("<tr><td>body_mass_g</td><td>psi</td><td>0.31</td><td></td><td>0.1</td>"
            "<td>0.25</td><td style='color:#c62828'>alert</td><td></td></tr>") in page
    # the score's row under the name people read
    assert "<tr><td>prediction score</td><td>psi</td><td>0.05</td>" in page
    assert "<tr><td>b1</td><td>live_accuracy</td><td>0.6</td></tr>" in page
    for image in ("drift.png", "history.png"):
        assert (tmp_path / "b2" / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
