"""Validate's I/O edge: bronze → silver (+ quarantine), validation results, Data Docs."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import pyspark.sql.functions as F
from pyspark.sql import DataFrame, SparkSession

from sparkmlops.config import DatasetSettings, Settings
from sparkmlops.errors import (
    MissingInputError,
    QualityGateFailed,
    ReconciliationError,
    RepeatedKeysError,
)
from sparkmlops.quarantine import to_quarantine, write_quarantine
from sparkmlops.tables import (
    BATCH_COLUMN,
    DatasetTables,
    TableRef,
    TableWrite,
    current_version,
    dataset_tables,
    read_batch,
    read_table,
)
from sparkmlops.tracking.runs import StepOutcome, StepTracker, step_run
from sparkmlops.validate import expectations
from sparkmlops.writes import (
    RANK_COLUMN,
    MergeWrite,
    rank_per_key,
    replace_where,
    write_batch,
)

log = logging.getLogger(__name__)

DATA_DOCS_ARTIFACT = "data_docs"


@dataclass(frozen=True)
class ValidateOutcome(StepOutcome):
    """The gate's verdict on a bronze batch and where its rows went."""

    step: ClassVar[str] = "validate"
    silver_version: int | None = None  # silver after the step
    gate: str = "enforce"
    status: str = "not_run"
    silver_rows: int = 0
    quarantined: int = 0
    data_docs: str | None = None
    upsert: bool = False
    superseded: int = 0  # upsert: older records of a key in the same batch
    stale: int = 0  # upsert: records older than silver's row for the key
    repeated_keys: int = 0  # append: rows whose key another batch already holds
    repeated_in_batch: int = 0  # append: copies of a key this batch repeats, quarantined
    expectations_failed: list[str] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, Any]:
        return {"gate": self.gate, "status": self.status, "silver_rows": self.silver_rows,
                "quarantined": self.quarantined, "data_docs": self.data_docs,
                **({"superseded": self.superseded, "stale": self.stale} if self.upsert
                   else {"repeated_keys": self.repeated_keys,
                         "repeated_in_batch": self.repeated_in_batch}),
                "expectations_failed": self.expectations_failed}


