"""The steps of a batch: each reads its inputs, transforms, writes, and tracks itself.

A step runs inside its own MLflow run (nested under the pipeline's parent run when
there is one) and records the Delta versions it read and wrote and the row counts.
The transforms live in the step's module (ingest, quality, features, training,
inference); this module is the I/O edge.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import mlflow
import pyspark.sql.functions as F
from mlflow.tracking import MlflowClient
from pyspark.sql import DataFrame, SparkSession

from sparkmlops import (
    features,
    inference,
    monitoring,
    plots,
    provenance,
    quality,
    registry,
    training,
    tuning,
)
from sparkmlops.config import Settings
from sparkmlops.errors import (
    MissingInputError,
    QualityGateFailed,
    ReconciliationError,
    RepeatedKeysError,
)
from sparkmlops.ingest import (
    LandingFile,
    LandingPlan,
    check_changed_files,
    ingest_batch,
    list_files,
    log_unread_files,
    plan_landing,
    record_batch,
    record_unread_files,
    to_quarantine,
    with_content_hash,
)
from sparkmlops.provenance import code_identity
from sparkmlops.tables import (
    BATCH_COLUMN,
    RANK_COLUMN,
    MergeWrite,
    TableRef,
    TableWrite,
    current_version,
    features_table_name,
    rank_per_key,
    read_batch,
    read_table,
    replace_batch,
    replace_where,
    table_ref,
    upsert_batch,
)
from sparkmlops.tracking import MLFLOW_CLOCK, TAG_OUTCOME, step_run

log = logging.getLogger(__name__)

# the reference profile of a model's inputs and scores, an artifact of its train run
REFERENCE_ARTIFACT = "monitoring/reference_profile.json"
# the batches a windowed train run used (model.window_batches)
WINDOW_ARTIFACT = "training/batches.json"


@dataclass
class StepResult:
    """What a step did: its run, the table versions it wrote and a summary for people."""

    step: str
    run_id: str
    outputs: dict[str, int] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def write_batch(
    df: Any, ref: TableRef, settings: Settings, batch_id: str, *,
    order_by: str | None = None, merge_schema: bool = False,
) -> TableWrite:
    """Write one batch of a keyed table the dataset's way (``write.mode``).

    ``append``: the batch replaces its own rows (replaceWhere on the batch id).
    ``upsert``: MERGE on the business key, so the table keeps one row per key;
    ``order_by`` makes an older record lose to the table's newer one.
    """
    write = settings.dataset.write
    if write.mode == "upsert":
        return upsert_batch(df, ref, batch_id, settings.dataset.keys, order_by=order_by,
                            merge_schema=merge_schema, partition_by=write.partition_by)
    return replace_batch(df, ref, batch_id, merge_schema=merge_schema,
                         partition_by=write.partition_by)


# ---------------------------------------------------------------- ingest


def ingest_step(
    spark: SparkSession, settings: Settings, batch_id: str, *, force: bool = False
) -> StepResult:
    """Landing files not ingested yet → bronze (+ quarantine), then manifest and ingest log.

    Files are known by their bytes: one whose bytes were read before (touched, copied)
    is recorded and not read again, so re-running changes nothing; one at a known path
    with new bytes follows ``source.on_changed_file``. ``force`` re-reads every landing
    file into ``batch_id`` (replacing it).
    """
    bronze = table_ref(settings, "bronze")
    path = settings.resolve_path(settings.dataset.source.path)
    with step_run(settings, "ingest", batch_id) as tracker:
        if force:
            plan = LandingPlan([with_content_hash(spark, LandingFile(*f))
                                for f in list_files(spark, path)], {}, {})
        else:
            plan = plan_landing(spark, settings, path)
            check_changed_files(plan, settings.dataset.source.on_changed_file)
            log_unread_files(plan, batch_id)
        files = plan.read
        unread = {"duplicates": len(plan.duplicates),
                  "changed_skipped": len([f for f in plan.changed if f not in files])}
        for name, count in unread.items():
            tracker.count(f"files_{name}", count)
        unread = {k: v for k, v in unread.items() if v}
        if not files:
            seen = record_unread_files(spark, settings, plan, batch_id)
            version = current_version(spark, bronze)
            rows = read_batch(spark, bronze, batch_id).count() if version is not None else 0
            mlflow.set_tag(TAG_OUTCOME, "skipped_nothing_new")
            tracker.read(bronze, version, rows)
            log.info("no new files under %s; batch %s stays at %s v%s", path, batch_id,
                     bronze.fqn, version)
            outputs = {bronze.fqn: version} if version is not None else {}
            if seen is not None:
                tracker.wrote(seen)
                outputs[seen.table.fqn] = seen.version
            return StepResult("ingest", tracker.run_id, outputs,
                              {"skipped": True, "bronze_rows": rows, **unread})
        tracker.count("files_in", len(files))
        result = ingest_batch(spark, settings, batch_id, source_path=path, files=files)
        tracker.count("rows_in.landing", result.rows_in)
        tracker.wrote(result.bronze)
        tracker.wrote(result.quarantine, rows=result.rows_quarantined)
        manifest, ingest_log = record_batch(spark, settings, result, files, earlier=plan.changed)
        seen = record_unread_files(spark, settings, plan, batch_id)
        if seen is not None:
            # one entry per table in the run: the last version, all the rows written
            manifest = replace(seen, rows=manifest.rows + seen.rows)
        tracker.wrote(manifest)
        tracker.wrote(ingest_log)
        mlflow.set_tag(TAG_OUTCOME, "ingested")
        return StepResult(
            "ingest", tracker.run_id,
            {bronze.fqn: result.bronze.version,
             result.quarantine.table.fqn: result.quarantine.version,
             manifest.table.fqn: manifest.version},
            {"rows_in": result.rows_in, "bronze_rows": result.bronze.rows,
             "quarantined": result.rows_quarantined, "files": len(files), **unread},
        )


# ---------------------------------------------------------------- validate


def validate_step(
    spark: SparkSession, settings: Settings, batch_id: str, *, bronze_version: int | None = None
) -> StepResult:
    """Bronze batch → GX suite → validation_results; passing rows → silver, failing → quarantine.

    The suite runs on the Delta version itself, not a cache: each of GX's Spark jobs
    reads only the columns it needs, which measured as fast as scanning a cache that
    costs two to three passes to build (benchmarks/validate_bench.py). The row-level
    split is computed inside the two writes. In upsert mode the batch is ranked per
    key (a shuffle) and that ranking is cached once. In append mode a passing row
    whose key silver already holds from another batch follows ``write.repeated_keys``:
    quarantined with the earlier batch named, the step failed (exit 4) before silver
    and quarantine are written, or kept (``allow``).
    """
    dataset = settings.dataset
    bronze = table_ref(settings, "bronze")
    silver = table_ref(settings, "silver")
    gate = dataset.quality.gate
    specs = dataset.quality.expectations if gate != "disabled" else []
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
            report = _run_quality_checks(checked, settings, suite=f"{dataset.name}_bronze")
            _record_validation(spark, settings, tracker, report, batch_id, version)
            if report.status == "failed" and gate == "enabled":
                failed = [f"{o.expectation}({o.column or ''})" for o in report.outcomes
                          if not o.success and o.severity == "critical"]
                raise QualityGateFailed(
                    f"quality gate failed for {bronze.fqn} v{version} batch {batch_id}: "
                    f"critical expectation(s) failed: {', '.join(failed)}"
                    + (f"; see {report.data_docs_index}" if report.data_docs_index else "")
                )
            flagged = quality.flag_rows(checked, specs)
            held = _keys_held_by_other_batches(spark, settings, tracker, batch_id)
            if held is not None:
                # Silver's rows with a key of this batch, found in one pass and cached:
                # usually none, and then the two writes do not look at silver at all.
                held = quality.rows_with_keys_of(held, checked, dataset.keys).persist()
                held_rows = held.count()
                if held_rows:
                    flagged = quality.flag_repeated_keys(flagged, held, dataset.keys)
                    if dataset.write.repeated_keys == "fail":
                        _fail_on_repeated_keys(flagged, dataset.keys, batch_id)
            passing, failing = quality.split_flagged(flagged)
            record = F.to_json(F.struct(*[F.col(c.name) for c in dataset.schema_]))
            quarantined = to_quarantine(failing, "validate", quality.flagged_reason(), record)
            q_write = replace_batch(quarantined, table_ref(settings, "quarantine"), batch_id,
                                    extra_predicate=F.col("step") == "validate", merge_schema=True)
            s_write = write_batch(
                passing, silver, settings, batch_id, order_by=dataset.write.order_by,
                merge_schema=dataset.source.schema_evolution == "add_new_columns")
            stale = s_write.stale if isinstance(s_write, MergeWrite) else 0
            rows_quarantined = q_write.rows
            tracker.wrote(s_write)
            tracker.wrote(q_write, rows=rows_quarantined)
            if stale:
                tracker.count("rows_stale", stale)
            repeated = (_rows_repeated(spark, q_write, batch_id)
                        if held_rows else 0)
            if not upsert:
                tracker.count("rows_repeated_keys", repeated)
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
        return StepResult(
            "validate", tracker.run_id,
            {silver.fqn: s_write.version, q_write.table.fqn: q_write.version},
            {"gate": gate, "status": report.status, "silver_rows": s_write.rows,
             "quarantined": rows_quarantined, "data_docs": report.data_docs_index,
             **({"superseded": superseded, "stale": stale} if upsert
                else {"repeated_keys": repeated}),
             "expectations_failed": [f"{o.expectation}({o.column or ''}) [{o.severity}]"
                                     for o in report.outcomes if not o.success]},
        )


def _keys_held_by_other_batches(
    spark: SparkSession, settings: Settings, tracker: Any, batch_id: str
) -> DataFrame | None:
    """The keys (and ``_batch_id``) silver holds from other batches; None when not checked.

    Checked in append mode unless ``write.repeated_keys: allow`` (upsert's MERGE keeps
    one row per key by itself). This batch's own rows are left out, so validating a
    batch again finds nothing new. Only the key columns and the batch id are read.
    """
    write = settings.dataset.write
    silver = table_ref(settings, "silver")
    if write.mode == "upsert" or write.repeated_keys == "allow":
        return None
    version = current_version(spark, silver)
    if version is None:
        return None
    tracker.read(silver, version)
    return (read_table(spark, silver, version)
            .where(F.col(BATCH_COLUMN) != F.lit(batch_id))
            .select(*settings.dataset.keys, BATCH_COLUMN))


def _fail_on_repeated_keys(flagged: DataFrame, keys: list[str], batch_id: str) -> None:
    """RepeatedKeysError naming the count, two example keys and the earlier batches."""
    repeated = flagged.where((F.size(quality.FAILED_COLUMN) == 0)
                             & F.col(quality.REPEATED_COLUMN).isNotNull())
    summary = repeated.agg(F.count(F.lit(1)).alias("rows"), F.array_sort(
        F.collect_set(quality.REPEATED_COLUMN)).alias("batches")).first()
    if summary is None or not summary["rows"]:
        return
    examples = repeated.select(*keys).orderBy(*keys).limit(2).collect()
    shown = ", ".join("{" + ", ".join(f"{k}={row[k]}" for k in keys) + "}" for row in examples)
    batches = list(summary["batches"])
    named = ", ".join(batches[:3]) + (f" and {len(batches) - 3} more" if len(batches) > 3 else "")
    raise RepeatedKeysError(
        f"batch {batch_id}: {summary['rows']} row(s) bring a key that silver already holds "
        f"from batch {named}, e.g. {shown}; silver and quarantine left as they were "
        "(write.repeated_keys: fail)")


def _rows_repeated(spark: SparkSession, q_write: TableWrite, batch_id: str) -> int:
    """The batch's rows just quarantined for a repeated key (read back: no pass over the batch)."""
    return (read_batch(spark, q_write.table, batch_id, q_write.version)
            .where((F.col("step") == "validate")
                   & F.col("reason").startswith(quality.REPEATED_REASON))
            .count())


