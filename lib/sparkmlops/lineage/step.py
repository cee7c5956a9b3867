"""Lineage's I/O edge: the prediction row, the manifest, the ingest log and the validation
results (Delta), and what the runs recorded (MLflow, read only: ``tracking.recorded``).

It writes nothing and opens no run: looking up a row's lineage leaves the lake and the
tracking store as they were.
"""

from __future__ import annotations

import logging
import operator
from functools import reduce

import pyspark.sql.functions as F
from pyspark.sql import Row, SparkSession

from sparkmlops.config import Settings
from sparkmlops.errors import MissingInputError
from sparkmlops.lineage.walk import (
    BatchLanding,
    KeyValue,
    LandingFileRecord,
    Lineage,
    RunCode,
    TableVersion,
    Validation,
    scoring_run,
    writer_of,
)
from sparkmlops.tables import (
    BATCH_COLUMN,
    DatasetTables,
    TableRef,
    batch_condition,
    current_version,
    dataset_tables,
    table_exists,
)
from sparkmlops.tracking.recorded import RecordedRun, RunRecords

log = logging.getLogger(__name__)

# what a prediction row says besides its key and its model
PREDICTION_COLUMNS = ("prediction", "predicted_label", "probability", "scored_at")


def lineage_step(spark: SparkSession, settings: Settings, key: dict[str, KeyValue], *,
                 batch_id: str | None = None) -> Lineage:
    """The lineage of the prediction row with ``key`` (of ``batch_id`` when given, else the
    latest scored).

    Raises:
        MissingInputError: no predictions table, no prediction row with that key, or no
            MLflow record of the run that trained its model.
    """
    dataset, tables = settings.dataset, dataset_tables(settings)
    rows, predictions = _prediction_rows(spark, tables.predictions, key, batch_id)
    row = rows[0]
    batch = str(row[BATCH_COLUMN])
    records = RunRecords.of(settings)
    training = records.run(str(row["model_run_id"]))
    gold_version = _trained_on(training, tables.gold)
    gold_writer = writer_of(records.runs("features"), tables.gold.fqn, gold_version)
    silver_version = gold_writer.inputs.get(tables.silver.fqn) if gold_writer else None
    silver_writer = writer_of(records.runs("validate"), tables.silver.fqn, silver_version)
    bronze_version = silver_writer.inputs.get(tables.bronze.fqn) if silver_writer else None
    ingests = records.runs("ingest")
    bronze_writer = writer_of(ingests, tables.bronze.fqn, bronze_version)
    scoring = scoring_run(records.runs("predict", batch_id=batch), tables.predictions.fqn,
                          str(row["model_version"]))
    model = records.model_version(str(row["model_name"]), str(row["model_version"]))
    return Lineage(
        dataset=dataset.name, key=key, predictions=predictions, batch_id=batch,
        batches=list(dict.fromkeys(str(r[BATCH_COLUMN]) for r in rows)),
        prediction={c: row[c] for c in PREDICTION_COLUMNS if c in row.asDict()},
        model_name=str(row["model_name"]), model_version=str(row["model_version"]),
        model_aliases=sorted(model.aliases) if model else [],
        training=RunCode.of(training), training_inputs=training.inputs,
        gold=_table_version(tables.gold, gold_version, gold_writer),
        silver=_table_version(tables.silver, silver_version, silver_writer)
        if gold_writer else None,
        bronze=_table_version(tables.bronze, bronze_version, bronze_writer)
        if silver_writer else None,
        validation=_validation(spark, tables, silver_writer) if silver_writer else None,
        landing=_batch_landing(spark, tables, batch,
                               bronze_runs=[r for r in ingests if r.batch_id == batch]),
        scoring=RunCode.of(scoring) if scoring else None,
        scored_from=_table_version(tables.gold, scoring.inputs.get(tables.gold.fqn), None)
        if scoring else None,
    )