def validate_step(
    spark: SparkSession, settings: Settings, batch_id: str, *, bronze_version: int | None = None
) -> ValidateOutcome:
    """Bronze batch → GX suite → validation_results; passing rows → silver, failing → quarantine.

    The suite runs on the Delta version itself, not a cache: each of GX's Spark jobs
    reads only the columns it needs, which measured as fast as scanning a cache that
    costs two to three passes to build (benchmarks/validate_bench.py). The row-level
    split is computed inside the two writes. In upsert mode the batch is ranked per
    key (a shuffle) and that ranking is cached once. In append mode a passing row
    whose key silver already holds from another batch, or that another passing row
    of this batch also brings, follows ``write.repeated_keys``: quarantined (with the
    earlier batch named; inside the batch one of identical copies stays, differing
    copies all go), the step failed (exit 4) before silver and quarantine are
    written, or kept (``allow``).
    """
    dataset = settings.dataset
    tables = dataset_tables(settings)
    bronze, silver = tables.bronze, tables.silver
    gate = dataset.validate_.gate
    specs = dataset.validate_.expectations if gate != "disabled" else []
    upsert = dataset.write.mode == "upsert"
    with step_run(settings, "validate", batch_id) as tracker:
        version = bronze_version if bronze_version is not None else current_version(spark, bronze)
        batch = read_batch(spark, bronze, batch_id, version)
        if upsert:
            # one record per key, the latest: the suite judges what silver would hold
            assert dataset.write.order_by is not None
            batch = rank_per_key(batch, dataset.keys, dataset.write.order_by).persist()
        held: DataFrame | None = None
        held_rows = 0
        within: DataFrame | None = None
        within_keys = 0
        try:
            rows = batch.count()
            if rows == 0:
                raise MissingInputError(f"batch {batch_id} has no rows in {bronze.fqn} v{version}")
            tracker.read(bronze, version, rows)
            checked, superseded = batch, 0
            if upsert:
                checked = batch.where(F.col(RANK_COLUMN) == 1).drop(RANK_COLUMN)
                superseded = rows - checked.count()
                tracker.count("rows_superseded_in_batch", superseded)
            report = _run_quality_checks(checked, settings, tracker, suite=f"{dataset.name}_bronze")
            _record_validation(spark, dataset, tables, tracker, report, batch_id, version)
            if report.status == "failed" and gate == "enabled":
                failed = [f"{o.expectation}({o.column or ''})" for o in report.outcomes
                          if not o.success and o.severity == "critical"]
                raise QualityGateFailed(
                    f"quality gate failed for {bronze.fqn} v{version} batch {batch_id}: "
                    f"critical expectation(s) failed: {', '.join(failed)}"
                    + (f"; see {report.data_docs_index}" if report.data_docs_index else "")
                )
            flagged = expectations.flag_rows(checked, specs)
            held = _keys_held_by_other_batches(spark, dataset, silver, tracker, batch_id)
            if held is not None:
                # Silver's rows with a key of this batch, found in one pass and cached:
                # usually none, and then the two writes do not look at silver at all.
                held = expectations.rows_with_keys_of(held, checked, dataset.keys).persist()
                held_rows = held.count()
                if held_rows:
                    flagged = expectations.flag_repeated_keys(flagged, held, dataset.keys)
            if _checks_repeated_keys(dataset):
                # keys two rows of this batch bring, in one aggregation of the key
                # columns and cached: usually none, and then the writes add no window
                within = expectations.keys_repeated_within(flagged, dataset.keys).persist()
                within_keys = within.count()
            if dataset.write.repeated_keys == "fail" and (held_rows or within_keys):
                _fail_on_repeated_keys(flagged if held_rows else None,
                                       within if within_keys else None, dataset.keys, batch_id)
            if within_keys:
                flagged = expectations.flag_repeated_within(flagged, dataset.keys, batch_id)
            passing, failing = expectations.split_flagged(flagged)
            record = F.to_json(F.struct(*[F.col(c.name) for c in dataset.schema_]))
            quarantined = to_quarantine(failing, "validate", expectations.flagged_reason(), record)
            q_write = write_quarantine(quarantined, tables.quarantine, batch_id, "validate")
            s_write = write_batch(
                passing, silver, dataset.write, dataset.keys, batch_id,
                order_by=dataset.write.order_by,
                merge_schema=dataset.source.schema_evolution == "add_new_columns")
            stale = s_write.stale if isinstance(s_write, MergeWrite) else 0
            rows_quarantined = q_write.rows
            tracker.wrote(s_write)
            tracker.wrote(q_write, rows=rows_quarantined)
            if stale:
                tracker.count("rows_stale", stale)
            repeated, repeated_in_batch = (_rows_repeated(spark, q_write, batch_id)
                                           if held_rows or within_keys else (0, 0))
            if not upsert:
                tracker.count("rows_repeated_keys", repeated)
                tracker.count("rows_repeated_in_batch", repeated_in_batch)
            if rows != s_write.rows + rows_quarantined + superseded + stale:
                raise ReconciliationError(
                    f"validate batch {batch_id}: {rows} bronze rows but {s_write.rows} in silver, "
                    f"{rows_quarantined} quarantined, {superseded} superseded in the batch and "
                    f"{stale} older than silver")
        finally:
            if upsert:
                batch.unpersist()
            if held is not None:
                held.unpersist()
            if within is not None:
                within.unpersist()
        return ValidateOutcome(
            tracker.run_id,
            {silver.fqn: s_write.version, q_write.table.fqn: q_write.version},
            silver_version=s_write.version, gate=gate, status=report.status,
            silver_rows=s_write.rows,
            quarantined=rows_quarantined, data_docs=report.data_docs_index, upsert=upsert,
            superseded=superseded, stale=stale, repeated_keys=repeated,
            repeated_in_batch=repeated_in_batch,
            expectations_failed=[f"{o.expectation}({o.column or ''}) [{o.severity}]"
                                 for o in report.outcomes if not o.success],
        )


