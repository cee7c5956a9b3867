"""Promote's I/O edge: the gate between @challenger and @champion."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pyspark.sql import SparkSession

from sparkmlops.config import DatasetSettings, Settings
from sparkmlops.errors import MissingInputError
from sparkmlops.promote import promotion
from sparkmlops.tables import (
    DatasetTables,
    current_version,
    dataset_tables,
    ingest_order,
    read_table,
)
from sparkmlops.tracking.registry import CHALLENGER, CHAMPION, ModelRegistry
from sparkmlops.tracking.runs import StepOutcome, StepTracker, step_run
from sparkmlops.train import fitting
from sparkmlops.train.window import training_window

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromoteOutcome(StepOutcome):
    """The gate's decision on the challenger asked for (or the last judged), and all of them."""

    step: ClassVar[str] = "promote"
    decision: promotion.PromotionDecision | None = None
    champion: str | None = None  # @champion after the step
    decisions: list[promotion.PromotionDecision] = field(default_factory=list)

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
    whose alias move was not confirmed (``promotion.complete_promotions``); that
    decision stands for its version, which is not judged again. A champion with no
    decision on it is judged too.
    """
    dataset = settings.dataset
    name = dataset.model.name
    tables = dataset_tables(settings)
    with step_run(settings, "promote", batch_id) as tracker:
        registry = tracker.registry
        completed, stale = promotion.complete_promotions(registry, name, tracker.run_id)
        asked = _asked_challenger(registry, name, challenger_version)
        done = {d.challenger_version for d in completed}
        versions = sorted({*registry.versions_to_judge(name, asked=asked), *stale} - done,
                          key=int)
        if not versions and not completed:
            raise MissingInputError(f"model {name} has no version with alias "
                                    f"@{CHALLENGER} and no version left to judge")
        decisions, holdout = list(completed), None
        if versions:
            judged, holdout = _judge_all(spark, tracker, tables, dataset, versions, gold_version,
                                         decided=completed)
            decisions += judged
        # the challenger asked for speaks for the step (the last judged when none was)
        decision = next((d for d in decisions if d.challenger_version == asked), decisions[-1])
        champion_after = _champion_version(registry, name)
        _log_promotion(tracker, decisions, decision, champion_after, holdout)
        return PromoteOutcome(tracker.run_id, {}, decision=decision, champion=champion_after,
                              decisions=decisions)


def _judge_all(
    spark: SparkSession, tracker: StepTracker, tables: DatasetTables, dataset: DatasetSettings,
    versions: list[str], gold_version: int | None, *, decided: list[promotion.PromotionDecision],
) -> tuple[list[promotion.PromotionDecision], dict[str, Any]]:
    """Each version judged on the holdout of gold (``gold_version``, default the latest),
    oldest first; and what the holdout was. ``decided`` are the step's decisions so far."""
    gold = tables.gold
    data_version = gold_version if gold_version is not None else current_version(spark, gold)
    size = dataset.model.window_batches
    order = ingest_order(spark, tables.ingest_log) if size else []
    current, window = training_window(read_table(spark, gold, data_version), order, size)
    _, holdout = fitting.split_train_test(current, dataset)
    holdout = holdout.persist()
    try:
        rows = holdout.count()
        if rows == 0:
            raise MissingInputError(f"{gold.fqn} v{data_version} has no labelled holdout rows"
                                    " to compare the models on")
        tracker.read(gold, data_version, rows)
        evaluated_on = (f"{rows} holdout rows of {gold.fqn} v{data_version}"
                        + (f" (latest {len(window)} batches)" if window else ""))
        problems = _holdout_problems(holdout, rows, dataset, f"{gold.fqn} v{data_version}")
        scores: dict[str, dict[str, float] | str] = {}
        judged: list[promotion.PromotionDecision] = []

        def record_before_move(decision: promotion.PromotionDecision) -> None:
            # the run's record of a promotion is written before @champion moves
            tracker.log_dict(_decisions_record([*decided, *judged, decision]),
                             "promotion.json")

        for version in versions:
            judged.append(_judge(tracker, holdout, dataset, version, scores, evaluated_on,
                                 problems, record_before_move))
    finally:
        holdout.unpersist()
    return judged, {"table": gold.fqn, "version": data_version, "rows": rows}