def _record_validation(
    spark: SparkSession, settings: Settings, tracker: Any, report: quality.ValidationReport,
    batch_id: str, version: int | None,
) -> None:
    """validation_results rows, the GX JSON artifact and the gate outcome in MLflow."""
    dataset = settings.dataset
    bronze = table_ref(settings, "bronze")
    mlflow.log_param("quality.gate", dataset.quality.gate)
    if report.outcomes:
        # one row per expectation per validation run, keyed by this step's MLflow
        # run: a history, and a retried write cannot double it
        frame = quality.outcomes_frame(
            spark, report.outcomes, validation_id=tracker.run_id, dataset=dataset.name,
            suite=report.suite, table=bronze.fqn, table_version=version, _batch_id=batch_id,
            gate_mode=dataset.quality.gate, gate_status=report.status,
            validated_at=datetime.now().replace(microsecond=0),
        )
        written = replace_where(
            frame, table_ref(settings, "validation_results"),
            F.col("validation_id") == tracker.run_id, merge_schema=True)
        tracker.wrote(written, rows=len(report.outcomes))
        mlflow.log_dict(report.gx_result, "validation/gx_result.json")
    _log_gate(report)


def _run_quality_checks(batch: Any, settings: Settings, suite: str) -> quality.ValidationReport:
    specs = settings.dataset.quality.expectations
    if settings.dataset.quality.gate == "disabled" or not specs:
        return quality.ValidationReport([], "not_run", {}, None, suite)
    def run(docs_dir: str) -> tuple[list[quality.ExpectationOutcome], dict[str, Any], str | None]:
        return quality.run_suite(
            batch, specs, suite_name=suite, asset_name=f"bronze_{settings.dataset.name}",
            data_docs_dir=docs_dir,
            partial_unexpected_count=settings.dataset.quality.partial_unexpected_count,
        )

    if settings.quality.data_docs_dir is not None:
        outcomes, gx_json, index = run(settings.resolve_path(settings.quality.data_docs_dir))
    else:
        # no lasting folder (a cluster's driver disk goes with the cluster): this
        # validation's Data Docs go to the run's artifacts, kept by the tracking server
        with tempfile.TemporaryDirectory(prefix="sparkmlops-data-docs-") as docs_dir:
            outcomes, gx_json, _ = run(docs_dir)
            mlflow.log_artifacts(docs_dir, DATA_DOCS_ARTIFACT)
        index = mlflow.get_artifact_uri(f"{DATA_DOCS_ARTIFACT}/index.html")
    return quality.ValidationReport(outcomes, quality.gate_status(outcomes), gx_json, index,
                                    suite)


