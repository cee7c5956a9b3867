"""Labels' I/O edge: the crowd's annotation files → bronze annotations (+ quarantine) →
consensus → ``labels`` / ``needs_review`` / ``worker_quality``, and the accepted labels
into the gold rows already written.

The annotation files land like the dataset's own (:func:`~sparkmlops.ingest.land.land`):
known by their bytes, incremental, idempotent, each judgment in bronze or in quarantine
with its reason. Consensus runs over every judgment in bronze (a worker's quality is
estimated from all of them) as Spark DataFrame work (:mod:`consensus`), and its three
tables are each replaced in one commit. A run whose bronze annotations are the version
the labels were made from writes nothing (re-running changes nothing).

With ``label.from: crowd`` gold takes the labels: the features step joins them into a
new batch, and this step MERGEs them into the gold rows written before they were
accepted (or clears a label the crowd no longer accepts), so a label arriving after its
features still reaches training and counts toward ``retrain.min_new_labelled_rows``.
"""

from __future__ import annotations

import csv
import logging
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import pyspark.sql.functions as F
from pyspark.sql import DataFrame, SparkSession

from sparkmlops.config import CrowdSettings, Settings
from sparkmlops.errors import ConfigError, MissingInputError
from sparkmlops.features.mllib import LABEL_COLUMN, LABEL_RAW_COLUMN, crowd_labels
from sparkmlops.ingest.land import REASON, Landed, Landing, default_batch, land
from sparkmlops.ingest.landing import ROW_ID
from sparkmlops.labels import acceptance, judgments, plots
from sparkmlops.labels.consensus import (
    Consensus,
    EmSettings,
    SpammerSettings,
    consensus,
)
from sparkmlops.spark import persisted
from sparkmlops.tables import (
    BATCH_COLUMN,
    CrowdTables,
    TableRef,
    TableWrite,
    crowd_tables,
    current_version,
    dataset_tables,
    read_table,
    table_exists,
)
from sparkmlops.tracking.runs import StepOutcome, StepTracker, step_run
from sparkmlops.writes import replace_where, update_by_key

log = logging.getLogger(__name__)

# the bronze annotations version a labels table was made from (every row carries it)
ANNOTATIONS_VERSION = "_annotations_version"
RUN_COLUMN = "_run_id"


@dataclass(frozen=True)
class LabelsOutcome(StepOutcome):
    """The judgments landed and the labels consensus made of them (``skipped``: no new
    judgment since the labels were made, nothing written)."""

    step: ClassVar[str] = "labels"
    annotations_version: int | None = None
    labels_version: int | None = None
    skipped: bool = False
    judgments_in: int = 0  # rows read from annotation files in this run
    quarantined: int = 0
    judgments: int = 0  # every judgment consensus ran over
    items: int = 0
    accepted: int = 0
    needs_review: int = 0
    workers: int = 0
    spammers: int = 0
    gold_updated: int = 0  # gold rows whose label this run set or cleared
    method: str = ""
    iterations: int = 0
    log_likelihood: float | None = None

    @property
    def summary(self) -> dict[str, Any]:
        landed = {"judgments_in": self.judgments_in, "quarantined": self.quarantined}
        if self.skipped:
            return {"skipped": True, **landed, "labels_version": self.labels_version}
        return {**landed, "judgments": self.judgments, "items": self.items,
                "accepted": self.accepted, "needs_review": self.needs_review,
                "workers": self.workers, "spammers": self.spammers,
                "gold_updated": self.gold_updated, "method": self.method,
                "iterations": self.iterations}


def crowd_settings(settings: Settings) -> CrowdSettings:
    crowd = settings.dataset.crowd
    if crowd is None:
        raise ConfigError(f"dataset {settings.dataset.name} has no crowd section: nothing to "
                          "label (see docs/labels.md)")
    return crowd


