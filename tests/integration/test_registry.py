"""The promote step against the registry: what it records on a version and where it moves
@champion, judging one version at a time (``judge_version``, as ``promote_step`` does),
and how the next promote completes one killed half way.

The models' holdout scores are given (``aucs``): scoring real models on a gold holdout is
what tests/e2e/test_promotion.py does.
"""

from __future__ import annotations

import json

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from sparkmlops.config import ModelSettings, PromoteSettings
from sparkmlops.errors import MissingInputError
from sparkmlops.promote.promotion import PromotionDecision, decision_record
from sparkmlops.promote.step import JudgedOn, complete_promotions, judge_version
from sparkmlops.tracking.registry import CHAMPION, ModelRegistry
from sparkmlops.tracking.runs import configure_mlflow

NAME = "unit_model"
GATE = PromoteSettings(mode="enabled", min_metrics={"areaUnderROC": 0.8}, min_improvement=0.01)
HOLDOUT = JudgedOn("100 holdout rows of gold.unit v0")


class Events(list):
    """The audit trail as a list: these tests are about the registry (the Delta trail's
    are in test_model_events.py)."""

    def record(self, events):
        self.extend(events)

    def recorded(self, model):
        return [e for e in self if e.model == model]


@pytest.fixture
def client(make_settings):
    configure_mlflow(make_settings())
    return MlflowClient()


@pytest.fixture
def registry(client):
    return ModelRegistry(client)


@pytest.fixture
def model(make_settings) -> ModelSettings:
    """The model section promote_step judges with (primary metric areaUnderROC)."""
    return make_settings(f"dataset.model.name={NAME}").dataset.model


@pytest.fixture
def aucs() -> dict[str, float]:
    """Each version's areaUnderROC on the holdout, as promote_step would score it."""
    return {}


def _version(client: MlflowClient, aucs: dict[str, float], auc: float) -> str:
    """A registry version from a finished training run; it scores ``auc`` on the holdout."""
    with mlflow.start_run() as run:
        pass
    if not client.search_registered_models(f"name = '{NAME}'"):
        client.create_registered_model(NAME)
    version = str(client.create_model_version(NAME, source=f"{run.info.artifact_uri}/model",
                                              run_id=run.info.run_id).version)
    aucs[version] = auc
    return version


def _judge(registry, model, aucs, version: str, *, gate: PromoteSettings = GATE,
           run_id: str = "promote-run", before_move=None) -> PromotionDecision:
    """What promote_step does with one version: it and the champion scored on the holdout,
    the decision recorded on the version, @champion moved when it passes."""
    return judge_version(registry, version, lambda v: {"areaUnderROC": aucs[v]}, HOLDOUT,
                         model=model, gate=gate, run_id=run_id, trail=Events(),
                         before_move=before_move)


def test_first_model_meeting_the_minimums_becomes_champion(client, registry, model, aucs):
    v1 = _version(client, aucs, 0.85)

    decision = _judge(registry, model, aucs, v1)

    assert (decision.promoted, decision.champion_before, decision.champion_after) == (
        True, None, v1)
    assert str(registry.by_alias(NAME, CHAMPION).version) == v1
    tags = client.get_model_version(NAME, v1).tags
    assert tags["promotion.promoted"] == "True"
    assert "no champion yet" in decision_record(tags)["reasons"]


def test_first_model_below_the_minimums_is_not_champion(client, registry, model, aucs):
    v1 = _version(client, aucs, 0.70)

    decision = _judge(registry, model, aucs, v1)

    assert decision.promoted is False
    assert registry.by_alias(NAME, CHAMPION) is None
    assert "areaUnderROC=0.7000 misses the threshold 0.8" in decision.reasons


def test_worse_challenger_is_not_promoted_and_better_one_is(client, registry, model, aucs):
    v1, v2, v3 = (_version(client, aucs, auc) for auc in (0.90, 0.905, 0.93))
    _judge(registry, model, aucs, v1)

    worse = _judge(registry, model, aucs, v2)
    assert (worse.promoted, worse.champion_after) == (False, v1)
    assert str(registry.by_alias(NAME, CHAMPION).version) == v1

    better = _judge(registry, model, aucs, v3)
    assert (better.promoted, better.champion_before, better.champion_after) == (True, v1, v3)
    assert str(registry.by_alias(NAME, CHAMPION).version) == v3


