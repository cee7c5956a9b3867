"""Validate's I/O edge: bronze → silver (+ quarantine), validation results, Data Docs.

Also the table read of ``sparkmlops profile``: the profile of a table and the starter
suite proposed from it (:func:`profile_step`).
"""

from __future__ import annotations

import logging
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, ClassVar

import pyspark.sql.functions as F
from pyspark.sql import DataFrame, Row, SparkSession

from sparkmlops.config import (
    ColumnSpec,
    GateMode,
    Settings,
    ValidateSettings,
    WriteSettings,
)
from sparkmlops.errors import (
    MissingInputError,
    QualityGateFailed,
    RepeatedKeysError,
    check_reconciled,
)
from sparkmlops.pii import pii_columns
from sparkmlops.quarantine import to_quarantine, write_quarantine
from sparkmlops.spark import persisted
from sparkmlops.tables import (
    BATCH_COLUMN,
    DatasetTables,
    TableRef,
    TableWrite,
    current_version,
    dataset_tables,
    ingest_order,
    read_batch,
    read_table,
    table_exists,
    version_or_current,
)
from sparkmlops.tracking.runs import StepOutcome, StepTracker, step_run
from sparkmlops.validate import data_docs, expectations, profiling, quality_metrics
from sparkmlops.validate.quality_metrics import QualityMetricRow, QualityRun
from sparkmlops.writes import (
    RANK_COLUMN,
    MergeWrite,
    rank_per_key,
    replace_batch,
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
    kept_failing: int = 0  # rows that failed only ``keep`` expectations, let on to silver
    expectations_failed: list[str] = field(default_factory=list)
    # the batch's metrics found anomalous against the previous batches (quality_metrics)
    anomalies: list[str] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, Any]:
        return {"gate": self.gate, "status": self.status, "silver_rows": self.silver_rows,
                "quarantined": self.quarantined, "data_docs": self.data_docs,
                **({"superseded": self.superseded, "stale": self.stale} if self.upsert
                   else {"repeated_keys": self.repeated_keys,
                         "repeated_in_batch": self.repeated_in_batch}),
                "kept_failing": self.kept_failing,
                "expectations_failed": self.expectations_failed, "anomalies": self.anomalies}