DATA_DOCS_ARTIFACT = "data_docs"


def _log_gate(report: quality.ValidationReport) -> None:
    mlflow.set_tag("quality.status", report.status)
    mlflow.set_tag(TAG_OUTCOME, f"quality_{report.status}")
    if report.data_docs_index:
        mlflow.set_tag("quality.data_docs", report.data_docs_index)
    mlflow.log_metrics({
        "quality.expectations": len(report.outcomes),
        "quality.passed": sum(1 for o in report.outcomes if o.success),
        "quality.failed_critical": report.count("critical", False),
        "quality.failed_warning": report.count("warning", False),
    })


# ---------------------------------------------------------------- features


def features_step(
    spark: SparkSession, settings: Settings, batch_id: str, *, silver_version: int | None = None
) -> StepResult:
    """Silver batch → gold feature table (derived features, numeric label)."""
    silver = table_ref(settings, "silver")
    gold = table_ref(settings, "gold", features_table_name(settings))
    with step_run(settings, "features", batch_id) as tracker:
        version = silver_version if silver_version is not None else current_version(spark, silver)
        batch = read_batch(spark, silver, batch_id, version)
        frame = features.build_feature_table(batch, settings.dataset)
        written = write_batch(frame, gold, settings, batch_id)
        tracker.read(silver, version, written.rows)
        tracker.wrote(written)
        return StepResult("features", tracker.run_id, {gold.fqn: written.version},
                          {"gold_rows": written.rows})


# ---------------------------------------------------------------- train


