"""Train's I/O edge: gold → a tracked, registered model version @challenger; and
``reproduce``, which refits a train run from what it recorded."""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession

from sparkmlops.config import (
    DatasetSettings,
    FeatureSettings,
    LabelSettings,
    ModelSettings,
    Settings,
)
from sparkmlops.errors import MissingInputError, ReproductionMismatch
from sparkmlops.features import mllib
from sparkmlops.model_events import EventRecorder, model_event_log, moved, registered
from sparkmlops.pii import pii_columns
from sparkmlops.spark import persisted
from sparkmlops.tables import (
    DatasetTables,
    TableRef,
    crowd_tables,
    current_version,
    dataset_tables,
    ingest_order,
    read_table,
    version_or_current,
)
from sparkmlops.tracking import provenance
from sparkmlops.tracking.owners import TAG_DATASET
from sparkmlops.tracking.provenance import code_identity
from sparkmlops.tracking.registry import (
    CHALLENGER,
    MODEL_CARD_ARTIFACT,
    TAG_METRIC,
    TAG_MODEL_CARD,
    TAG_TRAINING_RUN,
    TAG_TRAINING_TABLE_VERSION,
)
from sparkmlops.tracking.runs import (
    TAG_BATCH,
    TAG_GIT_COMMIT,
    TAG_STEP,
    StepOutcome,
    StepTracker,
    configure_mlflow,
    get_run,
    infer_signature,
    run_json,
    step_run,
    tool_run,
)
from sparkmlops.train import fitting, plots, reproduce, tuning
from sparkmlops.train.reference import REFERENCE_ARTIFACT, model_reference, reference_rows
from sparkmlops.train.reproduce import Reproduction
from sparkmlops.train.window import WINDOW_ARTIFACT, training_window

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOutcome(StepOutcome):
    """The registered model version (@challenger), its holdout metrics and what it learnt."""

    step: ClassVar[str] = "train"
    model: str = ""
    model_version: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    rows_train: int = 0
    rows_test: int = 0
    training_table_version: int | None = None
    estimator: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    why: str | None = None  # a search's or AutoML's reason for the estimator it chose

    @property
    def summary(self) -> dict[str, Any]:
        return {"model": self.model, "version": self.model_version, "metrics": self.metrics,
                "rows_train": self.rows_train, "rows_test": self.rows_test,
                "training_table_version": self.training_table_version,
                "estimator": self.estimator, "params": self.params,
                **({"why": self.why} if self.why else {})}


def train_step(
    spark: SparkSession, settings: Settings, batch_id: str, *, gold_version: int | None = None
) -> TrainOutcome:
    """Gold table version → MLlib pipeline → holdout metrics → registry version @challenger.

    The estimator is the config's, searched over ``model.tuning.grid`` when set, or
    chosen by AutoML (``model.automl.enabled``) among estimator families within
    its time budget. Candidates are nested runs; the estimator that won is logged
    as ``training/estimator.json``, which is what ``reproduce`` refits.
    """
    dataset, tables = settings.dataset, dataset_tables(settings)
    model, gold = dataset.model, tables.gold
    with step_run(settings, TrainOutcome.step, batch_id) as tracker:
        version = version_or_current(spark, gold, gold_version)
        source = f"{gold.fqn} v{version}"
        data = _read_window(spark, tracker, tables, version, model.window_batches)
        with persisted(*fitting.split_train_test(data, dataset)) as (train, test):
            n_train, n_test = _count_split(tracker, train, test, data=data, gold=gold,
                                           version=version)
            _check_training_data(data, train, test, dataset, source=source)
            with fitting.fit_failures_named(source):
                trained, fit_seconds = _fit(train, dataset, tracker)
            # scored once: seven evaluators and the plots each read it again
            with persisted(trained.model.transform(test)) as (scored,):
                with fitting.fit_failures_named(source):
                    metrics = fitting.evaluate(scored, model.task)
                signature = model_signature(test, scored, mllib.model_input_columns(dataset))
                _log_training(tracker, trained, model, features=dataset.features,
                              label=dataset.label, gold=gold, version=version,
                              metrics=metrics, fit_seconds=fit_seconds)
                _log_holdout(tracker, scored, trained.model, features=dataset.features,
                             task=model.task, classes=dataset.label.classes)
            _log_reference(tracker, data, trained.model, features=dataset.features,
                           task=model.task, pii=pii_columns(dataset.schema_),
                           seed=model.split.seed)
        card = {**_model_card(tracker, gold, version, dataset=dataset.name, batch_id=batch_id,
                              config_hash=settings.config_hash(), metrics=metrics,
                              primary_metric=model.primary_metric),
                **_crowd_lineage(spark, settings, tracker)}
        model_version = _register(tracker, trained.model, signature, name=model.name,
                                  card=card,
                                  trail=model_event_log(spark, settings, batch_id=batch_id,
                                                        wrote=tracker.wrote))
        tracker.metrics({"tracking_seconds": round(tracker.mlflow_seconds, 3)})
        return TrainOutcome(
            tracker.run_id, {}, model=model.name, model_version=model_version,
            metrics=metrics, rows_train=n_train, rows_test=n_test,
            training_table_version=version, estimator=trained.estimator.type,
            params=trained.estimator.params, why=trained.reason or None,
        )