def validate_step(
    spark: SparkSession, settings: Settings, batch_id: str, *, bronze_version: int | None = None
) -> ValidateOutcome:
    """Bronze batch → GX suite → validation_results; passing rows → silver, failing → quarantine.

    Each row-level expectation's ``action`` decides where its failing rows go: on to
    silver (``keep``, counted), to quarantine (``quarantine``), or nowhere: the step
    fails (exit 4) before silver and quarantine are written (``fail``). The gate
    ``disabled`` turns the actions off with the suite.

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
    quality, write, keys = dataset.validate_, dataset.write, dataset.keys
    tables = dataset_tables(settings)
    docs_dir = (settings.resolve_path(settings.validate_.data_docs_dir)
                if settings.validate_.data_docs_dir is not None else None)
    # the frames read more than once below, released when the step ends
    with step_run(settings, ValidateOutcome.step, batch_id) as tracker, ExitStack() as cached:
        version = version_or_current(spark, tables.bronze, bronze_version)
        batch = _bronze_batch(spark, tables.bronze, batch_id, version, write=write, keys=keys)
        if write.mode == "upsert":  # the ranking's shuffle, done once for every read below
            (batch,) = cached.enter_context(persisted(batch))
        # append mode: the suite checks the batch itself, so one aggregation gives its row
        # count and its quality metrics (a count alone is a pass over the bronze batch too)
        measured = _measure(batch, batch_id) if write.mode != "upsert" else None
        rows = _rows_read(batch, tables.bronze, version, batch_id, tracker,
                          counted=quality_metrics.row_count(measured) if measured else None)
        checked, superseded = _latest_per_key(batch, rows, write, tracker)
        report = _run_quality_checks(checked, quality, tracker, dataset=dataset.name,
                                     batch_id=batch_id, data_docs_dir=docs_dir)
        actions = _count_row_actions(checked, quality, report, tracker)
        report = report.with_row_actions(actions)
        metrics = _judge_quality(spark, tables, measured or _measure(checked, batch_id),
                                 quality, tracker.run_id, batch_id=batch_id, version=version)
        report = replace(report, status=quality_metrics.gate_status(
            report.status, metrics, quality.gate))
        _record_validation(spark, tables, tracker, report, gate=quality.gate,
                           dataset=dataset.name, batch_id=batch_id, version=version)
        _record_quality_metrics(spark, tables, tracker, metrics, report.status, batch_id)
        source = f"{tables.bronze.fqn} v{version} batch {batch_id}"
        _enforce_gate(report, quality.gate, source, metrics)
        _enforce_fail_actions(actions, quality, source)
        flagged = expectations.flag_rows(
            checked, quality.expectations if quality.gate != "disabled" else [])
        flagged, repeats = _flag_repeated_keys(
            spark, flagged, checked, write=write, keys=keys, silver=tables.silver,
            tracker=tracker, batch_id=batch_id, cached=cached)
        passing, failing = expectations.split_flagged(flagged)
        q_write = write_quarantine(_quarantine_rows(failing, dataset.stored_schema),
                                   tables.quarantine, batch_id, ValidateOutcome.step)
        s_write = write_batch(
            passing, tables.silver, write, keys, batch_id, order_by=write.order_by,
            merge_schema=dataset.source.schema_evolution == "add_new_columns")
        stale = _record_writes(tracker, s_write, q_write)
        repeated, repeated_in_batch = _count_repeated(spark, q_write, batch_id, tracker,
                                                      write=write, found=repeats)
        check_reconciled(f"validate batch {batch_id}: {rows} bronze rows", rows,
                         in_silver=s_write.rows, quarantined=q_write.rows,
                         superseded_in_the_batch=superseded, older_than_silver=stale)
        return ValidateOutcome(
            tracker.run_id,
            {tables.silver.fqn: s_write.version, q_write.table.fqn: q_write.version},
            silver_version=s_write.version, gate=quality.gate, status=report.status,
            silver_rows=s_write.rows, quarantined=q_write.rows,
            data_docs=report.data_docs_index, upsert=write.mode == "upsert",
            superseded=superseded, stale=stale, repeated_keys=repeated,
            repeated_in_batch=repeated_in_batch, kept_failing=actions.kept_rows,
            expectations_failed=_failed(report),
            anomalies=[r.described() for r in quality_metrics.anomalies(metrics)],
        )


@dataclass(frozen=True)
class SuiteProposal:
    """A starter expectation suite proposed from one version of a table."""

    table: TableRef
    version: int | None
    text: str  # commented YAML in the shape of a dataset's ``quality`` block


def profile_step(
    spark: SparkSession, settings: Settings, *, layer: str = "bronze", version: int | None = None
) -> SuiteProposal:
    """Profile a table of the dataset (``layer``, as of ``version`` or its latest) and propose
    a starter suite from it.

    It only reads: no MLflow run is opened and no table is written (the command prints
    the YAML or writes it to a file for a person to edit).
    """
    ref = dataset_tables(settings).layer(layer)
    version = version_or_current(spark, ref, version)
    # pii columns are not profiled: a hashed or masked column's values, set or range
    # say nothing about quality, and the proposal is text a person copies around
    pii = pii_columns(settings.dataset.schema_)
    profiles = profiling.profile_columns(read_table(spark, ref, version).drop(*pii))
    source = f"{ref.fqn} v{version} ({ref.address})"
    if pii:
        source += f"; pii columns not profiled: {', '.join(pii)}"
    text = profiling.suite_yaml(profiling.propose_expectations(profiles, settings.dataset.keys),
                                source=source)
    return SuiteProposal(ref, version, text)


# ---------------------------------------------------------------- the bronze batch


def _bronze_batch(
    spark: SparkSession, bronze: TableRef, batch_id: str, version: int | None, *,
    write: WriteSettings, keys: list[str],
) -> DataFrame:
    """The batch's bronze rows; in upsert mode ranked per key (``_rank_in_key``, a shuffle),
    so the suite can judge one record per key, the latest: what silver would hold."""
    batch = read_batch(spark, bronze, batch_id, version)
    if write.mode != "upsert":
        return batch
    assert write.order_by is not None  # WriteSettings requires it in upsert mode
    return rank_per_key(batch, keys, write.order_by)


def _rows_read(
    batch: DataFrame, bronze: TableRef, version: int | None, batch_id: str, tracker: StepTracker,
    *, counted: int | None = None,
) -> int:
    """The batch's bronze rows, counted (unless ``counted`` already) and recorded as the
    step's input.

    Raises:
        MissingInputError: bronze holds no row of the batch at that version.
    """
    rows = batch.count() if counted is None else counted
    if rows == 0:
        raise MissingInputError(f"batch {batch_id} has no rows in {bronze.fqn} v{version}")
    tracker.read(bronze, version, rows)
    return rows


def _latest_per_key(
    batch: DataFrame, rows: int, write: WriteSettings, tracker: StepTracker
) -> tuple[DataFrame, int]:
    """The rows the suite checks, and how many older records of a key the batch holds (upsert
    mode: the latest record per key is checked; append mode: every row, none superseded)."""
    if write.mode != "upsert":
        return batch, 0
    latest = batch.where(F.col(RANK_COLUMN) == 1).drop(RANK_COLUMN)
    superseded = rows - latest.count()
    tracker.count("rows_superseded_in_batch", superseded)
    return latest, superseded


# ---------------------------------------------------------------- the suite and the gate


def _run_quality_checks(
    batch: DataFrame, quality: ValidateSettings, tracker: StepTracker, *, dataset: str,
    batch_id: str, data_docs_dir: str | None,
) -> expectations.ValidationReport:
    """Run the dataset's suite on ``batch``; its Data Docs go to ``data_docs_dir``, or to the
    run's artifacts when that is None. ``not_run`` when the gate is disabled or the suite
    is empty.

    The GX run is named after the batch and this step's MLflow run. GX builds its site
    in a folder of its own, since its index builder deletes every page its ephemeral
    store does not hold (every earlier batch's); the pages are then added to
    ``data_docs_dir`` and the folder's offline index (``runs.html``, listing every
    validation page in it) rewritten: the index the step reports. In the run's
    artifacts the folder holds this validation only, and GX's ``index.html`` is
    reported, as before.
    """
    suite = f"{dataset}_bronze"
    specs = quality.expectations
    if quality.gate == "disabled" or not specs:
        return expectations.ValidationReport([], "not_run", {}, None, suite)
    name = data_docs.run_name(batch_id, tracker.run_id)
    with tempfile.TemporaryDirectory(prefix="sparkmlops-data-docs-") as built:
        outcomes, gx_json, _ = expectations.run_suite(
            batch, specs, suite_name=suite, asset_name=f"bronze_{dataset}",
            data_docs_dir=built, partial_unexpected_count=quality.partial_unexpected_count,
            run_name=name,
        )
        data_docs.record_run(built, suite=suite, name=name, batch_id=batch_id,
                             validation_id=tracker.run_id,
                             status=expectations.gate_status(outcomes))
        if data_docs_dir is not None:
            index = str(data_docs.add_to_folder(built, data_docs_dir))
        else:
            # no lasting folder (a cluster's driver disk goes with the cluster): this
            # validation's Data Docs go to the run's artifacts, kept by the tracking server
            data_docs.write_index(built)
            index = f"{tracker.log_artifacts(built, DATA_DOCS_ARTIFACT)}/index.html"
    return expectations.ValidationReport(
        outcomes, expectations.gate_status(outcomes), gx_json, index, suite)


def _record_validation(
    spark: SparkSession, tables: DatasetTables, tracker: StepTracker,
    report: expectations.ValidationReport, *, gate: GateMode, dataset: str, batch_id: str,
    version: int | None,
) -> None:
    """validation_results rows, the GX JSON artifact and the gate outcome in MLflow."""
    tracker.params({"quality.gate": gate})
    if report.outcomes:
        # one row per expectation per validation run, keyed by this step's MLflow
        # run: a history, and a retried write cannot double it
        frame = expectations.outcomes_frame(
            spark, report.outcomes, validation_id=tracker.run_id, dataset=dataset,
            suite=report.suite, table=tables.bronze.fqn, table_version=version,
            _batch_id=batch_id, gate_mode=gate, gate_status=report.status,
            validated_at=datetime.now().replace(microsecond=0),
        )
        written = replace_where(
            frame, tables.validation_results,
            F.col("validation_id") == tracker.run_id, merge_schema=True)
        tracker.wrote(written, rows=len(report.outcomes))
        tracker.log_dict(report.gx_result, "validation/gx_result.json")
    _log_gate(tracker, report)


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


def _enforce_gate(report: expectations.ValidationReport, gate: GateMode, source: str,
                  metrics: list[QualityMetricRow]) -> None:
    """Stop the step before anything is written when a critical expectation failed, or a
    metric is a critical anomaly against the previous batches, and the gate is
    ``enabled`` (``dry_run`` only records the verdict).

    Raises:
        QualityGateFailed: names the batch (``source``), the failed critical expectations,
            the critical anomalies and the Data Docs.
    """
    if report.status != "failed" or gate != "enabled":
        return
    failed = [f"{o.expectation}({o.column or ''})" for o in report.outcomes
              if not o.success and o.severity == "critical"]
    anomalous = [r.described() for r in quality_metrics.anomalies(metrics, "critical")]
    found = ([f"critical expectation(s) failed: {', '.join(failed)}"] if failed else []) + (
        [f"critical anomaly(ies) against the previous batches: {'; '.join(anomalous)}"]
        if anomalous else [])
    raise QualityGateFailed(
        f"quality gate failed for {source}: {'; '.join(found)}"
        + (f"; see {report.data_docs_index}" if report.data_docs_index else "")
    )


def _measure(batch: DataFrame, batch_id: str) -> list[quality_metrics.Measured]:
    """The metrics of the rows the suite checks, in one aggregation (timed in the log)."""
    started = time.monotonic()
    measured = quality_metrics.measure(batch)
    log.info("measured %d quality metrics of batch %s in %.2f s", len(measured), batch_id,
             time.monotonic() - started)
    return measured


def _judge_quality(
    spark: SparkSession, tables: DatasetTables, measured: list[quality_metrics.Measured],
    quality: ValidateSettings, validation_id: str, *, batch_id: str, version: int | None,
) -> list[QualityMetricRow]:
    """The batch's ``measured`` metrics, each judged by its anomaly rule against the
    previous batches' rows of ``quality_metrics``."""
    run = QualityRun(batch_id=batch_id, validation_id=validation_id, table_version=version,
                     measured_at=datetime.now().replace(microsecond=0))
    if quality.gate == "disabled":  # no suite, no gate: recorded, not judged
        quality = quality.model_copy(update={"anomalies": []})
    depth = max((r.last for r in quality.anomalies), default=0)
    history = _metric_history(spark, tables, batch_id, depth)
    judged = quality_metrics.judge(measured, history, quality, run)
    for row in quality_metrics.anomalies(judged):
        log.warning("batch %s: anomaly %s", batch_id, row.described())
    return judged


