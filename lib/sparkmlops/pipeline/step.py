"""The whole batch in one SparkSession, under one parent MLflow run.

ingest → validate → features → train → promote → predict → monitor, each step a nested
run; a dataset with a ``crowd`` section runs labels before features (the annotation files
that landed, consensus, the accepted labels into gold). Monitor comes last in both modes:
the batch against the reference profile of the model that scored it, so a batch run
says whether its data drifted too.
Versions flow from step to step: each step reads exactly the Delta version the
previous one wrote. A challenger that does not pass the promotion gate is an
outcome, not an error: the batch is then scored by the champion in place.

``run_continuous`` is the continuous-training loop for one new batch: ingest →
validate → features → predict with @champion → monitor, then decide whether to
retrain (monitoring alert, a live metric under its floor, enough new labelled
rows; ``dataset.retrain``), and if so train → promote, so the next batch is scored
by whatever is champion then. Every decision and its reasons are recorded on the
parent run (tags ``retrain.*`` and ``retrain_decision.json``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import pyspark.sql.functions as F
from pyspark.sql import SparkSession

from sparkmlops.config import Settings
from sparkmlops.errors import MissingInputError
from sparkmlops.features.step import FeaturesOutcome, features_step
from sparkmlops.ingest.step import IngestOutcome, ingest_step
from sparkmlops.labels.step import LabelsOutcome, default_labels_batch_id, labels_step
from sparkmlops.monitor.step import MonitorOutcome, monitor_step
from sparkmlops.pii import pii_key
from sparkmlops.pipeline import headline
from sparkmlops.pipeline.retrain import retrain_reasons
from sparkmlops.predict.step import PredictOutcome, predict_step
from sparkmlops.promote.step import PromoteOutcome, promote_step
from sparkmlops.tables import BATCH_COLUMN, dataset_tables, read_table
from sparkmlops.tracking.registry import CHAMPION, ModelRegistry
from sparkmlops.tracking.runs import StepOutcome, StepTracker, pipeline_run
from sparkmlops.train.step import TrainOutcome, train_step
from sparkmlops.validate.step import ValidateOutcome, validate_step

log = logging.getLogger(__name__)

OutcomeT = TypeVar("OutcomeT", bound=StepOutcome)

# the steps of each mode, in the order they run (the [n/total] of the progress lines);
# a dataset with a crowd section runs labels before features (see steps_of)
OPENING = (IngestOutcome.step, ValidateOutcome.step, FeaturesOutcome.step)
BATCH_STEPS = (*OPENING, TrainOutcome.step, PromoteOutcome.step, PredictOutcome.step,
               MonitorOutcome.step)
RETRAIN = f"{TrainOutcome.step} + {PromoteOutcome.step}"
DECISION = "retrain"  # continuous mode's last step: the retrain decision (and RETRAIN)
CONTINUOUS_STEPS = (*OPENING, RETRAIN, PredictOutcome.step, MonitorOutcome.step, DECISION)


def steps_of(settings: Settings, steps: tuple[str, ...]) -> tuple[str, ...]:
    """``steps`` as this dataset runs them: with a crowd, labels comes before features."""
    if settings.dataset.crowd is None:
        return steps
    at = steps.index(FeaturesOutcome.step)
    return (*steps[:at], LabelsOutcome.step, *steps[at:])


@dataclass(frozen=True)
class RetrainDecision:
    """What a continuous run decided for its batch (``retrain_decision.json`` on its run)."""

    batch_id: str
    scored_by: str  # the model version that scored the batch
    monitoring: str  # ok / warn / alert
    live: dict[str, float]  # live metrics of the batch, where its labels are known
    retrain: bool  # retrained (a rule fired and retraining is enabled)
    reasons: list[str]  # the rules that fired, or "no retrain trigger"
    retrain_enabled: bool
    promoted: bool  # the retrained challenger passed the gate
    champion_after: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PipelineResult:
    batch_id: str
    parent_run_id: str
    experiment_id: str
    steps: list[StepOutcome] = field(default_factory=list)
    decision: RetrainDecision | None = None  # continuous mode only

    def step(self, kind: type[OutcomeT]) -> OutcomeT:
        """The (last) outcome of that kind: ``result.step(TrainOutcome).model_version``."""
        return next(s for s in reversed(self.steps) if isinstance(s, kind))


def run_pipeline(spark: SparkSession, settings: Settings, batch_id: str) -> PipelineResult:
    """Run every step of one batch; raise the first step's SparkmlopsError, if any."""
    _check_pii_key(settings)
    progress = _Progress(steps_of(settings, BATCH_STEPS), batch_id)
    with pipeline_run(settings, batch_id) as parent:
        result = PipelineResult(batch_id, parent.run_id, parent.experiment_id)
        with _headline(parent, settings, result):
            gold_version = _prepare_batch(spark, settings, batch_id, result, progress)
            progress(TrainOutcome.step)
            train = train_step(spark, settings, batch_id, gold_version=gold_version)
            result.steps.append(train)
            progress(PromoteOutcome.step)
            result.steps.append(promote_step(spark, settings, batch_id,
                                             challenger_version=train.model_version,
                                             gold_version=gold_version))
            progress(PredictOutcome.step)
            result.steps.append(predict_step(spark, settings, batch_id,
                                             gold_version=gold_version))
            progress(MonitorOutcome.step)
            result.steps.append(monitor_step(spark, settings, batch_id,
                                             gold_version=gold_version))
        return result


