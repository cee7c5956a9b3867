"""What every schema module shares: the strict frozen model, names and column checks."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"

SparkType = Literal["string", "int", "long", "double", "float", "boolean", "date", "timestamp"]
GateMode = Literal["enabled", "dry_run", "disabled"]
# the declared types that can hold NaN and +-Infinity
FLOAT_TYPES = ("double", "float")
NUMERIC_TYPES = frozenset({"int", "long", "float", "double"})


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def require_known(key: str, names: list[str], known: set[str]) -> None:
    """Raise ``ValueError`` naming ``key`` when one of ``names`` is not a ``known`` column."""
    missing = [n for n in names if n not in known]
    if missing:
        raise ValueError(f"{key}: unknown column(s) {missing}; schema has {sorted(known)}")


def unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))