def test_dry_run_decides_but_moves_no_alias(client, registry, model, aucs):
    v1 = _version(client, aucs, 0.95)

    decision = _judge(registry, model, aucs, v1, gate=GATE.model_copy(update={"mode": "dry_run"}))

    assert (decision.passed, decision.promoted) == (True, False)
    assert registry.by_alias(NAME, CHAMPION) is None


def test_require_version_names_what_is_missing(client, registry, aucs):
    _version(client, aucs, 0.9)

    assert str(registry.require(NAME, "1").version) == "1"
    with pytest.raises(MissingInputError, match="no version with alias @champion"):
        registry.require(NAME, "champion")
    with pytest.raises(MissingInputError, match="has no version 7"):
        registry.require(NAME, "7")


def test_versions_to_judge_are_the_undecided_ones_after_the_champion_and_the_one_asked(
    client, registry, model, aucs
):
    v1, v2, v3, v4 = (_version(client, aucs, auc) for auc in (0.90, 0.85, 0.95, 0.96))

    assert registry.versions_to_judge(NAME, asked=None) == [v1, v2, v3, v4]
    _judge(registry, model, aucs, v1)
    _judge(registry, model, aucs, v2)  # decided: not promoted
    assert registry.versions_to_judge(NAME, asked=v4) == [v3, v4]
    assert registry.versions_to_judge(NAME, asked=v2) == [v2, v3, v4]  # asked: judged again
    _judge(registry, model, aucs, v3)  # v3 champion: v1, v2 behind it
    assert registry.versions_to_judge(NAME, asked=None) == [v4]
    assert registry.versions_to_judge(NAME, asked=v3) == [v3, v4]


def test_a_version_whose_run_did_not_finish_is_judged_with_that_fact(
    client, registry, model, aucs
):
    v1 = _version(client, aucs, 0.9)
    run_id = client.get_model_version(NAME, v1).run_id
    finished_note = registry.unfinished_run_note(NAME, v1)
    client.set_terminated(run_id, "KILLED")

    decision = _judge(registry, model, aucs, v1)

    note = f"registered by run {run_id}, which did not finish (status KILLED)"
    assert finished_note is None
    assert decision.promoted is True
    assert decision.reasons == [note, "areaUnderROC=0.9000 meets the threshold 0.8",
                                "no champion yet"]
    assert decision_record(client.get_model_version(NAME, v1).tags)["reasons"] == [
        note, "areaUnderROC=0.9000 meets the threshold 0.8", "no champion yet"]


def test_a_champion_that_cannot_be_scored_leaves_the_challenger_judged_on_the_minimums(
    client, registry, model, aucs
):
    v1, v2 = _version(client, aucs, 0.85), _version(client, aucs, 0.82)
    _judge(registry, model, aucs, v1)
    why = "cannot score the current data (AnalysisException: column gone)"

    decision = judge_version(
        registry, v2, lambda v: why if v == v1 else {"areaUnderROC": aucs[v]}, HOLDOUT,
        model=model, gate=GATE, run_id="promote-run", trail=Events())

    assert (decision.promoted, decision.champion_before, decision.champion_metrics) == (
        True, v1, {})
    assert decision.reasons == [
        f"champion v{v1} {why}; the challenger is judged on the minimums alone",
        "areaUnderROC=0.8200 meets the threshold 0.8", "no champion yet"]
    assert str(registry.by_alias(NAME, CHAMPION).version) == v2
    tags = client.get_model_version(NAME, v2).tags
    record = decision_record(tags)
    assert (record["champion_before"], record["challenger"], record["champion"]) == (
        v1, {"areaUnderROC": 0.82}, {})


# ---------------------------------------------------------------- a promote killed half way


class Killed(BaseException):
    """Stands in for SIGKILL: no handler catches it, nothing after it runs."""


def _die(*_args):
    raise Killed


