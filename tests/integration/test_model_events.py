"""The audit trail against Delta and MLflow: the exact rows of ``model_events`` after a
train and a promote, a rejected challenger, a rollback and a failed event write; rollback's
refusals and ``history``, run through the CLI.

The first tests train two small models (160 rows) and promote each; the
rollback tests register versions without training (as test_registry.py does) and judge them
with given holdout scores, so only the module fixture pays for fitting.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
import pytest
from delta.tables import DeltaTable
from mlflow.tracking import MlflowClient

from sparkmlops.cli import main
from sparkmlops.config import Settings, load_settings
from sparkmlops.features.mllib import build_feature_table
from sparkmlops.model_events import (
    ALIAS_MOVED,
    GATE_DECISION,
    REGISTERED,
    ROLLBACK,
    AuditTrailError,
    ModelEvent,
    ModelEventLog,
    history_lines,
    identify,
    model_event_log,
)
from sparkmlops.promote.step import (
    JudgedOn,
    PromoteOutcome,
    complete_promotions,
    judge_version,
    promote_step,
    record_late_events,
    rollback_step,
)
from sparkmlops.tables import dataset_tables, model_events_table
from sparkmlops.tracking.registry import CHALLENGER, CHAMPION, ROLLED_BACK_TAG, ModelRegistry
from sparkmlops.tracking.runs import configure_mlflow
from sparkmlops.train.step import TrainOutcome, train_step
from sparkmlops.writes import replace_batch

BATCH = "b1"
GATE = ("dataset.promote.min_metrics={areaUnderROC: 0.6}", "dataset.promote.min_improvement=0.01")


def _rows(events: list[ModelEvent]) -> list[tuple]:
    return [(e.event, e.alias, e.from_version, e.to_version, e.decision, e.run_id)
            for e in events]


@dataclass
class Trained:
    """Two trains and two promotes of model ``audit_model`` on one gold version, the trail
    read after each (``after_first``: v1 trained and promoted; ``after_second``: v2 trained
    on the same rows, so it does not beat v1 by min_improvement, and rejected)."""

    settings: Settings
    first: TrainOutcome
    promoted: PromoteOutcome
    after_first: list[ModelEvent]
    second: TrainOutcome
    rejected: PromoteOutcome
    after_second: list[ModelEvent]


@pytest.fixture(scope="module")
def trained(spark, tmp_path_factory, learnable_silver) -> Trained:
    state_dir = tmp_path_factory.mktemp("model_events")
    settings = load_settings("local", "penguins", overrides=[
        f"state_dir={state_dir}", "dataset.model.name=audit_model", *GATE])
    replace_batch(build_feature_table(learnable_silver(batch_id=BATCH), settings.dataset),
                  dataset_tables(settings).gold, BATCH)
    trail = model_event_log(spark, settings, batch_id=None)
    first = train_step(spark, settings, BATCH)
    promoted = promote_step(spark, settings, BATCH)
    after_first = trail.recorded("audit_model")
    second = train_step(spark, settings, BATCH)
    rejected = promote_step(spark, settings, BATCH)
    return Trained(settings, first, promoted, after_first, second, rejected,
                   trail.recorded("audit_model"))


def test_a_train_and_a_promote_record_four_events_in_two_commits(spark, trained):
    decision = trained.promoted.decision
    train_run, promote_run = trained.first.run_id, trained.promoted.run_id
    me = identify()

    assert (trained.first.model_version, decision.challenger_version, decision.promoted) == (
        "1", "1", True)
    assert _rows(trained.after_first) == [
        (REGISTERED, None, None, "1", None, train_run),
        (ALIAS_MOVED, CHALLENGER, None, "1", None, train_run),
        (GATE_DECISION, None, None, "1", "promoted", promote_run),
        (ALIAS_MOVED, CHAMPION, None, "1", None, promote_run),
    ]
    registered, challenger, gate, champion = trained.after_first
    assert registered.reason == "trained on gold.penguins_features v0"
    assert challenger.reason == "the new version, trained on gold.penguins_features v0"
    assert gate.reason == "; ".join(decision.reasons)
    auc = decision.challenger_metrics["areaUnderROC"]
    assert gate.reason.endswith(f"areaUnderROC={auc:.4f} meets the threshold 0.6; no champion yet")
    assert gate.metrics == {f"challenger.{k}": v for k, v in decision.challenger_metrics.items()}
    assert champion.reason == "promoted by the gate"
    assert {(e.who, e.who_source, e.batch_id, e.dataset) for e in trained.after_first} == {
        (me.who, me.source, BATCH, "penguins")}
    # one commit per operation, each event stamped with its commit's time
    assert registered.at == challenger.at < gate.at == champion.at
    # and each commit is in the lineage of the run that made it, like any table it wrote
    configure_mlflow(trained.settings)
    client = MlflowClient()
    assert [client.get_run(run).data.params["output.model_events.penguins.version"]
            for run in (train_run, promote_run)] == ["0", "1"]


def test_the_trail_is_an_append_only_delta_table(spark, trained):
    table = DeltaTable.forPath(spark, model_events_table(trained.settings).path)
    history = {r["version"]: r["operation"] for r in table.history().collect()}

    assert table.detail().first()["properties"]["delta.appendOnly"] == "true"
    # the train's commit (which created it), the first promote's, the second train's and
    # the rejection's
    assert history == {0: "WRITE", 1: "WRITE", 2: "WRITE", 3: "WRITE"}
    with pytest.raises(Exception, match="DELTA_CANNOT_MODIFY_APPEND_ONLY"):
        table.delete("event = 'registered'")
    with pytest.raises(Exception, match="DELTA_CANNOT_MODIFY_APPEND_ONLY"):
        table.update("event = 'registered'", {"who": "'someone else'"})
    assert table.toDF().count() == 7


def test_a_rejected_challenger_is_registered_moves_challenger_and_is_recorded_rejected(
    trained
):
    decision = trained.rejected.decision
    train_run, promote_run = trained.second.run_id, trained.rejected.run_id

    assert (trained.second.model_version, decision.promoted, trained.rejected.champion) == (
        "2", False, "1")
    assert trained.after_second[:4] == trained.after_first
    assert _rows(trained.after_second[4:]) == [
        (REGISTERED, None, None, "2", None, train_run),
        (ALIAS_MOVED, CHALLENGER, "1", "2", None, train_run),
        (GATE_DECISION, None, "1", "2", "rejected", promote_run),
    ]
    gate = trained.after_second[-1]
    auc = decision.challenger_metrics["areaUnderROC"]
    assert gate.reason == "; ".join(decision.reasons)
    assert gate.reason.endswith(f"areaUnderROC={auc:.4f} does not beat the champion's "
                                f"{decision.champion_metrics['areaUnderROC']:.4f} by the "
                                "required 0.01")
    assert gate.metrics == {**{f"challenger.{k}": v for k, v in
                               decision.challenger_metrics.items()},
                            **{f"champion.{k}": v for k, v in
                               decision.champion_metrics.items()}}
    assert gate.metrics["champion.areaUnderROC"] == gate.metrics["challenger.areaUnderROC"]


def test_history_prints_the_newest_events_first(spark, trained, capsys):
    trail = model_event_log(spark, trained.settings, batch_id=None)

    code = main(["history", "--limit", "3", "--set", f"state_dir={trained.settings.state_dir}"])

    newest = trail.latest(3)
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert newest == trained.after_second[::-1][:3]
    assert [e.event for e in newest] == [GATE_DECISION, ALIAS_MOVED, REGISTERED]
    ref = model_events_table(trained.settings)
    assert out[:5] == [f"model_events.penguins ({ref.path}): 3 newest event(s)",
                       *history_lines(newest)]


# ---------------------------------------------------------------- rollback, on a cheap registry

HOLDOUT = JudgedOn("100 holdout rows of gold.penguins_features v0")


@dataclass
class Registry:
    settings: Settings
    client: MlflowClient
    registry: ModelRegistry
    trail: ModelEventLog
    aucs: dict[str, float]

    @property
    def name(self) -> str:
        return self.settings.dataset.model.name

    def version(self, auc: float) -> str:
        """A version from a finished run, scoring ``auc`` on the holdout; not through train:
        no event, as for a model that had versions before the trail."""
        with mlflow.start_run() as run:
            pass
        if not self.client.search_registered_models(f"name = '{self.name}'"):
            self.client.create_registered_model(self.name)
        version = str(self.client.create_model_version(
            self.name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id).version)
        self.aucs[version] = auc
        return version

    def judge(self, version: str, run_id: str):
        model, gate = self.settings.dataset.model, self.settings.dataset.promote
        return judge_version(self.registry, version, lambda v: {"areaUnderROC": self.aucs[v]},
                             HOLDOUT, model=model, gate=gate, run_id=run_id, trail=self.trail)

    def champion(self) -> str | None:
        held = self.registry.by_alias(self.name, CHAMPION)
        return str(held.version) if held is not None else None


@pytest.fixture
def cheap(spark, tmp_path) -> Registry:
    settings = load_settings("local", "penguins", overrides=[
        f"state_dir={tmp_path}", "dataset.model.name=audit_cheap", *GATE])
    configure_mlflow(settings)
    client = MlflowClient()
    return Registry(settings, client, ModelRegistry(client),
                    model_event_log(spark, settings, batch_id=BATCH), {})


def test_a_rollback_moves_champion_back_and_records_who_when_from_to_and_why(spark, cheap):
    v1, v2, v3 = cheap.version(0.80), cheap.version(0.90), cheap.version(0.95)
    cheap.judge(v1, "p1")
    cheap.judge(v2, "p2")
    cheap.client.set_registered_model_alias(cheap.name, CHALLENGER, v2)  # moved by hand
    before = cheap.trail.recorded(cheap.name)

    result = rollback_step(spark, cheap.settings, "all", to_version=v1,
                           reason="  v2 misclassifies the new colony ")

    events = cheap.trail.recorded(cheap.name)
    me = identify()
    assert (result.from_version, result.to_version, result.reason, result.who) == (
        v2, v1, "v2 misclassifies the new colony", me.who)
    assert cheap.champion() == v1
    assert events[:len(before)] == before
    assert _rows(before) == [
        (GATE_DECISION, None, None, v1, "promoted", "p1"),
        (ALIAS_MOVED, CHAMPION, None, v1, None, "p1"),
        (GATE_DECISION, None, v1, v2, "promoted", "p2"),
        (ALIAS_MOVED, CHAMPION, v1, v2, None, "p2"),
    ]
    # what the registry held and the trail lacked first, then the rollback
    assert _rows(events[len(before):]) == [
        (REGISTERED, None, None, v1, None, result.run_id),
        (REGISTERED, None, None, v2, None, result.run_id),
        (REGISTERED, None, None, v3, None, result.run_id),
        (ALIAS_MOVED, CHALLENGER, None, v2, None, result.run_id),
        (ROLLBACK, CHAMPION, v2, v1, None, result.run_id),
    ]
    assert all(e.reason.startswith(f"recorded late by run {result.run_id}: ")
               for e in events[len(before):-1])
    rollback = events[-1]
    assert (rollback.reason, rollback.who, rollback.who_source, rollback.batch_id) == (
        "v2 misclassifies the new colony", me.who, me.source, "all")
    assert rollback.at is not None and rollback.at > events[-2].at
    # the version it left is tagged, and the gate leaves it alone from now on
    assert cheap.client.get_model_version(cheap.name, v2).tags[ROLLED_BACK_TAG] == (
        f"to v{v1} by {me.who} (run {result.run_id}): v2 misclassifies the new colony")
    assert cheap.registry.versions_to_judge(cheap.name, asked=None) == [v3]
    run = cheap.client.get_run(result.run_id).data
    assert (run.tags["sparkmlops.step"], run.tags["rollback.reason"], run.params["to_version"]) \
        == ("rollback", "v2 misclassifies the new colony", v1)


@pytest.mark.parametrize(("argv", "code", "line"), [
    (["--to", "1"], 2, "RollbackRefused: rollback of model audit_cheap needs --reason: why "
                       "@champion moves back is part of its record; nothing was moved"),
    (["--reason", "worse"], 2, "RollbackRefused: rollback of model audit_cheap needs --to "
                               "<version>; nothing was moved"),
    (["--to", "7", "--reason", "worse"], 3,
     "MissingInputError: model audit_cheap has no version '7' (versions: 1, 2, 3); nothing "
     "was moved"),
    (["--to", "2", "--reason", "worse"], 2,
     "RollbackRefused: v2 already is @champion of model audit_cheap; nothing was moved"),
    (["--to", "3", "--reason", "worse"], 2,
     "RollbackRefused: v3 is later than @champion v2 of model audit_cheap: rollback moves "
     "@champion back to an earlier version (promote moves it forward); nothing was moved"),
])
def test_a_refused_rollback_exits_with_one_line_and_moves_nothing(cheap, capsys, argv, code,
                                                                  line):
    v1, v2, _ = cheap.version(0.80), cheap.version(0.90), cheap.version(0.70)
    cheap.judge(v1, "p1")
    cheap.judge(v2, "p2")
    before = cheap.trail.recorded(cheap.name)

    exit_code = main(["rollback", *argv, "--set", f"state_dir={cheap.settings.state_dir}",
                      "--set", "dataset.model.name=audit_cheap"])

    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("sparkmlops ")]
    assert (exit_code, err) == (code, [f"sparkmlops rollback: {line}"])
    assert cheap.champion() == v2
    assert cheap.trail.recorded(cheap.name) == before


def test_a_failed_event_write_is_one_line_and_the_next_promote_records_it_late(
    cheap, monkeypatch
):
    v1 = cheap.version(0.85)

    def unreachable(*_args, **_kwargs):
        raise OSError("s3a://lake/model_events/penguins: connection refused\nat java...")

    with monkeypatch.context() as patch:
        patch.setattr("sparkmlops.model_events.append_rows", unreachable)
        with pytest.raises(AuditTrailError) as failed:
            cheap.judge(v1, "p1")
    moved_to, missing = cheap.champion(), cheap.trail.recorded(cheap.name)
    late = record_late_events(cheap.registry, cheap.trail, cheap.name, "p2")
    completed, _ = complete_promotions(cheap.registry, cheap.name, "p2", trail=cheap.trail)

    assert str(failed.value) == (
        f"the registry holds gate_decision v{v1}: promoted; alias_moved @champion none → "
        f"v{v1} of model audit_cheap, but model_events.penguins was not written (OSError: "
        "s3a://lake/model_events/penguins: connection refused); the next promote or rollback "
        "records it as 'recorded late'")
    assert (moved_to, missing) == (v1, [])
    assert _rows(cheap.trail.recorded(cheap.name)) == _rows(late) == [
        (REGISTERED, None, None, v1, None, "p2"),
        (GATE_DECISION, None, None, v1, "promoted", "p1"),  # the deciding run's
        (ALIAS_MOVED, CHAMPION, None, v1, None, "p2"),
    ]
    assert late[1].reason == (
        "recorded late by run p2: the registry holds it and model_events did not (its own "
        "event was not written: the run failed or was killed between the two, or ran before "
        "the trail existed); areaUnderROC=0.8500 meets the threshold 0.6; no champion yet")
    assert late[1].metrics == {"challenger.areaUnderROC": 0.85}
    # the move was left pending: the next promote confirms it, and records nothing twice
    assert [d.challenger_version for d in completed] == [v1]
    assert record_late_events(cheap.registry, cheap.trail, cheap.name, "p3") == []
    assert len(cheap.trail.recorded(cheap.name)) == 3


def test_in_catalog_mode_the_trail_is_a_managed_append_only_table_found_by_name(
    spark, make_settings, catalog_schema
):
    settings = make_settings("storage.catalog=spark_catalog", f"storage.schema={catalog_schema}")
    trail = model_event_log(spark, settings, batch_id=BATCH)
    event = ModelEvent(ROLLBACK, "m", "1", from_version="2", alias=CHAMPION, reason="worse",
                       run_id="r1")

    trail.record([event])

    name = f"spark_catalog.{catalog_schema}.model_events_penguins"
    me = identify()
    [recorded] = trail.recorded("m")
    assert trail.ref.table_name == name and trail.ref.path is None
    assert spark.catalog.getTable(name).tableType == "MANAGED"
    assert DeltaTable.forName(spark, name).detail().first()["properties"] == {
        "delta.appendOnly": "true"}
    assert (recorded.event, recorded.alias, recorded.from_version, recorded.to_version,
            recorded.reason, recorded.who, recorded.batch_id, recorded.dataset) == (
        ROLLBACK, CHAMPION, "2", "1", "worse", me.who, BATCH, "penguins")
