from __future__ import annotations

from dataclasses import replace

import pytest

from sparkmlops.config import PromoteSettings
from sparkmlops.promote.promotion import (
    decide,
    decision_description,
    decision_from_tags,
    decision_record,
    decision_tags,
    judge,
    pending_move,
)
from sparkmlops.tracking.registry import DECIDED_TAG

GATE = PromoteSettings(mode="enabled", min_metrics={"areaUnderROC": 0.8}, min_improvement=0.01)


def test_decide_for_an_error_metric():
    gate = PromoteSettings(min_metrics={"rmse": 2.0}, min_improvement=0.1)

    passes, reasons = decide({"rmse": 1.5}, {"rmse": 1.7}, gate, "rmse")

    assert passes is True
    assert reasons[-1] == "rmse=1.5000 beats the champion's 1.7000 by the required 0.1"


def test_a_challenger_that_beats_the_champion_is_promoted_with_its_notes_first():
    decision = judge("3", "2", GATE, "areaUnderROC", challenger_metrics={"areaUnderROC": 0.9},
                     champion_metrics={"areaUnderROC": 0.85}, challenger_notes=["its run died"])

    assert (decision.promoted, decision.passed, decision.champion_before,
            decision.champion_after, decision.already_champion) == (True, True, "2", "3", False)
    assert decision.reasons == ["its run died", "areaUnderROC=0.9000 meets the threshold 0.8",
                                "areaUnderROC=0.9000 beats the champion's 0.8500 by the "
                                "required 0.01"]


def test_the_champion_judged_again_with_its_decision_on_record_changes_nothing():
    decision = judge("2", "2", GATE, "areaUnderROC", challenger_metrics={"areaUnderROC": 0.5},
                     challenger_decided=True, challenger_notes=["ignored"])

    assert decision.already_champion is True
    assert (decision.promoted, decision.passed, decision.reasons) == (
        False, True, ["the challenger already is the champion"])


def test_a_champion_without_a_decision_is_judged_on_the_minimums_alone():
    decision = judge("2", "2", GATE, "areaUnderROC", challenger_metrics={"areaUnderROC": 0.85},
                     champion_metrics={"areaUnderROC": 0.99}, champion_note="unused")

    assert (decision.promoted, decision.champion_before, decision.already_champion) == (
        True, None, False)
    assert decision.reasons[0] == "areaUnderROC=0.8500 meets the threshold 0.8"
    assert decision.reasons[-1].startswith("@champion was on v2 with no gate record")


@pytest.mark.parametrize(("mode", "passed", "promoted"), [
    ("enabled", False, False), ("dry_run", False, False), ("disabled", True, False)])
def test_only_an_enabled_gate_promotes_and_a_disabled_one_passes_everything(
        mode, passed, promoted):
    gate = GATE.model_copy(update={"mode": mode})

    decision = judge("1", None, gate, "areaUnderROC", challenger_metrics={"areaUnderROC": 0.5})

    assert (decision.mode, decision.passed, decision.promoted) == (mode, passed, promoted)


def test_the_recorded_tags_give_back_the_decision_that_promoted():
    decision = judge("3", "2", GATE, "areaUnderROC", challenger_metrics={"areaUnderROC": 0.9},
                     champion_metrics={"areaUnderROC": 0.85})

    tags = {k: str(v) for k, v in decision_tags(decision, "95 rows", "run-1").items()}
    tags[DECIDED_TAG] = decision.mode

    assert set(tags) == {"promotion.champion_move", "promotion.promoted", "promotion.decision",
                         DECIDED_TAG}
    assert (tags["promotion.champion_move"], tags["promotion.promoted"]) == ("pending", "True")
    assert decision_record(tags) == {
        "run_id": "run-1", "champion_before": "2", "passed": True, "evaluated_on": "95 rows",
        "reasons": decision.reasons, "challenger": {"areaUnderROC": 0.9},
        "champion": {"areaUnderROC": 0.85}}
    assert decision_from_tags("3", tags) == replace(decision, completes_run="run-1")
    assert decision_description(decision, "95 rows") == (
        "Promotion gate (enabled) against champion v2 on 95 rows: promoted to champion. "
        + "; ".join(decision.reasons))


BEFORE_1 = {"promotion.decision": '{"champion_before": "1"}'}
BEFORE_NONE = {"promotion.decision": '{"champion_before": "none"}'}


@pytest.mark.parametrize(("tags", "champion", "action"), [
    (BEFORE_1, "1", "undecided"),
    ({DECIDED_TAG: "enabled", **BEFORE_1}, "2", "confirm"),
    ({DECIDED_TAG: "enabled", **BEFORE_1}, "1", "move"),
    ({DECIDED_TAG: "enabled", **BEFORE_NONE}, None, "move"),
    ({DECIDED_TAG: "enabled", **BEFORE_1}, "3", "stale"),
])
def test_what_the_next_promote_does_with_a_pending_move(tags, champion, action):
    assert pending_move("2", tags, champion) == action
