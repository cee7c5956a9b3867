"""The promotion gate: whether a challenger version may become ``champion``.

Every trained model becomes a new version with alias ``challenger`` and tags that
tie it to its training data (table + Delta version), code (git commit) and config
(hash). ``promote_if_better`` moves ``champion`` to the challenger only when it
meets the configured minimums and beats the current champion's primary metric by
at least ``min_improvement``; the first model that meets the minimums becomes
champion. The decision and its numbers are written on the version as tags.

MLflow has no transactions, so the writes are ordered for a kill between any two
of them: the decision's tags (``promotion.mode`` last: a version without it was
never judged) and description first, with ``promotion.champion_move: pending``
when the alias is to move; then the promote run's record (``before_move``); then
the alias; then ``champion_move: done``. The next ``promote`` finishes what a
killed one left (``complete_promotions``), so the champion always carries the
gate record that put it there.

The registry calls go through ``sparkmlops.tracking.registry.ModelRegistry``
(``versions_to_judge`` there is the backlog ``promote`` works through).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from sparkmlops.config import PromoteSettings
from sparkmlops.metrics import is_better, meets_minimum
from sparkmlops.tracking.registry import CHAMPION, DECIDED_TAG, ModelRegistry

log = logging.getLogger(__name__)

# where the alias move a decision asked for stands: "pending" from before the alias
# moves until it has (and the deciding run recorded it), then "done"; "none": no move
MOVE_TAG = "promotion.champion_move"
RUN_TAG = "promotion.run_id"  # the promote run that decided
COMPLETED_BY_TAG = "promotion.completed_by_run"  # the run that finished a killed one's move


@dataclass(frozen=True)
class PromotionDecision:
    """What the gate decided for one challenger, and why."""

    mode: str
    challenger_version: str
    champion_before: str | None
    promoted: bool
    passed: bool
    reasons: list[str] = field(default_factory=list)
    challenger_metrics: dict[str, float] = field(default_factory=dict)
    champion_metrics: dict[str, float] = field(default_factory=dict)
    # set when this decision is one a killed promote run made and this run completed
    completes_run: str | None = None

    @property
    def champion_after(self) -> str | None:
        return self.challenger_version if self.promoted else self.champion_before

    @property
    def against(self) -> str:
        """Whom the challenger was judged against: "champion v3" or "no champion"."""
        return f"champion v{self.champion_before}" if self.champion_before else "no champion"


def decide(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    settings: PromoteSettings,
    primary_metric: str,
    *,
    holdout_problems: list[str] | None = None,
    no_champion: str = "no champion yet",
) -> tuple[bool, list[str]]:
    """(passes, reasons): the holdout and undefined metrics first, then the minimums,
    then the improvement over the champion.

    ``holdout_problems`` say why the holdout cannot rank models (one class, too few
    rows); any of them, or a metric that is not a finite number, fails the gate.
    ``no_champion`` is the last reason when there is no champion to beat.
    """
    reasons = list(holdout_problems or [])
    passes = not reasons
    undefined = {k: v for k, v in sorted(challenger.items()) if not math.isfinite(v)}
    if undefined:
        passes = False
        reasons.append("the challenger's " + ", ".join(f"{k}={v}" for k, v in undefined.items())
                       + " undefined on the holdout (not a finite number)")
    for metric, threshold in sorted(settings.min_metrics.items()):
        value = challenger.get(metric)
        if value is None:
            passes = False
            reasons.append(f"{metric} missing from the challenger's metrics")
        elif not math.isfinite(value):
            passes = False
        elif not meets_minimum(metric, value, threshold):
            passes = False
            reasons.append(f"{metric}={value:.4f} misses the threshold {threshold}")
        else:
            reasons.append(f"{metric}={value:.4f} meets the threshold {threshold}")
    if champion is None:
        reasons.append(no_champion)
        return passes, reasons
    new, old = challenger.get(primary_metric), champion.get(primary_metric)
    if new is None or old is None:
        return False, [*reasons, f"{primary_metric} missing on challenger or champion"]
    if not (math.isfinite(new) and math.isfinite(old)):
        return False, [*reasons, f"{primary_metric} is {new} for the challenger and {old} for "
                                 "the champion: models cannot be ranked on an undefined metric"]
    better = is_better(primary_metric, new, old, settings.min_improvement)
    verdict = "beats" if better else "does not beat"
    reasons.append(
        f"{primary_metric}={new:.4f} {verdict} the champion's {old:.4f} "
        f"by the required {settings.min_improvement}"
    )
    return passes and better, reasons


def promote_if_better(
    registry: ModelRegistry,
    name: str,
    challenger_version: str,
    settings: PromoteSettings,
    primary_metric: str,
    *,
    challenger_metrics: dict[str, float] | None = None,
    champion_metrics: dict[str, float] | None = None,
    champion_note: str | None = None,
    challenger_notes: list[str] | None = None,
    holdout_problems: list[str] | None = None,
    evaluated_on: str = "the metrics recorded by each training run",
    run_id: str | None = None,
    before_move: Callable[[PromotionDecision], None] | None = None,
) -> PromotionDecision:
    """Run the promotion gate for ``challenger_version`` and move ``champion`` if it passes.

    ``challenger_metrics`` / ``champion_metrics`` are the two models' metrics on the
    same data (``promote`` scores both on the current holdout); without them the
    metrics each training run recorded are compared. ``champion_note`` explains a
    champion that could not be evaluated (then the challenger is judged alone);
    ``challenger_notes`` are facts about the challenger that lead its reasons (its
    run did not finish, it could not be scored). ``holdout_problems`` say why the
    holdout cannot rank models; they fail the gate.

    The decision is on the version (tags, with ``run_id``, the promote run deciding)
    before the alias moves, and ``before_move`` records it on that run, so a kill at
    any point leaves a decision the next ``promote`` completes. A champion that
    carries no decision (moved by hand, or by a promote of before that order) is
    judged now, on the minimums: who was champion before it is not known.
    """
    challenger = registry.version(name, challenger_version)
    champion = registry.by_alias(name, CHAMPION)
    if challenger_metrics is None:
        challenger_metrics = registry.run_metrics(str(challenger.run_id))
    if champion is not None and champion_metrics is None and champion_note is None:
        champion_metrics = registry.run_metrics(str(champion.run_id))
    challenger_id = str(challenger.version)
    champion_id = str(champion.version) if champion is not None else None
    no_champion = "no champion yet"
    if champion_id == challenger_id:
        if DECIDED_TAG in (challenger.tags or {}):
            return PromotionDecision(settings.mode, challenger_id, champion_id, False, True,
                                     ["the challenger already is the champion"],
                                     challenger_metrics, champion_metrics or {})
        champion_id, champion_metrics, champion_note = None, None, None
        no_champion = (f"@champion was on v{challenger_id} with no gate record (moved by hand, "
                       "or by a promote killed before it recorded its decision): the champion "
                       "before it is not known, so it is judged on the minimums alone")
    if settings.mode == "disabled":
        passed, reasons = True, ["promotion gate disabled: champion is set by hand"]
    else:
        passed, reasons = decide(challenger_metrics, champion_metrics, settings, primary_metric,
                                 holdout_problems=holdout_problems, no_champion=no_champion)
        if champion_note:
            reasons.insert(0, champion_note)
    reasons = [*(challenger_notes or []), *reasons]
    decision = PromotionDecision(
        mode=settings.mode,
        challenger_version=challenger_id,
        champion_before=champion_id,
        promoted=passed and settings.mode == "enabled",
        passed=passed,
        reasons=reasons,
        challenger_metrics=challenger_metrics,
        champion_metrics=champion_metrics or {},
    )
    _record_decision(registry, name, decision, evaluated_on, run_id)
    if decision.promoted:
        if before_move is not None:
            before_move(decision)
        registry.set_alias(name, CHAMPION, challenger_id)
        registry.tag_version(name, challenger_id, {MOVE_TAG: "done"})
    log.info("promotion of %s v%s: %s (%s)", name, challenger_id,
             "promoted" if decision.promoted else "not promoted", "; ".join(reasons))
    return decision


def complete_promotions(
    registry: ModelRegistry, name: str, run_id: str | None
) -> tuple[list[PromotionDecision], list[str]]:
    """Finish the alias moves a killed ``promote`` decided: (completed decisions, to judge).

    A version whose decision says ``champion_move: pending`` was decided, its tags
    complete, and killed before the move was confirmed. If it is the champion, the
    alias moved: only the confirmation is written. If the champion is still the one
    it was judged against, the alias moves now. Otherwise @champion moved elsewhere
    meanwhile (by hand): its decision no longer holds and it is returned to be judged
    again. Completed versions carry ``promotion.completed_by_run: <run_id>``.
    """
    completed: list[PromotionDecision] = []
    stale: list[str] = []
    for version in registry.versions_tagged(name, MOVE_TAG, "pending"):
        model_version = registry.version(name, version)
        tags = dict(model_version.tags or {})
        if DECIDED_TAG not in tags:
            continue  # killed while its decision was written: judged again as undecided
        champion = registry.by_alias(name, CHAMPION)
        now = str(champion.version) if champion is not None else "none"
        if now != version and now != tags.get("promotion.champion_before", "none"):
            log.warning("%s v%s was decided as champion by run %s, but @champion moved to %s "
                        "meanwhile: judged again", name, version, tags.get(RUN_TAG), now)
            stale.append(version)
            continue
        if now != version:
            registry.set_alias(name, CHAMPION, version)
        registry.tag_version(name, version, {COMPLETED_BY_TAG: run_id or "none", MOVE_TAG: "done"})
        decision = _decision_from_tags(version, tags)
        log.info("completed the promotion of %s v%s that run %s decided and did not finish",
                 name, version, decision.completes_run)
        completed.append(decision)
    return completed, stale


def _decision_from_tags(version: str, tags: dict[str, str]) -> PromotionDecision:
    """A promoting decision as ``_record_decision`` wrote it on the version."""
    def metrics(prefix: str) -> dict[str, float]:
        return {k[len(prefix):]: float(v) for k, v in tags.items() if k.startswith(prefix)}

    before = tags.get("promotion.champion_before", "none")
    return PromotionDecision(
        mode=tags[DECIDED_TAG], challenger_version=version,
        champion_before=None if before == "none" else before, promoted=True,
        passed=tags.get("promotion.passed") == "True",
        reasons=json.loads(tags.get("promotion.reasons", "[]")),
        challenger_metrics=metrics("promotion.challenger."),
        champion_metrics=metrics("promotion.champion."),
        completes_run=tags.get(RUN_TAG, "unknown"))


def _record_decision(
    registry: ModelRegistry, name: str, decision: PromotionDecision, evaluated_on: str,
    run_id: str | None,
) -> None:
    """The decision as tags and a readable description on the challenger's version.

    ``promotion.mode`` (``DECIDED_TAG``) is written last: a version that carries it
    carries the whole record.
    """
    version = decision.challenger_version
    registry.tag_version(name, version, {
        MOVE_TAG: "pending" if decision.promoted else "none",
        RUN_TAG: run_id or "none",
        "promotion.passed": decision.passed,
        "promotion.promoted": decision.promoted,
        "promotion.champion_before": decision.champion_before or "none",
        "promotion.reasons": json.dumps(decision.reasons),
        "promotion.evaluated_on": evaluated_on,
        **{f"promotion.challenger.{k}": round(v, 6)
           for k, v in decision.challenger_metrics.items()},
        **{f"promotion.champion.{k}": round(v, 6) for k, v in decision.champion_metrics.items()},
    })
    verdict = ("promoted to champion" if decision.promoted
               else "passed the gate (dry run: not promoted)" if decision.passed
               else "not promoted")
    registry.describe_version(
        name, version,
        f"Promotion gate ({decision.mode}) against {decision.against} on {evaluated_on}: "
        f"{verdict}. " + "; ".join(decision.reasons))
    registry.tag_version(name, version, {DECIDED_TAG: decision.mode})
