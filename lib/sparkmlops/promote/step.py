"""Promote's I/O edge: the gate between @challenger and @champion.

The gate's decisions are pure (``promotion``); this module reads the registry and the
holdout, scores the models, records each decision and moves ``@champion``.

MLflow has no transactions, so the writes are ordered for a kill between any two of
them: the decision's tags (``promotion.mode`` last: a version without it was never
judged) and description first, with ``promotion.champion_move: pending`` when the alias
is to move; then the promote run's record (``before_move``); then the alias; then
``champion_move: done``. The next ``promote`` finishes what a killed one left
(``complete_promotions``), so the champion always carries the gate record that put it
there.

Each judged version is one commit of ``model_events`` (its ``gate_decision`` and, when it
moved, ``@champion``'s ``alias_moved``), written after the alias and before ``champion_move:
done``; before judging, ``promote`` records what the registry holds and the trail lacks
(``record_late_events``). ``rollback_step`` moves @champion back, and is recorded the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pyspark.sql import DataFrame, SparkSession

from sparkmlops.config import DatasetSettings, ModelSettings, PromoteSettings, Settings
from sparkmlops.errors import MissingInputError
from sparkmlops.model_events import (
    ROLLBACK,
    EventRecorder,
    ModelEvent,
    late_events,
    model_event_log,
)
from sparkmlops.promote import promotion
from sparkmlops.promote.promotion import PromotionDecision
from sparkmlops.spark import persisted
from sparkmlops.tables import (
    DatasetTables,
    dataset_tables,
    ingest_order,
    read_table,
    version_or_current,
)
from sparkmlops.tracking.registry import (
    CHALLENGER,
    CHAMPION,
    DECIDED_TAG,
    ROLLED_BACK_TAG,
    ModelRegistry,
)
from sparkmlops.tracking.runs import StepOutcome, StepTracker, configure_mlflow, step_run, tool_run
from sparkmlops.train import fitting
from sparkmlops.train.window import training_window

log = logging.getLogger(__name__)

# a version's holdout metrics, or the sentence saying why it cannot be scored
Scores = dict[str, float] | str
Scorer = Callable[[str], Scores]


@dataclass(frozen=True)
class PromoteOutcome(StepOutcome):
    """The gate's decision on the challenger asked for (or the last judged), and all of them."""

    step: ClassVar[str] = "promote"
    decision: PromotionDecision | None = None
    champion: str | None = None  # @champion after the step
    decisions: list[PromotionDecision] = field(default_factory=list)

    @property
    def promoted(self) -> bool:
        return self.decision is not None and self.decision.promoted

    @property
    def gate_failed(self) -> bool:
        """The enabled gate refused the challenger that speaks for the step."""
        return (self.decision is not None and self.decision.mode == "enabled"
                and not self.decision.passed)

    @property
    def summary(self) -> dict[str, Any]:
        d = self.decision
        assert d is not None
        return {"promoted": d.promoted, "passed": d.passed, "mode": d.mode,
                "challenger": d.challenger_version, "champion": self.champion,
                "champion_before": d.champion_before, "reasons": d.reasons}


@dataclass(frozen=True)
class RollbackOutcome(StepOutcome):
    """Where ``rollback`` moved @champion from and to, why, and for whom."""

    step: ClassVar[str] = "rollback"
    model: str = ""
    from_version: str = ""
    to_version: str = ""
    reason: str = ""
    who: str = ""

    @property
    def summary(self) -> dict[str, Any]:
        return {"model": self.model, "champion": f"v{self.from_version} -> v{self.to_version}",
                "reason": self.reason, "who": self.who}


@dataclass(frozen=True)
class JudgedOn:
    """What every version one ``promote`` judges is scored on, as its decision cites it."""

    evaluated_on: str  # "95 holdout rows of gold.penguins_features v3"
    problems: list[str] = field(default_factory=list)  # why it cannot rank models


