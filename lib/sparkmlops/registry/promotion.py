"""The promotion gate: whether a challenger version may become ``champion``.

Every trained model becomes a new version with alias ``challenger`` and tags that
tie it to its training data (table + Delta version), code (git commit) and config
(hash). ``promote_if_better`` moves ``champion`` to the challenger only when it
meets the configured minimums and beats the current champion's primary metric by
at least ``min_improvement``; the first model that meets the minimums becomes
champion. The decision and its numbers are written on the version as tags.

The registry calls go through ``sparkmlops.model_registry.ModelRegistry``
(``versions_to_judge`` there is the backlog ``promote`` works through).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field

from sparkmlops.config import PromotionSettings
from sparkmlops.metrics import is_better, meets_minimum
from sparkmlops.model_registry import CHAMPION, ModelRegistry

log = logging.getLogger(__name__)


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
    settings: PromotionSettings,
    primary_metric: str,
    *,
    holdout_problems: list[str] | None = None,
) -> tuple[bool, list[str]]:
    """(passes, reasons): the holdout and undefined metrics first, then the minimums,
    then the improvement over the champion.

    ``holdout_problems`` say why the holdout cannot rank models (one class, too few
    rows); any of them, or a metric that is not a finite number, fails the gate.
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
        reasons.append("no champion yet")
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
    settings: PromotionSettings,
    primary_metric: str,
    *,
    challenger_metrics: dict[str, float] | None = None,
    champion_metrics: dict[str, float] | None = None,
    champion_note: str | None = None,
    challenger_notes: list[str] | None = None,
    holdout_problems: list[str] | None = None,
    evaluated_on: str = "the metrics recorded by each training run",
) -> PromotionDecision:
    """Run the promotion gate for ``challenger_version`` and move ``champion`` if it passes.

    ``challenger_metrics`` / ``champion_metrics`` are the two models' metrics on the
    same data (``promote`` scores both on the current holdout); without them the
    metrics each training run recorded are compared. ``champion_note`` explains a
    champion that could not be evaluated (then the challenger is judged alone);
    ``challenger_notes`` are facts about the challenger that lead its reasons (its
    run did not finish, it could not be scored). ``holdout_problems`` say why the
    holdout cannot rank models; they fail the gate.
    """
    challenger = registry.version(name, challenger_version)
    champion = registry.by_alias(name, CHAMPION)
    if challenger_metrics is None:
        challenger_metrics = registry.run_metrics(str(challenger.run_id))
    if champion is not None and champion_metrics is None and champion_note is None:
        champion_metrics = registry.run_metrics(str(champion.run_id))
    challenger_id = str(challenger.version)
    champion_id = str(champion.version) if champion is not None else None
    if champion_id == challenger_id:
        return PromotionDecision(settings.mode, challenger_id, champion_id, False, True,
                                 ["the challenger already is the champion"],
                                 challenger_metrics, champion_metrics or {})
    if settings.mode == "disabled":
        passed, reasons = True, ["promotion gate disabled: champion is set by hand"]
    else:
        passed, reasons = decide(challenger_metrics, champion_metrics, settings, primary_metric,
                                 holdout_problems=holdout_problems)
        if champion_note:
            reasons.insert(0, champion_note)
    reasons = [*(challenger_notes or []), *reasons]
    promoted = passed and settings.mode == "enabled"
    if promoted:
        registry.set_alias(name, CHAMPION, challenger_id)
    decision = PromotionDecision(
        mode=settings.mode,
        challenger_version=challenger_id,
        champion_before=champion_id,
        promoted=promoted,
        passed=passed,
        reasons=reasons,
        challenger_metrics=challenger_metrics,
        champion_metrics=champion_metrics or {},
    )
    _record_decision(registry, name, decision, evaluated_on)
    log.info("promotion of %s v%s: %s (%s)", name, challenger_id,
             "promoted" if promoted else "not promoted", "; ".join(reasons))
    return decision


def _record_decision(
    registry: ModelRegistry, name: str, decision: PromotionDecision, evaluated_on: str
) -> None:
    """The decision as tags and a readable description on the challenger's version."""
    version = decision.challenger_version
    registry.tag_version(name, version, {
        "promotion.mode": decision.mode,
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
