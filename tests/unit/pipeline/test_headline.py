"""The parent run's headline numbers, from the typed outcomes of the steps that ran."""

from __future__ import annotations

from sparkmlops.ingest.step import IngestOutcome
from sparkmlops.monitor.step import MonitorOutcome
from sparkmlops.pipeline.headline import headline_metrics, headline_tags
from sparkmlops.predict.step import PredictOutcome
from sparkmlops.promote.promotion import PromotionDecision
from sparkmlops.promote.step import PromoteOutcome
from sparkmlops.train.step import TrainOutcome
from sparkmlops.validate.step import ValidateOutcome

INGEST = IngestOutcome("i", {}, rows_in=120, bronze_rows=117, quarantined=3)
VALIDATE = ValidateOutcome("v", {}, silver_rows=110, quarantined=7, kept_failing=4)
TRAIN = TrainOutcome("t", {}, metrics={"areaUnderROC": 0.91, "accuracy": 0.8})


def _promote(promoted: bool) -> PromoteOutcome:
    decision = PromotionDecision("enabled", "2", "1", promoted=promoted, passed=promoted)
    return PromoteOutcome("p", {}, decision=decision, champion="2" if promoted else "1")


def test_a_whole_batch_gives_every_headline_number():
    steps = [INGEST, VALIDATE, TRAIN, _promote(True), PredictOutcome("s", {}, rows=110),
             MonitorOutcome("m", {}, status="warn")]
    assert headline_metrics(steps, "areaUnderROC") == {
        "rows_in": 120, "rows_quarantined": 10, "rows_kept_failing": 4,
        "holdout.areaUnderROC": 0.91, "promoted": 1, "rows_predicted": 110,
        "monitoring_status": 1}
    assert headline_tags(steps) == {"monitoring.status": "warn"}


def test_a_pipeline_failed_in_promote_records_what_the_steps_before_knew():
    assert headline_metrics([INGEST, VALIDATE, TRAIN], "accuracy") == {
        "rows_in": 120, "rows_quarantined": 10, "rows_kept_failing": 4,
        "holdout.accuracy": 0.8}
    assert headline_tags([INGEST, VALIDATE, TRAIN]) == {}


def test_a_skipped_ingest_counts_bronze_rows_and_the_last_promote_speaks():
    skipped = IngestOutcome("i", {}, skipped=True, rows_in=0, bronze_rows=117)
    steps = [skipped, _promote(True), _promote(False), MonitorOutcome("m", {}, status="alert")]
    assert headline_metrics(steps, "f1") == {"rows_in": 117, "rows_quarantined": 0,
                                              "promoted": 0, "monitoring_status": 2}