@contextmanager
def _headline(parent: StepTracker, settings: Settings, result: PipelineResult
              ) -> Iterator[None]:
    """On the way out, the batch's headline numbers on the parent run (``headline``): all
    of them after a whole run, what the steps that ran knew after a failed one."""
    try:
        yield
    finally:
        metrics = headline.headline_metrics(result.steps, settings.dataset.model.primary_metric)
        if metrics:
            parent.metrics(metrics)
        if tags := headline.headline_tags(result.steps):
            parent.tags(tags)


def _check_pii_key(settings: Settings) -> None:
    """A dataset with ``pii: hash`` columns and no key stops here, before the parent run
    opens: one ConfigError line (sparkmlops.pii.pii_key), no table touched."""
    pii_key(settings.dataset.schema_, settings.dataset.quarantine)


def _prepare_batch(spark: SparkSession, settings: Settings, batch_id: str,
                   result: PipelineResult, progress: _Progress) -> int | None:
    """The opening both modes share: ingest → validate → features, each step reading the
    version the one before wrote; the gold version the batch's features are in."""
    progress(IngestOutcome.step)
    ingest = ingest_step(spark, settings, batch_id)
    result.steps.append(ingest)
    progress(ValidateOutcome.step)
    validate = validate_step(spark, settings, batch_id, bronze_version=ingest.bronze_version)
    result.steps.append(validate)
    labels_version = None
    if settings.dataset.crowd is not None:
        labels = _labels(spark, settings, progress)
        if labels is not None:
            result.steps.append(labels)
            labels_version = labels.labels_version
    progress(FeaturesOutcome.step)
    feats = features_step(spark, settings, batch_id, silver_version=validate.silver_version,
                          labels_version=labels_version)
    result.steps.append(feats)
    return feats.gold_version


def _labels(spark: SparkSession, settings: Settings, progress: _Progress
            ) -> LabelsOutcome | None:
    """The crowd's new annotation files → labels, as their own batch (named by the files:
    judgments arrive on their own schedule, not with the data's batches); None while no
    annotation file has ever landed."""
    try:
        labels_batch = default_labels_batch_id(spark, settings)
    except MissingInputError as exc:
        progress(LabelsOutcome.step, f"skipped, {exc}")
        return None
    progress(LabelsOutcome.step, f"annotation batch {labels_batch}")
    return labels_step(spark, settings, labels_batch)


@dataclass
class _Progress:
    """``[n/total] step (batch b)`` log lines: n is the step's place in the mode's
    ``steps``, total their number.

    Numbered by place, not by counting calls: a step that runs steps of its own (the
    retrain decision runs train and promote) keeps its one number, and a step the plan
    does not name is a bug that raises here rather than a ``[7/6]`` line.
    """

    steps: tuple[str, ...]
    batch_id: str

    def __call__(self, step: str, why: str = "") -> None:
        if step not in self.steps:
            raise ValueError(f"progress of {step!r}, not a step of {self.steps}")
        log.info("[%d/%d] %s%s (batch %s)", self.steps.index(step) + 1, len(self.steps),
                 step, f": {why}" if why else "", self.batch_id)