def _metric_history(
    spark: SparkSession, tables: DatasetTables, batch_id: str, depth: int
) -> dict[tuple[str, str | None], list[float]]:
    """Each metric's values over the last ``depth`` batches before this one (ingest order)
    whose validation the gate did not refuse; two small reads of ``quality_metrics``."""
    target = tables.quality_metrics
    if depth == 0 or not table_exists(spark, target):
        return {}
    table = read_table(spark, target)
    recorded = {r[BATCH_COLUMN]: r["first"] for r in (
        table.where(F.col("gate_status") != quality_metrics.REFUSED)
        .groupBy(BATCH_COLUMN).agg(F.min("measured_at").alias("first")).collect())}
    order = (ingest_order(spark, tables.ingest_log)
             if table_exists(spark, tables.ingest_log) else [])
    previous = quality_metrics.previous_batches(order, batch_id, recorded, depth)
    if not previous:
        return {}
    rows = table.where(F.col(BATCH_COLUMN).isin(previous)).collect()
    return quality_metrics.history_values(
        (QualityMetricRow.from_row(r) for r in rows), previous)


def _record_quality_metrics(
    spark: SparkSession, tables: DatasetTables, tracker: StepTracker,
    metrics: list[QualityMetricRow], status: str, batch_id: str,
) -> None:
    """The batch's rows of ``quality_metrics`` (replacing its earlier ones: a re-run does
    not double them) and the anomaly counts in MLflow."""
    rows = quality_metrics.with_gate_status(metrics, status)
    frame = spark.createDataFrame([r.record() for r in rows],
                                  quality_metrics.quality_metrics_schema())
    written = replace_batch(frame, tables.quality_metrics, batch_id, merge_schema=True)
    tracker.wrote(written, rows=len(rows))
    found = quality_metrics.anomalies(rows)
    tracker.metrics({"quality.anomalies": len(found),
                     "quality.anomalies_critical": len(quality_metrics.anomalies(rows,
                                                                                 "critical"))})
    if found:
        tracker.tags({"quality.anomalies": ", ".join(r.label for r in found)[:250]})