def _read_window(
    spark: SparkSession, tracker: StepTracker, tables: DatasetTables, version: int | None,
    window_batches: int,
) -> DataFrame:
    """Gold at ``version``, limited to the latest ``window_batches`` batches (all when 0);
    the run records which batches, so ``reproduce`` reads the same."""
    order = ingest_order(spark, tables.ingest_log) if window_batches else []
    data, window = training_window(read_table(spark, tables.gold, version), order,
                                   window_batches)
    if window is not None:
        tracker.log_dict({"batches": window}, WINDOW_ARTIFACT)
        tracker.params({"window_batches": len(window)})
    return data


def _count_split(
    tracker: StepTracker, train: DataFrame, test: DataFrame, *, data: DataFrame, gold: TableRef,
    version: int | None,
) -> tuple[int, int]:
    """(training rows, holdout rows), recorded on the run; MissingInputError if either is 0."""
    n_train, n_test = train.count(), test.count()
    if n_train == 0 or n_test == 0:
        raise MissingInputError(
            f"{gold.fqn} v{version} has {n_train} training and {n_test} holdout rows "
            "with a label; need both"
        )
    rows = data.count()
    with tracker.timing():
        tracker.read(gold, version, rows, context="training")
        tracker.count("rows_train", n_train)
        tracker.count("rows_test", n_test)
        # gold rows whose label is null (not settled by the crowd, null or not a class by
        # label.expr): kept and scored, never trained on
        tracker.count("rows_without_label", rows - n_train - n_test)
    return n_train, n_test


def _check_training_data(
    data: DataFrame, train: DataFrame, test: DataFrame, dataset: DatasetSettings, *, source: str
) -> None:
    """Refuse data no model can be trained or judged on, before any fit (a search's or
    AutoML's too): one line, not an MLlib trace.

    The profile is the first job through the derived SQL, so a gold table that features
    did not check (written before the check, or config changed since) fails here with
    the feature named, not with 190 lines of Java.
    """
    with mllib.derived_failures_named(data, dataset.features, keys=dataset.keys, source=source):
        fitting.check_training_data(train, test, dataset, source=source)


def _fit(
    train: DataFrame, dataset: DatasetSettings, tracker: StepTracker
) -> tuple[tuning.TrainedModel, float]:
    """The config's estimator (searched when a grid is set), or AutoML's pick; and the
    seconds the fit took."""
    started = time.monotonic()
    fit = tuning.automl if dataset.model.automl.enabled else tuning.search
    trained = fit(train, dataset, tracker=tracker)
    return trained, time.monotonic() - started


def _log_training(
    tracker: StepTracker, trained: tuning.TrainedModel, model: ModelSettings, *,
    features: FeatureSettings, label: LabelSettings, gold: TableRef, version: int | None,
    metrics: dict[str, float], fit_seconds: float,
) -> None:
    """What was fitted, on what, and how it scored on the holdout."""
    search = "automl" if model.automl.enabled else model.tuning.method
    tracker.params({
        "estimator": trained.estimator.type,
        **{f"estimator.{k}": v for k, v in trained.estimator.params.items()},
        "search": search,
        "split.seed": model.split.seed,
        "split.test_fraction": model.split.test_fraction,
        "features.numeric": ",".join(features.numeric_inputs),
        "features.categorical": ",".join(features.categorical_inputs),
        "features.defined": ",".join(c for _, c in features.defined_columns()),
        "features.impute": features.impute,
        "features.categorical_encoding": features.categorical_encoding,
        "features.scale": features.scale,
        "training_table": gold.fqn,
        "training_table_version": version,
        **({"label.expr": label.expr} if label.expr is not None else {}),
    })
    tracker.metrics({**metrics, "fit_seconds": round(fit_seconds, 3),
                     "candidates": len(trained.candidates)})
    tracker.log_dict(trained.estimator.model_dump(), "training/estimator.json")
    if trained.candidates:
        tracker.log_dict({"candidates": [asdict(c) for c in trained.candidates]},
                         "training/candidates.json")
    if trained.leaderboard:
        tracker.log_dict({"leaderboard": trained.leaderboard, "why": trained.reason},
                         "training/automl.json")
    if trained.reason:
        tracker.tags({"sparkmlops.model_choice": trained.reason[:5000]})