def promote_step(
    spark: SparkSession, settings: Settings, batch_id: str,
    *, challenger_version: str | None = None, gold_version: int | None = None,
) -> PromoteOutcome:
    """Gate each challenger against the champion; move @champion when one is better.

    The challengers are ``challenger_version`` (default: @challenger) and every
    version registered after the champion that was never judged (a train killed
    before its promote, or two trains in a row), judged oldest first, each against
    the champion of that moment. Each model is loaded from the registry and scored
    on the same rows: the holdout of the current gold table version (the config's
    split), so the comparison is on today's data, not on the numbers each run saw
    when trained.

    First it completes what a killed ``promote`` left half done: a decision recorded
    whose alias move was not confirmed (``complete_promotions``); that decision stands
    for its version, which is not judged again. A champion with no decision on it is
    judged too.
    """
    dataset = settings.dataset
    name = dataset.model.name
    with step_run(settings, PromoteOutcome.step, batch_id) as tracker:
        trail = model_event_log(spark, settings, batch_id=batch_id, wrote=tracker.wrote)
        registry = tracker.registry
        record_late_events(registry, trail, name, tracker.run_id)
        completed, stale = complete_promotions(registry, name, tracker.run_id, trail=trail)
        asked = _asked_challenger(registry, name, challenger_version)
        versions = _to_judge(registry, name, asked, stale=stale, completed=completed)
        decisions, holdout = list(completed), None
        if versions:
            judged, holdout = _judge_all(spark, tracker, dataset_tables(settings), dataset,
                                         versions, gold_version, decided=completed,
                                         trail=trail)
            decisions += judged
        # the challenger asked for speaks for the step (the last judged when none was)
        decision = next((d for d in decisions if d.challenger_version == asked), decisions[-1])
        champion_after = _champion_version(registry, name)
        _log_promotion(tracker, decisions, decision, champion_after, holdout)
        return PromoteOutcome(tracker.run_id, {}, decision=decision, champion=champion_after,
                              decisions=decisions)


def record_late_events(
    registry: ModelRegistry, trail: EventRecorder, name: str, run_id: str | None
) -> list[ModelEvent]:
    """Record, in one commit, what the registry holds of ``name`` and the trail lacks (a
    run failed or was killed between the two writes, or ran before the trail existed):
    versions, gate decisions (from the version's ``promotion.*`` tags) and alias
    positions, each marked ``recorded late``; the events recorded."""
    versions = sorted(registry.all_versions(name), key=lambda v: int(v.version))
    decided = [promotion.decision_event(
                   promotion.decision_on_record(str(v.version), tags), name,
                   _run_or_none(promotion.decision_record(tags).get("run_id")))
               for v in versions if DECIDED_TAG in (tags := dict(v.tags or {}))]
    late = late_events(name, trail.recorded(name), versions=[str(v.version) for v in versions],
                       decided=decided, aliases={alias: _alias_version(registry, name, alias)
                                                 for alias in (CHALLENGER, CHAMPION)},
                       run_id=run_id)
    if late:
        log.warning("model %s: %d event(s) the registry holds were missing from the trail; "
                    "recorded late", name, len(late))
    trail.record(late)
    return late


def _run_or_none(run_id: str | None) -> str | None:
    return None if run_id in (None, "none") else run_id


def complete_promotions(
    registry: ModelRegistry, name: str, run_id: str | None, *, trail: EventRecorder
) -> tuple[list[PromotionDecision], list[str]]:
    """Finish the alias moves a killed ``promote`` decided: (completed decisions, to judge).

    A version whose decision says ``champion_move: pending`` was decided, its tags
    complete, and killed before the move was confirmed (``promotion.pending_move`` says
    what is left: the confirmation, the move, or nothing because @champion moved
    elsewhere meanwhile and the version is judged again). Completed versions carry
    ``promotion.completed_by_run: <run_id>``.
    """
    completed: list[PromotionDecision] = []
    stale: list[str] = []
    for version in registry.versions_tagged(name, promotion.MOVE_TAG, "pending"):
        tags = dict(registry.version(name, version).tags or {})
        champion = _champion_version(registry, name)
        action = promotion.pending_move(version, tags, champion)
        if action == "undecided":
            continue  # killed while its decision was written: judged again as undecided
        if action == "stale":
            log.warning("%s v%s was decided as champion by run %s, but @champion moved to %s "
                        "meanwhile: judged again", name, version,
                        promotion.decision_record(tags).get("run_id"),
                        champion or "none")
            stale.append(version)
            continue
        decision = promotion.decision_from_tags(version, tags)
        if action == "move":
            registry.set_alias(name, CHAMPION, version)
            trail.record(promotion.champion_moved(
                name, champion, version, run_id=run_id,
                reason=f"completes the promotion run {decision.completes_run} decided"))
        registry.tag_version(name, version, {promotion.COMPLETED_BY_TAG: run_id or "none",
                                             promotion.MOVE_TAG: "done"})
        log.info("completed the promotion of %s v%s that run %s decided and did not finish",
                 name, version, decision.completes_run)
        completed.append(decision)
    return completed, stale


