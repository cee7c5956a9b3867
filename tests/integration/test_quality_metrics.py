"""quality_metrics.<dataset> written by validate, and anomalies against the previous batches
stopping or flagging a batch: three small bronze batches through validate."""

from __future__ import annotations

import pyspark.sql.functions as F
import pytest
from mlflow.tracking import MlflowClient

from sparkmlops.errors import QualityGateFailed
from sparkmlops.tables import BATCH_COLUMN, dataset_tables, read_table
from sparkmlops.tracking.runs import configure_mlflow
from sparkmlops.validate.step import validate_step
from sparkmlops.writes import replace_batch

# a bronze batch of the sample's 17 columns: its row count, null share and distinct count
# of each column, min, max and mean of the 7 numeric ones
METRICS_PER_BATCH = 1 + 2 * 17 + 3 * 7
# body mass not null for most rows (a warning: its failing rows are kept); the row count
# judged critically against the previous batch's, body mass's null share as a warning
SUITE = ("dataset.validate.expectations=[{expectation: expect_column_values_to_not_be_null, "
         "kwargs: {column: body_mass_g, mostly: 0.6}, severity: warning}]")
RULES = ("dataset.validate.anomalies=["
         "{metric: row_count, max_change: 0.3, last: 1, severity: critical}, "
         "{metric: null_share, column: body_mass_g, max_change: 0.5, last: 1, "
         "min_change: 0.05}]")


def _land(spark, settings, birds, batch: str, *, first: int, n: int, null_mass: bool = False):
    """Birds ``first`` .. ``first + n - 1`` as bronze batch ``batch`` (written as ingest
    would, without its manifest: ingest's own cost is not what is tested here); with
    ``null_mass`` 3 in 10 have no body mass."""
    rows = (birds.where(F.col("sample_number").between(first, first + n - 1))
            .withColumn(BATCH_COLUMN, F.lit(batch))
            .withColumn("_source_file", F.lit(f"file:/landing/{batch}.csv"))
            .withColumn("_ingested_at", F.current_timestamp()))
    if null_mass:
        rows = rows.withColumn("body_mass_g", F.when(F.col("sample_number") % 10 < 3, None)
                               .otherwise(F.col("body_mass_g")))
    replace_batch(rows, dataset_tables(settings).bronze, batch)


def test_a_null_jump_is_flagged_and_a_halved_batch_stopped_against_the_history(
        spark, make_settings, learnable_silver):
    settings = make_settings(SUITE, RULES)
    tables = dataset_tables(settings)
    configure_mlflow(settings)
    birds = learnable_silver(60).drop(BATCH_COLUMN)

    _land(spark, settings, birds, "b1", first=0, n=20)
    first = validate_step(spark, settings, "b1")
    # 6 of 20 birds without body mass: 30 % nulls, under the expectation's mostly 0.6
    _land(spark, settings, birds, "b2", first=20, n=20, null_mass=True)
    jumped = validate_step(spark, settings, "b2")

    assert first.anomalies == [] and first.status == "passed"
    assert (jumped.status, jumped.expectations_failed, jumped.silver_rows) == (
        "passed_with_warnings", [], 20)
    assert jumped.anomalies == [
        "null_share(body_mass_g)=0.3 outside [-0.05, 0.05] (expected 0 from 1 batches; "
        "max_change 0.5 vs previous batch, min_change 0.05) [warning]"]
    run = MlflowClient().get_run(jumped.run_id)
    assert (run.data.metrics["quality.anomalies"], run.data.metrics["quality.anomalies_critical"],
            run.data.tags["quality.anomalies"], run.data.tags["quality.status"]) == (
        1, 0, "null_share(body_mass_g)", "passed_with_warnings")

    metrics = read_table(spark, tables.quality_metrics)
    judged = {(r._batch_id, r.metric, r.column_name): (r.value, r.status, r.history)
              for r in metrics.where("column_name IS NULL OR column_name = 'body_mass_g'")
              .where("metric IN ('row_count', 'null_share')").collect()}
    # b1 had no previous batch: no verdict, never an alarm
    assert judged == {
        ("b1", "row_count", None): (20.0, "no_history", 0),
        ("b1", "null_share", "body_mass_g"): (0.0, "no_history", 0),
        ("b2", "row_count", None): (20.0, "ok", 1),
        ("b2", "null_share", "body_mass_g"): (0.3, "anomaly", 1)}
    assert {r._batch_id: r["count"] for r in metrics.groupBy("_batch_id").count().collect()} \
        == {"b1": METRICS_PER_BATCH, "b2": METRICS_PER_BATCH}

    # validating b2 again replaces its rows: same verdict, nothing doubled
    again = validate_step(spark, settings, "b2")
    assert again.anomalies == jumped.anomalies
    rows = read_table(spark, tables.quality_metrics)
    assert (rows.count(), rows.where("_batch_id = 'b2'").select("validation_id").distinct()
            .collect()[0][0]) == (2 * METRICS_PER_BATCH, again.run_id)

    # half the rows of the previous batch: a critical anomaly stops the batch
    _land(spark, settings, birds, "b3", first=40, n=10)
    with pytest.raises(QualityGateFailed) as stopped:
        validate_step(spark, settings, "b3")

    assert str(stopped.value) == (
        "quality gate failed for bronze.penguins v2 batch b3: critical anomaly(ies) against "
        "the previous batches: row_count=10 outside [14, 26] (expected 20 from 1 batches; "
        f"max_change 0.3 vs previous batch) [critical]; see {jumped.data_docs}")
    assert read_table(spark, tables.silver).where("_batch_id = 'b3'").count() == 0
    [row_count] = read_table(spark, tables.quality_metrics).where(
        "_batch_id = 'b3' AND metric = 'row_count'").collect()
    assert (row_count.value, row_count.status, row_count.expected, row_count.gate_status) == (
        10.0, "anomaly", 20.0, "failed")