def train_step(
    spark: SparkSession, settings: Settings, batch_id: str, *, gold_version: int | None = None
) -> StepResult:
    """Gold table version → MLlib pipeline → holdout metrics → registry version @challenger.

    The estimator is the config's, searched over ``model.tuning.grid`` when set, or
    chosen by AutoML (``model.automl.enabled``) among estimator families within
    its time budget. Candidates are nested runs; the estimator that won is logged
    as ``training/estimator.json``, which is what ``reproduce`` refits.
    """
    dataset = settings.dataset
    gold = table_ref(settings, "gold", features_table_name(settings))
    with step_run(settings, "train", batch_id) as tracker:
        version = gold_version if gold_version is not None else current_version(spark, gold)
        data, window = _training_window(spark, settings, read_table(spark, gold, version))
        if window is not None:
            with tracker.timing():
                mlflow.log_dict({"batches": window}, WINDOW_ARTIFACT)
                mlflow.log_param("window_batches", len(window))
        train, test = training.split_train_test(data, dataset)
        train, test = train.persist(), test.persist()
        try:
            n_train, n_test = train.count(), test.count()
            if n_train == 0 or n_test == 0:
                raise MissingInputError(
                    f"{gold.fqn} v{version} has {n_train} training and {n_test} holdout rows "
                    "with a label; need both"
                )
            rows = data.count()
            with tracker.timing():
                tracker.read(gold, version, rows)
                tracker.count("rows_train", n_train)
                tracker.count("rows_test", n_test)
            source = f"{gold.fqn} v{version}"
            # before any fit (a search's or AutoML's too): one line, not an MLlib trace
            training.check_training_data(train, test, dataset, source=source)
            started = time.monotonic()
            with training.fit_failures_named(source):
                trained = _fit(train, dataset, tracker)
                fit_seconds = time.monotonic() - started
                # scored once: seven evaluators and the plots each read it again
                scored = trained.model.transform(test).persist()
                metrics = training.evaluate(scored, dataset.model.task)
            with tempfile.TemporaryDirectory(prefix="sparkmlops-plots-") as out:
                plots.write_plots(scored, trained.model, dataset.model.task,
                                  dataset.label.classes, Path(out))
                signature = model_signature(test, scored,
                                            features.model_input_columns(dataset))
                # what monitoring compares each scored batch with, so it never
                # re-reads the training data: the holdout's features and scores
                reference = monitoring.model_reference(
                    scored, dataset.features.numeric_inputs, dataset.features.categorical_inputs,
                    dataset.model.task)
                with tracker.timing():
                    _log_training(trained, gold, version, dataset, metrics, fit_seconds)
                    mlflow.log_artifacts(out, "plots")
                    mlflow.log_dict(reference.to_dict(), REFERENCE_ARTIFACT)
            scored.unpersist()
        finally:
            train.unpersist()
            test.unpersist()
        with tracker.timing():
            model_version = _register(trained.model, signature, settings, tracker, gold,
                                      version, batch_id, metrics)
        mlflow.log_metric("tracking_seconds", round(tracker.mlflow_seconds, 3))
        return StepResult(
            "train", tracker.run_id, {},
            {"model": dataset.model.name, "version": model_version, "metrics": metrics,
             "rows_train": n_train, "rows_test": n_test, "training_table_version": version,
             "estimator": trained.estimator.type, "params": trained.estimator.params,
             **({"why": trained.reason} if trained.reason else {})},
        )


def _training_window(
    spark: SparkSession, settings: Settings, gold: Any
) -> tuple[Any, list[str] | None]:
    """Gold limited to the latest ``model.window_batches`` ingested batches (all when 0).

    Batches are ordered by the bronze version their ingest committed (``ingest_log``:
    later ingests have higher versions, never ties); the chosen ids are returned so
    the run can record them and ``reproduce`` can reuse them.
    """
    size = settings.dataset.model.window_batches
    if size == 0:
        return gold, None
    present = {r[0] for r in gold.select(BATCH_COLUMN).distinct().collect()}
    log_rows = read_table(spark, table_ref(settings, "ingest_log")) \
        .select(BATCH_COLUMN, "bronze_version").collect()
    ordered = [r[BATCH_COLUMN] for r in sorted(log_rows, key=lambda r: r["bronze_version"])
               if r[BATCH_COLUMN] in present]
    window = ordered[-size:]
    return gold.where(F.col(BATCH_COLUMN).isin(window)), window


def _fit(train: Any, dataset: Any, tracker: Any) -> tuning.TrainedModel:
    """The config's estimator (searched when a grid is set), or AutoML's pick."""
    automl = dataset.model.automl
    before = _logged_seconds()
    if automl.enabled:
        trained = tuning.automl(train, dataset)
    else:
        trained = tuning.search(train, dataset)
    tracker.mlflow_clock.seconds += _logged_seconds() - before
    return trained


def _logged_seconds() -> float:
    return MLFLOW_CLOCK.seconds


def _log_training(
    trained: tuning.TrainedModel, gold: TableRef, version: int | None, dataset: Any,
    metrics: dict[str, float], fit_seconds: float,
) -> None:
    model = dataset.model
    search = "automl" if model.automl.enabled else model.tuning.method
    mlflow.log_params({
        "estimator": trained.estimator.type,
        **{f"estimator.{k}": v for k, v in trained.estimator.params.items()},
        "search": search,
        "split.seed": model.split.seed,
        "split.test_fraction": model.split.test_fraction,
        "features.numeric": ",".join(dataset.features.numeric_inputs),
        "features.categorical": ",".join(dataset.features.categorical_inputs),
        "features.defined": ",".join(c for _, c in dataset.features.defined_columns()),
        "features.impute": dataset.features.impute,
        "features.categorical_encoding": dataset.features.categorical_encoding,
        "features.scale": dataset.features.scale,
        "training_table": gold.fqn,
        "training_table_version": version,
    })
    mlflow.log_metrics({**metrics, "fit_seconds": round(fit_seconds, 3),
                        "candidates": len(trained.candidates)})
    mlflow.log_dict(trained.estimator.model_dump(), "training/estimator.json")
    if trained.candidates:
        mlflow.log_dict({"candidates": [asdict(c) for c in trained.candidates]},
                        "training/candidates.json")
    if trained.leaderboard:
        mlflow.log_dict({"leaderboard": trained.leaderboard, "why": trained.reason},
                        "training/automl.json")
    if trained.reason:
        mlflow.set_tag("sparkmlops.model_choice", trained.reason[:5000])


