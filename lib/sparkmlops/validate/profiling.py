"""Profile a table and propose a starter expectation suite as YAML for a person to edit.

One aggregate pass reads every column's row count, null count, min, max and an
approximate distinct count; a second, only over the low-cardinality text columns,
collects their value sets. From those the proposal is:

- the row count between 1 and ten times what the table holds now;
- the business key unique (``expect_compound_columns_to_be_unique``), critical;
- per column: not null (critical) when it has no nulls, else a floor on its share of
  non-null values (warning, an aggregate: rows with nulls stay); numbers and dates
  between their observed min and max and text with at most ``max_set_size`` values
  in that set (warnings; row-level, so a row outside is kept and counted, or with
  ``action: quarantine`` added by hand goes to quarantine).

The YAML uses GX's own expectation names and arguments, in the shape of
``quality.expectations``; each item is preceded by a comment with what was observed.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pyspark.sql.functions as F
import yaml
from pyspark.sql import DataFrame
from pyspark.sql.types import DateType, NumericType, StringType, TimestampType

log = logging.getLogger(__name__)

MAX_SET_SIZE = 20


@dataclass(frozen=True)
class ColumnProfile:
    name: str
    type: str
    rows: int
    nulls: int
    minimum: Any
    maximum: Any
    distinct: int
    values: list[Any] | None  # the value set of a low-cardinality text column

    @property
    def null_fraction(self) -> float:
        return self.nulls / self.rows if self.rows else 0.0


def profile_columns(df: DataFrame, max_set_size: int = MAX_SET_SIZE) -> list[ColumnProfile]:
    """Per-column statistics of ``df`` (columns starting with ``_`` are audit, skipped)."""
    fields = [f for f in df.schema.fields if not f.name.startswith("_")]
    ranged = [f for f in fields
              if isinstance(f.dataType, NumericType | DateType | TimestampType | StringType)]
    aggregates = [F.count(F.lit(1)).alias("rows")]
    for f in fields:
        col = F.col(f"`{f.name}`")
        aggregates += [F.count(col).alias(f"{f.name}__count"),
                       F.approx_count_distinct(col).alias(f"{f.name}__distinct")]
        if f in ranged:
            aggregates += [F.min(col).alias(f"{f.name}__min"), F.max(col).alias(f"{f.name}__max")]
    stats = df.agg(*aggregates).first()
    assert stats is not None
    rows = int(stats["rows"])
    small_text = [f.name for f in fields if isinstance(f.dataType, StringType)
                  and 0 < int(stats[f"{f.name}__distinct"]) <= max_set_size]
    sets: dict[str, list[Any]] = {}
    if small_text:
        collected = df.agg(*[F.collect_set(F.col(f"`{n}`")).alias(n) for n in small_text]).first()
        assert collected is not None
        sets = {n: sorted(collected[n]) for n in small_text if len(collected[n]) <= max_set_size}
    return [
        ColumnProfile(
            name=f.name, type=f.dataType.simpleString(), rows=rows,
            nulls=rows - int(stats[f"{f.name}__count"]),
            minimum=stats[f"{f.name}__min"] if f in ranged else None,
            maximum=stats[f"{f.name}__max"] if f in ranged else None,
            distinct=int(stats[f"{f.name}__distinct"]), values=sets.get(f.name),
        )
        for f in fields
    ]


def propose_expectations(
    profiles: list[ColumnProfile], keys: list[str]
) -> list[tuple[str, dict[str, Any]]]:
    """(comment, expectation item) pairs: the starter suite, GX names and arguments."""
    rows = profiles[0].rows if profiles else 0
    proposed: list[tuple[str, dict[str, Any]]] = [
        (f"{rows} rows now",
         _item("expect_table_row_count_to_be_between",
               {"min_value": 1, "max_value": max(10 * rows, 1)}, "critical")),
    ]
    if keys:
        proposed.append(("the business key (keys)",
                         _item("expect_compound_columns_to_be_unique",
                               {"column_list": list(keys)}, "critical")))
    for p in profiles:
        observed = (f"{p.name} ({p.type}): {p.nulls} nulls of {p.rows} "
                    f"({100 * p.null_fraction:.2f} %), ~{p.distinct} distinct")
        if p.nulls == 0 and p.rows:
            proposed.append((observed, _item("expect_column_values_to_not_be_null",
                                             {"column": p.name}, "critical")))
        elif p.nulls < p.rows:
            # an aggregate, not a row-level not-null: these nulls are what the column
            # normally holds, and the floor is on their share, not on each row
            floor = max(math.floor((1 - p.null_fraction) * 100 - 1) / 100, 0.0)
            proposed.append((observed, _item(
                "expect_column_proportion_of_non_null_values_to_be_between",
                {"column": p.name, "min_value": floor}, "warning")))
        if p.values is not None:
            proposed.append((f"{p.name}: {len(p.values)} values seen",
                             _item("expect_column_values_to_be_in_set",
                                   {"column": p.name, "value_set": p.values}, "warning")))
        elif p.minimum is not None and p.type != "string":
            proposed.append((f"{p.name}: min {_plain(p.minimum)}, max {_plain(p.maximum)}",
                             _item("expect_column_values_to_be_between",
                                   {"column": p.name, "min_value": _plain(p.minimum),
                                    "max_value": _plain(p.maximum)}, "warning")))
    return proposed


def suite_yaml(proposed: list[tuple[str, dict[str, Any]]], *, source: str) -> str:
    """The proposal as commented YAML in the shape of a dataset's ``validate`` block."""
    lines = [
        f"# Starter suite proposed by `sparkmlops profile` from {source}",
        f"# on {datetime.now():%Y-%m-%d %H:%M}. Edit it (ranges, severities, sets), then",
        "# put it under `validate:` in conf/datasets/<dataset>.yml.",
        "validate:",
        "  gate: enabled",
        "  expectations:",
    ]
    for comment, item in proposed:
        lines.append(f"    # {comment}")
        dumped = yaml.safe_dump([item], sort_keys=False, allow_unicode=True, width=100)
        lines += [f"    {line}" for line in dumped.rstrip().splitlines()]
    return "\n".join(lines) + "\n"


def _item(name: str, kwargs: dict[str, Any], severity: str) -> dict[str, Any]:
    return {"expectation": name, "kwargs": kwargs, "severity": severity}


def _plain(value: Any) -> Any:
    """A YAML- and GX-friendly scalar: dates as ISO text, decimals as floats."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value
