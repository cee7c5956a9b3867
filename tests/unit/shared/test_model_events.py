"""The audit trail's pure parts: who an event is recorded for, what the registry holds that
the trail lacks (``late_events``), the gate's rows, the rollback's refusals, and the history
table people read."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime

import pytest

from sparkmlops.config import PromoteSettings
from sparkmlops.errors import MissingInputError, RollbackRefused
from sparkmlops.model_events import (
    ALIAS_MOVED,
    GATE_DECISION,
    REGISTERED,
    ROLLBACK,
    Actor,
    ModelEvent,
    history_lines,
    identify,
    late_events,
    moved,
    registered,
    trail_alias,
)
from sparkmlops.promote.promotion import (
    champion_moved,
    check_rollback,
    decision_event,
    decision_on_record,
    decision_tags,
    judge,
)
from sparkmlops.tracking.registry import DECIDED_TAG

GATE = PromoteSettings(mode="enabled", min_metrics={"areaUnderROC": 0.8}, min_improvement=0.01)


# ---------------------------------------------------------------- who


def test_a_databricks_service_principal_is_named_with_the_job_and_run_it_was_given():
    env = {"DATABRICKS_CLIENT_ID": "6f1c-sp", "DATABRICKS_JOB_ID": "42",
           "DATABRICKS_RUN_ID": "7001", "AWS_ROLE_ARN": "arn:aws:iam::1:role/ml"}

    assert identify(env) == Actor("6f1c-sp (job 42, run 7001)", "DATABRICKS_CLIENT_ID")
    assert identify({"DATABRICKS_CLIENT_ID": "6f1c-sp"}) == Actor("6f1c-sp",
                                                                  "DATABRICKS_CLIENT_ID")


def test_an_aws_role_is_the_identity_when_no_databricks_principal_is_set():
    env = {"AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/sparkmlops-job",
           "DATABRICKS_JOB_ID": "42"}

    assert identify(env) == Actor("arn:aws:iam::123456789012:role/sparkmlops-job",
                                  "AWS_ROLE_ARN")


def test_the_os_user_is_the_identity_without_a_platform_identity(monkeypatch):
    monkeypatch.setattr(getpass, "getuser", lambda: "alice")

    assert identify({"DATABRICKS_CLIENT_ID": "", "PATH": "/bin"}) == Actor("alice", "os_user")


def test_a_process_with_no_login_name_is_named_by_its_uid(monkeypatch):
    def no_user() -> str:
        raise OSError("No username set in the environment")

    monkeypatch.setattr(getpass, "getuser", no_user)
    monkeypatch.setattr("os.getuid", lambda: 1001)

    assert identify({}) == Actor("uid 1001", "os_uid")


# ---------------------------------------------------------------- what the trail lacks


def _trail() -> list[ModelEvent]:
    """v1 registered, @challenger on it, judged and promoted by run p1, @champion on it."""
    return [registered("m", "1", run_id="t1", reason="trained"),
            moved("m", "challenger", None, "1", run_id="t1", reason="new"),
            ModelEvent(GATE_DECISION, "m", "1", decision="promoted", run_id="p1"),
            moved("m", "champion", None, "1", run_id="p1", reason="promoted by the gate")]


def test_a_trail_that_matches_the_registry_lacks_nothing():
    decided = [ModelEvent(GATE_DECISION, "m", "1", decision="promoted", run_id="p1")]

    assert late_events("m", _trail(), versions=["1"], decided=decided,
                       aliases={"challenger": "1", "champion": "1"}, run_id="p2") == []


def test_what_a_failed_write_left_out_is_recorded_late_in_registry_order():
    # train v2 registered and moved @challenger, its event write failed; promote run p2
    # judged v2, moved @champion, and was killed before its events
    decided = [ModelEvent(GATE_DECISION, "m", "1", decision="promoted", run_id="p1"),
               ModelEvent(GATE_DECISION, "m", "2", from_version="1", decision="promoted",
                          reason="beats", run_id="p2")]

    late = late_events("m", _trail(), versions=["2", "1", "10"], decided=decided,
                       aliases={"challenger": "2", "champion": "2"}, run_id="p3")

    assert [(e.event, e.alias, e.from_version, e.to_version, e.decision, e.run_id)
            for e in late] == [
        (REGISTERED, None, None, "2", None, "p3"),
        (REGISTERED, None, None, "10", None, "p3"),
        (GATE_DECISION, None, "1", "2", "promoted", "p2"),  # the deciding run's own id
        (ALIAS_MOVED, "challenger", "1", "2", None, "p3"),
        (ALIAS_MOVED, "champion", "1", "2", None, "p3"),
    ]
    assert all(e.reason.startswith("recorded late by run p3: the registry holds it and "
                                   "model_events did not") for e in late)
    assert late[2].reason.endswith("; beats")


def test_a_rollback_row_counts_as_the_champion_s_last_move():
    trail = [*_trail(), moved("m", "champion", "1", "2", run_id="p2", reason="promoted"),
             ModelEvent(ROLLBACK, "m", "1", from_version="2", alias="champion", run_id="r1")]

    assert trail_alias(trail, "champion") == "1"
    assert trail_alias(trail, "challenger") == "1"
    assert trail_alias([], "champion") is None


def test_an_alias_removed_from_every_version_is_a_move_to_none():
    late = late_events("m", _trail(), versions=["1"], decided=[],
                       aliases={"challenger": None, "champion": "1"}, run_id="p2")

    assert [(e.event, e.alias, e.from_version, e.to_version) for e in late] == [
        (ALIAS_MOVED, "challenger", "1", None)]


# ---------------------------------------------------------------- the gate's rows


def test_a_decision_s_row_carries_its_verdict_reasons_and_both_models_metrics():
    decision = judge("3", "2", GATE, "areaUnderROC", challenger_metrics={"areaUnderROC": 0.855},
                     champion_metrics={"areaUnderROC": 0.85})

    event = decision_event(decision, "m", "p7")

    assert (event.event, event.model, event.from_version, event.to_version, event.decision,
            event.run_id) == (GATE_DECISION, "m", "2", "3", "rejected", "p7")
    assert event.reason == ("areaUnderROC=0.8550 meets the threshold 0.8; areaUnderROC=0.8550 "
                            "does not beat the champion's 0.8500 by the required 0.01")
    assert event.metrics == {"challenger.areaUnderROC": 0.855, "champion.areaUnderROC": 0.85}


@pytest.mark.parametrize(("mode", "auc", "verdict"), [
    ("enabled", 0.9, "promoted"), ("enabled", 0.7, "rejected"), ("dry_run", 0.9, "dry_run"),
    ("dry_run", 0.7, "dry_run"), ("disabled", 0.7, "disabled")])
def test_each_gate_mode_has_its_verdict(mode, auc, verdict):
    gate = GATE.model_copy(update={"mode": mode})
    decision = judge("1", None, gate, "areaUnderROC", challenger_metrics={"areaUnderROC": auc})

    assert decision_event(decision, "m", None).decision == verdict


def test_a_decision_read_back_from_its_tags_gives_the_same_row():
    decision = judge("3", "2", GATE, "areaUnderROC", challenger_metrics={"areaUnderROC": 0.7},
                     champion_metrics={"areaUnderROC": 0.85})
    tags = {k: str(v) for k, v in decision_tags(decision, "rows", "p7").items()}

    assert decision_event(decision_on_record("3", {**tags, DECIDED_TAG: "enabled"}), "m",
                          "p7") == decision_event(decision, "m", "p7")


def test_the_champion_s_move_is_a_row_only_when_it_moved():
    [row] = champion_moved("m", "1", "2", run_id="p2", reason="promoted by the gate")

    assert (row.event, row.alias, row.from_version, row.to_version) == (
        ALIAS_MOVED, "champion", "1", "2")
    assert champion_moved("m", "2", "2", run_id="p2", reason="promoted by the gate") == []


# ---------------------------------------------------------------- rollback's refusals


def _check(to: str, *, champion: str | None = "3", pending: list[str] | None = None,
           reason: str = "v3 scores the new site badly") -> None:
    check_rollback("m", to, champion=champion, versions=["1", "2", "3", "4"],
                   pending=pending or [], reason=reason)


def test_a_rollback_to_an_earlier_version_with_a_reason_is_allowed():
    assert _check("1") is None


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"to": "1", "reason": "  "}, RollbackRefused,
     "rollback of model m needs --reason: why @champion moves back is part of its record; "
     "nothing was moved"),
    ({"to": "9"}, MissingInputError,
     "model m has no version '9' (versions: 1, 2, 3, 4); nothing was moved"),
    ({"to": "v1"}, MissingInputError,
     "model m has no version 'v1' (versions: 1, 2, 3, 4); nothing was moved"),
    ({"to": "1", "champion": None}, MissingInputError,
     "model m has no @champion to roll back; nothing was moved"),
    ({"to": "3"}, RollbackRefused, "v3 already is @champion of model m; nothing was moved"),
    ({"to": "4"}, RollbackRefused,
     "v4 is later than @champion v3 of model m: rollback moves @champion back to an earlier "
     "version (promote moves it forward); nothing was moved"),
    ({"to": "1", "pending": ["4"]}, RollbackRefused,
     "the promotion of model m v4 is pending (a promote killed half way): run promote to "
     "complete it, then roll back; nothing was moved"),
])
def test_a_rollback_is_refused_with_one_line(kwargs, error, message):
    with pytest.raises(error) as refused:
        _check(**kwargs)

    assert str(refused.value) == message
    assert refused.value.exit_code == (2 if error is RollbackRefused else 3)


# ---------------------------------------------------------------- history


def test_history_lines_are_aligned_columns_with_the_reason_cut_to_the_width():
    at = datetime(2026, 12, 6, 12, 30, 5, tzinfo=UTC)
    events = [
        ModelEvent(ROLLBACK, "m", "1", from_version="2", alias="champion", reason="bad " * 40,
                   run_id="0123456789ab", who="alice", who_source="os_user", at=at),
        ModelEvent(GATE_DECISION, "m", "2", from_version="1", decision="promoted",
                   reason="beats", run_id="fedcba987654", who="alice", who_source="os_user",
                   at=at),
        ModelEvent(REGISTERED, "m", "1", reason="trained on gold.m v0", run_id=None,
                   who="arn:aws:iam::1:role/j", who_source="AWS_ROLE_ARN", at=at),
    ]

    lines = history_lines(events, width=140)

    assert lines[0].split() == ["at", "(UTC)", "event", "alias", "from", "to", "decision",
                                "who", "run", "reason"]
    assert lines[1].split()[:9] == ["2026-12-06", "12:30:05", "rollback", "champion", "v2",
                                    "v1", "alice", "(os_user)", "01234567"]
    assert len(lines[1]) == 140 and lines[1].endswith("bad...")
    assert lines[2].split() == ["2026-12-06", "12:30:05", "gate_decision", "v1", "v2",
                                "promoted", "alice", "(os_user)", "fedcba98", "beats"]
    assert lines[3].split() == ["2026-12-06", "12:30:05", "registered", "v1",
                                "arn:aws:iam::1:role/j", "(AWS_ROLE_ARN)", "trained", "on",
                                "gold.m", "v0"]
    # every column starts where its header does
    assert lines[2].index("gate_decision") == lines[0].index("event")
    assert lines[3].index("arn:") == lines[0].index("who")
