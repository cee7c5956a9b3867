"""The retrain rules of ``pipeline --mode continuous`` (``dataset.retrain``), on small inputs.

``_reasons(settings, monitor_outcome, new_labelled)`` is the whole decision: any
reason retrains (``enabled: false`` still records them). Each rule is tested alone,
at its boundary, with the others switched off; no Spark, no MLflow.
"""

from __future__ import annotations

import pyspark.sql.functions as F
import pytest

from sparkmlops.monitor.step import MonitorOutcome
from sparkmlops.pipeline.retrain import retrain_reasons, sustained_alerts


def _reasons(settings, monitor: MonitorOutcome, new_labelled: int) -> list[str]:
    return retrain_reasons(settings.dataset.retrain, monitor, new_labelled)


# every rule off: each test switches on the one it judges
NO_RULES = ("dataset.retrain.on_alert=false", "dataset.retrain.live_floor={}",
            "dataset.retrain.min_new_labelled_rows=0")
FLAGGED = ["culmen_length_mm.psi=0.31 (alert)", "island.unseen_rate=0.12 (alert)"]


def _monitor(status: str = "ok", *, flagged: list[str] | None = None,
             live: dict[str, float] | None = None) -> MonitorOutcome:
    """A monitor step's outcome, with the fields the rules read."""
    return MonitorOutcome("run", {}, status=status, model_version="1", flagged=flagged or [],
                          report="report.html", live=live or {})


def test_the_sample_policy_on_a_quiet_batch_gives_no_reason(make_settings):
    settings = make_settings()  # on_alert, live accuracy floor 0.75, no label count

    assert _reasons(settings, _monitor("warn", live={"live_accuracy": 0.9}), 10_000) == []


def test_with_every_rule_off_even_an_alert_gives_no_reason(make_settings):
    settings = make_settings(*NO_RULES)

    reasons = _reasons(settings, _monitor("alert", flagged=FLAGGED,
                                                 live={"live_accuracy": 0.1}), 10_000)

    assert reasons == []


@pytest.mark.parametrize(("status", "expected"), [
    ("alert", ["monitoring alert: culmen_length_mm.psi=0.31 (alert), "
               "island.unseen_rate=0.12 (alert)"]),
    ("warn", []),
    ("ok", []),
])
def test_on_alert_fires_on_an_alert_status_only(make_settings, status, expected):
    settings = make_settings(*NO_RULES, "dataset.retrain.on_alert=true")

    assert _reasons(settings, _monitor(status, flagged=FLAGGED), 0) == expected


def test_an_alert_reason_names_the_first_eight_flagged_rows(make_settings):
    settings = make_settings(*NO_RULES, "dataset.retrain.on_alert=true")
    flagged = [f"f{i}.psi=0.3 (alert)" for i in range(10)]

    [reason] = _reasons(settings, _monitor("alert", flagged=flagged), 0)

    assert reason == "monitoring alert: " + ", ".join(flagged[:8])


@pytest.mark.parametrize(("accuracy", "expected"), [
    (0.7499, ["live accuracy 0.7499 below the floor 0.75"]),
    (0.75, []),  # the floor itself is not below it
    (0.9, []),
])
def test_a_live_floor_fires_strictly_below_the_floor(make_settings, accuracy, expected):
    settings = make_settings(*NO_RULES, "dataset.retrain.live_floor={accuracy: 0.75}")

    assert _reasons(settings, _monitor(live={"live_accuracy": accuracy}), 0) == expected


def test_a_live_floor_without_labels_for_the_batch_gives_no_reason(make_settings):
    settings = make_settings(*NO_RULES, "dataset.retrain.live_floor={accuracy: 0.75}")

    assert _reasons(settings, _monitor(live={}), 0) == []


def test_each_live_floor_is_judged_in_metric_order(make_settings):
    settings = make_settings(*NO_RULES, "dataset.retrain.live_floor={f1: 0.8, accuracy: 0.75}")

    reasons = retrain_reasons(
        settings.dataset.retrain, _monitor(live={"live_accuracy": 0.5, "live_f1": 0.25}), 0)

    assert reasons == ["live accuracy 0.5000 below the floor 0.75",
                       "live f1 0.2500 below the floor 0.8"]


@pytest.mark.parametrize(("new_labelled", "expected"), [
    (99, []),
    (100, ["100 new labelled rows since the champion's training data (threshold 100)"]),
    (250, ["250 new labelled rows since the champion's training data (threshold 100)"]),
])
def test_new_labelled_rows_fire_at_the_threshold(make_settings, new_labelled, expected):
    settings = make_settings(*NO_RULES, "dataset.retrain.min_new_labelled_rows=100")

    assert _reasons(settings, _monitor(), new_labelled) == expected


