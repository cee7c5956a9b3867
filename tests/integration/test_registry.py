from __future__ import annotations

import json

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from sparkmlops.config import PromoteSettings
from sparkmlops.errors import MissingInputError
from sparkmlops.promote.promotion import complete_promotions, promote_if_better
from sparkmlops.tracking.registry import CHAMPION, ModelRegistry
from sparkmlops.tracking.runs import configure_mlflow

NAME = "unit_model"
GATE = PromoteSettings(mode="enabled", min_metrics={"areaUnderROC": 0.8}, min_improvement=0.01)


@pytest.fixture
def client(make_settings):
    configure_mlflow(make_settings())
    return MlflowClient()


@pytest.fixture
def registry(client):
    return ModelRegistry(client)


def _version(client: MlflowClient, auc: float) -> str:
    """A registry version whose training run logged areaUnderROC = auc."""
    with mlflow.start_run() as run:
        mlflow.log_metric("areaUnderROC", auc)
    if not client.search_registered_models(f"name = '{NAME}'"):
        client.create_registered_model(NAME)
    version = client.create_model_version(NAME, source=f"{run.info.artifact_uri}/model",
                                          run_id=run.info.run_id)
    return str(version.version)


def test_first_model_meeting_the_minimums_becomes_champion(client, registry):
    v1 = _version(client, 0.85)

    decision = promote_if_better(registry, NAME, v1, GATE, "areaUnderROC")

    assert (decision.promoted, decision.champion_before, decision.champion_after) == (
        True, None, v1)
    assert str(registry.by_alias(NAME, CHAMPION).version) == v1
    tags = client.get_model_version(NAME, v1).tags
    assert tags["promotion.promoted"] == "True"
    assert "no champion yet" in json.loads(tags["promotion.reasons"])


def test_first_model_below_the_minimums_is_not_champion(client, registry):
    v1 = _version(client, 0.70)

    decision = promote_if_better(registry, NAME, v1, GATE, "areaUnderROC")

    assert decision.promoted is False
    assert registry.by_alias(NAME, CHAMPION) is None
    assert "areaUnderROC=0.7000 misses the threshold 0.8" in decision.reasons


def test_worse_challenger_is_not_promoted_and_better_one_is(client, registry):
    v1, v2, v3 = _version(client, 0.90), _version(client, 0.905), _version(client, 0.93)
    promote_if_better(registry, NAME, v1, GATE, "areaUnderROC")

    worse = promote_if_better(registry, NAME, v2, GATE, "areaUnderROC")
    assert (worse.promoted, worse.champion_after) == (False, v1)
    assert str(registry.by_alias(NAME, CHAMPION).version) == v1

    better = promote_if_better(registry, NAME, v3, GATE, "areaUnderROC")
    assert (better.promoted, better.champion_before, better.champion_after) == (True, v1, v3)
    assert str(registry.by_alias(NAME, CHAMPION).version) == v3


def test_dry_run_decides_but_moves_no_alias(client, registry):
    v1 = _version(client, 0.95)

    decision = promote_if_better(registry, NAME, v1, GATE.model_copy(update={"mode": "dry_run"}),
                                 "areaUnderROC")

    assert (decision.passed, decision.promoted) == (True, False)
    assert registry.by_alias(NAME, CHAMPION) is None


def test_require_version_names_what_is_missing(client, registry):
    _version(client, 0.9)

    assert str(registry.require(NAME, "1").version) == "1"
    with pytest.raises(MissingInputError, match="no version with alias @champion"):
        registry.require(NAME, "champion")
    with pytest.raises(MissingInputError, match="has no version 7"):
        registry.require(NAME, "7")


def test_versions_to_judge_are_the_undecided_ones_after_the_champion_and_the_one_asked(
    client, registry
):
    v1, v2, v3, v4 = (_version(client, auc) for auc in (0.90, 0.85, 0.95, 0.96))

    assert registry.versions_to_judge(NAME, asked=None) == [v1, v2, v3, v4]
    promote_if_better(registry, NAME, v1, GATE, "areaUnderROC")
    promote_if_better(registry, NAME, v2, GATE, "areaUnderROC")  # decided: not promoted
    assert registry.versions_to_judge(NAME, asked=v4) == [v3, v4]
    assert registry.versions_to_judge(NAME, asked=v2) == [v2, v3, v4]  # asked: judged again
    promote_if_better(registry, NAME, v3, GATE, "areaUnderROC")  # v3 champion: v1, v2 behind it
    assert registry.versions_to_judge(NAME, asked=None) == [v4]
    assert registry.versions_to_judge(NAME, asked=v3) == [v3, v4]


def test_a_version_whose_run_did_not_finish_is_judged_with_that_fact(client, registry):
    v1 = _version(client, 0.9)
    run_id = client.get_model_version(NAME, v1).run_id
    assert registry.unfinished_run_note(NAME, v1) is None
    client.set_terminated(run_id, "KILLED")
    note = registry.unfinished_run_note(NAME, v1)

    decision = promote_if_better(registry, NAME, v1, GATE, "areaUnderROC",
                                 challenger_notes=[note])

    assert note == f"registered by run {run_id}, which did not finish (status KILLED)"
    assert decision.promoted is True
    assert json.loads(client.get_model_version(NAME, v1).tags["promotion.reasons"]) == [
        note, "areaUnderROC=0.9000 meets the threshold 0.8", "no champion yet"]


# ---------------------------------------------------------------- a promote killed half way