def _register(
    model: Any, signature: Any, settings: Settings, tracker: Any, gold: TableRef,
    version: int | None, batch_id: str, metrics: dict[str, float],
) -> str:
    """Log the PipelineModel, register it as a new version @challenger with lineage tags."""
    name = settings.dataset.model.name
    info = log_pipeline_model(model, signature=signature, registered_model_name=name)
    model_version = str(info.registered_model_version)
    client = MlflowClient()
    client.set_registered_model_alias(name, registry.CHALLENGER, model_version)
    code = code_identity()
    registry.tag_version(client, name, model_version, {
        "training_table": gold.fqn, **_table_location_tags("training_table", gold),
        "training_table_version": version, "batch_id": batch_id,
        "git_commit": _tag(tracker.run_id, "mlflow.source.git.commit"),
        "sparkmlops_version": code.version, "wheel_sha256": code.wheel_sha256,
        "config_hash": settings.config_hash(), "training_run_id": tracker.run_id,
        **{f"metric.{k}": round(v, 6) for k, v in metrics.items()},
    })
    mlflow.set_tag("model_version", model_version)
    return model_version


def _table_location_tags(prefix: str, ref: TableRef) -> dict[str, object]:
    """``<prefix>_path`` and, in catalog mode, ``<prefix>_name``: where the table is."""
    tags: dict[str, object] = {}
    if ref.path is not None:
        tags[f"{prefix}_path"] = ref.path
    if ref.table_name is not None:
        tags[f"{prefix}_name"] = ref.table_name
    return tags


def model_signature(test: Any, scored: Any, columns: list[str]) -> Any:
    """The MLflow signature: ``columns`` of ``test`` in, the ``prediction`` of ``scored`` out."""
    from mlflow.models import infer_signature

    sample = test.select(*columns).limit(20).toPandas()
    return infer_signature(sample, scored.select("prediction").limit(20).toPandas())


def log_pipeline_model(
    model: Any, *, signature: Any, registered_model_name: str | None = None,
    artifact_path: str = "model",
) -> Any:
    """``mlflow.spark.log_model`` with declared requirements, and with sparkmlops' code
    when the model holds a Python stage; returns the ModelInfo.

    A Python stage is saved as a reference to sparkmlops code, so such a model carries
    that code (``code_paths``) and the packages it imports: a process without sparkmlops
    installed loads it from the model. Where sparkmlops is imported already, the
    installed package wins (submodules resolve through the package's own ``__path__``).
    Pure-JVM models need neither.
    """
    python_stages = features.has_python_stages(model)
    with provenance.package_source() as package:
        return mlflow.spark.log_model(
            model, artifact_path=artifact_path, registered_model_name=registered_model_name,
            signature=signature, pip_requirements=model_requirements(python_stages),
            code_paths=[str(package)] if python_stages else None,
        )


def model_requirements(python_stages: bool) -> list[str]:
    """The pinned requirements of a logged model, as installed in this process.

    Declared, not inferred: inference starts a subprocess and costs ~20 s per model. A
    Python stage runs sparkmlops code (shipped in the model) as a pandas UDF, which
    needs pandas and pyarrow besides Spark.
    """
    names = ["pyspark", "mlflow", *(("pandas", "pyarrow") if python_stages else ())]
    return [f"{name}=={_installed_version(name)}" for name in names]


def _installed_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        # pyspark provided by the cluster (Databricks, EMR) may have no pip metadata
        module = __import__(name)
        return str(module.__version__)


def _tag(run_id: str, key: str) -> str:
    return str(MlflowClient().get_run(run_id).data.tags.get(key, "unknown"))


# ---------------------------------------------------------------- promote


def promote_step(
    spark: SparkSession, settings: Settings, batch_id: str,
    *, challenger_version: str | None = None, gold_version: int | None = None,
) -> StepResult:
    """Gate each challenger against the champion; move @champion when one is better.

    The challengers are ``challenger_version`` (default: @challenger) and every
    version registered after the champion that was never judged (a train killed
    before its promote, or two trains in a row), judged oldest first, each against
    the champion of that moment. Each model is loaded from the registry and scored
    on the same rows: the holdout of the current gold table version (the config's
    split), so the comparison is on today's data, not on the numbers each run saw
    when trained.
    """
    dataset = settings.dataset
    name = dataset.model.name
    gold = table_ref(settings, "gold", features_table_name(settings))
    with step_run(settings, "promote", batch_id) as tracker:
        client = MlflowClient()
        asked = _asked_challenger(client, name, challenger_version)
        versions = registry.versions_to_judge(client, name, asked=asked)
        if not versions:
            raise MissingInputError(f"model {name} has no version with alias "
                                    f"@{registry.CHALLENGER} and no version left to judge")
        data_version = gold_version if gold_version is not None else current_version(spark, gold)
        current, window = _training_window(spark, settings, read_table(spark, gold, data_version))
        _, holdout = training.split_train_test(current, dataset)
        holdout = holdout.persist()
        try:
            rows = holdout.count()
            if rows == 0:
                raise MissingInputError(f"{gold.fqn} v{data_version} has no labelled holdout rows"
                                        " to compare the models on")
            tracker.read(gold, data_version, rows)
            evaluated_on = (f"{rows} holdout rows of {gold.fqn} v{data_version}"
                            + (f" (latest {len(window)} batches)" if window else ""))
            problems = _holdout_problems(holdout, rows, dataset, f"{gold.fqn} v{data_version}")
            scores: dict[str, dict[str, float] | str] = {}
            decisions = [_judge(client, holdout, dataset, version, scores, evaluated_on, problems)
                         for version in versions]
        finally:
            holdout.unpersist()
        # the challenger asked for speaks for the step (the last judged when none was)
        decision = next((d for d in decisions if d.challenger_version == asked), decisions[-1])
        champion_after = _champion_version(client, name)
        _log_promotion(decisions, decision, champion_after,
                       {"table": gold.fqn, "version": data_version, "rows": rows})
        return StepResult("promote", tracker.run_id, {}, {
            "promoted": decision.promoted, "passed": decision.passed, "mode": decision.mode,
            "challenger": decision.challenger_version, "champion": champion_after,
            "champion_before": decision.champion_before, "reasons": decision.reasons,
            "decisions": [_decision_summary(d) for d in decisions],
        })


