"""Validate: a Great Expectations suite from config on the bronze batch.

The suite runs on the Spark DataFrame of the exact bronze version just written
(GX's Spark execution engine, never pandas). Its outcome is kept three ways: the
``validation_results`` Delta table (one row per expectation), the GX result JSON
as an MLflow artifact, and Data Docs HTML in ``validate.data_docs_dir``.

Row-level expectations (not-null, in-set, not-in-set, between, regex) also judge
each row with the same semantics as GX (nulls count only for not-null), and their
``action`` says what happens to a failing row: ``keep`` lets it on to
``silver.<dataset>`` (counted), ``quarantine`` sends it to ``quarantine.<dataset>``
with the names of the quarantine expectations it failed (a row failing a ``keep`` and
a ``quarantine`` expectation goes to quarantine, the reason naming only the latter),
``fail`` stops the step before anything is written when any row fails it
(:func:`count_row_actions` counts all three in one pass). A failed ``critical``
expectation fails the gate; with the gate ``enabled`` that stops the step before
anything is written.
In append mode, :func:`flag_repeated_keys` also flags rows whose key silver already
holds from another batch, and :func:`flag_repeated_within` rows whose key another row
of the same batch brings (``write.repeated_keys``), in the same split.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import reduce
from pathlib import Path
from typing import Any, Literal

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame, Window

from sparkmlops.config import ExpectationSpec, gx_expectation_names
from sparkmlops.errors import ConfigError
from sparkmlops.quarantine import SOURCE_FILE_COLUMN
from sparkmlops.tables import BATCH_COLUMN

log = logging.getLogger(__name__)

GateStatus = Literal["passed", "passed_with_warnings", "failed", "not_run"]
FAILED_COLUMN = "_failed_expectations"
# the other batch that already put a row's key in silver (append mode), or null
REPEATED_COLUMN = "_key_in_batch"
REPEATED_REASON = "key already in silver from batch "
# why a row goes to quarantine because other rows of its own batch bring its key, or null
WITHIN_COLUMN = "_key_repeated_within"
WITHIN_REASON = "key repeated within batch "
COPIES_COLUMN = "_copies"


@dataclass(frozen=True)
class ExpectationOutcome:
    """The result of one expectation in one validation run."""

    expectation: str
    column: str | None
    kwargs: str
    severity: str
    success: bool
    observed_value: str | None
    element_count: int | None
    unexpected_count: int | None
    unexpected_percent: float | None
    action: str = "keep"
    # rows failing it that went on past the expectations / went to quarantine for them
    # (:func:`count_row_actions`); null for an expectation that is not row-level
    rows_kept: int | None = None
    rows_quarantined: int | None = None


@dataclass(frozen=True)
class RowActions:
    """What the row-level expectations' actions do to one batch, counted in one pass.

    Keyed by the expectation's position in the suite: ``kept`` and ``quarantined`` the
    rows failing it that go on to silver / to quarantine because of expectations (a row
    failing a ``keep`` expectation is quarantined when it also fails a ``quarantine``
    one), ``failing`` the rows failing each ``fail`` expectation. ``kept_rows``: the rows
    that failed a ``keep`` expectation and no ``quarantine`` one.
    """

    kept: dict[int, int] = field(default_factory=dict)
    quarantined: dict[int, int] = field(default_factory=dict)
    failing: dict[int, int] = field(default_factory=dict)
    kept_rows: int = 0


@dataclass(frozen=True)
class ValidationReport:
    outcomes: list[ExpectationOutcome]
    status: GateStatus
    gx_result: dict[str, Any]
    data_docs_index: str | None
    suite: str = ""

    def count(self, severity: str, success: bool) -> int:
        return sum(1 for o in self.outcomes if o.severity == severity and o.success is success)

    def with_row_actions(self, actions: RowActions) -> ValidationReport:
        """The report with each row-level outcome's ``rows_kept`` and ``rows_quarantined``
        (0 and 0 for a ``fail`` expectation: its rows go nowhere, or the step stops)."""
        def counted(index: int, outcome: ExpectationOutcome) -> ExpectationOutcome:
            if index in actions.failing:
                return replace(outcome, rows_kept=0, rows_quarantined=0)
            if index in actions.kept:
                return replace(outcome, rows_kept=actions.kept[index],
                               rows_quarantined=actions.quarantined[index])
            return outcome
        return replace(self, outcomes=[counted(i, o) for i, o in enumerate(self.outcomes)])


# ---------------------------------------------------------------- the suite


def expectation_class(spec: ExpectationSpec) -> type:
    """The GX 1.x expectation class for a snake_case name, or ConfigError."""
    import great_expectations as gx

    name = gx_expectation_names().get(spec.expectation)
    cls = getattr(gx.expectations, name, None) if name else None
    if cls is None:
        raise ConfigError(
            f"validate.expectations: unknown Great Expectations expectation {spec.expectation!r}"
        )
    return cls  # type: ignore[no-any-return]


def build_suite(specs: list[ExpectationSpec], name: str) -> Any:
    """A GX ``ExpectationSuite`` from config; severity and position kept in ``meta``."""
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=name)
    for index, spec in enumerate(specs):
        cls = expectation_class(spec)
        try:
            expectation = cls(**spec.kwargs, meta={"severity": spec.severity, "index": index})
        except Exception as exc:  # pydantic errors from GX name the bad argument
            raise ConfigError(
                f"validate.expectations.{index} ({spec.expectation}): invalid kwargs: "
                f"{str(exc).splitlines()[0]}"
            ) from None
        suite.add_expectation(expectation)
    return suite


def run_suite(
    df: DataFrame, specs: list[ExpectationSpec], *, suite_name: str, asset_name: str,
    data_docs_dir: str | None, partial_unexpected_count: int = 0, run_name: str | None = None,
) -> tuple[list[ExpectationOutcome], dict[str, Any], str | None]:
    """Run the suite with GX's Spark engine; return outcomes, GX JSON and Data Docs index.

    ``run_name`` names the GX run: its Data Docs page lives under
    ``validations/<suite>/<run_name>/<run time>/``, and GX writes ``__none__`` there
    without one.

    ``partial_unexpected_count`` sample values of each row-level expectation's failures
    go into the result and the Data Docs; 0 skips the sampling, which costs GX one
    more Spark job per row-level expectation (a full scan when nothing fails).
    """
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.core.run_identifier import RunIdentifier

    context = gx.get_context(mode="ephemeral")
    _quiet_progress_bars(context)
    actions: list[Any] = []
    if data_docs_dir:
        Path(data_docs_dir).mkdir(parents=True, exist_ok=True)
        context.add_data_docs_site(
            site_name="sparkmlops",
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                                  "base_directory": data_docs_dir},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        actions.append(UpdateDataDocsAction(name="data_docs", site_names=["sparkmlops"]))
    # persist=False: GX would cache the frame again; the caller caches it once
    asset = context.data_sources.add_spark(name="spark", persist=False).add_dataframe_asset(
        name=asset_name)
    batch = asset.add_batch_definition_whole_dataframe("batch")
    suite = context.suites.add(build_suite(specs, suite_name))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite_name}_validation", data=batch, suite=suite)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(name=f"{suite_name}_checkpoint", validation_definitions=[definition],
                      actions=actions,
                      result_format={"result_format": "BASIC",
                                     "partial_unexpected_count": partial_unexpected_count})
    )
    result = checkpoint.run(
        batch_parameters={"dataframe": df},
        run_id=RunIdentifier(run_name=run_name, run_time=datetime.now(UTC)))
    validation = next(iter(result.run_results.values()))
    gx_json = validation.to_json_dict()
    indexed = sorted(
        (int(r["expectation_config"]["meta"]["index"]), r) for r in gx_json["results"]
    )
    outcomes = [_outcome(r, specs[i]) for i, r in indexed]
    index = str(Path(data_docs_dir) / "index.html") if data_docs_dir else None
    return outcomes, gx_json, index


def gate_status(outcomes: list[ExpectationOutcome]) -> GateStatus:
    """``failed`` if a critical expectation failed, ``passed_with_warnings`` if only warnings."""
    if any(not o.success and o.severity == "critical" for o in outcomes):
        return "failed"
    if any(not o.success for o in outcomes):
        return "passed_with_warnings"
    return "passed"


def outcomes_frame(
    spark: Any, outcomes: list[ExpectationOutcome], **context: Any
) -> DataFrame:
    """Outcomes as rows of ``validation_results`` (context: dataset, table, version, ...)."""
    rows = [{**context, **asdict(o)} for o in outcomes]
    schema = (
        "validation_id string, dataset string, suite string, table string, "
        "table_version long, _batch_id string, gate_mode string, gate_status string, "
        "validated_at timestamp, expectation string, column string, "
        "kwargs string, severity string, success boolean, observed_value string, "
        "element_count long, unexpected_count long, unexpected_percent double, "
        "action string, rows_kept long, rows_quarantined long"
    )
    ordered = [tuple(row[f.split()[0]] for f in schema.split(", ")) for row in rows]
    return spark.createDataFrame(ordered, schema)


def _outcome(result: dict[str, Any], spec: ExpectationSpec) -> ExpectationOutcome:
    config = result["expectation_config"]
    res = result.get("result") or {}
    observed = res.get("observed_value")
    return ExpectationOutcome(
        expectation=config["type"],
        column=spec.column,
        kwargs=json.dumps(spec.kwargs, sort_keys=True, default=str),
        severity=spec.severity,
        success=bool(result["success"]),
        observed_value=None if observed is None else json.dumps(observed, default=str),
        element_count=res.get("element_count"),
        unexpected_count=res.get("unexpected_count"),
        unexpected_percent=res.get("unexpected_percent"),
        action=spec.action,
    )


def _quiet_progress_bars(context: Any) -> None:
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # noqa: BLE001 - cosmetic only; GX moved this class before
        log.debug("could not turn off GX progress bars", exc_info=True)


# ---------------------------------------------------------------- the row-level split


def row_failure(spec: ExpectationSpec) -> Column | None:
    """A Column that is true when a row fails ``spec``; None for aggregate expectations.

    Same semantics as GX: only not-null counts nulls as failures. Which expectations
    are row-level is said once, in config (``ExpectationSpec.row_level``), where an
    ``action`` other than ``keep`` is refused for the others.
    """
    column = spec.column
    if column is None or not spec.row_level:
        return None
    col = F.col(column)
    kw = spec.kwargs
    name = spec.expectation
    if name == "expect_column_values_to_not_be_null":
        return col.isNull()
    if name == "expect_column_values_to_be_null":
        return col.isNotNull()
    if name == "expect_column_values_to_be_in_set":
        return col.isNotNull() & ~col.isin(list(kw["value_set"]))
    if name == "expect_column_values_to_not_be_in_set":
        return col.isNotNull() & col.isin(list(kw["value_set"]))
    if name == "expect_column_values_to_match_regex":
        return col.isNotNull() & ~col.rlike(str(kw["regex"]))
    if name == "expect_column_values_to_not_match_regex":
        return col.isNotNull() & col.rlike(str(kw["regex"]))
    if name == "expect_column_values_to_be_between":
        conditions = []
        if kw.get("min_value") is not None:
            low = F.lit(kw["min_value"])
            conditions.append(col <= low if kw.get("strict_min") else col < low)
        if kw.get("max_value") is not None:
            high = F.lit(kw["max_value"])
            conditions.append(col >= high if kw.get("strict_max") else col > high)
        if not conditions:
            return None
        return col.isNotNull() & reduce(lambda a, b: a | b, conditions)
    return None


def failed_expectations(specs: list[ExpectationSpec]) -> Column:
    """An array of the labels of the ``quarantine`` expectations a row fails (empty if none).

    ``keep`` and ``fail`` expectations do not send a row to quarantine: the first let it
    on, the second stop the step first (:func:`count_row_actions`).
    """
    checks = [(spec.label, row_failure(spec)) for spec in specs if spec.action == "quarantine"]
    flags = [F.when(check, F.lit(label)) for label, check in checks if check is not None]
    if not flags:
        return F.array().cast("array<string>")
    return F.filter(F.array(*flags), lambda x: x.isNotNull())


def flag_rows(df: DataFrame, specs: list[ExpectationSpec]) -> DataFrame:
    """``df`` with ``_failed_expectations``: the quarantine expectations each row fails."""
    return df.withColumn(FAILED_COLUMN, failed_expectations(specs))


def count_row_actions(df: DataFrame, specs: list[ExpectationSpec]) -> RowActions:
    """What each row-level expectation's ``action`` does to the rows of ``df``, in one
    aggregation (:class:`RowActions`); no Spark job when no expectation is row-level.

    Uses the predicates of the split itself (:func:`row_failure`, a null one as a pass),
    so the counts are the rows the split sends each way.

    Example::

        count_row_actions(batch, specs).failing  # {4: 3}: expectation 4 (fail) fails 3 rows
    """
    checks = {i: F.coalesce(check, F.lit(False)) for i, spec in enumerate(specs)
              if (check := row_failure(spec)) is not None}
    if not checks:
        return RowActions()

    def any_of(action: str) -> Column:
        flags = [checks[i] for i in checks if specs[i].action == action]
        return reduce(lambda a, b: a | b, flags, F.lit(False))

    quarantined = any_of("quarantine")

    def counted(condition: Column) -> Column:
        return F.count(F.when(condition, 1))

    # per expectation: its failing rows that go on, and those a quarantine one takes
    aggregates = [agg for check in checks.values()
                  for agg in (counted(check & ~quarantined), counted(check & quarantined))]
    row = df.agg(*aggregates, counted(any_of("keep") & ~quarantined)).first()
    assert row is not None  # an aggregation without grouping has one row
    split = {i: (int(row[2 * n]), int(row[2 * n + 1])) for n, i in enumerate(checks)}
    acting = {i: pair for i, pair in split.items() if specs[i].action != "fail"}
    return RowActions(
        kept={i: on for i, (on, _) in acting.items()},
        quarantined={i: off for i, (_, off) in acting.items()},
        failing={i: on + off for i, (on, off) in split.items() if specs[i].action == "fail"},
        kept_rows=int(row[-1]),
    )


def needs_row_count(specs: list[ExpectationSpec]) -> bool:
    """Whether :func:`count_row_actions` must pass over the batch: a row-level expectation
    keeps its failing rows or fails on them. When each quarantines, what it quarantines is
    what GX counted (:func:`quarantined_as_counted`)."""
    return any(s.row_level and s.action != "quarantine" for s in specs)


def quarantined_as_counted(
    specs: list[ExpectationSpec], outcomes: list[ExpectationOutcome]
) -> RowActions:
    """The actions of a suite whose row-level expectations all quarantine, without a pass:
    each quarantines its failing rows, GX's ``unexpected_count`` (the split's predicates
    are GX's semantics), and keeps none."""
    row_level = [i for i, spec in enumerate(specs) if spec.row_level]
    return RowActions(kept={i: 0 for i in row_level},
                      quarantined={i: outcomes[i].unexpected_count or 0 for i in row_level})


