"""The dataset's ``validate`` section: the Great Expectations suite and its gate."""

from __future__ import annotations

import difflib
import functools
import importlib.util
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from sparkmlops.config.base import GateMode, StrictModel

# what happens to the rows that fail an expectation (Delta Live Tables' expect /
# expect_or_drop / expect_or_fail): go on to silver, recorded; go to quarantine with
# the expectation named; or fail the batch before silver or quarantine is written
ExpectationAction = Literal["keep", "quarantine", "fail"]

# the expectations whose failing rows validate can tell apart (validate/expectations.py's
# row_failure), and so the only ones an action other than ``keep`` means anything for
ROW_LEVEL_EXPECTATIONS = frozenset({
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_null",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_not_be_in_set",
    "expect_column_values_to_match_regex",
    "expect_column_values_to_not_match_regex",
    "expect_column_values_to_be_between",
})


def is_row_level(expectation: str, kwargs: dict[str, Any]) -> bool:
    """Whether validate can say which rows fail ``expectation``: one of
    :data:`ROW_LEVEL_EXPECTATIONS` on a ``column`` (a between with at least one bound)."""
    if expectation not in ROW_LEVEL_EXPECTATIONS or kwargs.get("column") is None:
        return False
    if expectation == "expect_column_values_to_be_between":
        return kwargs.get("min_value") is not None or kwargs.get("max_value") is not None
    return True


class ExpectationSpec(StrictModel):
    """One Great Expectations expectation, by its GX name and arguments.

    ``severity`` decides what the expectation's aggregate result does to the gate
    (``critical`` fails it); ``action`` what happens to each row that fails it, whatever
    ``mostly`` says. Left out, ``action`` is ``quarantine`` for a critical row-level
    expectation and ``keep`` otherwise: a warning records its failing rows and lets them
    on, and an expectation that judges the table as a whole (row count, mean, uniqueness)
    has no failing rows to act on, so it takes only ``keep`` (stop the batch on it with
    ``severity: critical``).
    """

    expectation: str = Field(pattern=r"^expect_[a-z0-9_]+$")
    kwargs: dict[str, Any] = Field(default_factory=dict)
    severity: Literal["critical", "warning"] = "critical"
    action: ExpectationAction = "keep"

    @model_validator(mode="before")
    @classmethod
    def _default_action(cls, data: Any) -> Any:
        """Fill in ``action`` from the severity when it is left out (or null)."""
        if not isinstance(data, dict) or data.get("action") is not None:
            return data
        kwargs = data.get("kwargs")
        row_level = is_row_level(str(data.get("expectation")),
                                 kwargs if isinstance(kwargs, dict) else {})
        critical = data.get("severity", "critical") == "critical"
        return {**data, "action": "quarantine" if row_level and critical else "keep"}

    @model_validator(mode="after")
    def _known_to_gx(self) -> ExpectationSpec:
        names = gx_expectation_names()
        if names and self.expectation not in names:
            close = difflib.get_close_matches(self.expectation, list(names), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"unknown Great Expectations expectation {self.expectation!r}{hint}")
        return self

    @model_validator(mode="after")
    def _action_needs_rows(self) -> ExpectationSpec:
        if self.action != "keep" and not self.row_level:
            raise ValueError(
                f"action {self.action!r} needs failing rows, and {self.label} does not name "
                "them (row-level: not-null, null, in-set, not-in-set, regex, not-regex, "
                "between on a column); leave action out, or stop the batch on it with "
                "severity: critical")
        return self

    @property
    def row_level(self) -> bool:
        """Whether validate can tell which rows fail it (:func:`is_row_level`)."""
        return is_row_level(self.expectation, self.kwargs)

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


# the metrics validate records per batch in ``quality_metrics.<dataset>``: the batch's
# rows, and per column its null share and (approximate) distinct count; min, max and
# mean of the numeric columns
QualityMetric = Literal["row_count", "null_share", "distinct_count", "min", "max", "mean"]
# the metric that is of the batch, not of a column
TABLE_METRICS = frozenset({"row_count"})