def _asked_challenger(client: MlflowClient, name: str, asked: str | None) -> str | None:
    """The version asked for (checked), else @challenger's, else None."""
    if asked is not None:
        return str(registry.require_version(client, name, str(asked)).version)
    challenger = registry.version_by_alias(client, name, registry.CHALLENGER)
    return str(challenger.version) if challenger is not None else None


def _champion_version(client: MlflowClient, name: str) -> str | None:
    champion = registry.version_by_alias(client, name, registry.CHAMPION)
    return str(champion.version) if champion is not None else None


def _judge(
    client: MlflowClient, holdout: Any, dataset: Any, version: str,
    scores: dict[str, dict[str, float] | str], evaluated_on: str, holdout_problems: list[str],
) -> registry.PromotionDecision:
    """One challenger against the champion of this moment, both scored on the holdout.

    ``scores`` caches each version's holdout metrics (or why it could not be
    scored): a challenger promoted here is the champion of the next one.
    """
    name = dataset.model.name
    champion = _champion_version(client, name)
    notes = [note] if (note := registry.unfinished_run_note(client, name, version)) else []
    challenger = _scores(holdout, dataset, version, scores)
    if isinstance(challenger, str):
        notes.append(f"v{version} {challenger}")
        challenger = {}
    champion_metrics, champion_note = None, None
    if champion is not None and champion != version:
        scored = _scores(holdout, dataset, champion, scores)
        if isinstance(scored, str):
            champion_note = (f"champion v{champion} {scored}; the challenger is judged on the "
                             "minimums alone")
            log.warning(champion_note)
        else:
            champion_metrics = scored
    return registry.promote_if_better(
        client, name, version, dataset.promotion, dataset.model.primary_metric,
        challenger_metrics=challenger, champion_metrics=champion_metrics,
        champion_note=champion_note, challenger_notes=notes, holdout_problems=holdout_problems,
        evaluated_on=evaluated_on)


def _scores(
    holdout: Any, dataset: Any, version: str, scores: dict[str, dict[str, float] | str]
) -> dict[str, float] | str:
    """Holdout metrics of ``version``, or the sentence saying why it cannot score them."""
    if version not in scores:
        try:
            scores[version] = _holdout_metrics(holdout, dataset, version)
        except Exception as exc:  # noqa: BLE001 - recorded as the reason
            scores[version] = (f"cannot score the current data ({type(exc).__name__}: "
                               f"{(str(exc).splitlines() or [''])[0][:300]})")
    return scores[version]


def _decision_summary(decision: registry.PromotionDecision) -> dict[str, Any]:
    return {"version": decision.challenger_version, "promoted": decision.promoted,
            "passed": decision.passed, "champion_before": decision.champion_before,
            "reasons": decision.reasons}


def _log_promotion(
    decisions: list[registry.PromotionDecision], decision: registry.PromotionDecision,
    champion_after: str | None, holdout: dict[str, Any],
) -> None:
    """The step run's record: ``decision``'s numbers as before, and every decision made."""
    mlflow.log_params({"promotion.mode": decision.mode,
                       "challenger_version": decision.challenger_version,
                       "champion_before": decision.champion_before or "none",
                       "judged_versions": ",".join(d.challenger_version for d in decisions)})
    mlflow.log_metrics({
        **{f"challenger.{k}": v for k, v in decision.challenger_metrics.items()},
        **{f"champion.{k}": v for k, v in decision.champion_metrics.items()},
    })
    mlflow.set_tags({"promotion.promoted": decision.promoted,
                     "promotion.passed": decision.passed,
                     "promotion.champion_after": champion_after or "none",
                     TAG_OUTCOME: "promoted" if any(d.promoted for d in decisions)
                     else "not_promoted"})
    mlflow.log_dict({"reasons": decision.reasons,
                     "challenger_metrics": decision.challenger_metrics,
                     "champion_metrics": decision.champion_metrics,
                     "holdout": holdout,
                     "decisions": [{**_decision_summary(d),
                                    "challenger_metrics": d.challenger_metrics,
                                    "champion_metrics": d.champion_metrics}
                                   for d in decisions]},
                    "promotion.json")


def _holdout_problems(holdout: Any, rows: int, dataset: Any, source: str) -> list[str]:
    """Why the holdout cannot rank models (a class missing, too few rows): fails the gate."""
    classes = training.class_counts(holdout, dataset)
    return [f"the holdout of {source} cannot rank models: {problem}"
            for problem in training.holdout_problems(classes, rows, dataset)]


def _holdout_metrics(holdout: Any, dataset: Any, version: str) -> dict[str, float]:
    """Metrics of registered model ``version`` on the holdout rows."""
    model = mlflow.spark.load_model(f"models:/{dataset.model.name}/{version}")
    return training.evaluate(model.transform(holdout), dataset.model.task)


# ---------------------------------------------------------------- predict