class Killed(BaseException):
    """Stands in for SIGKILL: no handler catches it, nothing after it runs."""


def _die(*_args):
    raise Killed


def _promote_killed_at(monkeypatch, registry, version: str, *, after_alias_moved: bool):
    real = ModelRegistry.set_alias

    def set_alias(self, name, alias, to):
        if after_alias_moved:
            real(self, name, alias, to)
        _die()

    with monkeypatch.context() as patch:
        patch.setattr(ModelRegistry, "set_alias", set_alias)
        with pytest.raises(Killed):
            promote_if_better(registry, NAME, version, GATE, "areaUnderROC", run_id="killed-run")


def test_a_promote_killed_before_the_alias_moved_is_completed_by_the_next_one(
    client, registry, monkeypatch
):
    v1 = _version(client, 0.85)
    _promote_killed_at(monkeypatch, registry, v1, after_alias_moved=False)
    left = client.get_model_version(NAME, v1).tags
    champion_left = registry.by_alias(NAME, CHAMPION)

    completed, stale = complete_promotions(registry, NAME, "rerun")

    assert champion_left is None
    reasons = ["areaUnderROC=0.8500 meets the threshold 0.8", "no champion yet"]
    # the whole decision was on the version before the alias was to move
    assert {k: v for k, v in left.items() if k.startswith("promotion.")} == {
        "promotion.mode": "enabled", "promotion.passed": "True", "promotion.promoted": "True",
        "promotion.champion_before": "none", "promotion.reasons": json.dumps(reasons),
        "promotion.evaluated_on": "the metrics recorded by each training run",
        "promotion.challenger.areaUnderROC": "0.85", "promotion.run_id": "killed-run",
        "promotion.champion_move": "pending"}
    assert stale == []
    [decision] = completed
    assert (decision.challenger_version, decision.champion_before, decision.promoted,
            decision.passed, decision.reasons, decision.challenger_metrics,
            decision.completes_run) == (v1, None, True, True, reasons,
                                        {"areaUnderROC": 0.85}, "killed-run")
    assert str(registry.by_alias(NAME, CHAMPION).version) == v1
    tags = client.get_model_version(NAME, v1).tags
    assert (tags["promotion.champion_move"], tags["promotion.completed_by_run"]) == (
        "done", "rerun")


def test_a_promote_killed_after_the_alias_moved_is_confirmed_and_then_nothing_is_new(
    client, registry, monkeypatch
):
    v1, v2 = _version(client, 0.85), _version(client, 0.90)
    promote_if_better(registry, NAME, v1, GATE, "areaUnderROC")
    _promote_killed_at(monkeypatch, registry, v2, after_alias_moved=True)
    moved_to = str(registry.by_alias(NAME, CHAMPION).version)

    completed, _ = complete_promotions(registry, NAME, "rerun")
    complete = client.get_model_version(NAME, v2)
    again, _ = complete_promotions(registry, NAME, "third")
    rejudged = promote_if_better(registry, NAME, v2, GATE, "areaUnderROC", run_id="third")

    assert moved_to == v2
    [decision] = completed
    assert (decision.challenger_version, decision.champion_before, decision.champion_metrics,
            decision.completes_run) == (v2, v1, {"areaUnderROC": 0.85}, "killed-run")
    assert decision.reasons[-1] == ("areaUnderROC=0.9000 beats the champion's 0.8500 by the "
                                    "required 0.01")
    assert complete.tags["promotion.champion_move"] == "done"
    assert complete.description.startswith("Promotion gate (enabled) against champion v1 on ")
    assert again == []
    assert rejudged.reasons == ["the challenger already is the champion"]
    assert client.get_model_version(NAME, v2).tags == complete.tags  # nothing new recorded
    assert str(registry.by_alias(NAME, CHAMPION).version) == v2


def test_a_killed_decision_whose_champion_was_moved_by_hand_meanwhile_is_judged_again(
    client, registry, monkeypatch
):
    v1, v2, v3 = _version(client, 0.85), _version(client, 0.90), _version(client, 0.95)
    promote_if_better(registry, NAME, v1, GATE, "areaUnderROC")
    _promote_killed_at(monkeypatch, registry, v2, after_alias_moved=False)
    client.set_registered_model_alias(NAME, CHAMPION, v3)

    completed, stale = complete_promotions(registry, NAME, "rerun")

    assert (completed, stale) == ([], [v2])
    assert str(registry.by_alias(NAME, CHAMPION).version) == v3


def test_a_champion_with_no_gate_record_is_judged_and_recorded(client, registry):
    v1 = _version(client, 0.85)
    client.set_registered_model_alias(NAME, CHAMPION, v1)  # what the old write order left

    to_judge = registry.versions_to_judge(NAME, asked=v1)
    decision = promote_if_better(registry, NAME, v1, GATE, "areaUnderROC", run_id="rerun")

    assert to_judge == [v1]
    assert (decision.passed, decision.promoted, decision.champion_before) == (True, True, None)
    assert decision.reasons[-1] == (
        f"@champion was on v{v1} with no gate record (moved by hand, or by a promote killed "
        "before it recorded its decision): the champion before it is not known, so it is judged "
        "on the minimums alone")
    tags = client.get_model_version(NAME, v1).tags
    assert (tags["promotion.promoted"], tags["promotion.run_id"],
            tags["promotion.champion_move"]) == ("True", "rerun", "done")
    assert json.loads(tags["promotion.reasons"]) == decision.reasons
    assert registry.versions_to_judge(NAME, asked=None) == []
