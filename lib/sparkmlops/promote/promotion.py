"""The promotion gate: whether a challenger version may become ``champion``.

Every trained model becomes a new version with alias ``challenger`` and tags that
tie it to its training data (table + Delta version), code (git commit) and config
(hash). The gate (``judge``) lets a challenger become champion only when it meets the
configured minimums and beats the current champion's primary metric by at least
``min_improvement``; the first model that meets the minimums becomes champion.

Everything here is pure: metrics and tags in, a ``PromotionDecision`` (and the tags and
description that record it) out. ``promote/step.py`` reads the registry, writes the
record and moves ``@champion``, in the order that survives a kill between any two
writes (see there); ``pending_move`` says what the next ``promote`` does with a
decision a killed one left.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from sparkmlops.config import PromoteSettings
from sparkmlops.errors import MissingInputError, RollbackRefused
from sparkmlops.metrics import is_better, meets_minimum
from sparkmlops.model_events import GATE_DECISION, ModelEvent, moved
from sparkmlops.tracking.registry import CHAMPION, DECIDED_TAG

# where the alias move a decision asked for stands: "pending" from before the alias
# moves until it has (and the deciding run recorded it), then "done"; "none": no move
MOVE_TAG = "promotion.champion_move"
PROMOTED_TAG = "promotion.promoted"  # True / False: what a user filters versions on
# the rest of the decision as one JSON value (``decision_record``): the promote run that
# decided, the champion it was judged against, passed, the holdout, the reasons and both
# sides' metrics; one tag each crowded the version's page (up to 21 with both sides)
DECISION_TAG = "promotion.decision"
COMPLETED_BY_TAG = "promotion.completed_by_run"  # the run that finished a killed one's move

ALREADY_CHAMPION = "the challenger already is the champion"


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

    @property
    def already_champion(self) -> bool:
        """The challenger is the champion by a decision on record: nothing new to record."""
        return self.champion_before == self.challenger_version


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


def judge(
    challenger_version: str,
    champion_version: str | None,
    settings: PromoteSettings,
    primary_metric: str,
    *,
    challenger_metrics: dict[str, float],
    champion_metrics: dict[str, float] | None = None,
    challenger_decided: bool = False,
    champion_note: str | None = None,
    challenger_notes: list[str] | None = None,
    holdout_problems: list[str] | None = None,
) -> PromotionDecision:
    """The gate's decision on ``challenger_version`` against ``champion_version`` (None:
    there is no champion), from both models' metrics on the same holdout.

    ``champion_metrics`` is None when the champion could not be scored; then
    ``champion_note`` says why and the challenger is judged on the minimums alone.
    ``challenger_notes`` are facts about the challenger that lead its reasons (its run
    did not finish, it could not be scored); ``holdout_problems`` say why the holdout
    cannot rank models and fail the gate.

    A challenger that is the champion already is ``already_champion`` when it carries a
    decision (``challenger_decided``): nothing to judge or record. One that carries none
    (moved by hand, or by a promote killed before it recorded its decision) is judged
    now, on the minimums: who was champion before it is not known.
    """
    no_champion = "no champion yet"
    if champion_version == challenger_version:
        if challenger_decided:
            return PromotionDecision(settings.mode, challenger_version, champion_version,
                                     promoted=False, passed=True, reasons=[ALREADY_CHAMPION],
                                     challenger_metrics=challenger_metrics)
        champion_version, champion_metrics, champion_note = None, None, None
        no_champion = (f"@champion was on v{challenger_version} with no gate record (moved by "
                       "hand, or by a promote killed before it recorded its decision): the "
                       "champion before it is not known, so it is judged on the minimums alone")
    if settings.mode == "disabled":
        passed, reasons = True, ["promotion gate disabled: champion is set by hand"]
    else:
        passed, reasons = decide(challenger_metrics, champion_metrics, settings, primary_metric,
                                 holdout_problems=holdout_problems, no_champion=no_champion)
        if champion_note:
            reasons.insert(0, champion_note)
    return PromotionDecision(
        mode=settings.mode,
        challenger_version=challenger_version,
        champion_before=champion_version,
        promoted=passed and settings.mode == "enabled",
        passed=passed,
        reasons=[*(challenger_notes or []), *reasons],
        challenger_metrics=challenger_metrics,
        champion_metrics=champion_metrics or {},
    )


def decision_tags(
    decision: PromotionDecision, evaluated_on: str, run_id: str | None
) -> dict[str, object]:
    """The decision as tags on the challenger's version, but ``DECIDED_TAG``: the step
    writes that one last, so a version that carries it carries the whole record.

    ``promotion.champion_move`` is ``pending`` when the alias is to move: the step
    confirms it (``done``) once the alias moved, or the next ``promote`` does.
    ``promotion.decision`` holds the details (``decision_record`` reads them).
    """
    record = {
        "run_id": run_id or "none",
        "champion_before": decision.champion_before or "none",
        "passed": decision.passed,
        "evaluated_on": evaluated_on,
        "reasons": decision.reasons,
        "challenger": {k: round(v, 6) for k, v in decision.challenger_metrics.items()},
        "champion": {k: round(v, 6) for k, v in decision.champion_metrics.items()},
    }
    return {MOVE_TAG: "pending" if decision.promoted else "none",
            PROMOTED_TAG: decision.promoted, DECISION_TAG: json.dumps(record)}


def decision_record(tags: dict[str, str]) -> dict[str, Any]:
    """The details ``decision_tags`` wrote in ``promotion.decision`` (``run_id``,
    ``champion_before``, ``passed``, ``evaluated_on``, ``reasons``, the ``challenger``'s and
    ``champion``'s metrics); empty when the version carries no decision."""
    return dict(json.loads(tags.get(DECISION_TAG) or "{}"))


def decision_description(decision: PromotionDecision, evaluated_on: str) -> str:
    """The decision in words, for the version's description in the registry."""
    verdict = ("promoted to champion" if decision.promoted
               else "passed the gate (dry run: not promoted)" if decision.passed
               else "not promoted")
    return (f"Promotion gate ({decision.mode}) against {decision.against} on {evaluated_on}: "
            f"{verdict}. " + "; ".join(decision.reasons))


PendingMove = Literal["undecided", "confirm", "move", "stale"]


def pending_move(version: str, tags: dict[str, str], champion: str | None) -> PendingMove:
    """What the next ``promote`` does with a version whose decision says ``champion_move:
    pending`` (a ``promote`` killed before it confirmed the move), @champion on ``champion``.

    - ``undecided``: killed while its decision was written; judged again as undecided;
    - ``confirm``: it is the champion, the alias moved: only the confirmation is missing;
    - ``move``: the champion is still the one it was judged against: the alias moves now;
    - ``stale``: @champion moved elsewhere meanwhile (by hand): the decision no longer
      holds and the version is judged again.
    """
    if DECIDED_TAG not in tags:
        return "undecided"
    now = champion or "none"
    if now == version:
        return "confirm"
    if now == decision_record(tags).get("champion_before", "none"):
        return "move"
    return "stale"


def decision_from_tags(version: str, tags: dict[str, str]) -> PromotionDecision:
    """A promoting decision as ``decision_tags`` wrote it on the version."""
    record = decision_record(tags)
    before = record.get("champion_before", "none")
    return PromotionDecision(
        mode=tags[DECIDED_TAG], challenger_version=version,
        champion_before=None if before == "none" else before, promoted=True,
        passed=record.get("passed") is True, reasons=list(record.get("reasons", [])),
        challenger_metrics={k: float(v) for k, v in record.get("challenger", {}).items()},
        champion_metrics={k: float(v) for k, v in record.get("champion", {}).items()},
        completes_run=record.get("run_id", "unknown"))


def decision_on_record(version: str, tags: dict[str, str]) -> PromotionDecision:
    """Any decision ``decision_tags`` wrote on the version (promoting or not), as recorded."""
    return replace(decision_from_tags(version, tags),
                   promoted=tags.get(PROMOTED_TAG) == "True", completes_run=None)


def verdict(decision: PromotionDecision) -> str:
    """The ``decision`` of its ``model_events`` row: promoted, rejected, dry_run, disabled."""
    if decision.promoted:
        return "promoted"
    return decision.mode if decision.mode in ("dry_run", "disabled") else "rejected"


def decision_event(decision: PromotionDecision, model: str, run_id: str | None) -> ModelEvent:
    """The ``gate_decision`` row of a decision: judged against ``from_version`` (the
    champion then), its reasons and both models' metrics."""
    return ModelEvent(
        GATE_DECISION, model, decision.challenger_version,
        from_version=decision.champion_before, decision=verdict(decision),
        reason="; ".join(decision.reasons),
        metrics={**{f"challenger.{k}": v for k, v in decision.challenger_metrics.items()},
                 **{f"champion.{k}": v for k, v in decision.champion_metrics.items()}},
        run_id=run_id)


def champion_moved(model: str, before: str | None, after: str, *, run_id: str | None,
                   reason: str) -> list[ModelEvent]:
    """The ``alias_moved`` row of @champion, none when it was on ``after`` already."""
    if before == after:
        return []
    return [moved(model, CHAMPION, before, after, run_id=run_id, reason=reason)]


def check_rollback(
    model: str, to_version: str, *, champion: str | None, versions: list[str],
    pending: list[str], reason: str,
) -> None:
    """Refuse a rollback of ``model``'s @champion (on ``champion``) to ``to_version`` with
    one line: a reason left empty, a version the model does not have, no champion, the
    champion itself or a later version, a promotion left ``pending`` by a killed promote
    (its completion would move @champion forward again)."""
    if not reason.strip():
        raise RollbackRefused(f"rollback of model {model} needs --reason: why @champion "
                              "moves back is part of its record; nothing was moved")
    if to_version not in versions:
        raise MissingInputError(f"model {model} has no version {to_version!r} (versions: "
                                f"{', '.join(versions) or 'none'}); nothing was moved")
    if champion is None:
        raise MissingInputError(f"model {model} has no @champion to roll back; nothing "
                                "was moved")
    if to_version == champion:
        raise RollbackRefused(f"v{to_version} already is @champion of model {model}; "
                              "nothing was moved")
    if int(to_version) > int(champion):
        raise RollbackRefused(
            f"v{to_version} is later than @champion v{champion} of model {model}: rollback "
            "moves @champion back to an earlier version (promote moves it forward); nothing "
            "was moved")
    if pending:
        raise RollbackRefused(
            f"the promotion of model {model} v{', v'.join(pending)} is pending (a promote "
            "killed half way): run promote to complete it, then roll back; nothing was moved")