def _count_row_actions(
    batch: DataFrame, quality: ValidateSettings, report: expectations.ValidationReport,
    tracker: StepTracker,
) -> expectations.RowActions:
    """What the row-level expectations' actions do to ``batch``, with the rows let on after
    failing only ``keep`` expectations recorded; nothing when the gate is disabled (no
    suite, no split) or no expectation is row-level.

    One aggregation over the batch when an expectation keeps or fails; none when every
    row-level one quarantines (the usual suite costs no more than before actions).
    """
    specs = quality.expectations
    if quality.gate == "disabled" or not any(s.row_level for s in specs):
        return expectations.RowActions()
    if expectations.needs_row_count(specs):
        actions = expectations.count_row_actions(batch, specs)
    else:
        actions = expectations.quarantined_as_counted(specs, report.outcomes)
    tracker.count("rows_kept_failing", actions.kept_rows)
    return actions


def _enforce_fail_actions(
    actions: expectations.RowActions, quality: ValidateSettings, source: str
) -> None:
    """Stop the step before anything is written when a row fails an ``action: fail``
    expectation, whatever the gate mode (but ``disabled``) and ``mostly``.

    Raises:
        QualityGateFailed: names the batch (``source``) and each such expectation with
            its failing rows.
    """
    failed = [f"{quality.expectations[i].label} on {n} row(s)"
              for i, n in actions.failing.items() if n]
    if failed:
        raise QualityGateFailed(
            f"{source}: expectation(s) with action fail failed: {', '.join(failed)}; "
            "silver and quarantine left as they were")