class AnomalyRule(StrictModel):
    """When a batch's metric is an anomaly against the recent history of
    ``quality_metrics`` (the previous batches in ingest order, never this one).

    The expected value is the mean of the metric over the ``last`` previous batches
    (``last: 1``: the previous batch). With ``max_change`` the accepted band is
    expected ± max_change·|expected| (a relative change); with ``k`` it is expected ±
    k·std of those batches. A deviation of at most ``min_change`` (absolute) is never an
    anomaly: a null share moving from 0.0 to 0.002 is not news, whatever its std.
    Fewer than ``min_history`` previous batches: no verdict (``no_history``), never a
    false alarm. ``column`` narrows a column metric to one column (left out: every
    column it applies to; a rule naming the column wins over one that does not).
    ``severity: critical`` fails the gate like a failing critical expectation;
    ``warning`` (the default: history is a weaker witness than a written expectation)
    only records it.
    """

    metric: QualityMetric
    column: str | None = None
    max_change: float | None = Field(None, gt=0)
    k: float | None = Field(None, gt=0)
    last: int = Field(5, ge=1)
    min_history: int | None = Field(None, ge=1)
    min_change: float = Field(0.0, ge=0)
    severity: Literal["critical", "warning"] = "warning"

    @model_validator(mode="after")
    def _one_kind(self) -> AnomalyRule:
        if (self.max_change is None) == (self.k is None):
            raise ValueError(f"anomaly rule on {self.metric}: give exactly one of max_change "
                             "(relative change vs the mean of the last batches) or k "
                             "(outside mean ± k·std of the last batches)")
        if self.column is not None and self.metric in TABLE_METRICS:
            raise ValueError(f"anomaly rule on {self.metric}: it is a metric of the batch, "
                             "not of a column; leave column out")
        if self.k is not None and self.last < 2:
            raise ValueError(f"anomaly rule on {self.metric}: k needs a std, so last must be "
                             f"at least 2 (got {self.last})")
        if self.min_history is not None and self.min_history > self.last:
            raise ValueError(f"anomaly rule on {self.metric}: min_history ({self.min_history}) "
                             f"cannot exceed last ({self.last}): only the last {self.last} "
                             "previous batches are read")
        if self.k is not None and self.min_history is not None and self.min_history < 2:
            raise ValueError(f"anomaly rule on {self.metric}: k needs a std of at least 2 "
                             f"previous batches, so min_history must be at least 2")
        return self

    @property
    def needed(self) -> int:
        """The fewest previous batches for a verdict: ``min_history``, else 3 (2 for
        ``last: 2`` with ``k``, 1 for ``last: 1``), never more than ``last``."""
        if self.min_history is not None:
            return self.min_history
        return min(self.last, 3)

    @property
    def described(self) -> str:
        """``max_change 0.3 vs mean of last 5`` / ``k 3 std of last 10``, as recorded."""
        kind = (f"max_change {self.max_change:g}" if self.max_change is not None
                else f"k {self.k:g} std")
        of = "vs previous batch" if self.last == 1 else f"of last {self.last}"
        floor = f", min_change {self.min_change:g}" if self.min_change else ""
        return f"{kind} {of}{floor}"


def _default_anomaly_rules() -> list[AnomalyRule]:
    """Half the usual rows, or a column whose nulls jump, recorded as warnings."""
    return [AnomalyRule(metric="row_count", max_change=0.3, last=5),
            AnomalyRule(metric="null_share", k=3, last=10, min_change=0.05)]


class ValidateSettings(StrictModel):
    gate: GateMode = "enabled"
    expectations: list[ExpectationSpec] = Field(default_factory=list)
    # per-batch metrics judged against the previous batches (quality_metrics.<dataset>);
    # [] records the metrics and judges none
    anomalies: list[AnomalyRule] = Field(default_factory=_default_anomaly_rules)
    # sample failing values per row-level expectation in the GX result and Data Docs;
    # each costs GX one more Spark job (a full scan when nothing fails), and the
    # failing rows are in quarantine anyway
    partial_unexpected_count: int = Field(0, ge=0, le=1000)

    @field_validator("anomalies")
    @classmethod
    def _one_rule_per_metric_and_column(cls, rules: list[AnomalyRule]) -> list[AnomalyRule]:
        seen: set[tuple[str, str | None]] = set()
        for rule in rules:
            key = (rule.metric, rule.column)
            if key in seen:
                on = f" on column {rule.column}" if rule.column else ""
                raise ValueError(f"two anomaly rules for {rule.metric}{on}: give one")
            seen.add(key)
        return rules

    def anomaly_rule(self, metric: str, column: str | None) -> AnomalyRule | None:
        """The rule that judges ``metric`` of ``column``: the one naming the column, else
        the metric's rule for every column, else none."""
        named = [r for r in self.anomalies if r.metric == metric and r.column == column]
        every = [r for r in self.anomalies if r.metric == metric and r.column is None]
        return next(iter(named or every), None)