def _prediction_rows(spark: SparkSession, predictions: TableRef, key: dict[str, KeyValue],
                     batch_id: str | None) -> tuple[list[Row], TableVersion]:
    """The prediction rows with ``key`` (of ``batch_id`` when given), the latest scored first;
    and the predictions version they were read at.

    Raises:
        MissingInputError: no predictions table, or no row with that key.
    """
    version = current_version(spark, predictions)
    if version is None:
        raise MissingInputError(f"table {predictions.fqn} does not exist at "
                                f"{predictions.address}: nothing was scored yet")
    match = reduce(operator.and_, [F.col(k) == F.lit(v) for k, v in key.items()])
    # the latest version, just looked up: read as of it without read_table's checks (each
    # a Delta log read) so a commit in between cannot move the row under the report
    frame = predictions.read(spark, version=version).where(match)
    if batch_id is not None:
        frame = frame.where(batch_condition(batch_id))
    rows = frame.orderBy(F.col("scored_at").desc(), F.col(BATCH_COLUMN).desc()).collect()
    if not rows:
        shown = ", ".join(f"{k}={v}" for k, v in key.items())
        batch = f" of batch {batch_id}" if batch_id is not None else ""
        raise MissingInputError(f"no prediction row{batch} with key {{{shown}}} in "
                                f"{predictions.fqn} v{version}")
    return rows, TableVersion(predictions.fqn, version, predictions.address)


def _trained_on(training: RecordedRun, gold: TableRef) -> int | None:
    """The gold version the training run read (its input param, else its
    ``training_table_version`` param)."""
    if gold.fqn in training.inputs:
        return training.inputs[gold.fqn]
    recorded = training.params.get("training_table_version", "")
    return int(recorded) if recorded.isdigit() else None


def _table_version(ref: TableRef, version: int | None, writer: RecordedRun | None
                   ) -> TableVersion:
    return TableVersion(ref.fqn, version, ref.address,
                        writer.run_id if writer else None, writer.step if writer else None)


def _validation(spark: SparkSession, tables: DatasetTables, run: RecordedRun) -> Validation:
    """The validate run's verdict: its ``validation_results`` rows (one per expectation, keyed
    by the run id), and the gate status it tagged."""
    results: list[Row] = []
    if table_exists(spark, tables.validation_results):
        results = (tables.validation_results.read(spark)
                   .where(F.col("validation_id") == F.lit(run.run_id))
                   .select("expectation", "column", "severity", "success", "gate_mode")
                   .orderBy("expectation", "column").collect())
    failed = [f"{r['expectation']}({r['column'] or ''}) [{r['severity']}]"
              for r in results if not r["success"]]
    gate = results[0]["gate_mode"] if results else run.params.get("quality.gate")
    return Validation(run_id=run.run_id, status=run.tags.get("quality.status"),
                      gate_mode=gate, expectations=len(results), failed=failed)


def _batch_landing(spark: SparkSession, tables: DatasetTables, batch_id: str, *,
                   bronze_runs: list[RecordedRun]) -> BatchLanding:
    """The batch's landing files (the manifest's rows read into it) and its ingest (the
    ingest log's row: the bronze version it committed; the run that wrote that version)."""
    files: list[LandingFileRecord] = []
    if table_exists(spark, tables.manifest):
        manifest = tables.manifest.read(spark).where(batch_condition(batch_id))
        read_in = F.col("status").isNull() | (F.col("status") == F.lit("ingested")) \
            if "status" in manifest.columns else F.lit(True)
        sha = F.col("content_sha256") if "content_sha256" in manifest.columns \
            else F.lit(None).cast("string")
        files = [LandingFileRecord(r["path"], r["sha"], int(r["size"]))
                 for r in manifest.where(read_in).select("path", sha.alias("sha"), "size")
                 .orderBy("path").collect()]
    ingested = _ingest_log_row(spark, tables.ingest_log, batch_id)
    bronze_version = int(ingested["bronze_version"]) if ingested else None
    writer = writer_of(bronze_runs, tables.bronze.fqn, bronze_version)
    return BatchLanding(batch_id=batch_id, files=files, bronze_version=bronze_version,
                        ingest_run=writer.run_id if writer else None,
                        ingested_at=ingested["ingested_at"] if ingested else None)


def _ingest_log_row(spark: SparkSession, ingest_log: TableRef, batch_id: str) -> Row | None:
    if not table_exists(spark, ingest_log):
        return None
    return ingest_log.read(spark).where(batch_condition(batch_id)).first()