def _failed(report: expectations.ValidationReport) -> list[str]:
    """'<expectation>(<column>) [<severity>]' of each expectation that failed."""
    return [f"{o.expectation}({o.column or ''}) [{o.severity}]"
            for o in report.outcomes if not o.success]


# ---------------------------------------------------------------- repeated keys


def _flag_repeated_keys(
    spark: SparkSession, flagged: DataFrame, checked: DataFrame, *, write: WriteSettings,
    keys: list[str], silver: TableRef, tracker: StepTracker, batch_id: str, cached: ExitStack,
) -> tuple[DataFrame, bool]:
    """``flagged`` with its rows whose key silver holds from another batch, or that other rows
    of the batch also bring, flagged for quarantine; and whether there were any.

    Checked when :func:`_checks_repeated_keys`. What each check finds is cached in
    ``cached`` (the step's, so it lasts through the writes): usually nothing, and then
    the two writes neither look at silver nor add a window.

    Raises:
        RepeatedKeysError: ``write.repeated_keys: fail`` and a passing row repeats a key.
    """
    held = _keys_held_by_other_batches(spark, write, keys, silver, tracker, batch_id)
    held_rows = 0
    if held is not None:
        # silver's rows with a key of this batch, found in one pass
        (held,) = cached.enter_context(persisted(
            expectations.rows_with_keys_of(held, checked, keys)))
        held_rows = held.count()
        if held_rows:
            flagged = expectations.flag_repeated_keys(flagged, held, keys)
    within: DataFrame | None = None
    within_keys = 0
    if _checks_repeated_keys(write):
        # keys two rows of this batch bring, in one aggregation of the key columns
        (within,) = cached.enter_context(persisted(
            expectations.keys_repeated_within(flagged, keys)))
        within_keys = within.count()
    if write.repeated_keys == "fail" and (held_rows or within_keys):
        _fail_on_repeated_keys(flagged if held_rows else None,
                               within if within_keys else None, keys, batch_id)
    if within_keys:
        flagged = expectations.flag_repeated_within(flagged, keys, batch_id)
    return flagged, bool(held_rows or within_keys)


