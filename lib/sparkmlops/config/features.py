"""The dataset's ``features`` section: what the MLlib pipeline computes before the model.

Only what the YAML itself can say is checked here (names, types, column references);
that a Python transform imports and takes its ``params`` is checked after load, by
``sparkmlops.preflight`` (it imports the feature code).
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from sparkmlops.config.base import (
    IDENTIFIER,
    NUMERIC_TYPES,
    StrictModel,
    require_known,
    unique,
)

# each is the Spark SQL function of that name (dayofweek: 1 = Sunday ... 7 = Saturday)
DatePart = Literal["year", "quarter", "month", "weekofyear", "dayofmonth", "dayofweek",
                   "dayofyear", "hour"]
# names the gold table or the fitted pipeline already uses
RESERVED_COLUMNS = frozenset({"label", "label_raw", "_batch_id", "features", "prediction",
                              "probability", "rawPrediction"})
_INFINITIES = {"inf": float("inf"), "+inf": float("inf"), "infinity": float("inf"),
               "-inf": float("-inf"), "-infinity": float("-inf")}


class DatePartsFeature(StrictModel):
    """Numeric calendar parts of a date or timestamp column, named ``<column>_<part>``."""

    column: str
    parts: list[DatePart] = Field(min_length=1)

    @property
    def outputs(self) -> list[str]:
        return [f"{self.column}_{part}" for part in self.parts]


class DerivedFeature(StrictModel):
    """A Spark SQL expression; later ones may use earlier ones."""

    name: str = Field(pattern=IDENTIFIER)
    expr: str


class TransformFeature(StrictModel):
    """A registered Python ``DataFrame -> DataFrame`` function that adds ``outputs``."""

    function: str
    params: dict[str, Any] = Field(default_factory=dict)
    outputs: list[Annotated[str, Field(pattern=IDENTIFIER)]] = Field(min_length=1)

    @model_validator(mode="after")
    def _params_are_plain_json(self) -> TransformFeature:
        try:
            json.dumps(self.params, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"params: must be plain JSON values (they are saved with the "
                             f"model): {exc}") from None
        return self


class BucketFeature(StrictModel):
    """``column`` cut at ``splits`` by MLlib's Bucketizer into bucket indexes 0..n-1;
    null and NaN get bucket n (their own). Splits may be "-inf" / "inf"."""

    name: str = Field(pattern=IDENTIFIER)
    column: str
    splits: list[float] = Field(min_length=3)

    @field_validator("splits", mode="before")
    @classmethod
    def _infinities_as_text(cls, value: Any) -> Any:
        # YAML has .inf, but "-inf" / "inf" read better and are what people write
        if not isinstance(value, list):
            return value
        return [_INFINITIES.get(v.strip().lower(), v) if isinstance(v, str) else v
                for v in value]

    @field_validator("splits")
    @classmethod
    def _strictly_increasing(cls, value: list[float]) -> list[float]:
        if any(math.isnan(v) for v in value):
            raise ValueError(f"NaN is not a split point: {value}")
        if any(b <= a for a, b in zip(value, value[1:], strict=False)):
            raise ValueError(f"split points must be strictly increasing, got {value}")
        return value


class FeatureSettings(StrictModel):
    """The features, all computed inside the MLlib pipeline, in this order: date parts,
    derived SQL, Python transforms, buckets; then imputation, encoding, scaling.

    The model's inputs are ``numeric`` and ``categorical`` (schema or defined columns),
    plus every date part (numeric) and bucket (categorical) not listed as the other kind.
    Derived and transform columns not listed are intermediates.
    """

    date_parts: list[DatePartsFeature] = Field(default_factory=list)
    derived: list[DerivedFeature] = Field(default_factory=list)
    transforms: list[TransformFeature] = Field(default_factory=list)
    buckets: list[BucketFeature] = Field(default_factory=list)
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    categorical_encoding: Literal["onehot", "index"] = "onehot"
    impute: Literal["median", "mean", "mode"] = "median"
    scale: Literal["auto", "standard", "minmax", "none"] = "auto"

    @property
    def numeric_inputs(self) -> list[str]:
        """The numeric model inputs: ``numeric``, then date parts not listed as categorical."""
        parts = [c for d in self.date_parts for c in d.outputs]
        return unique([*self.numeric, *[c for c in parts if c not in self.categorical]])

    @property
    def categorical_inputs(self) -> list[str]:
        """The categorical model inputs: ``categorical``, then buckets not listed as numeric."""
        buckets = [b.name for b in self.buckets]
        return unique([*self.categorical, *[c for c in buckets if c not in self.numeric]])

    @property
    def columns(self) -> list[str]:
        """Every model input, numeric first."""
        return [*self.numeric_inputs, *self.categorical_inputs]

    def defined_columns(self) -> list[tuple[str, str]]:
        """(key path, column) of every column the feature definitions add, in stage order."""
        return [
            *[(f"features.date_parts.{i}", c) for i, d in enumerate(self.date_parts)
              for c in d.outputs],
            *[(f"features.derived.{i}", d.name) for i, d in enumerate(self.derived)],
            *[(f"features.transforms.{i}", c) for i, t in enumerate(self.transforms)
              for c in t.outputs],
            *[(f"features.buckets.{i}", b.name) for i, b in enumerate(self.buckets)],
        ]

    def check_columns(self, types: dict[str, str]) -> None:
        """Check every column reference against the schema (``name → type``) and the
        columns defined before it; raise ``ValueError`` naming the key path."""
        seen: dict[str, str] = {}
        for key, column in self.defined_columns():
            clash = ("a schema column" if column in types else
                     "a reserved name" if column in RESERVED_COLUMNS else seen.get(column))
            if clash:
                raise ValueError(f"{key}: column {column!r} is already {clash}")
            seen[column] = f"defined by {key}"
        for i, spec in enumerate(self.date_parts):
            kind = types.get(spec.column)
            if kind not in ("date", "timestamp"):
                raise ValueError(f"features.date_parts.{i}.column: {spec.column!r} must be a "
                                 f"date or timestamp schema column, found {kind or 'no column'}")
            if kind == "date" and "hour" in spec.parts:
                raise ValueError(f"features.date_parts.{i}.parts: hour needs a timestamp, "
                                 f"{spec.column!r} is a date")
        upstream = {c for _, c in self.defined_columns()} - {b.name for b in self.buckets}
        for i, bucket in enumerate(self.buckets):
            if bucket.column in types and types[bucket.column] not in NUMERIC_TYPES:
                raise ValueError(f"features.buckets.{i}.column: {bucket.column!r} is a "
                                 f"{types[bucket.column]} column; buckets need a number")
            require_known(f"features.buckets.{i}.column", [bucket.column],
                           set(types) | upstream)
        known = set(types) | set(seen)
        require_known("features.numeric", self.numeric, known)
        require_known("features.categorical", self.categorical, known)
        textual = [c for c in self.numeric if c in types and types[c] not in NUMERIC_TYPES]
        if textual:
            raise ValueError(f"features.numeric: {textual} are not number columns; list them "
                             "under categorical (or use date_parts for dates)")
        twice = sorted({c for c in self.numeric if c in self.categorical}
                       | {c for c in self.numeric if self.numeric.count(c) > 1}
                       | {c for c in self.categorical if self.categorical.count(c) > 1})
        if twice:
            raise ValueError(f"features: {twice} listed more than once in numeric/categorical")
        if not self.columns:
            raise ValueError("features: no model inputs; list columns under numeric or "
                             "categorical, or define date_parts or buckets")
