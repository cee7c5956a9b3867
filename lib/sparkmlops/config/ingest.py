"""The dataset's ingest sections: the landing ``source``, the ``schema`` columns, and
how each batch is written to silver, gold and predictions (``write``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from sparkmlops.config.base import FLOAT_TYPES, IDENTIFIER, SparkType, StrictModel


class ReadySettings(StrictModel):
    """When a landing file is ready to read (``source.ready``).

    A file is ready when it holds bytes (a zero-byte file is always an upload not
    finished yet), its modification time is at least ``min_age_seconds`` old (a file
    still being written keeps moving its mtime), and, with ``marker`` set, its marker
    exists. A file that is not ready is skipped with a warning and not recorded, so
    its bytes are read once they are all there.

    ``marker``: a file name. Without ``{file}`` it is a folder marker (``_SUCCESS``):
    the data file's folder must hold it. With ``{file}`` it is a per-file marker
    (``{file}.done``): ``{file}`` stands for the data file's name, and the marker sits
    beside it. Marker files are never read as data.
    """

    min_age_seconds: int = Field(default=0, ge=0)
    marker: str | None = None

    @field_validator("marker")
    @classmethod
    def _marker_is_a_file_name(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value or "/" in value or "\\" in value or value.count("{file}") > 1:
            raise ValueError(
                f"marker: a file name (no folder), with '{{file}}' at most once for a "
                f"per-file marker (e.g. '_SUCCESS' or '{{file}}.done'); got {value!r}")
        if value == "{file}":
            raise ValueError("marker: '{file}' alone names the data file itself; add a "
                             "suffix or prefix, e.g. '{file}.done'")
        return value


class SourceSettings(StrictModel):
    path: str
    format: Literal["csv", "json", "parquet"]
    options: dict[str, str] = Field(default_factory=dict)
    # A column in the files that the schema does not declare: add it to bronze as a
    # nullable column, ignore it, or reject the batch. Type changes and missing
    # required columns are always rejected.
    schema_evolution: Literal["add_new_columns", "ignore_new_columns", "fail"] = (
        "add_new_columns")
    # A landing file is known by its bytes (sha256), not its mtime: a touched file or a
    # byte-identical copy is never read twice. A file at a path already ingested whose
    # bytes changed: stop the ingest (fail, the default: its old rows are downstream and
    # only a person can say whether the new ones replace or add to them), ignore the new
    # bytes (skip), or read them into the new batch (reingest).
    on_changed_file: Literal["fail", "skip", "reingest"] = "fail"
    # which landing files are complete enough to read (size, age, marker): ReadySettings
    ready: ReadySettings = Field(default_factory=ReadySettings)

    @field_validator("options", mode="before")
    @classmethod
    def _options_as_text(cls, value: Any) -> Any:
        # Spark reader options are strings; YAML's `multiLine: true` means "true"
        if not isinstance(value, dict):
            return value
        return {k: (str(v).lower() if isinstance(v, bool) else
                    str(v) if isinstance(v, int | float) else v) for k, v in value.items()}


PiiTreatment = Literal["hash", "mask", "drop"]


class QuarantineSettings(StrictModel):
    """What ``quarantine.<dataset>`` keeps of a refused row when the schema has pii columns.

    ``pii_record`` is the dataset-wide default for the ``record`` column of a row that
    ingest quarantines (its raw text would hold every pii value as it landed):
    ``rebuild`` (the default) writes the row's declared fields as JSON, each pii column as
    bronze holds it (hashed, masked or left out); a line Spark could not parse keeps only
    the fields it did parse, never the line itself. ``hash`` keeps the keyed HMAC of the
    raw record text: nothing readable, but the same bad line quarantined twice has the
    same record, and a suspected line can be checked by hashing it. ``drop`` keeps no
    record. The step, the reason and the file and row number stay in every case.
    Without pii columns the record is the raw text, as always.
    """

    pii_record: Literal["rebuild", "hash", "drop"] = "rebuild"


class ColumnSpec(StrictModel):
    name: str = Field(pattern=IDENTIFIER)
    source: str | None = None
    type: SparkType
    nullable: bool = True
    # A double/float column holding NaN or +-Infinity is quarantined at ingest (Spark's
    # readers parse `NaN`, `Infinity`, `-Inf`, and MLlib cannot train or score on
    # them); true keeps them, for a column where they mean something.
    allow_non_finite: bool = False
    # A landing file whose header (CSV) or schema (Parquet) lacks this column rejects the
    # batch (exit 3, naming the file and the column): a renamed header would otherwise
    # land as a column of nulls, its values in a new column. true: files may lack it and
    # their rows read null. `nullable` is about values, this is about the header; only a
    # nullable column may be absent (a file without a required column has no valid row).
    may_be_absent: bool = False
    # Personal data, protected as it is read (before bronze), so no table, report or
    # artifact holds the raw value: ``hash`` keeps a keyed HMAC-SHA256 (hex) of the text,
    # keyed by $SPARKMLOPS_PII_KEY (equal values stay equal: joins and keys still work);
    # ``mask`` keeps only whether a value was there (every non-null value becomes
    # ``***``); ``drop`` removes the column. See docs/configuration.md, "Personal data".
    pii: PiiTreatment | None = None

    @model_validator(mode="after")
    def _pii_needs_text(self) -> ColumnSpec:
        if self.pii in ("hash", "mask") and self.type != "string":
            raise ValueError(f"pii: {self.pii} turns a value into text; {self.name} is "
                             f"{self.type}: declare it string (or use pii: drop)")
        return self

    @model_validator(mode="after")
    def _non_finite_only_for_floats(self) -> ColumnSpec:
        if self.allow_non_finite and self.type not in FLOAT_TYPES:
            raise ValueError(f"allow_non_finite: only a double or float column can hold NaN "
                             f"or Infinity; {self.name} is {self.type}")
        return self

    @model_validator(mode="after")
    def _absent_only_when_nullable(self) -> ColumnSpec:
        if self.may_be_absent and not self.nullable:
            raise ValueError(f"may_be_absent: {self.name} is nullable: false, and every row "
                             "of a file without it would be quarantined; a column files may "
                             "lack must be nullable")
        return self

    @property
    def source_name(self) -> str:
        return self.source or self.name


class WriteSettings(StrictModel):
    """How a batch's records land in silver, gold and predictions.

    ``append``: each batch's records are added; a key that an earlier batch already
    put in silver, or that two rows of the batch bring, is handled by ``repeated_keys``
    (the suite's ``expect_compound_columns_to_be_unique`` only passes or fails).
    ``upsert``: those tables hold one row per business key, the record with the
    highest ``order_by`` value (a later batch wins a tie), written with a Delta
    MERGE. Bronze is append-only in both modes: the raw record of every row.

    ``repeated_keys`` (append mode; ignored in upsert mode, where the MERGE keeps one
    row per key anyway): a batch row whose key silver already holds from another
    batch (a re-upload, a copied or touched file) is ``quarantine``d with the earlier
    batch named, or makes validate ``fail`` (exit 4) before anything is written, or is
    kept (``allow``: this dataset's keys may repeat, e.g. events). The same holds for
    a key several rows of one batch bring: ``quarantine`` keeps one of identical
    copies (the first by ``_source_file``) and none of copies that differ.
    """

    mode: Literal["append", "upsert"] = "append"
    repeated_keys: Literal["quarantine", "fail", "allow"] = "quarantine"
    order_by: str | None = None
    # declared columns to partition a table by when it is created (bronze, silver;
    # gold and predictions when they carry the columns)
    partition_by: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _upsert_needs_order(self) -> WriteSettings:
        if self.mode == "upsert" and not self.order_by:
            raise ValueError("write.order_by: required when write.mode is upsert (the column "
                             "whose highest value wins per key)")
        return self
