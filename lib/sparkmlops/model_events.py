"""The audit trail of a dataset's model, ``model_events.<dataset>``: its one owner.

One row per event, in four kinds:

- ``registered``: train registered a new version (``to_version``);
- ``alias_moved``: an alias (``@challenger`` by train, ``@champion`` by promote) moved
  from ``from_version`` to ``to_version``;
- ``gate_decision``: the promotion gate judged ``to_version`` against the champion
  ``from_version``: ``decision`` is ``promoted``, ``rejected``, ``dry_run`` or
  ``disabled``, ``reason`` its reasons, ``metrics`` both models' holdout metrics
  (``challenger.<metric>``, ``champion.<metric>``);
- ``rollback``: ``sparkmlops rollback`` moved ``@champion`` back from ``from_version`` to
  ``to_version``, for ``reason``.

Every row says who (``who``, and ``who_source``: which part of the environment named them,
see :func:`identify`), when (``at``, UTC), which run (``run_id``), batch and dataset.

The table is appended to, one commit per operation (a registration and its alias move; one
judged version and its move; a rollback), and never updated or deleted: it is created with
``delta.appendOnly=true``, so Delta itself refuses an UPDATE, DELETE or row-changing MERGE.

The registry and the table are two systems with no transaction between them, so the writes
are ordered as the promote step orders its own (docs/promote.md, "A promote killed half
way"): the registry first, then the event commit. When that commit fails the operation ends
with :class:`AuditTrailError`, one line saying what the registry now holds and that the table
lacks it; the next ``promote`` or ``rollback`` compares the two (:func:`late_events`) and
records what is missing, marked as recorded late (``reason`` starts with ``recorded late``).

Example::

    log = model_event_log(spark, settings, batch_id="b1")
    log.record([registered("penguins", "3", run_id=run), moved(...)])
    log.recorded("penguins")  # every event of the model, oldest first
"""

from __future__ import annotations

import getpass
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