def _log_holdout(
    tracker: StepTracker, scored: DataFrame, model: PipelineModel, *,
    features: FeatureSettings, task: str, classes: list[str] | None,
) -> None:
    """The scored holdout's evaluation plots."""
    with tempfile.TemporaryDirectory(prefix="sparkmlops-plots-") as out:
        plots.write_plots(scored, model, task, classes, Path(out))
        tracker.log_artifacts(out, "plots")


def _log_reference(
    tracker: StepTracker, data: DataFrame, model: PipelineModel, *,
    features: FeatureSettings, task: str, pii: list[str], seed: int,
) -> None:
    """The reference profile of the training window as the model scores it (all its rows,
    or a seeded sample of a big one; ``reference_rows``): what monitoring compares each
    scored batch with, so it never re-reads the training data.

    A ``pii`` input is left out of the profile (and so of drift): the shares of hashed or
    masked values say nothing, and a profile artifact is no place for personal data."""
    with persisted(model.transform(reference_rows(data, seed=seed))) as (scored,):
        reference = model_reference(
            scored, [c for c in features.numeric_inputs if c not in pii],
            [c for c in features.categorical_inputs if c not in pii], task)
    tracker.log_dict(reference.to_dict(), REFERENCE_ARTIFACT)


def _model_card(
    tracker: StepTracker, gold: TableRef, version: int | None, *, dataset: str, batch_id: str,
    config_hash: str, metrics: dict[str, float], primary_metric: str,
) -> dict[str, Any]:
    """What ties a model version to its training data, code, config and run, and how it
    scored: its model card (``MODEL_CARD_ARTIFACT``), read back through
    ``ModelRegistry.model_card``."""
    code = code_identity()
    return {
        "dataset": dataset, "batch_id": batch_id, "training_run_id": tracker.run_id,
        "training_table": gold.fqn, **_table_location_tags("training_table", gold),
        "training_table_version": version,
        "git_commit": tracker.run_tag(tracker.run_id, TAG_GIT_COMMIT),
        "sparkmlops_version": code.version, "wheel_sha256": code.wheel_sha256,
        "config_hash": config_hash, "primary_metric": primary_metric,
        "metrics": {k: round(v, 6) for k, v in metrics.items()},
    }


def _version_tags(card: dict[str, Any], card_uri: str) -> dict[str, object]:
    """The few tags a version carries, to filter and sort on in the MLflow UI (the rest is
    in its card, ``card_uri``)."""
    primary = card["primary_metric"]
    return {TAG_DATASET: card["dataset"], TAG_BATCH: card["batch_id"],
            TAG_TRAINING_RUN: card["training_run_id"],
            TAG_TRAINING_TABLE_VERSION: card["training_table_version"],
            f"{TAG_METRIC}{primary}": card["metrics"][primary],
            TAG_MODEL_CARD: card_uri}


def _crowd_lineage(spark: SparkSession, settings: Settings, tracker: StepTracker
                   ) -> dict[str, object]:
    """With ``label.from: crowd``: the labels table version behind gold's labels (the
    labels stage MERGEs each version it writes into gold in the same run), recorded as
    read and in the model card."""
    if not settings.dataset.label.crowd:
        return {}
    labels = crowd_tables(settings).labels
    version = current_version(spark, labels)
    tracker.read(labels, version, context="labels")
    return {"labels_table": labels.fqn, "labels_table_version": version}


def _register(
    tracker: StepTracker, model: PipelineModel, signature: Any, *, name: str,
    card: dict[str, Any], trail: EventRecorder,
) -> str:
    """Log the PipelineModel, register it as a new version @challenger; its model card
    (``card`` and the version) on the run, then the version's few tags, the card's URI
    among them; then the registration and the alias move in ``trail`` (one commit: the
    registry first, see ``sparkmlops.model_events``)."""
    info = log_pipeline_model(tracker, model, signature=signature, registered_model_name=name)
    model_version = str(info.registered_model_version)
    registry = tracker.registry
    previous = registry.by_alias(name, CHALLENGER)
    registry.set_alias(name, CHALLENGER, model_version)
    card = {"model": name, "version": model_version, **card}
    tracker.log_dict(card, MODEL_CARD_ARTIFACT)
    registry.tag_version(name, model_version, _version_tags(
        card, f"runs:/{tracker.run_id}/{MODEL_CARD_ARTIFACT}"))
    tracker.tags({"model_version": model_version})
    trained_on = f"trained on {card['training_table']} v{card['training_table_version']}"
    trail.record([
        registered(name, model_version, run_id=tracker.run_id, reason=trained_on),
        moved(name, CHALLENGER, str(previous.version) if previous is not None else None,
              model_version, run_id=tracker.run_id, reason=f"the new version, {trained_on}")])
    return model_version