def crowd_landing(spark: SparkSession, settings: Settings, batch_id: str | None,
                  tables: CrowdTables | None = None) -> Landing:
    """The crowd's annotation files: ``crowd.source`` read with the annotation columns into
    ``bronze.<dataset>_annotations``; a judgment repeating one of another batch (or of
    ``batch_id``, earlier in its files) is refused."""
    crowd, dataset = crowd_settings(settings), settings.dataset
    tables = tables or crowd_tables(settings)
    earlier = _earlier_judgments(spark, tables.annotations, batch_id,
                                 [*dataset.keys, crowd.worker])
    return Landing(
        bronze=tables.annotations, quarantine=dataset_tables(settings).quarantine,
        manifest=tables.manifest, ingest_log=tables.ingest_log, source=crowd.source,
        columns=judgments.annotation_columns(dataset, crowd),
        path=settings.resolve_path(crowd.source.path), step=LabelsOutcome.step,
        refine=partial(judgments.refuse_judgments, keys=dataset.keys, crowd=crowd,
                       earlier=earlier, reason=REASON, row_id=ROW_ID))


def _earlier_judgments(spark: SparkSession, bronze: TableRef, batch_id: str | None,
                       pair: list[str]) -> DataFrame:
    """(keys, worker, batch) of the judgments other batches landed (none yet: empty)."""
    if not table_exists(spark, bronze):
        return spark.createDataFrame([], f"{BATCH_COLUMN} string").select(
            *[F.lit(None).alias(c) for c in pair], BATCH_COLUMN).limit(0)
    rows = read_table(spark, bronze)
    if batch_id is not None:
        rows = rows.where(F.col(BATCH_COLUMN) != F.lit(batch_id))
    return rows.select(*pair, BATCH_COLUMN)


def default_labels_batch_id(spark: SparkSession, settings: Settings) -> str:
    """The batch of annotation files a labels run would read (named by their bytes), or
    with none new the latest annotation batch again."""
    landing = crowd_landing(spark, settings, None)
    batch_id = default_batch(spark, landing)
    if batch_id is None:
        raise MissingInputError(f"no annotation files at {landing.path}")
    return batch_id


def labels_step(
    spark: SparkSession, settings: Settings, batch_id: str, *, force: bool = False,
    export_review: Path | None = None,
) -> LabelsOutcome:
    """New annotation files → bronze annotations → consensus → labels, needs_review,
    worker_quality (one commit each) → gold labels (``label.from: crowd``).

    ``force`` re-reads the batch's recorded annotation files and remakes the labels even
    when no judgment is new; ``export_review`` writes the items below the bar as a CSV
    task file for the labelers.

    Raises:
        ConfigError: the dataset has no ``crowd`` section.
    """
    crowd = crowd_settings(settings)
    tables = crowd_tables(settings)
    with step_run(settings, LabelsOutcome.step, batch_id) as tracker:
        landing = crowd_landing(spark, settings, batch_id, tables)
        landed = land(spark, landing, batch_id, tracker, force=force)
        version = landed.bronze_version
        if version is None:
            raise MissingInputError(f"no annotations yet: no judgment landed from "
                                    f"{landing.path}")
        made_from = _made_from(spark, tables.worker_quality)
        if made_from == version and not force:
            outcome = _skipped(spark, tracker, tables, landed, version)
        else:
            outcome = _label(spark, settings, crowd, tracker, tables, landed, version)
        if export_review is not None:
            exported = export_review_tasks(
                read_table(spark, tables.needs_review), export_review,
                [*settings.dataset.keys])
            log.info("wrote %d items to review to %s", exported, export_review)
        return outcome


def _made_from(spark: SparkSession, worker_quality: TableRef) -> int | None:
    """The bronze annotations version the labels were last made from (None: never).

    Read from ``worker_quality``, which has a row for every worker whenever there is a
    judgment (``labels`` may be empty: nothing accepted yet); it is written last.
    """
    if not table_exists(spark, worker_quality):
        return None
    row = read_table(spark, worker_quality).select(F.max(ANNOTATIONS_VERSION)).first()
    return None if row is None or row[0] is None else int(row[0])