def test_every_rule_that_fires_gives_its_reason_in_rule_order(make_settings):
    settings = make_settings("dataset.retrain.on_alert=true",
                             "dataset.retrain.live_floor={accuracy: 0.75}",
                             "dataset.retrain.min_new_labelled_rows=10",
                             "dataset.retrain.enabled=false")  # a control run: same reasons

    reasons = retrain_reasons(
        settings.dataset.retrain,
        _monitor("alert", flagged=FLAGGED[:1], live={"live_accuracy": 0.6}), 10)

    assert reasons == ["monitoring alert: culmen_length_mm.psi=0.31 (alert)",
                       "live accuracy 0.6000 below the floor 0.75",
                       "10 new labelled rows since the champion's training data (threshold 10)"]


# the monitored batches, oldest first: each the metrics at their alert level
HISTORY = [{"x.psi"}, set(), {"x.psi", "y.ks"}, {"x.psi", "_model.live_accuracy"}]


@pytest.mark.parametrize(("breaches", "of_last", "history", "expected"), [
    # x.psi alerted in 3 of the last 4, and in the latest
    (3, 4, HISTORY, {"x.psi": 3}),
    (2, 3, HISTORY, {"x.psi": 2}),
    # live accuracy only once; y.ks not in the latest
    (1, 2, HISTORY, {"_model.live_accuracy": 1, "x.psi": 2}),
    (3, 3, HISTORY, {}),
    # the latest batch is quiet: nothing is sustained, however often it alerted before
    (1, 4, [*HISTORY, set()], {}),
    # fewer batches monitored than the window: breaches still counts batches
    (2, 5, [{"x.psi"}, {"x.psi"}], {"x.psi": 2}),
    (3, 5, [{"x.psi"}, {"x.psi"}], {}),
    (1, 1, [], {}),
])
def test_sustained_alerts_are_in_the_latest_and_in_n_of_the_last_m(
        breaches, of_last, history, expected):
    assert sustained_alerts(history[-of_last:], breaches) == expected


def test_on_alert_over_a_window_names_each_sustained_metric(make_settings):
    settings = make_settings(*NO_RULES, "dataset.retrain.on_alert=true",
                             "dataset.retrain.breaches=2", "dataset.retrain.of_last=3")

    # the batch alerts, as it did once in the two before: x.psi 2 of 3 is enough
    reasons = _with_history(settings, HISTORY)
    # one alert in three: not enough, though the latest batch is at alert
    quiet = _with_history(settings, [set(), set(), {"x.psi"}])

    assert reasons == ["monitoring alert in the latest batch and in at least 2 of the last 3 "
                       "monitored: x.psi (2 of 3)"]
    assert quiet == []


def _with_history(settings, history: list[set[str]]) -> list[str]:
    return retrain_reasons(settings.dataset.retrain, _monitor("alert", flagged=FLAGGED), 0,
                           alerts=history)


def test_breaches_cannot_exceed_the_window(make_settings):
    from sparkmlops.errors import ConfigError

    with pytest.raises(ConfigError, match=r"retrain.breaches \(3\) cannot exceed"):
        make_settings("dataset.retrain.breaches=3", "dataset.retrain.of_last=2")


def test_the_alert_history_is_read_from_the_monitoring_table_oldest_first(
        spark, make_settings):
    from datetime import datetime

    from sparkmlops.monitor.drift import MonitoringRow, monitoring_schema
    from sparkmlops.pipeline.step import _alert_history
    from sparkmlops.tables import dataset_tables
    from sparkmlops.writes import replace_where

    settings = make_settings()

    def row(batch: str, scored: str, feature: str, status: str, minute: int) -> tuple:
        return MonitoringRow(batch, scored, feature, "psi", 0.3, None, 0.1, 0.25, status, 9,
                             "m", "1", "t", "r", datetime(2026, 12, 6, 18, minute)).record()

    rows = [row("b1", "b1", "x", "alert", 1), row("b1", "b1", "y", "ok", 1),
            row("b2", "b2", "x", "ok", 2),
            row("b3", "b3", "x", "alert", 3), row("b3", "b3", "y", "alert", 3),
            # b4's run recomputed a live metric of b3: b3's, not b4's
            row("b4", "b3", "_model", "alert", 4), row("b4", "b4", "x", "alert", 4)]
    replace_where(spark.createDataFrame(rows, monitoring_schema()),
                  dataset_tables(settings).monitoring, F.lit(True))

    assert _alert_history(spark, settings, "b4", 1) is None
    assert _alert_history(spark, settings, "b4", 3) == [set(), {"x.psi", "y.psi"}, {"x.psi"}]