def flag_repeated_keys(
    batch_df: DataFrame, existing_keys_df: DataFrame, keys: list[str]
) -> DataFrame:
    """``batch_df`` with ``_key_in_batch``: the other batch that already holds each row's key.

    ``existing_keys_df`` holds the key columns and ``_batch_id`` of the rows a table
    already has from other batches. Keys compare null-safely (append mode allows
    nullable keys, and a null key repeated is still the same key); when several
    batches hold a key the smallest batch id is named, so the answer never depends
    on how Spark ran. Rows with a new key get null. One row out per row in.

    Example::

        flag_repeated_keys(batch, silver.select("id", "_batch_id"), ["id"])
    """
    held = {k: f"_held_{k}" for k in keys}
    earlier = existing_keys_df.groupBy(*[F.col(k).alias(held[k]) for k in keys]).agg(
        F.min(BATCH_COLUMN).alias(REPEATED_COLUMN))
    same_key = reduce(lambda a, b: a & b,
                      [batch_df[k].eqNullSafe(earlier[held[k]]) for k in keys])
    return batch_df.join(earlier, same_key, "left").drop(*held.values())


def rows_with_keys_of(df: DataFrame, batch_df: DataFrame, keys: list[str]) -> DataFrame:
    """The rows of ``df`` whose key (compared null-safely) some row of ``batch_df`` has.

    A left semi join: one row out per matching row of ``df``, none of ``batch_df``'s
    columns. Narrows silver to what :func:`flag_repeated_keys` can match, so the
    narrowed frame is small enough to cache.
    """
    other = batch_df.select(*[F.col(k).alias(f"_batch_{k}") for k in keys])
    same_key = reduce(lambda a, b: a & b,
                      [df[k].eqNullSafe(other[f"_batch_{k}"]) for k in keys])
    return df.join(other, same_key, "left_semi")