def judge_version(
    registry: ModelRegistry, version: str, score: Scorer, judged_on: JudgedOn, *,
    model: ModelSettings, gate: PromoteSettings, run_id: str | None, trail: EventRecorder,
    before_move: Callable[[PromotionDecision], None] | None = None,
) -> PromotionDecision:
    """One challenger against the champion of this moment, both scored by ``score`` on
    the holdout; the decision recorded on the version, then @champion moved if it passed,
    then both in ``trail``.

    ``run_id`` is the promote run deciding; ``before_move`` records the decision on it
    before the alias moves, so a kill at any point leaves a decision the next
    ``promote`` completes.
    """
    name = model.name
    champion = _champion_version(registry, name)
    notes = [note] if (note := registry.unfinished_run_note(name, version)) else []
    challenger = score(version)
    if isinstance(challenger, str):
        notes.append(f"v{version} {challenger}")
        challenger = {}
    champion_metrics, champion_note = None, None
    if champion is not None and champion != version:
        scored = score(champion)
        if isinstance(scored, str):
            champion_note = (f"champion v{champion} {scored}; the challenger is judged on the "
                             "minimums alone")
            log.warning(champion_note)
        else:
            champion_metrics = scored
    decided = champion == version and DECIDED_TAG in (registry.version(name, version).tags or {})
    decision = promotion.judge(
        version, champion, gate, model.primary_metric, challenger_metrics=challenger,
        champion_metrics=champion_metrics, challenger_decided=decided,
        champion_note=champion_note, challenger_notes=notes, holdout_problems=judged_on.problems)
    if not decision.already_champion:
        _record_and_move(registry, name, decision, evaluated_on=judged_on.evaluated_on,
                         run_id=run_id, before_move=before_move, trail=trail)
    return decision


def _record_and_move(
    registry: ModelRegistry, name: str, decision: PromotionDecision, *, evaluated_on: str,
    run_id: str | None, before_move: Callable[[PromotionDecision], None] | None,
    trail: EventRecorder,
) -> None:
    """The decision on the version (``promotion.mode`` last), then the move, then both in
    the trail (one commit), then the move confirmed: a kill before the trail's commit
    leaves the move ``pending``, and the next ``promote`` records what the trail lacks."""
    version = decision.challenger_version
    registry.tag_version(name, version, promotion.decision_tags(decision, evaluated_on, run_id))
    registry.describe_version(name, version,
                              promotion.decision_description(decision, evaluated_on))
    registry.tag_version(name, version, {DECIDED_TAG: decision.mode})
    events = [promotion.decision_event(decision, name, run_id)]
    if not decision.promoted:
        trail.record(events)
    else:
        if before_move is not None:
            before_move(decision)
        champion = _champion_version(registry, name)
        registry.set_alias(name, CHAMPION, version)
        trail.record([*events, *promotion.champion_moved(
            name, champion, version, run_id=run_id, reason="promoted by the gate")])
        registry.tag_version(name, version, {promotion.MOVE_TAG: "done"})
    log.info("promotion of %s v%s: %s (%s)", name, version,
             "promoted" if decision.promoted else "not promoted", "; ".join(decision.reasons))