def predict_step(
    spark: SparkSession, settings: Settings, batch_id: str,
    *, model: str = registry.CHAMPION, gold_version: int | None = None,
) -> StepResult:
    """Score the batch's gold rows with the model ``@alias`` (or version) → predictions.

    Rows the model cannot score go to quarantine (step ``predict``) with the reason:
    all of them when the batch lacks an input column the model was trained on, else
    each row that gets a null or NaN prediction. Gold batch = predictions +
    quarantined, or ReconciliationError.
    """
    dataset = settings.dataset
    gold = table_ref(settings, "gold", features_table_name(settings))
    predictions = table_ref(settings, "predictions")
    quarantine = table_ref(settings, "quarantine")
    with step_run(settings, "predict", batch_id) as tracker:
        client = MlflowClient()
        resolved = registry.require_version(client, dataset.model.name, model.lstrip("@"))
        uri = f"models:/{dataset.model.name}/{resolved.version}"
        pipeline_model = mlflow.spark.load_model(uri)
        version = gold_version if gold_version is not None else current_version(spark, gold)
        batch = read_batch(spark, gold, batch_id, version)
        shape: dict[str, Any] = {
            "model_name": dataset.model.name, "model_version": str(resolved.version),
            "model_run_id": str(resolved.run_id), "batch_id": batch_id,
            "scored_at": datetime.now().replace(microsecond=0)}
        missing = inference.missing_inputs(_model_inputs(uri, dataset), batch.columns)
        # scored once, read by the count and both writes
        flagged, good = inference.score_with_reasons(
            pipeline_model, batch, dataset.model.task, missing,
            model_label=f"model {dataset.model.name} v{resolved.version}")
        # cache only what the two writes read, not the model's feature vectors (at 10M
        # rows the whole scored frame spilled past a 4 GB driver)
        outputs = [c for c in ("prediction", "probability") if c in flagged.columns]
        flagged = flagged.select(*batch.columns, *outputs, inference.UNSCORABLE_COLUMN).persist()
        try:
            rows = flagged.count()
            tracker.read(gold, version, rows)
            if not missing:
                good = flagged.where(F.col(inference.UNSCORABLE_COLUMN).isNull())
            bad = flagged.where(F.col(inference.UNSCORABLE_COLUMN).isNotNull())
            record = F.to_json(F.struct(*[c for c in batch.columns if c != BATCH_COLUMN]))
            unscorable = to_quarantine(bad, "predict", F.col(inference.UNSCORABLE_COLUMN),
                                       record)
            quarantined = 0
            if not bad.isEmpty() or _has_rows(spark, quarantine, batch_id, "predict"):
                q_write = replace_batch(unscorable, quarantine, batch_id, merge_schema=True,
                                        extra_predicate=F.col("step") == "predict")
                tracker.wrote(q_write)
                quarantined = q_write.rows
            written = write_batch(inference.shape_predictions(good, dataset, **shape),
                                  predictions, settings, batch_id)
        finally:
            flagged.unpersist()
        tracker.wrote(written)
        if rows != written.rows + quarantined:
            raise ReconciliationError(
                f"predict batch {batch_id}: {rows} gold rows but {written.rows} predictions "
                f"and {quarantined} quarantined")
        mlflow.log_params({"model_uri": uri, "model_alias": model,
                           "model_version": str(resolved.version)})
        return StepResult("predict", tracker.run_id, {predictions.fqn: written.version},
                          {"model_version": str(resolved.version), "rows": written.rows,
                           "quarantined": quarantined, "model_uri": uri})


def _has_rows(spark: SparkSession, ref: TableRef, batch_id: str, step: str) -> bool:
    """Whether ``ref`` exists and holds rows of ``step`` for the batch (to be replaced)."""
    if current_version(spark, ref) is None:
        return False
    table = read_table(spark, ref)
    return not table.where((F.col(BATCH_COLUMN) == batch_id) & (F.col("step") == step)) \
        .isEmpty()


def _model_inputs(uri: str, dataset: Any) -> list[str]:
    """The input columns in the model's MLflow signature (else what the config implies)."""
    from mlflow.models import get_model_info

    signature = get_model_info(uri).signature
    if signature is not None and signature.inputs is not None:
        return list(signature.inputs.input_names())
    return features.model_input_columns(dataset)


# ---------------------------------------------------------------- monitor