def run_continuous(spark: SparkSession, settings: Settings, batch_id: str) -> PipelineResult:
    """Score and monitor one new batch with the champion; retrain when the policy says so.

    With no champion yet the batch bootstraps one (train → promote) before it is
    scored. A retrained challenger still has to pass the promotion gate.
    """
    _check_pii_key(settings)
    model_name = settings.dataset.model.name
    progress = _Progress(steps_of(settings, CONTINUOUS_STEPS), batch_id)
    with pipeline_run(settings, batch_id) as parent:
        parent.tags({"sparkmlops.mode": "continuous"})
        result = PipelineResult(batch_id, parent.run_id, parent.experiment_id)
        with _headline(parent, settings, result):
            gold_version = _prepare_batch(spark, settings, batch_id, result, progress)
            if parent.registry.by_alias(model_name, CHAMPION) is None:
                progress(RETRAIN, "bootstrap, no champion yet")
                _retrain(spark, settings, batch_id, gold_version, result.steps)
            else:
                progress(RETRAIN, "skipped, @champion scores the batch")
            progress(PredictOutcome.step)
            predict = predict_step(spark, settings, batch_id, gold_version=gold_version)
            result.steps.append(predict)
            progress(MonitorOutcome.step)
            monitor = monitor_step(spark, settings, batch_id, gold_version=gold_version)
            result.steps.append(monitor)
            policy = settings.dataset.retrain
            reasons = retrain_reasons(policy, monitor,
                                      _new_labelled_rows(spark, settings, parent.registry,
                                                         gold_version),
                                      alerts=_alert_history(spark, settings, batch_id,
                                                            policy.of_last))
            retrain = bool(reasons) and settings.dataset.retrain.enabled
            if retrain:
                progress(DECISION, f"{RETRAIN}: " + "; ".join(reasons))
                _retrain(spark, settings, batch_id, gold_version, result.steps)
            else:
                progress(DECISION,
                         "not needed" if not reasons else "disabled (dataset.retrain)")
            promote = next((s for s in reversed(result.steps)
                            if isinstance(s, PromoteOutcome)), None)
            champion = parent.registry.by_alias(model_name, CHAMPION)
            decision = RetrainDecision(
                batch_id, scored_by=predict.model_version, monitoring=monitor.status,
                live=monitor.live, retrain=retrain, reasons=reasons or ["no retrain trigger"],
                retrain_enabled=settings.dataset.retrain.enabled,
                promoted=bool(retrain and promote and promote.promoted),
                champion_after=str(champion.version) if champion else None)
            result.decision = decision
            parent.tags({"retrain.decision": "retrain" if retrain else "keep",
                         "retrain.reasons": json.dumps(decision.reasons)[:5000]})
            parent.log_dict(decision.as_dict(), "retrain_decision.json")
            log.info("batch %s: %s", batch_id, decision.as_dict())
        return result


def _retrain(spark: SparkSession, settings: Settings, batch_id: str,
             gold_version: int | None, steps: list[StepOutcome]) -> None:
    """Train → promote, each outcome onto ``steps`` as it comes (a failed promote leaves
    the trained model's numbers for the parent run)."""
    train = train_step(spark, settings, batch_id, gold_version=gold_version)
    steps.append(train)
    steps.append(promote_step(spark, settings, batch_id,
                              challenger_version=train.model_version, gold_version=gold_version))


def _alert_history(spark: SparkSession, settings: Settings, batch_id: str, last: int
                   ) -> list[set[str]] | None:
    """The last ``last`` monitored batches, oldest first and ``batch_id`` (just monitored)
    last: each the set of its own metrics (``feature.metric``) at their alert level, from
    ``monitoring.<dataset>``. None with ``last`` 1: the batch's own status says it all.

    A batch's own metrics are its drift rows and the live metrics of its own rows (a
    later run's recomputed live metric of an earlier batch is that batch's, not the
    later one's). Batches are ordered by when they were monitored.
    """
    if last <= 1:
        return None
    table = read_table(spark, dataset_tables(settings).monitoring)
    alert = F.when(F.col("status") == "alert", F.concat_ws(".", "feature", "metric"))
    batches = (table.where(F.col("scored_batch") == F.col(BATCH_COLUMN))
               .groupBy(BATCH_COLUMN)
               .agg(F.max("monitored_at").alias("at"), F.collect_set(alert).alias("alerts"))
               .orderBy((F.col(BATCH_COLUMN) == batch_id).desc(), F.col("at").desc(),
                        F.col(BATCH_COLUMN).desc())
               .limit(last).collect())
    return [set(r["alerts"]) for r in reversed(batches)]


def _new_labelled_rows(
    spark: SparkSession, settings: Settings, registry: ModelRegistry, gold_version: int | None
) -> int:
    """Labelled gold rows now minus those in the version the champion was trained on."""
    if not settings.dataset.retrain.min_new_labelled_rows:
        return 0
    champion = registry.by_alias(settings.dataset.model.name, CHAMPION)
    trained_on = registry.trained_on(champion) if champion else None
    gold = dataset_tables(settings).gold

    def labelled(version: int | None) -> int:
        return read_table(spark, gold, version).where(F.col("label").isNotNull()).count()

    before = labelled(trained_on) if trained_on is not None else 0
    return labelled(gold_version) - before
