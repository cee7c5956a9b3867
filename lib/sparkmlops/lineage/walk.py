"""Lineage of one prediction row, without I/O: the key it is asked for, which recorded run
wrote which table version, and the report (text and JSON).

The walk back (``step.py`` reads what it needs and hands it here):

prediction row → its model version and training run (the row's ``model_*`` columns) → the
gold version that run read → the features run that wrote that version → the silver
version that run read → the validate run that wrote it (its validation outcome) → the
bronze version that run read → the ingest run that wrote it; and the row's own batch →
its landing files (the manifest) and the predict run that scored it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from sparkmlops.config import ColumnSpec
from sparkmlops.errors import ConfigError
from sparkmlops.pii import protected_value
from sparkmlops.redact import redact_text
from sparkmlops.tracking.recorded import RecordedRun

KeyValue = str | int | float | bool | date | datetime


def parse_keys(pairs: list[str], *, keys: list[str], schema: list[ColumnSpec],
               dataset: str, pii_key: bytes | None = None) -> dict[str, KeyValue]:
    """``["study_name=PAL0708", "sample_number=1", ...]`` → ``{column: typed value}``, in the
    order of the dataset's keys. A ``pii: hash`` key column's raw value becomes its HMAC
    under ``pii_key``: the value the tables hold, so the row is found by what a person knows.

    Raises:
        ConfigError: a pair without ``=``, a column that is not a key of the dataset, a key
            given twice or not at all, a value its column's type cannot hold, or a hashed
            key column and no ``pii_key``.
    """
    given: dict[str, str] = {}
    for pair in pairs:
        column, sep, value = pair.partition("=")
        column = column.strip()
        if not sep or not column:
            raise ConfigError(f"--key {pair!r}: expected <key column>=<value>")
        if column not in keys:
            raise ConfigError(f"--key {column}: not a key column of dataset {dataset}; "
                              f"its key columns: {', '.join(keys)}")
        if column in given:
            raise ConfigError(f"--key {column} given twice")
        given[column] = value
    missing = [k for k in keys if k not in given]
    if missing:
        raise ConfigError(f"missing --key for {', '.join(missing)}: a prediction row of "
                          f"dataset {dataset} is named by all of {', '.join(keys)}")
    specs = {c.name: c for c in schema}
    return {k: protected_value(specs[k], given[k], pii_key) if k in specs and specs[k].pii
            else typed_value(k, given[k], specs[k].type if k in specs else "string")
            for k in keys}


def typed_value(column: str, text: str, type_name: str) -> KeyValue:
    """``text`` as a value of the column's declared type (``int``, ``date`` ...).

    Raises:
        ConfigError: the text is not a value of that type.
    """
    try:
        if type_name in ("int", "long"):
            return int(text)
        if type_name in ("double", "float"):
            return float(text)
        if type_name == "boolean":
            return {"true": True, "false": False}[text.strip().lower()]
        if type_name == "date":
            return date.fromisoformat(text)
        if type_name == "timestamp":
            return datetime.fromisoformat(text)
    except (ValueError, KeyError):
        raise ConfigError(f"--key {column}={text}: not a {type_name} "
                          f"(the type of key column {column})") from None
    return text


def writer_of(runs: Iterable[RecordedRun], table: str, version: int | None
              ) -> RecordedRun | None:
    """The run behind ``table`` at ``version``: of the runs that wrote ``table``, the one whose
    write is the latest at or before ``version``.

    A Delta version holds every commit before it, so the latest write at or before it is
    what that version holds of the step (a version another stage wrote, say the labels
    MERGE into gold, keeps the features write before it). Several runs record the same
    version when re-runs changed nothing (a write that commits nothing records the table's
    current version): the earliest of them made the commit.
    """
    if version is None:
        return None
    written = [r for r in runs if table in r.outputs and r.outputs[table] <= version]
    if not written:
        return None
    latest = max(r.outputs[table] for r in written)
    return min((r for r in written if r.outputs[table] == latest), key=lambda r: r.start_time)


def scoring_run(runs: Iterable[RecordedRun], predictions: str, model_version: str
                ) -> RecordedRun | None:
    """The predict run that wrote a batch's rows as they are: the latest run of the batch that
    wrote ``predictions`` with that model version (a re-run replaces the batch's rows)."""
    wrote = [r for r in runs if predictions in r.outputs
             and r.params.get("model_version") == model_version]
    return max(wrote, key=lambda r: r.start_time) if wrote else None


@dataclass(frozen=True)
class TableVersion:
    """A Delta table version, and the step run that wrote it (None when none is recorded)."""

    table: str
    version: int | None
    address: str
    written_by: str | None = None
    step: str | None = None

    def line(self) -> str:
        by = f", written by {self.step} run {self.written_by}" if self.written_by else \
            ", no run recorded writing it"
        at = "" if self.version is None else f" v{self.version}"
        return f"{self.table}{at} ({redact_text(self.address)}){by}"


@dataclass(frozen=True)
class RunCode:
    """A run and the code and config it ran with."""

    run_id: str
    batch_id: str | None
    git_commit: str | None
    sparkmlops_version: str | None
    wheel_sha256: str | None
    config_hash: str | None

    @classmethod
    def of(cls, run: RecordedRun) -> RunCode:
        return cls(run_id=run.run_id, batch_id=run.batch_id, **run.code)

    def line(self) -> str:
        return (f"git commit {self.git_commit}, sparkmlops {self.sparkmlops_version} "
                f"(wheel {self.wheel_sha256}), config hash {self.config_hash}")


@dataclass(frozen=True)
class Validation:
    """The validation behind a silver version: its run, the gate's verdict, what failed."""

    run_id: str
    status: str | None  # passed, failed, not_run (the run's quality.status tag)
    gate_mode: str | None
    expectations: int
    failed: list[str] = field(default_factory=list)

    def line(self) -> str:
        failed = f": {', '.join(self.failed)}" if self.failed else ""
        return (f"validation {self.status} (gate {self.gate_mode}, {self.expectations} "
                f"expectations, {len(self.failed)} failed{failed}), run {self.run_id}")


@dataclass(frozen=True)
class LandingFileRecord:
    """A landing file read into the batch, as the manifest recorded it."""

    path: str
    content_sha256: str | None
    size: int


@dataclass(frozen=True)
class BatchLanding:
    """How the row's batch landed: its files, and the ingest that read them into bronze."""

    batch_id: str
    files: list[LandingFileRecord]
    bronze_version: int | None = None
    ingest_run: str | None = None
    ingested_at: datetime | None = None


@dataclass(frozen=True)
class Lineage:
    """One prediction row walked back to its model, data and code."""

    dataset: str
    key: dict[str, KeyValue]
    predictions: TableVersion
    batch_id: str
    batches: list[str]  # every batch whose prediction rows hold the key, the latest first
    prediction: dict[str, Any]
    model_name: str
    model_version: str
    model_aliases: list[str]
    training: RunCode
    training_inputs: dict[str, int]  # every table version the training run read
    gold: TableVersion
    silver: TableVersion | None
    bronze: TableVersion | None
    validation: Validation | None
    landing: BatchLanding
    scoring: RunCode | None
    scored_from: TableVersion | None  # the gold version the scoring run read

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (dates as ISO text, addresses and paths redacted)."""
        return _jsonable(asdict(self))

    def report(self) -> str:
        """The lines ``sparkmlops lineage`` prints."""
        key = ", ".join(f"{k}={v}" for k, v in self.key.items())
        others = [b for b in self.batches if b != self.batch_id]
        scored = (f"; also scored in batch {', '.join(others)}" if others else "")
        aliases = " ".join(f"@{a}" for a in self.model_aliases)
        p = self.prediction
        lines = [
            f"sparkmlops lineage: dataset {self.dataset}, key {{{key}}}",
            f"  prediction: {p.get('predicted_label') or p.get('prediction')} (probability "
            f"{p.get('probability')}), scored at {p.get('scored_at')} in batch "
            f"{self.batch_id} ({self.predictions.table} v{self.predictions.version}){scored}",
            f"  model: {self.model_name} version {self.model_version}"
            + (f" ({aliases})" if aliases else "") + f", training run {self.training.run_id}",
            f"  trained on: {self.gold.line()}",
            *[f"  training also read: {t} v{v}" for t, v in self.training_inputs.items()
              if t != self.gold.table],
            f"  from silver: {self.silver.line() if self.silver else 'no version recorded'}",
            f"    {self.validation.line() if self.validation else 'no validation recorded'}",
            f"  from bronze: {self.bronze.line() if self.bronze else 'no version recorded'}",
            f"  batch {self.batch_id}: {len(self.landing.files)} landing file(s), ingested into "
            f"bronze v{self.landing.bronze_version} by ingest run {self.landing.ingest_run}",
            *[f"    {redact_text(f.path)} sha256 {f.content_sha256}" for f in self.landing.files],
            f"  training code: {self.training.line()}",
        ]
        if self.scoring is not None:
            source = f" from {self.scored_from.table} v{self.scored_from.version}" \
                if self.scored_from else ""
            lines += [f"  scoring run {self.scoring.run_id}{source}",
                      f"  scoring code: {self.scoring.line()}"]
        else:
            lines.append("  scoring run: none recorded for this batch and model version")
        return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) if k not in ("address", "path") or not isinstance(v, str)
                else redact_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