def monitor_step(
    spark: SparkSession, settings: Settings, batch_id: str, *, gold_version: int | None = None
) -> StepResult:
    """A scored batch against its model's reference profile → ``monitoring`` + report.

    The model and its reference come from the batch's prediction rows (the version
    that scored it, the profile its train run saved). Drift per feature and for the
    prediction, null and out-of-range rates, and live metrics of every scored batch
    whose labels are in gold now; each row judged ok / warn / alert by
    ``monitoring`` thresholds, the batch by its worst row.
    """
    dataset = settings.dataset
    gold = table_ref(settings, "gold", features_table_name(settings))
    predictions = table_ref(settings, "predictions")
    target = table_ref(settings, "monitoring")
    with step_run(settings, "monitor", batch_id) as tracker:
        if current_version(spark, predictions) is None:
            raise MissingInputError(f"{predictions.fqn} does not exist; run predict first")
        scored_rows = read_table(spark, predictions)
        model_rows = (scored_rows.where(F.col(BATCH_COLUMN) == batch_id)
                      .select("model_name", "model_version", "model_run_id").distinct().collect())
        if not model_rows:
            raise MissingInputError(f"no predictions for batch {batch_id}; run predict first")
        name, model_version, run_id = model_rows[0]
        reference = monitoring.Profile.from_dict(_run_artifact(run_id, REFERENCE_ARTIFACT))
        version = gold_version if gold_version is not None else current_version(spark, gold)
        batch = read_batch(spark, gold, batch_id, version)
        model = mlflow.spark.load_model(f"models:/{name}/{model_version}")
        # scored once: the profile reads it once per categorical column and once more
        frame = monitoring.with_prediction_columns(model.transform(batch), dataset.model.task)
        frame = frame.select(*reference.numeric, *reference.categorical).persist()
        try:
            current = monitoring.batch_profile(frame, reference)
        finally:
            frame.unpersist()
        rows = monitoring.judged(monitoring.compare(reference, current),
                                 dataset.monitoring.drift)
        live = _live_rows(spark, scored_rows, read_table(spark, gold, version), dataset)
        status = monitoring.worst([r["status"] for r in rows] +
                                  [r["status"] for r in live if r["scored_batch"] == batch_id])
        context = {"model_name": name, "model_version": str(model_version),
                   "model_run_id": run_id, "monitor_run_id": tracker.run_id,
                   "monitored_at": datetime.now().replace(microsecond=0),
                   "batch_rows": next(iter(current.numeric.values())).rows
                   if current.numeric else None}
        written = replace_batch(_monitoring_frame(spark, batch_id, rows, live, context), target,
                                batch_id)
        tracker.read(gold, version, context["batch_rows"])
        tracker.wrote(written)
        report = _monitoring_report(spark, settings, target, batch_id, rows, status)
        with tracker.timing():
            mlflow.log_metrics({
                **{f"drift.{r['feature']}.{r['metric']}": r["value"] for r in rows},
                **{r["metric"]: r["value"] for r in live
                   if r["scored_batch"] == batch_id}})
            mlflow.set_tags({"monitoring.status": status, TAG_OUTCOME: status,
                             "monitoring.model_version": str(model_version)})
            mlflow.log_artifacts(str(report.parent), "monitoring")
        flagged = [f"{r['feature']}.{r['metric']}={r['value']:.3g} ({r['status']})"
                   for r in rows + live if r["status"] != "ok"
                   and r.get("scored_batch", batch_id) == batch_id]
        return StepResult("monitor", tracker.run_id, {target.fqn: written.version},
                          {"status": status, "model_version": str(model_version),
                           "flagged": flagged, "report": str(report),
                           "live": {r["metric"]: r["value"] for r in live
                                    if r["scored_batch"] == batch_id}})


def _live_rows(spark: SparkSession, scored: Any, gold: Any, dataset: Any) -> list[dict[str, Any]]:
    """Live metric rows (scored batch, metric, value, status) where labels are known."""
    levels = dataset.monitoring.live
    rows = []
    same_batch = dataset.write.mode == "append"
    for r in monitoring.live_metrics(scored, gold, dataset.keys, dataset.model.task,
                                     same_batch=same_batch).collect():
        for metric, value in r.asDict().items():
            if metric in ("scored_batch", "labelled_rows") or value is None:
                continue
            name = metric.removeprefix("live_")
            level = levels.get(name)
            rows.append({"scored_batch": r["scored_batch"], "feature": "_model",
                         "metric": metric, "value": float(value), "p_value": None,
                         "warn": getattr(level, "warn", None),
                         "alert": getattr(level, "alert", None),
                         "status": level.status(value) if level else "ok",
                         "labelled_rows": int(r["labelled_rows"])})
    return rows


def _monitoring_frame(spark: SparkSession, batch_id: str, rows: list[dict[str, Any]],
                      live: list[dict[str, Any]], context: dict[str, Any]) -> Any:
    schema = ("_batch_id string, scored_batch string, feature string, metric string, "
              "value double, p_value double, warn double, alert double, status string, "
              "rows long, model_name string, model_version string, model_run_id string, "
              "monitor_run_id string, monitored_at timestamp")
    records = [
        (batch_id, r.get("scored_batch", batch_id), r["feature"], r["metric"], r["value"],
         r["p_value"], r["warn"], r["alert"], r["status"],
         r.get("labelled_rows", context["batch_rows"]), context["model_name"],
         context["model_version"], context["model_run_id"], context["monitor_run_id"],
         context["monitored_at"])
        for r in [*rows, *live]]
    return spark.createDataFrame(records, schema)


def _monitoring_report(spark: SparkSession, settings: Settings, target: TableRef,
                       batch_id: str, rows: list[dict[str, Any]], status: str) -> Path:
    from sparkmlops.monitoring_report import write_report

    table = read_table(spark, target)
    history = [{"batch": r[BATCH_COLUMN], "monitored_at": r["monitored_at"],
                "feature": r["feature"], "metric": r["metric"], "value": r["value"]}
               for r in table.where(F.col("feature") != "_model").collect()]
    # live metrics of each scored batch as its latest monitor run saw them
    latest: dict[tuple[str, str], Any] = {}
    for r in table.where(F.col("feature") == "_model").orderBy("monitored_at").collect():
        latest[(r["scored_batch"], r["metric"])] = r
    live = [{"scored_batch": b, "metric": m, "value": r["value"]}
            for (b, m), r in latest.items()]
    out = Path(settings.resolve_path(f"{settings.state_dir}/reports/monitoring/"
                                     f"{settings.dataset.name}/{batch_id}"))
    return write_report(out, batch_id, rows, history, live, status)


def _run_artifact(run_id: str, path: str) -> dict[str, Any]:
    import json

    try:
        local = MlflowClient().download_artifacts(run_id, path)
    except Exception:  # noqa: BLE001 - any store error means the same thing here
        raise MissingInputError(f"training run {run_id} has no {path}; retrain the model "
                                "to give monitoring a reference") from None
    with open(local) as handle:
        return dict(json.load(handle))