def _judge_all(
    spark: SparkSession, tracker: StepTracker, tables: DatasetTables, dataset: DatasetSettings,
    versions: list[str], gold_version: int | None, *, decided: list[PromotionDecision],
    trail: EventRecorder,
) -> tuple[list[PromotionDecision], dict[str, Any]]:
    """Each version judged on the holdout of gold (``gold_version``, default the latest),
    oldest first; and what the holdout was. ``decided`` are the step's decisions so far."""
    gold = tables.gold
    data_version = version_or_current(spark, gold, gold_version)
    size = dataset.model.window_batches
    order = ingest_order(spark, tables.ingest_log) if size else []
    current, window = training_window(read_table(spark, gold, data_version), order, size)
    source = f"{gold.fqn} v{data_version}"
    _, holdout = fitting.split_train_test(current, dataset)
    with persisted(holdout) as (holdout,):
        rows = holdout.count()
        if rows == 0:
            raise MissingInputError(f"{source} has no labelled holdout rows to compare the "
                                    "models on")
        tracker.read(gold, data_version, rows)
        judged_on = JudgedOn(
            evaluated_on=(f"{rows} holdout rows of {source}"
                          + (f" (latest {len(window)} batches)" if window else "")),
            problems=_holdout_problems(holdout, rows, dataset, source))
        score = _holdout_scorer(tracker, holdout, dataset.model)
        judged: list[PromotionDecision] = []

        def record_before_move(decision: PromotionDecision) -> None:
            # the run's record of a promotion is written before @champion moves
            tracker.log_dict(_decisions_record([*decided, *judged, decision]), "promotion.json")

        for version in versions:
            judged.append(judge_version(tracker.registry, version, score, judged_on,
                                        model=dataset.model, gate=dataset.promote,
                                        run_id=tracker.run_id, trail=trail,
                                        before_move=record_before_move))
    return judged, {"table": gold.fqn, "version": data_version, "rows": rows}


def _to_judge(
    registry: ModelRegistry, name: str, asked: str | None, *, stale: list[str],
    completed: list[PromotionDecision],
) -> list[str]:
    """The versions left to judge, oldest first: the registry's backlog and ``stale``
    decisions, but not the ``completed`` ones; MissingInputError when nothing is left."""
    done = {d.challenger_version for d in completed}
    versions = sorted({*registry.versions_to_judge(name, asked=asked), *stale} - done, key=int)
    if not versions and not completed:
        raise MissingInputError(f"model {name} has no version with alias "
                                f"@{CHALLENGER} and no version left to judge")
    return versions


def _holdout_scorer(tracker: StepTracker, holdout: DataFrame, model: ModelSettings) -> Scorer:
    """The holdout metrics of a version (or the sentence saying why it cannot score them),
    each version scored once: a challenger promoted here is the champion of the next one."""
    scores: dict[str, Scores] = {}

    def score(version: str) -> Scores:
        if version not in scores:
            try:
                loaded = tracker.load_model(f"models:/{model.name}/{version}")
                scores[version] = fitting.evaluate(loaded.transform(holdout), model.task)
            except Exception as exc:  # noqa: BLE001 - recorded as the reason
                scores[version] = (f"cannot score the current data ({type(exc).__name__}: "
                                   f"{(str(exc).splitlines() or [''])[0][:300]})")
        return scores[version]

    return score


def _asked_challenger(registry: ModelRegistry, name: str, asked: str | None) -> str | None:
    """The version asked for (checked), else @challenger's, else None; a @challenger that
    ``rollback`` moved @champion away from is not judged again unless asked for."""
    if asked is not None:
        return str(registry.require(name, str(asked)).version)
    challenger = registry.by_alias(name, CHALLENGER)
    if challenger is not None and ROLLED_BACK_TAG in (challenger.tags or {}):
        log.warning("@challenger v%s of %s was rolled back (%s): not judged again; name it "
                    "with --challenger-version to judge it", challenger.version, name,
                    challenger.tags[ROLLED_BACK_TAG])
        return None
    return str(challenger.version) if challenger is not None else None


def _champion_version(registry: ModelRegistry, name: str) -> str | None:
    return _alias_version(registry, name, CHAMPION)


def _alias_version(registry: ModelRegistry, name: str, alias: str) -> str | None:
    holder = registry.by_alias(name, alias)
    return str(holder.version) if holder is not None else None


def _decision_summary(decision: PromotionDecision) -> dict[str, Any]:
    return {"version": decision.challenger_version, "promoted": decision.promoted,
            "passed": decision.passed, "champion_before": decision.champion_before,
            "reasons": decision.reasons, "completes_run": decision.completes_run}


