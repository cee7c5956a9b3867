"""``sparkmlops promote``: the gate between @challenger and @champion, run alone;
``sparkmlops rollback`` (@champion back to an earlier version) and ``sparkmlops history``
(the model's audit trail, ``model_events``).

Alone, a challenger that fails an enabled gate ends the job with exit 5
(``ModelGateFailed``, one line on stderr) so a scheduler sees it; ``pipeline`` calls
the step itself and treats the same decision as an outcome (exit 0).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from sparkmlops.command import Command, step_report
from sparkmlops.config import Settings
from sparkmlops.errors import ModelGateFailed

if TYPE_CHECKING:
    from sparkmlops.promote.promotion import PromotionDecision
    from sparkmlops.promote.step import PromoteOutcome


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--challenger-version")
    parser.add_argument("--gold-version", type=int, help="holdout from this gold version "
                                                         "(default: the latest)")


def _run(spark: Any, settings: Settings, batch_id: str, args: argparse.Namespace) -> str:
    from sparkmlops.promote.step import promote_step

    result = promote_step(spark, settings, batch_id, challenger_version=args.challenger_version,
                          gold_version=args.gold_version)
    failure = gate_failure(result, settings.dataset.model.name)
    if failure is not None:
        raise ModelGateFailed(failure)
    return step_report(settings, batch_id, result, decision_lines(result.decisions))


def gate_failure(outcome: PromoteOutcome, model_name: str) -> str | None:
    """Why a standalone ``promote`` fails (exit 5), or None when it does not.

    The step's decision speaks: the challenger asked for (``--challenger-version``,
    else @challenger; the newest version judged when there is neither). It fails
    when the gate is ``enabled`` and that challenger did not pass. Other versions
    judged on the way (a backlog of never-judged versions) do not set the exit code:
    their decisions are on their versions and in the run's ``promotion.json``.
    With ``dry_run`` or ``disabled`` nothing is refused: exit 0.
    """
    decision = outcome.decision
    if decision is None or not outcome.gate_failed:
        return None
    champion = f"v{outcome.champion}" if outcome.champion else "none"
    return (f"model {model_name} v{decision.challenger_version} failed the gate against "
            f"{decision.against}: {'; '.join(decision.reasons)}; @champion is {champion}")


def decision_lines(decisions: list[PromotionDecision]) -> list[str]:
    """One line per version ``promote`` judged, oldest first."""
    lines = [f"  judged {len(decisions)} version(s):"] if decisions else []
    for d in decisions:
        verdict = ("promoted" if d.promoted else
                   "passed, not promoted" if d.passed else "not promoted")
        if d.completes_run:
            verdict += f" (decided by run {d.completes_run}, killed before it finished; completed)"
        lines.append(f"    v{d.challenger_version} against {d.against}: {verdict}"
                     + "".join(f"; {reason}" for reason in d.reasons))
    return lines


PROMOTE = Command("promote", "score @challenger and @champion on the current holdout; "
                             "move @champion if the challenger is better",
                  _run, add_arguments=_add_arguments)


def _rollback_arguments(parser: argparse.ArgumentParser) -> None:
    # checked by the step, not by argparse: a missing or blank one is one line, exit 2
    parser.add_argument("--to", dest="to_version", metavar="VERSION",
                        help="the earlier version @champion moves back to")
    parser.add_argument("--reason", default="", help="why (recorded in model_events)")


def _rollback(spark: Any, settings: Settings, batch_id: str, args: argparse.Namespace) -> str:
    from sparkmlops.errors import RollbackRefused
    from sparkmlops.promote.step import rollback_step

    if not args.to_version:
        raise RollbackRefused(f"rollback of model {settings.dataset.model.name} needs --to "
                              "<version>; nothing was moved")
    result = rollback_step(spark, settings, batch_id, to_version=str(args.to_version),
                           reason=args.reason)
    return step_report(settings, batch_id, result)


def _history_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=20,
                        help="events to print, newest first (default: 20)")


def _history(spark: Any, settings: Settings, batch_id: str, args: argparse.Namespace) -> str:
    from sparkmlops.model_events import history_lines, model_event_log

    trail = model_event_log(spark, settings, batch_id=None)
    events = trail.latest(args.limit)
    title = (f"{trail.ref.fqn} ({trail.ref.address}): {len(events)} newest event(s)"
             if events else f"{trail.ref.fqn} ({trail.ref.address}): no event recorded yet")
    return "\n".join([title, *(history_lines(events) if events else [])])


ROLLBACK = Command("rollback", "move @champion back to an earlier version, with a reason; "
                               "recorded in model_events",
                   _rollback, add_arguments=_rollback_arguments, scope="tables")
HISTORY = Command("history", "print the model's audit trail (model_events), newest first",
                  _history, add_arguments=_history_arguments, scope="tables")
