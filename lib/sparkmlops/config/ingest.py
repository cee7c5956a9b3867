"""The dataset's ingest sections: the landing ``source``, the ``schema`` columns, and
how each batch is written to silver, gold and predictions (``write``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from sparkmlops.config.base import FLOAT_TYPES, IDENTIFIER, SparkType, StrictModel


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

    @field_validator("options", mode="before")
    @classmethod
    def _options_as_text(cls, value: Any) -> Any:
        # Spark reader options are strings; YAML's `multiLine: true` means "true"
        if not isinstance(value, dict):
            return value
        return {k: (str(v).lower() if isinstance(v, bool) else
                    str(v) if isinstance(v, int | float) else v) for k, v in value.items()}


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
    put in silver is handled by ``repeated_keys`` (within one batch, key uniqueness is
    the suite's ``expect_compound_columns_to_be_unique``).
    ``upsert``: those tables hold one row per business key, the record with the
    highest ``order_by`` value (a later batch wins a tie), written with a Delta
    MERGE. Bronze is append-only in both modes: the raw record of every row.

    ``repeated_keys`` (append mode; ignored in upsert mode, where the MERGE keeps one
    row per key anyway): a batch row whose key silver already holds from another
    batch (a re-upload, a copied or touched file) is ``quarantine``d with the earlier
    batch named, or makes validate ``fail`` (exit 4) before anything is written, or is
    kept (``allow``: this dataset's keys may repeat across batches, e.g. events).
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