def _decisions_record(decisions: list[PromotionDecision]) -> dict[str, Any]:
    return {"decisions": [{**_decision_summary(d), "challenger_metrics": d.challenger_metrics,
                           "champion_metrics": d.champion_metrics} for d in decisions]}


def _log_promotion(
    tracker: StepTracker, decisions: list[PromotionDecision],
    decision: PromotionDecision,
    champion_after: str | None, holdout: dict[str, Any] | None,
) -> None:
    """The step run's record: ``decision``'s numbers as before, and every decision made."""
    tracker.params({"promotion.mode": decision.mode,
                    "challenger_version": decision.challenger_version,
                    "champion_before": decision.champion_before or "none",
                    "judged_versions": ",".join(d.challenger_version for d in decisions)})
    tracker.metrics({
        **{f"challenger.{k}": v for k, v in decision.challenger_metrics.items()},
        **{f"champion.{k}": v for k, v in decision.champion_metrics.items()},
    })
    tracker.tags({"promotion.promoted": decision.promoted,
                  "promotion.passed": decision.passed,
                  "promotion.champion_after": champion_after or "none"})
    tracker.outcome("promoted" if any(d.promoted for d in decisions) else "not_promoted")
    tracker.log_dict({"reasons": decision.reasons,
                     "challenger_metrics": decision.challenger_metrics,
                     "champion_metrics": decision.champion_metrics,
                     "holdout": holdout,
                     **_decisions_record(decisions)},
                    "promotion.json")


def _holdout_problems(
    holdout: DataFrame, rows: int, dataset: DatasetSettings, source: str
) -> list[str]:
    """Why the holdout cannot rank models (a class missing, too few rows): fails the gate."""
    classes = fitting.class_counts(holdout, dataset)
    return [f"the holdout of {source} cannot rank models: {problem}"
            for problem in fitting.holdout_problems(classes, rows, dataset)]


def rollback_step(
    spark: SparkSession, settings: Settings, batch_id: str, *, to_version: str, reason: str,
) -> RollbackOutcome:
    """Move @champion back to the earlier version ``to_version``, for ``reason``; recorded.

    Refused with one line, before anything moves (``promotion.check_rollback``). In order:
    what the trail lacks is recorded (``record_late_events``); the version @champion leaves
    is tagged ``rollback.rolled_back`` (the gate then leaves it alone: promote would move it
    forward again); @champion moves; the ``rollback`` row is appended to ``model_events``.
    The rollback is an MLflow run of its own (``sparkmlops.step: rollback``).
    """
    name = settings.dataset.model.name
    configure_mlflow(settings)
    with tool_run(f"rollback {name}", dataset=settings.dataset.name,
                  step=RollbackOutcome.step) as tracker:
        trail = model_event_log(spark, settings, batch_id=batch_id, wrote=tracker.wrote)
        registry = tracker.registry
        champion = _champion_version(registry, name)
        versions = sorted((str(v.version) for v in registry.all_versions(name)), key=int)
        promotion.check_rollback(name, to_version, champion=champion, versions=versions,
                                 pending=registry.versions_tagged(name, promotion.MOVE_TAG,
                                                                  "pending"), reason=reason)
        assert champion is not None  # check_rollback refuses a model without one
        record_late_events(registry, trail, name, tracker.run_id)
        reason, actor = reason.strip(), trail.actor
        tracker.params({"model": name, "from_version": champion, "to_version": to_version})
        tracker.tags({"rollback.reason": reason, "rollback.who": actor.who})
        registry.tag_version(name, champion, {
            ROLLED_BACK_TAG: f"to v{to_version} by {actor.who} (run {tracker.run_id}): {reason}"})
        registry.set_alias(name, CHAMPION, to_version)
        trail.record([ModelEvent(ROLLBACK, name, to_version, from_version=champion,
                                 alias=CHAMPION, reason=reason, run_id=tracker.run_id)])
        tracker.outcome("rolled_back")
        log.info("@champion of %s moved back from v%s to v%s by %s: %s", name, champion,
                 to_version, actor.who, reason)
        return RollbackOutcome(tracker.run_id, {}, model=name, from_version=champion,
                               to_version=to_version, reason=reason, who=actor.who)