def _table_location_tags(prefix: str, ref: TableRef) -> dict[str, object]:
    """``<prefix>_path`` and, in catalog mode, ``<prefix>_name``: where the table is."""
    tags: dict[str, object] = {}
    if ref.path is not None:
        tags[f"{prefix}_path"] = ref.path
    if ref.table_name is not None:
        tags[f"{prefix}_name"] = ref.table_name
    return tags


def reproduce_step(
    spark: SparkSession, settings: Settings, run_id: str, *, tolerance: float = 1e-9
) -> Reproduction:
    """Refit the model of train run ``run_id`` from its lineage; compare the metrics.

    ``settings`` only locate the tracking store; everything about the model comes
    from the run (``reproduce.recorded_training``). Raises ReproductionMismatch when a
    metric differs by more than ``tolerance`` (the result is recorded in MLflow either way).
    """
    configure_mlflow(settings)
    recorded, batches = _recorded_training(run_id)
    started = time.monotonic()
    # checked: a version gone from the log or vacuumed is one line naming the retention
    data = reproduce.in_batches(read_table(spark, recorded.table, recorded.version), batches)
    with tool_run(f"reproduce {run_id[:8]}", dataset=recorded.dataset.name,
                  step=Reproduction.step) as current:
        current.tags({"sparkmlops.reproduces": run_id})
        reproduced = reproduce.refit(data, recorded)
        result = Reproduction(run_id, current.run_id, recorded.table.address, recorded.version,
                              recorded.estimator, recorded.metrics, reproduced,
                              time.monotonic() - started)
        _log_reproduction(current, result, tolerance=tolerance)
    log.info("%s", result.report())
    if not result.matches(tolerance):
        raise ReproductionMismatch(
            f"run {run_id}: metrics differ by up to {result.max_abs_difference:.3g} "
            f"(tolerance {tolerance:g}); see run {result.reproduce_run_id}")
    return result


def _recorded_training(run_id: str) -> tuple[reproduce.RecordedTraining, list[str] | None]:
    """What train run ``run_id`` recorded, and its training window's batches (None: all)."""
    run = get_run(run_id)
    step = run.data.tags.get(TAG_STEP)
    if step != TrainOutcome.step:
        raise MissingInputError(f"run {run_id} is a {step or 'non-sparkmlops'} run, "
                                f"not a {TrainOutcome.step} run")
    recorded = reproduce.recorded_training(
        run_id, config=_run_artifact(run_id, "config/effective_config.json"),
        estimator=_run_artifact(run_id, "training/estimator.json"),
        lineage=_run_artifact(run_id, "lineage.json"), run_metrics=run.data.metrics)
    windowed = "window_batches" in run.data.params
    batches = _run_artifact(run_id, WINDOW_ARTIFACT)["batches"] if windowed else None
    return recorded, batches


def _run_artifact(run_id: str, path: str) -> dict[str, Any]:
    try:
        return dict(run_json(run_id, path))
    except MissingInputError:
        raise MissingInputError(f"run {run_id} has no artifact {path}; it was trained before "
                                "runs recorded it, or the artifact store is gone") from None


def _log_reproduction(current: StepTracker, result: Reproduction, *, tolerance: float) -> None:
    """The reproduce run's record: what it refitted, each metric's difference, the verdict."""
    current.params({"reproduces": result.run_id, "table_path": result.table_path,
                    "table_version": result.table_version,
                    "estimator": result.estimator.type, "tolerance": tolerance})
    current.metrics({**{f"reproduced.{k}": v for k, v in result.reproduced.items()},
                     **{f"difference.{k}": v for k, v in result.differences.items()},
                     "max_abs_difference": result.max_abs_difference})
    current.outcome("reproduced" if result.matches(tolerance) else "mismatch")
    current.log_text(result.report(), "reproduce.txt")


def model_signature(test: DataFrame, scored: DataFrame, columns: list[str]) -> Any:
    """The MLflow signature: ``columns`` of ``test`` in, the ``prediction`` of ``scored`` out."""
    sample = test.select(*columns).limit(20).toPandas()
    return infer_signature(sample, scored.select("prediction").limit(20).toPandas())


def log_pipeline_model(
    tracker: StepTracker, model: PipelineModel, *, signature: Any,
    registered_model_name: str | None = None, artifact_path: str = "model",
) -> Any:
    """``mlflow.spark.log_model`` with declared requirements, and with sparkmlops' code
    when the model holds a Python stage; returns the ModelInfo.

    A Python stage is saved as a reference to sparkmlops code, so such a model carries
    that code (``code_paths``) and the packages it imports: a process without sparkmlops
    installed loads it from the model. Where sparkmlops is imported already, the
    installed package wins (submodules resolve through the package's own ``__path__``).
    Pure-JVM models need neither.
    """
    python_stages = mllib.has_python_stages(model)
    with provenance.package_source() as package:
        return tracker.log_spark_model(
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