def _asked_challenger(registry: ModelRegistry, name: str, asked: str | None) -> str | None:
    """The version asked for (checked), else @challenger's, else None."""
    if asked is not None:
        return str(registry.require(name, str(asked)).version)
    challenger = registry.by_alias(name, CHALLENGER)
    return str(challenger.version) if challenger is not None else None


def _champion_version(registry: ModelRegistry, name: str) -> str | None:
    champion = registry.by_alias(name, CHAMPION)
    return str(champion.version) if champion is not None else None


def _judge(
    tracker: StepTracker, holdout: Any, dataset: Any, version: str,
    scores: dict[str, dict[str, float] | str], evaluated_on: str, holdout_problems: list[str],
    before_move: Callable[[promotion.PromotionDecision], None],
) -> promotion.PromotionDecision:
    """One challenger against the champion of this moment, both scored on the holdout.

    ``scores`` caches each version's holdout metrics (or why it could not be
    scored): a challenger promoted here is the champion of the next one.
    """
    name = dataset.model.name
    registry = tracker.registry
    champion = _champion_version(registry, name)
    notes = [note] if (note := registry.unfinished_run_note(name, version)) else []
    challenger = _scores(tracker, holdout, dataset, version, scores)
    if isinstance(challenger, str):
        notes.append(f"v{version} {challenger}")
        challenger = {}
    champion_metrics, champion_note = None, None
    if champion is not None and champion != version:
        scored = _scores(tracker, holdout, dataset, champion, scores)
        if isinstance(scored, str):
            champion_note = (f"champion v{champion} {scored}; the challenger is judged on the "
                             "minimums alone")
            log.warning(champion_note)
        else:
            champion_metrics = scored
    return promotion.promote_if_better(
        registry, name, version, dataset.promote, dataset.model.primary_metric,
        challenger_metrics=challenger, champion_metrics=champion_metrics,
        champion_note=champion_note, challenger_notes=notes, holdout_problems=holdout_problems,
        evaluated_on=evaluated_on, run_id=tracker.run_id, before_move=before_move)


def _scores(
    tracker: StepTracker, holdout: Any, dataset: Any, version: str,
    scores: dict[str, dict[str, float] | str],
) -> dict[str, float] | str:
    """Holdout metrics of ``version``, or the sentence saying why it cannot score them."""
    if version not in scores:
        try:
            model = tracker.load_model(f"models:/{dataset.model.name}/{version}")
            scores[version] = fitting.evaluate(model.transform(holdout), dataset.model.task)
        except Exception as exc:  # noqa: BLE001 - recorded as the reason
            scores[version] = (f"cannot score the current data ({type(exc).__name__}: "
                               f"{(str(exc).splitlines() or [''])[0][:300]})")
    return scores[version]


def _decision_summary(decision: promotion.PromotionDecision) -> dict[str, Any]:
    return {"version": decision.challenger_version, "promoted": decision.promoted,
            "passed": decision.passed, "champion_before": decision.champion_before,
            "reasons": decision.reasons, "completes_run": decision.completes_run}


def _decisions_record(decisions: list[promotion.PromotionDecision]) -> dict[str, Any]:
    return {"decisions": [{**_decision_summary(d), "challenger_metrics": d.challenger_metrics,
                           "champion_metrics": d.champion_metrics} for d in decisions]}


def _log_promotion(
    tracker: StepTracker, decisions: list[promotion.PromotionDecision],
    decision: promotion.PromotionDecision,
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


def _holdout_problems(holdout: Any, rows: int, dataset: Any, source: str) -> list[str]:
    """Why the holdout cannot rank models (a class missing, too few rows): fails the gate."""
    classes = fitting.class_counts(holdout, dataset)
    return [f"the holdout of {source} cannot rank models: {problem}"
            for problem in fitting.holdout_problems(classes, rows, dataset)]