def _checks_repeated_keys(write: WriteSettings) -> bool:
    """Append mode unless ``write.repeated_keys: allow`` (upsert's MERGE keeps one row per key)."""
    return write.mode == "append" and write.repeated_keys != "allow"


def _keys_held_by_other_batches(
    spark: SparkSession, write: WriteSettings, keys: list[str], silver: TableRef,
    tracker: StepTracker, batch_id: str,
) -> DataFrame | None:
    """The keys (and ``_batch_id``) silver holds from other batches; None when not checked.

    Checked when :func:`_checks_repeated_keys`. This batch's own rows are left out, so
    validating a batch again finds nothing new. Only the key columns and the batch id
    are read.
    """
    if not _checks_repeated_keys(write):
        return None
    version = current_version(spark, silver)
    if version is None:
        return None
    tracker.read(silver, version)
    return (read_table(spark, silver, version)
            .where(F.col(BATCH_COLUMN) != F.lit(batch_id))
            .select(*keys, BATCH_COLUMN))


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


def _shown_key(row: Row, keys: list[str]) -> str:
    return "{" + ", ".join(f"{k}={row[k]}" for k in keys) + "}"


# ---------------------------------------------------------------- the writes


def _quarantine_rows(failing: DataFrame, schema: list[ColumnSpec]) -> DataFrame:
    """The failing rows in quarantine's shape: the record (the schema's columns) as JSON,
    with the expectations failed or the repeated key as the reason."""
    record = F.to_json(F.struct(*[F.col(c.name) for c in schema]))
    return to_quarantine(failing, ValidateOutcome.step, expectations.flagged_reason(), record)


def _record_writes(tracker: StepTracker, s_write: TableWrite, q_write: TableWrite) -> int:
    """Record the silver and quarantine commits; return the batch's records the MERGE left
    out as older than silver's row for their key (upsert mode; 0 in append mode)."""
    stale = s_write.stale if isinstance(s_write, MergeWrite) else 0
    tracker.wrote(s_write)
    tracker.wrote(q_write)
    if stale:
        tracker.count("rows_stale", stale)
    return stale


def _count_repeated(
    spark: SparkSession, q_write: TableWrite, batch_id: str, tracker: StepTracker, *,
    write: WriteSettings, found: bool,
) -> tuple[int, int]:
    """The rows quarantined for a key another batch holds and for a key repeated within the
    batch, recorded in append mode; read back only when the checks ``found`` any."""
    repeated = _rows_repeated(spark, q_write, batch_id) if found else (0, 0)
    if write.mode == "append":
        tracker.count("rows_repeated_keys", repeated[0])
        tracker.count("rows_repeated_in_batch", repeated[1])
    return repeated


def _rows_repeated(spark: SparkSession, q_write: TableWrite, batch_id: str) -> tuple[int, int]:
    """The batch's rows just quarantined for a key held by another batch, and for a key
    repeated within the batch (read back: no pass over the batch)."""
    reason = F.col("reason")
    counts = (read_batch(spark, q_write.table, batch_id, q_write.version)
              .where(F.col("step") == ValidateOutcome.step)
              .agg(F.count(F.when(reason.startswith(expectations.REPEATED_REASON), 1)),
                   F.count(F.when(reason.startswith(expectations.WITHIN_REASON), 1)))
              .first())
    assert counts is not None  # an aggregation without grouping has one row
    return int(counts[0]), int(counts[1])