def _checks_repeated_keys(dataset: DatasetSettings) -> bool:
    """Append mode unless ``write.repeated_keys: allow`` (upsert's MERGE keeps one row per key)."""
    return dataset.write.mode == "append" and dataset.write.repeated_keys != "allow"


def _keys_held_by_other_batches(
    spark: SparkSession, dataset: DatasetSettings, silver: TableRef, tracker: Any, batch_id: str
) -> DataFrame | None:
    """The keys (and ``_batch_id``) silver holds from other batches; None when not checked.

    Checked when :func:`_checks_repeated_keys`. This batch's own rows are left out, so
    validating a batch again finds nothing new. Only the key columns and the batch id
    are read.
    """
    if not _checks_repeated_keys(dataset):
        return None
    version = current_version(spark, silver)
    if version is None:
        return None
    tracker.read(silver, version)
    return (read_table(spark, silver, version)
            .where(F.col(BATCH_COLUMN) != F.lit(batch_id))
            .select(*dataset.keys, BATCH_COLUMN))


def _fail_on_repeated_keys(
    flagged: DataFrame | None, within: DataFrame | None, keys: list[str], batch_id: str
) -> None:
    """RepeatedKeysError naming counts and example keys: of the rows whose key silver holds
    (``flagged``, with the earlier batches) and of the keys this batch repeats (``within``)."""
    found = (_held_by_other_batches(flagged, keys) if flagged is not None else None,
             _repeated_within(within, keys) if within is not None else None)
    parts = [part for part in found if part is not None]
    if not parts:  # silver's copies of the keys only match rows that failed expectations
        return
    raise RepeatedKeysError(
        f"batch {batch_id}: {'; '.join(parts)}; silver and quarantine left as they were "
        "(write.repeated_keys: fail)")


def _held_by_other_batches(flagged: DataFrame, keys: list[str]) -> str | None:
    """'<n> row(s) bring a key that silver already holds from batch <ids>, e.g. <keys>'.

    None when every such row failed an expectation (it goes to quarantine anyway)."""
    repeated = flagged.where((F.size(expectations.FAILED_COLUMN) == 0)
                             & F.col(expectations.REPEATED_COLUMN).isNotNull())
    summary = repeated.agg(F.count(F.lit(1)).alias("rows"), F.array_sort(
        F.collect_set(expectations.REPEATED_COLUMN)).alias("batches")).first()
    if summary is None or not summary["rows"]:
        return None
    examples = repeated.select(*keys).distinct().orderBy(*keys).limit(2).collect()
    shown = ", ".join(_shown_key(row, keys) for row in examples)
    batches = list(summary["batches"])
    named = ", ".join(batches[:3]) + (f" and {len(batches) - 3} more" if len(batches) > 3 else "")
    return (f"{summary['rows']} row(s) bring a key that silver already holds from batch "
            f"{named}, e.g. {shown}")


def _repeated_within(within: DataFrame, keys: list[str]) -> str:
    """'<k> key(s) repeated within the batch on <n> rows, e.g. <key> (<c> rows), ...'."""
    summary = within.agg(F.count(F.lit(1)).alias("keys"),
                         F.sum(expectations.COPIES_COLUMN).alias("rows")).first()
    assert summary is not None  # an aggregation without grouping has one row
    examples = within.orderBy(*keys).limit(2).collect()
    shown = ", ".join(f"{_shown_key(row, keys)} ({row[expectations.COPIES_COLUMN]} rows)"
                      for row in examples)
    return (f"{summary['keys']} key(s) repeated within the batch on {summary['rows']} rows, "
            f"e.g. {shown}")