def _skipped(spark: SparkSession, tracker: StepTracker, tables: CrowdTables, landed: Landed,
             version: int) -> LabelsOutcome:
    labels_version = current_version(spark, tables.labels)
    tracker.read(tables.annotations, version)
    tracker.outcome("skipped_labels_current")
    log.info("%s v%s: the labels were made from it; nothing to do", tables.annotations.fqn,
             version)
    result = landed.result
    return LabelsOutcome(tracker.run_id, landed.outputs, annotations_version=version,
                         labels_version=labels_version, skipped=True,
                         judgments_in=result.rows_in if result else 0,
                         quarantined=result.rows_quarantined if result else 0)


def _label(spark: SparkSession, settings: Settings, crowd: CrowdSettings,
           tracker: StepTracker, tables: CrowdTables, landed: Landed,
           version: int) -> LabelsOutcome:
    dataset = settings.dataset
    keys = dataset.keys
    bronze = read_table(spark, tables.annotations, version)
    frame = judgments.judgment_frame(bronze, keys, crowd)
    tracker.params({"method": crowd.method, "classes": ",".join(crowd.classes),
                    **{f"accept.{k}": v for k, v in crowd.accept.model_dump().items()},
                    **{f"em.{k}": v for k, v in crowd.em.model_dump().items()}})
    with persisted(frame) as (frame,):
        n_judgments = frame.count()
        tracker.read(tables.annotations, version, n_judgments)
        made = consensus(frame, crowd.classes, crowd.method,
                         em=EmSettings(**crowd.em.model_dump()),
                         spammers=SpammerSettings(**crowd.spammers.model_dump()))
        stamp = {ANNOTATIONS_VERSION: F.lit(version), RUN_COLUMN: F.lit(tracker.run_id)}
        items = judgments.with_item_keys(made.items, keys).withColumns(stamp)
        with persisted(items) as (items,):
            accepted, review = acceptance.route(
                items, min_labels=crowd.accept.min_labels,
                min_agreement=crowd.accept.min_agreement,
                min_confidence=crowd.accept.min_confidence)
            labels = _replace(accepted, tables.labels)
            needs = _replace(review, tables.needs_review)
            stats = _consensus_stats(items, accepted, made)
        gold_updated = _into_gold(spark, settings, tracker, labels)
        # last: the version it records is what a re-run compares (_made_from), so a run
        # killed before here is made again in full
        quality = _replace(made.workers.withColumns(stamp), tables.worker_quality)
    for write in (labels, needs, quality):
        tracker.wrote(write)
    n_items = stats["items"]
    spammers = read_table(spark, tables.worker_quality, quality.version).where(
        F.col("spammer")).count()
    _log_consensus(tracker, made, stats, spammers=spammers, n_judgments=n_judgments,
                   workers=read_table(spark, tables.worker_quality, quality.version))
    tracker.outcome("labelled")
    result = landed.result
    outputs = {**landed.outputs, **{w.table.fqn: w.version for w in (labels, needs, quality)}}
    return LabelsOutcome(
        tracker.run_id, outputs, annotations_version=version, labels_version=labels.version,
        judgments_in=result.rows_in if result else 0,
        quarantined=result.rows_quarantined if result else 0,
        judgments=n_judgments, items=n_items, accepted=labels.rows, needs_review=needs.rows,
        workers=quality.rows, spammers=spammers, gold_updated=gold_updated,
        method=made.method, iterations=made.iterations, log_likelihood=made.log_likelihood)


def _replace(df: DataFrame, ref: TableRef) -> TableWrite:
    """The whole table replaced by ``df`` in one commit."""
    return replace_where(df, ref, F.lit(True), merge_schema=True)