import pyspark.sql.functions as F
from pyspark.sql import Row, SparkSession
from pyspark.sql.types import (
    DoubleType,
    IntegerType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from sparkmlops.config import Settings
from sparkmlops.errors import SparkmlopsError
from sparkmlops.redact import redact_text
from sparkmlops.tables import APPEND_ONLY, TableRef, TableWrite, model_events_table, table_exists
from sparkmlops.writes import append_rows

log = logging.getLogger(__name__)

REGISTERED = "registered"
ALIAS_MOVED = "alias_moved"
GATE_DECISION = "gate_decision"
ROLLBACK = "rollback"
EVENTS = (REGISTERED, ALIAS_MOVED, GATE_DECISION, ROLLBACK)
# the decision of a gate_decision row
DECISIONS = ("promoted", "rejected", "dry_run", "disabled")
# the aliases the platform moves, whose every move is an event
MOVED_ALIASES = ("challenger", "champion")
LATE = "recorded late"

SCHEMA = StructType([
    StructField("at", TimestampType(), False),
    StructField("seq", IntegerType(), False),  # the event's place in its commit
    StructField("event", StringType(), False),
    StructField("model", StringType(), False),
    StructField("alias", StringType(), True),
    StructField("from_version", StringType(), True),
    StructField("to_version", StringType(), True),
    StructField("decision", StringType(), True),
    StructField("reason", StringType(), True),
    StructField("metrics", MapType(StringType(), DoubleType()), True),
    StructField("who", StringType(), False),
    StructField("who_source", StringType(), False),
    StructField("run_id", StringType(), True),
    StructField("batch_id", StringType(), True),
    StructField("dataset", StringType(), False),
])


class AuditTrailError(SparkmlopsError):
    """The registry changed but its event could not be appended to ``model_events``; the
    next ``promote`` or ``rollback`` records it late. Exit 1: nothing the caller did wrong,
    and the job must not look successful."""


@dataclass(frozen=True)
class Actor:
    """Who an event is recorded for, and which part of the environment said so."""

    who: str
    source: str


def identify(environ: Mapping[str, str] | None = None) -> Actor:
    """The identity the platform runs this process as, from its environment.

    In order:

    - ``DATABRICKS_CLIENT_ID``: the service principal a Databricks job authenticates as
      (Databricks' unified auth), with the job and run ids when the job passes them as
      ``DATABRICKS_JOB_ID`` / ``DATABRICKS_RUN_ID`` (Databricks sets neither itself);
    - ``AWS_ROLE_ARN``: the IAM role of a web-identity session (EMR on EKS, a CI job
      that assumed a role);
    - the OS user (``getpass.getuser``, which reads ``LOGNAME``, ``USER`` ... then the
      password database): a person at a terminal, or the ``hadoop`` user of an EMR step.

    >>> identify({"AWS_ROLE_ARN": "arn:aws:iam::1:role/ml-job"})
    Actor(who='arn:aws:iam::1:role/ml-job', source='AWS_ROLE_ARN')
    """
    env = os.environ if environ is None else environ
    if env.get("DATABRICKS_CLIENT_ID"):
        job = [f"{label} {env[key]}" for key, label in
               (("DATABRICKS_JOB_ID", "job"), ("DATABRICKS_RUN_ID", "run")) if env.get(key)]
        who = env["DATABRICKS_CLIENT_ID"] + (f" ({', '.join(job)})" if job else "")
        return Actor(who, "DATABRICKS_CLIENT_ID")
    if env.get("AWS_ROLE_ARN"):
        return Actor(env["AWS_ROLE_ARN"], "AWS_ROLE_ARN")
    try:
        return Actor(getpass.getuser(), "os_user")
    except (KeyError, OSError):  # no login name and no passwd entry (a bare container)
        return Actor(f"uid {os.getuid()}", "os_uid")


@dataclass(frozen=True)
class ModelEvent:
    """One row of ``model_events``. ``who``, ``at`` and the rest of the operation's identity
    are set when it is recorded (:meth:`ModelEventLog.record`), so they read None before."""

    event: str
    model: str
    to_version: str | None
    from_version: str | None = None
    alias: str | None = None
    decision: str | None = None
    reason: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    who: str | None = None
    who_source: str | None = None
    at: datetime | None = None
    batch_id: str | None = None
    dataset: str | None = None

    @property
    def moves(self) -> str | None:
        """The alias this event moved (alias_moved and rollback rows), else None."""
        return self.alias if self.event in (ALIAS_MOVED, ROLLBACK) else None

    @property
    def summary(self) -> str:
        """``@champion v1 → v2``, ``registered v3``, ``gate_decision v2: rejected``."""
        if self.moves:
            return (f"{self.event} @{self.alias} {_v(self.from_version)} → "
                    f"{_v(self.to_version)}")
        if self.event == GATE_DECISION:
            return f"{self.event} {_v(self.to_version)}: {self.decision}"
        return f"{self.event} {_v(self.to_version)}"


def _v(version: str | None) -> str:
    return f"v{version}" if version is not None else "none"


def registered(model: str, version: str, *, run_id: str | None, reason: str) -> ModelEvent:
    return ModelEvent(REGISTERED, model, version, run_id=run_id, reason=reason)


def moved(model: str, alias: str, from_version: str | None, to_version: str | None, *,
          run_id: str | None, reason: str) -> ModelEvent:
    return ModelEvent(ALIAS_MOVED, model, to_version, from_version=from_version, alias=alias,
                      run_id=run_id, reason=reason)


class EventRecorder(Protocol):
    """Where an operation's events go: ``model_events`` (:class:`ModelEventLog`), or a list
    in a test of the registry alone."""

    def record(self, events: Sequence[ModelEvent]) -> object: ...

    def recorded(self, model: str) -> list[ModelEvent]: ...


def late_events(
    model: str, recorded: Sequence[ModelEvent], *, versions: Sequence[str],
    decided: Sequence[ModelEvent], aliases: Mapping[str, str | None], run_id: str | None,
) -> list[ModelEvent]:
    """What the registry holds and the trail lacks, oldest first: a ``registered`` row for
    each version with none; each of the ``decided`` gate decisions (as the versions' tags
    record them, ``run_id`` the deciding run) the trail has no row of for that version and
    run; an ``alias_moved`` row for each alias of :data:`MOVED_ALIASES` whose trail ends
    elsewhere than the registry's ``aliases``.

    Their reason starts with ``recorded late`` and names ``run_id``, the run recording them:
    the write of the operation that made them failed, or it ran before the trail existed
    (a model with history gets its versions, decisions and aliases as its first rows).
    """
    note = (f"{LATE} by run {run_id or 'none'}: the registry holds it and model_events did "
            "not (its own event was not written: the run failed or was killed between the "
            "two, or ran before the trail existed)")
    known = {e.to_version for e in recorded if e.event == REGISTERED}
    late = [registered(model, v, run_id=run_id, reason=note)
            for v in sorted(set(versions) - known, key=int)]
    judged = {(e.to_version, e.run_id) for e in recorded if e.event == GATE_DECISION}
    late += [replace(d, reason=f"{note}; {d.reason}") for d in decided
             if (d.to_version, d.run_id) not in judged]
    for alias in MOVED_ALIASES:
        trail = trail_alias(recorded, alias)
        now = aliases.get(alias)
        if trail != now:
            late.append(moved(model, alias, trail, now, run_id=run_id, reason=note))
    return late


def trail_alias(recorded: Sequence[ModelEvent], alias: str) -> str | None:
    """Where the trail last moved ``alias`` (None: never, or off every version)."""
    last = [e for e in recorded if e.moves == alias]
    return last[-1].to_version if last else None


@dataclass
class ModelEventLog:
    """The Delta trail of one dataset: each :meth:`record` is one commit of the operation's
    events, stamped with one time, the actor, the batch and the dataset."""

    spark: SparkSession
    ref: TableRef
    dataset: str
    batch_id: str | None
    actor: Actor = field(default_factory=identify)
    # the step run's record of its table commits (StepTracker.wrote): each commit of the
    # trail is in the run's lineage like any other table it wrote
    wrote: Callable[[TableWrite], None] | None = None

    def record(self, events: Sequence[ModelEvent]) -> TableWrite | None:
        """Append ``events`` in one commit (nothing for none); AuditTrailError when it fails."""
        if not events:
            return None
        at = datetime.now(UTC)
        rows = [self._row(event, at, seq) for seq, event in enumerate(events)]
        try:
            written = append_rows(self.spark.createDataFrame(rows, SCHEMA), self.ref,
                                  properties=APPEND_ONLY)
        except Exception as exc:  # noqa: BLE001 - any failure of the write is this one error
            cause = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")[:300]
            raise AuditTrailError(
                f"the registry holds {'; '.join(e.summary for e in events)} of model "
                f"{events[0].model}, but {self.ref.fqn} was not written "
                f"({type(exc).__name__}: {cause}); the next promote or rollback records it "
                f"as '{LATE}'") from exc
        log.info("recorded in %s v%s: %s", self.ref.fqn, written.version,
                 "; ".join(e.summary for e in events))
        if self.wrote is not None:
            self.wrote(written)
        return written

    def recorded(self, model: str) -> list[ModelEvent]:
        """Every event of ``model``, oldest first (none when the table does not exist yet)."""
        if not table_exists(self.spark, self.ref):
            return []
        rows = (self.ref.read(self.spark).where(F.col("model") == F.lit(model))
                .orderBy("at", "seq").collect())
        return [event_of(row) for row in rows]

    def latest(self, limit: int) -> list[ModelEvent]:
        """The ``limit`` newest events of every model of the dataset, newest first."""
        if not table_exists(self.spark, self.ref):
            return []
        rows = (self.ref.read(self.spark).orderBy(F.col("at").desc(), F.col("seq").desc())
                .limit(limit).collect())
        return [event_of(row) for row in rows]

    def _row(self, event: ModelEvent, at: datetime, seq: int) -> tuple[object, ...]:
        return (at, seq, event.event, event.model, event.alias, event.from_version,
                event.to_version, event.decision,
                redact_text(event.reason) if event.reason is not None else None,
                {k: float(v) for k, v in event.metrics.items()}, self.actor.who,
                self.actor.source, event.run_id, self.batch_id, self.dataset)


def event_of(row: Row) -> ModelEvent:
    """A row read back as a ModelEvent, ``at`` in UTC."""
    at = row["at"]
    return ModelEvent(
        event=row["event"], model=row["model"], to_version=row["to_version"],
        from_version=row["from_version"], alias=row["alias"], decision=row["decision"],
        reason=row["reason"], metrics=dict(row["metrics"] or {}), run_id=row["run_id"],
        who=row["who"], who_source=row["who_source"],
        # Spark hands a naive datetime in the Python process's local time
        at=at.astimezone(UTC) if at is not None else None,
        batch_id=row["batch_id"], dataset=row["dataset"])


def model_event_log(spark: SparkSession, settings: Settings, *, batch_id: str | None,
                    wrote: Callable[[TableWrite], None] | None = None) -> ModelEventLog:
    """The trail of ``settings``' dataset, recording as this process's :func:`identify`;
    each commit also goes to ``wrote`` (the step run's ``StepTracker.wrote``)."""
    return ModelEventLog(spark, model_events_table(settings), settings.dataset.name, batch_id,
                         wrote=wrote)


HISTORY_HEADER = ("at (UTC)", "event", "alias", "from", "to", "decision", "who", "run",
                  "reason")


def history_lines(events: Sequence[ModelEvent], *, width: int = 120) -> list[str]:
    """``events`` as a table, one line each in the order given; a reason longer than fits
    in ``width`` characters in all is cut with ``...``."""
    rows = [HISTORY_HEADER, *(
        (e.at.strftime("%Y-%m-%d %H:%M:%S") if e.at else "", e.event, e.alias or "",
         _v(e.from_version) if e.from_version else "", _v(e.to_version) if e.to_version else "",
         e.decision or "", f"{e.who} ({e.who_source})", (e.run_id or "")[:8], e.reason or "")
        for e in events)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HISTORY_HEADER) - 1)]
    lines = []
    for row in rows:
        head = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
        room = max(width - len(head) - 2, 20)
        reason = row[-1] if len(row[-1]) <= room else row[-1][:room - 3] + "..."
        lines.append(f"{head}  {reason}".rstrip())
    return lines
