"""The dataset's ``validate`` section: the Great Expectations suite and its gate."""

from __future__ import annotations

import difflib
import functools
import importlib.util
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from sparkmlops.config.base import GateMode, StrictModel


class ExpectationSpec(StrictModel):
    """One Great Expectations expectation, by its GX name and arguments."""

    expectation: str = Field(pattern=r"^expect_[a-z0-9_]+$")
    kwargs: dict[str, Any] = Field(default_factory=dict)
    severity: Literal["critical", "warning"] = "critical"

    @model_validator(mode="after")
    def _known_to_gx(self) -> ExpectationSpec:
        names = gx_expectation_names()
        if names and self.expectation not in names:
            close = difflib.get_close_matches(self.expectation, list(names), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"unknown Great Expectations expectation {self.expectation!r}{hint}")
        return self

    @property
    def column(self) -> str | None:
        value = self.kwargs.get("column")
        return str(value) if value is not None else None

    @property
    def columns(self) -> list[str]:
        """Every column the expectation names (column, column_A/B, column_list)."""
        named = [self.kwargs.get(k) for k in ("column", "column_A", "column_B")]
        listed = self.kwargs.get("column_list") or []
        return [str(c) for c in [*named, *listed] if c is not None]

    @property
    def label(self) -> str:
        """A stable readable name, e.g. ``expect_column_values_to_not_be_null(sex)``."""
        return f"{self.expectation}({self.column})" if self.column else self.expectation


@functools.cache
def gx_expectation_names() -> dict[str, str]:
    """GX 1.x core expectations, snake_case name → class name, without importing GX.

    Read from ``great_expectations/expectations/core/__init__.py`` (importing GX
    takes seconds; every job loads config). Empty when GX is not installed.
    """
    spec = importlib.util.find_spec("great_expectations")
    if spec is None or not spec.submodule_search_locations:
        return {}
    core = Path(next(iter(spec.submodule_search_locations))) / "expectations" / "core"
    try:
        text = (core / "__init__.py").read_text()
    except OSError:
        return {}
    return dict(re.findall(r"from \.(expect_\w+) import \(?\s*(Expect\w+)", text))


class ValidateSettings(StrictModel):
    gate: GateMode = "enabled"
    expectations: list[ExpectationSpec] = Field(default_factory=list)
    # sample failing values per row-level expectation in the GX result and Data Docs;
    # each costs GX one more Spark job (a full scan when nothing fails), and the
    # failing rows are in quarantine anyway
    partial_unexpected_count: int = Field(0, ge=0, le=1000)
