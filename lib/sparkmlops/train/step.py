"""Train's I/O edge: gold → a tracked, registered model version @challenger."""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pyspark.sql import SparkSession

from sparkmlops.config import Settings
from sparkmlops.errors import MissingInputError
from sparkmlops.features import mllib
from sparkmlops.tables import (
    TableRef,
    current_version,
    dataset_tables,
    ingest_order,
    read_table,
)
from sparkmlops.tracking import provenance
from sparkmlops.tracking.provenance import code_identity
from sparkmlops.tracking.registry import CHALLENGER
from sparkmlops.tracking.runs import (
    TAG_GIT_COMMIT,
    StepOutcome,
    StepTracker,
    infer_signature,
    step_run,
)
from sparkmlops.train import fitting, plots, tuning
from sparkmlops.train.reference import REFERENCE_ARTIFACT, model_reference
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
    dataset = settings.dataset
    tables = dataset_tables(settings)
    gold = tables.gold
    with step_run(settings, "train", batch_id) as tracker:
        version = gold_version if gold_version is not None else current_version(spark, gold)
        order = ingest_order(spark, tables.ingest_log) if dataset.model.window_batches else []
        data, window = training_window(read_table(spark, gold, version), order,
                                       dataset.model.window_batches)
        if window is not None:
            tracker.log_dict({"batches": window}, WINDOW_ARTIFACT)
            tracker.params({"window_batches": len(window)})
        train, test = fitting.split_train_test(data, dataset)
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
            # before any fit (a search's or AutoML's too): one line, not an MLlib trace;
            # the profile is the first job through the derived SQL, so a gold table that
            # features did not check (written before the check, or config changed since)
            # fails here with the feature named, not with 190 lines of Java
            with mllib.derived_failures_named(data, dataset.features, keys=dataset.keys,
                                               source=source):
                fitting.check_training_data(train, test, dataset, source=source)
            started = time.monotonic()
            with fitting.fit_failures_named(source):
                trained = _fit(train, dataset, tracker)
                fit_seconds = time.monotonic() - started
                # scored once: seven evaluators and the plots each read it again
                scored = trained.model.transform(test).persist()
                metrics = fitting.evaluate(scored, dataset.model.task)
            with tempfile.TemporaryDirectory(prefix="sparkmlops-plots-") as out:
                plots.write_plots(scored, trained.model, dataset.model.task,
                                  dataset.label.classes, Path(out))
                signature = model_signature(test, scored,
                                            mllib.model_input_columns(dataset))
                # what monitoring compares each scored batch with, so it never
                # re-reads the training data: the holdout's features and scores
                reference = model_reference(
                    scored, dataset.features.numeric_inputs, dataset.features.categorical_inputs,
                    dataset.model.task)
                _log_training(tracker, trained, gold, version, dataset, metrics, fit_seconds)
                tracker.log_artifacts(out, "plots")
                tracker.log_dict(reference.to_dict(), REFERENCE_ARTIFACT)
            scored.unpersist()
        finally:
            train.unpersist()
            test.unpersist()
        model_version = _register(trained.model, signature, settings, tracker, gold,
                                  version, batch_id, metrics)
        tracker.metrics({"tracking_seconds": round(tracker.mlflow_seconds, 3)})
        return TrainOutcome(
            tracker.run_id, {}, model=dataset.model.name, model_version=model_version,
            metrics=metrics, rows_train=n_train, rows_test=n_test,
            training_table_version=version, estimator=trained.estimator.type,
            params=trained.estimator.params, why=trained.reason or None,
        )


def _fit(train: Any, dataset: Any, tracker: StepTracker) -> tuning.TrainedModel:
    """The config's estimator (searched when a grid is set), or AutoML's pick."""
    if dataset.model.automl.enabled:
        return tuning.automl(train, dataset, tracker=tracker)
    return tuning.search(train, dataset, tracker=tracker)


def _log_training(
    tracker: StepTracker, trained: tuning.TrainedModel, gold: TableRef, version: int | None,
    dataset: Any, metrics: dict[str, float], fit_seconds: float,
) -> None:
    model = dataset.model
    search = "automl" if model.automl.enabled else model.tuning.method
    tracker.params({
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


def _register(
    model: Any, signature: Any, settings: Settings, tracker: StepTracker, gold: TableRef,
    version: int | None, batch_id: str, metrics: dict[str, float],
) -> str:
    """Log the PipelineModel, register it as a new version @challenger with lineage tags."""
    name = settings.dataset.model.name
    info = log_pipeline_model(tracker, model, signature=signature,
                              registered_model_name=name)
    model_version = str(info.registered_model_version)
    registry = tracker.registry
    registry.set_alias(name, CHALLENGER, model_version)
    code = code_identity()
    registry.tag_version(name, model_version, {
        "training_table": gold.fqn, **_table_location_tags("training_table", gold),
        "training_table_version": version, "batch_id": batch_id,
        "git_commit": tracker.run_tag(tracker.run_id, TAG_GIT_COMMIT),
        "sparkmlops_version": code.version, "wheel_sha256": code.wheel_sha256,
        "config_hash": settings.config_hash(), "training_run_id": tracker.run_id,
        **{f"metric.{k}": round(v, 6) for k, v in metrics.items()},
    })
    tracker.tags({"model_version": model_version})
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
    sample = test.select(*columns).limit(20).toPandas()
    return infer_signature(sample, scored.select("prediction").limit(20).toPandas())


def log_pipeline_model(
    tracker: StepTracker, model: Any, *, signature: Any, registered_model_name: str | None = None,
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