def _promote_killed_at(monkeypatch, registry, model, aucs, version: str, *,
                       after_alias_moved: bool) -> list[PromotionDecision]:
    """Judge ``version`` as run ``killed-run``, killed as it moves @champion; what the run
    recorded before the move (promote_step writes its promotion.json there)."""
    real, recorded = ModelRegistry.set_alias, []

    def set_alias(self, name, alias, to):
        if after_alias_moved:
            real(self, name, alias, to)
        _die()

    with monkeypatch.context() as patch:
        patch.setattr(ModelRegistry, "set_alias", set_alias)
        with pytest.raises(Killed):
            _judge(registry, model, aucs, version, run_id="killed-run",
                   before_move=recorded.append)
    return recorded


def test_a_promote_killed_before_the_alias_moved_is_completed_by_the_next_one(
    client, registry, model, aucs, monkeypatch
):
    v1 = _version(client, aucs, 0.85)
    recorded = _promote_killed_at(monkeypatch, registry, model, aucs, v1,
                                  after_alias_moved=False)
    left = client.get_model_version(NAME, v1).tags
    champion_left = registry.by_alias(NAME, CHAMPION)

    completed, stale = complete_promotions(registry, NAME, "rerun", trail=Events())

    assert champion_left is None
    reasons = ["areaUnderROC=0.8500 meets the threshold 0.8", "no champion yet"]
    # the whole decision was on the version before the alias was to move
    assert {k: v for k, v in left.items() if k.startswith("promotion.")} == {
        "promotion.mode": "enabled", "promotion.promoted": "True",
        "promotion.champion_move": "pending", "promotion.decision": json.dumps({
            "run_id": "killed-run", "champion_before": "none", "passed": True,
            "evaluated_on": HOLDOUT.evaluated_on, "reasons": reasons,
            "challenger": {"areaUnderROC": 0.85}, "champion": {}})}
    # and on the promote run (before_move), before the alias was to move
    assert [(d.challenger_version, d.promoted, d.reasons) for d in recorded] == [
        (v1, True, reasons)]
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
    client, registry, model, aucs, monkeypatch
):
    v1, v2 = _version(client, aucs, 0.85), _version(client, aucs, 0.90)
    _judge(registry, model, aucs, v1)
    _promote_killed_at(monkeypatch, registry, model, aucs, v2, after_alias_moved=True)
    moved_to = str(registry.by_alias(NAME, CHAMPION).version)

    completed, _ = complete_promotions(registry, NAME, "rerun", trail=Events())
    complete = client.get_model_version(NAME, v2)
    again, _ = complete_promotions(registry, NAME, "third", trail=Events())
    rejudged = _judge(registry, model, aucs, v2, run_id="third")

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
    client, registry, model, aucs, monkeypatch
):
    v1, v2, v3 = (_version(client, aucs, auc) for auc in (0.85, 0.90, 0.95))
    _judge(registry, model, aucs, v1)
    _promote_killed_at(monkeypatch, registry, model, aucs, v2, after_alias_moved=False)
    client.set_registered_model_alias(NAME, CHAMPION, v3)

    completed, stale = complete_promotions(registry, NAME, "rerun", trail=Events())

    assert (completed, stale) == ([], [v2])
    assert str(registry.by_alias(NAME, CHAMPION).version) == v3


def test_a_champion_with_no_gate_record_is_judged_and_recorded(client, registry, model, aucs):
    v1 = _version(client, aucs, 0.85)
    client.set_registered_model_alias(NAME, CHAMPION, v1)  # what the old write order left

    to_judge = registry.versions_to_judge(NAME, asked=v1)
    decision = _judge(registry, model, aucs, v1, run_id="rerun")

    assert to_judge == [v1]
    assert (decision.passed, decision.promoted, decision.champion_before) == (True, True, None)
    assert decision.reasons[-1] == (
        f"@champion was on v{v1} with no gate record (moved by hand, or by a promote killed "
        "before it recorded its decision): the champion before it is not known, so it is judged "
        "on the minimums alone")
    tags = client.get_model_version(NAME, v1).tags
    assert (tags["promotion.promoted"], decision_record(tags)["run_id"],
            tags["promotion.champion_move"]) == ("True", "rerun", "done")
    assert decision_record(tags)["reasons"] == decision.reasons
    assert registry.versions_to_judge(NAME, asked=None) == []