def keys_repeated_within(flagged: DataFrame, keys: list[str]) -> DataFrame:
    """The keys that more than one row of ``flagged`` would bring to silver, with ``_copies``.

    Only rows that nothing else sends to quarantine count (no failed row-level
    expectation, no key held by another batch): a bad copy of a key does not keep
    its good copy out. Keys group null-safely. One aggregation of the key columns,
    usually empty, so :func:`flag_repeated_within` runs only when it has work.

    Example::

        keys_repeated_within(flag_rows(batch, specs), ["id"])  # id, _copies
    """
    return (flagged.where(~_is_flagged(flagged)).groupBy(*keys)
            .agg(F.count(F.lit(1)).alias(COPIES_COLUMN))
            .where(F.col(COPIES_COLUMN) > 1))


def flag_repeated_within(flagged: DataFrame, keys: list[str], batch_id: str) -> DataFrame:
    """``flagged`` with ``_key_repeated_within``: the reason a copy of a key goes to quarantine.

    Among the rows counted by :func:`keys_repeated_within`: when every copy of a key
    is the same record (all columns not starting with ``_``), the one from the first
    ``_source_file`` stays (which of two identical rows of one file does not change
    silver) and the others are quarantined naming that file; when the copies differ,
    nothing tells which is right, so all are quarantined. Other rows get null. One
    window over the key, so the same bronze rows always give the same split.
    """
    candidate = ~_is_flagged(flagged)
    record = F.to_json(F.struct(*[F.col(c) for c in flagged.columns if not c.startswith("_")]))
    group = Window.partitionBy(*[F.col(k) for k in keys], candidate)
    copies = F.count(F.lit(1)).over(group)
    differ = F.min(record).over(group) != F.max(record).over(group)
    rank = F.row_number().over(group.orderBy(SOURCE_FILE_COLUMN))
    where = F.lit(f"{WITHIN_REASON}{batch_id}: ")
    policy = F.lit(" (write.repeated_keys: quarantine)")
    reason = (
        F.when(~candidate | (copies < 2), F.lit(None).cast("string"))
        .when(differ, F.concat(where, copies.cast("string"),
                               F.lit(" rows with different values, none kept"), policy))
        .when(rank > 1, F.concat(where, F.lit("an identical copy of the row kept from "),
                                 F.min(SOURCE_FILE_COLUMN).over(group), policy)))
    return flagged.withColumn(WITHIN_COLUMN, reason)