def _shown_key(row: Any, keys: list[str]) -> str:
    return "{" + ", ".join(f"{k}={row[k]}" for k in keys) + "}"


def _rows_repeated(spark: SparkSession, q_write: TableWrite, batch_id: str) -> tuple[int, int]:
    """The batch's rows just quarantined for a key held by another batch, and for a key
    repeated within the batch (read back: no pass over the batch)."""
    reason = F.col("reason")
    counts = (read_batch(spark, q_write.table, batch_id, q_write.version)
              .where(F.col("step") == "validate")
              .agg(F.count(F.when(reason.startswith(expectations.REPEATED_REASON), 1)),
                   F.count(F.when(reason.startswith(expectations.WITHIN_REASON), 1)))
              .first())
    assert counts is not None  # an aggregation without grouping has one row
    return int(counts[0]), int(counts[1])


def _record_validation(
    spark: SparkSession, dataset: DatasetSettings, tables: DatasetTables, tracker: StepTracker,
    report: expectations.ValidationReport,
    batch_id: str, version: int | None,
) -> None:
    """validation_results rows, the GX JSON artifact and the gate outcome in MLflow."""
    bronze = tables.bronze
    tracker.params({"quality.gate": dataset.validate_.gate})
    if report.outcomes:
        # one row per expectation per validation run, keyed by this step's MLflow
        # run: a history, and a retried write cannot double it
        frame = expectations.outcomes_frame(
            spark, report.outcomes, validation_id=tracker.run_id, dataset=dataset.name,
            suite=report.suite, table=bronze.fqn, table_version=version, _batch_id=batch_id,
            gate_mode=dataset.validate_.gate, gate_status=report.status,
            validated_at=datetime.now().replace(microsecond=0),
        )
        written = replace_where(
            frame, tables.validation_results,
            F.col("validation_id") == tracker.run_id, merge_schema=True)
        tracker.wrote(written, rows=len(report.outcomes))
        tracker.log_dict(report.gx_result, "validation/gx_result.json")
    _log_gate(tracker, report)


def _run_quality_checks(
    batch: Any, settings: Settings, tracker: StepTracker, suite: str
) -> expectations.ValidationReport:
    specs = settings.dataset.validate_.expectations
    if settings.dataset.validate_.gate == "disabled" or not specs:
        return expectations.ValidationReport([], "not_run", {}, None, suite)
    def run(
        docs_dir: str,
    ) -> tuple[list[expectations.ExpectationOutcome], dict[str, Any], str | None]:
        return expectations.run_suite(
            batch, specs, suite_name=suite, asset_name=f"bronze_{settings.dataset.name}",
            data_docs_dir=docs_dir,
            partial_unexpected_count=settings.dataset.validate_.partial_unexpected_count,
        )

    if settings.validate_.data_docs_dir is not None:
        outcomes, gx_json, index = run(settings.resolve_path(settings.validate_.data_docs_dir))
    else:
        # no lasting folder (a cluster's driver disk goes with the cluster): this
        # validation's Data Docs go to the run's artifacts, kept by the tracking server
        with tempfile.TemporaryDirectory(prefix="sparkmlops-data-docs-") as docs_dir:
            outcomes, gx_json, _ = run(docs_dir)
            folder = tracker.log_artifacts(docs_dir, DATA_DOCS_ARTIFACT)
        index = f"{folder}/index.html"
    return expectations.ValidationReport(
        outcomes, expectations.gate_status(outcomes), gx_json, index, suite)


def _log_gate(tracker: StepTracker, report: expectations.ValidationReport) -> None:
    tracker.tags({"quality.status": report.status})
    tracker.outcome(f"quality_{report.status}")
    if report.data_docs_index:
        tracker.tags({"quality.data_docs": report.data_docs_index})
    tracker.metrics({
        "quality.expectations": len(report.outcomes),
        "quality.passed": sum(1 for o in report.outcomes if o.success),
        "quality.failed_critical": report.count("critical", False),
        "quality.failed_warning": report.count("warning", False),
    })