def _consensus_stats(items: DataFrame, accepted: DataFrame, made: Consensus) -> dict[str, Any]:
    """The numbers the run logs, from small aggregates (never the items themselves)."""
    totals = items.agg(F.count(F.lit(1)).alias("items"),
                       F.avg("confidence").alias("confidence")).first()
    acc = accepted.agg(F.count(F.lit(1)).alias("n"), F.avg("confidence").alias("c")).first()
    agreement = {f"{int(r['n_labels'])}:{int(r['agreement'])}": int(r["count"])
                 for r in items.groupBy("n_labels", "agreement").count().collect()}
    n_items = int(totals["items"]) if totals else 0
    n_accepted = int(acc["n"]) if acc else 0
    return {
        "items": n_items,
        "accepted": n_accepted,
        "share_accepted": n_accepted / n_items if n_items else 0.0,
        # the expected share of accepted labels that are right: their mean posterior
        "accepted_accuracy": float(acc["c"]) if acc and acc["c"] is not None else None,
        "mean_confidence": float(totals["confidence"]) if totals and totals["confidence"]
        is not None else None,
        "agreement": dict(sorted(agreement.items())),
        "class_prior": made.class_prior,
    }


def _log_consensus(tracker: StepTracker, made: Consensus, stats: dict[str, Any], *,
                   spammers: int, n_judgments: int, workers: DataFrame) -> None:
    metrics = {"iterations": made.iterations, "judgments": n_judgments,
               "items": stats["items"], "accepted": stats["accepted"],
               "share_accepted": round(stats["share_accepted"], 6), "spammers": spammers,
               "converged": int(made.converged)}
    if made.log_likelihood is not None:
        metrics["log_likelihood"] = made.log_likelihood
    if stats["accepted_accuracy"] is not None:
        metrics["accepted_estimated_accuracy"] = stats["accepted_accuracy"]
    tracker.metrics(metrics)
    tracker.log_dict({"method": made.method, "iterations": made.iterations,
                      "converged": made.converged, "log_likelihood": made.log_likelihood,
                      "class_prior": made.class_prior,
                      "agreement_distribution": stats["agreement"],
                      "share_accepted": stats["share_accepted"],
                      "accepted_estimated_accuracy": stats["accepted_accuracy"]},
                     "labels/consensus.json")
    with tempfile.TemporaryDirectory(prefix="sparkmlops-labels-") as out:
        plots.worker_accuracy_plot(workers, Path(out))
        tracker.log_artifacts(out, "labels")


def _into_gold(spark: SparkSession, settings: Settings, tracker: StepTracker,
               labels: TableWrite) -> int:
    """With ``label.from: crowd``: set the accepted label on every gold row of its key
    written before, and clear it where the crowd no longer accepts one; the rows that
    changed. Nothing before gold exists (features joins the labels when it writes)."""
    dataset = settings.dataset
    gold = dataset_tables(settings).gold
    if not dataset.label.crowd or not table_exists(spark, gold):
        return 0
    accepted = crowd_labels(read_table(spark, labels.table, labels.version)
                            .select(*dataset.keys, LABEL_COLUMN), dataset)
    labelled = read_table(spark, gold).where(F.col(LABEL_RAW_COLUMN).isNotNull())
    revoked = (labelled.select(*dataset.keys).distinct()
               .join(accepted.select(*dataset.keys), on=dataset.keys, how="left_anti")
               .select(*dataset.keys, F.lit(None).cast("string").alias(LABEL_RAW_COLUMN),
                       F.lit(None).cast("double").alias(LABEL_COLUMN)))
    written = update_by_key(accepted.unionByName(revoked), gold, dataset.keys)
    tracker.wrote(written)
    log.info("gold %s v%s: %d rows took a new crowd label", gold.fqn, written.version,
             written.rows)
    return written.rows


def export_review_tasks(review: DataFrame, path: Path, keys: list[str]) -> int:
    """Write the items to review as a CSV task file, one row per item (its keys, the
    label consensus leans to, its labels and agreement, why it needs review), streamed
    from Spark a partition at a time; returns the rows written."""
    columns = [*keys, LABEL_COLUMN, "confidence", "n_labels", "agreement", "reason"]
    rows = review.select(*columns).orderBy(*keys)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*keys, "current_label", "confidence", "n_labels", "agreement",
                         "reason"])
        for row in rows.toLocalIterator():
            writer.writerow(list(row))
            count += 1
    return count