def flagged_reason() -> Column:
    """Why a flagged row goes to quarantine: its failed expectations, else the batch that
    holds its key, else the copies of its key in its own batch."""
    failed = F.when(F.size(FAILED_COLUMN) > 0, F.concat(
        F.lit("failed expectations: "), F.array_join(F.col(FAILED_COLUMN), ", ")))
    repeated = F.concat(F.lit(REPEATED_REASON), F.col(REPEATED_COLUMN),
                        F.lit(" (write.repeated_keys: quarantine)"))
    return F.coalesce(failed, repeated, F.col(WITHIN_COLUMN))


def _is_flagged(df: DataFrame) -> Column:
    failed = F.size(FAILED_COLUMN) > 0
    for column in (REPEATED_COLUMN, WITHIN_COLUMN):
        if column in df.columns:
            failed = failed | F.col(column).isNotNull()
    return failed


def split_flagged(flagged: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(rows that failed nothing, without the flag columns; rows that failed, with them).

    A row fails when it failed a row-level expectation, (after
    :func:`flag_repeated_keys`) its key is already held by another batch, or (after
    :func:`flag_repeated_within`) it is a copy of a key its batch repeats.
    """
    passing = flagged.where(~_is_flagged(flagged)).drop(
        FAILED_COLUMN, REPEATED_COLUMN, WITHIN_COLUMN)
    failing = flagged.where(_is_flagged(flagged))
    for column in (REPEATED_COLUMN, WITHIN_COLUMN):
        if column not in failing.columns:
            failing = failing.withColumn(column, F.lit(None).cast("string"))
    return passing, failing
