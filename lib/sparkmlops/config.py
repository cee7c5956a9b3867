"""Settings: the packaged defaults, the project's conf dir, ``--set`` overrides.

Everything a dataset needs is described in its YAML file: source, schema, keys,
expectations, features, label, model and gate. The files are merged in this order,
later over earlier: the packaged ``base.yml``, the packaged ``<env>.yml``, the
project's ``base.yml`` and ``<env>.yml`` (both optional), the project's
``datasets/<name>.yml``, then ``--set key.path=value``; and validated into typed
settings; an unknown or missing key fails at load with its key path. Where the
files are: ``sparkmlops.confdir``.

Example::

    settings = load_settings("local", "penguins", overrides=["state_dir=/tmp/run1"])
    settings.dataset.keys  # ['study_name', 'species', 'sample_number']
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import importlib.util
import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from sparkmlops.confdir import (
    ConfDir,
    check_name,
    find_conf_dir,
    is_uri,
    join,
    open_conf_dir,
    packaged_location,
    packaged_text,
    parent,
)
from sparkmlops.errors import ConfigError

log = logging.getLogger(__name__)

STATE_DIR_ENV = "SPARKMLOPS_STATE_DIR"
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"

SparkType = Literal["string", "int", "long", "double", "float", "boolean", "date", "timestamp"]
GateMode = Literal["enabled", "dry_run", "disabled"]
# the declared types that can hold NaN and +-Infinity
FLOAT_TYPES = ("double", "float")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- platform settings


class SparkSettings(StrictModel):
    master: str | None = "local[*]"
    app_name: str = "sparkmlops"
    use_existing_session: bool = False
    log_level: str = "WARN"
    conf: dict[str, str] = Field(default_factory=dict)


# a value left for the deployer to fill in (conf/emr.yml's bucket): never written to
PLACEHOLDER = "CHANGE-ME"


class StorageSettings(StrictModel):
    """Where the tables live: paths under ``root``, or a metastore catalog and schema.

    Path mode (no catalog, the local default): ``<root>/<layer>/<dataset>``. Catalog
    mode (``catalog`` and ``schema``): every table is ``<catalog>.<schema>.<layer>_<name>``,
    a managed table addressed by name only; with ``external`` it is registered by name
    at ``<root>/<layer>/<name>`` instead (see sparkmlops.tables).
    """

    root: str
    catalog: str | None = Field(None, pattern=IDENTIFIER)
    schema_: str | None = Field(None, alias="schema", pattern=IDENTIFIER)
    external: bool = False

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("root")
    @classmethod
    def _not_a_placeholder(cls, root: str) -> str:
        if PLACEHOLDER in root:
            raise ValueError(f"{root} is a placeholder; set storage.root to a location this "
                             "job may write (e.g. --set storage.root=s3a://<bucket>/<prefix>)")
        return root

    @model_validator(mode="after")
    def _catalog_and_schema_together(self) -> StorageSettings:
        if (self.catalog is None) != (self.schema_ is None):
            given, missing = (("catalog", "schema") if self.schema_ is None
                              else ("schema", "catalog"))
            raise ValueError(f"storage.{missing}: required with storage.{given} (catalog mode "
                             "names every table <catalog>.<schema>.<layer>_<dataset>); set "
                             "both, or neither for tables by path")
        if self.external and self.catalog is None:
            raise ValueError("storage.external: only with storage.catalog and storage.schema "
                             "(tables by path are always at storage.root)")
        return self

    @property
    def catalog_mode(self) -> bool:
        return self.catalog is not None


# tracking URIs whose runs outlive the driver: an MLflow server, or Databricks' own
SERVER_TRACKING_SCHEMES = ("http://", "https://", "databricks")
# artifact stores that outlive the driver (local and file: paths do not on a cluster)
REMOTE_ARTIFACT_SCHEMES = ("s3://", "s3a://", "gs://", "wasbs://", "abfss://", "dbfs:/",
                           "hdfs://", "mlflow-artifacts:", "runs:/", "models:/")


class TrackingSettings(StrictModel):
    tracking_uri: str
    registry_uri: str | None = None
    experiment: str
    artifact_location: str | None = None
    # A cluster env (emr, databricks) sets this: its driver's disk goes with the
    # cluster, so runs and the model registry must live on a tracking server.
    require_server: bool = False

    @model_validator(mode="after")
    def _server_when_required(self) -> TrackingSettings:
        if not self.require_server:
            return self
        if not self.tracking_uri.startswith(SERVER_TRACKING_SCHEMES):
            raise ValueError(
                f"tracking.tracking_uri: {self.tracking_uri} would keep MLflow runs and the "
                "model registry on the driver, lost with the cluster "
                "(tracking.require_server: true); set MLFLOW_TRACKING_URI to an http(s):// "
                "MLflow server (or 'databricks' on Databricks)")
        location = self.artifact_location
        if location is not None and not location.startswith(REMOTE_ARTIFACT_SCHEMES):
            raise ValueError(
                f"tracking.artifact_location: {location} is on the driver's disk "
                "(tracking.require_server: true); set it to null (the server's artifact "
                "store) or an s3://, dbfs:/, abfss:// ... location")
        return self

    @property
    def unity_catalog_registry(self) -> bool:
        """True when models register in Unity Catalog (MLflow 3 defaults to it on Databricks)."""
        registry = self.registry_uri or (
            "databricks-uc" if self.tracking_uri.startswith("databricks") else "")
        return registry.startswith("databricks-uc")


class QualityPaths(StrictModel):
    # null: each validation's Data Docs are logged to its MLflow run (data_docs/)
    data_docs_dir: str | None


# ---------------------------------------------------------------- dataset settings


class SourceSettings(StrictModel):
    path: str
    format: Literal["csv", "json", "parquet"]
    options: dict[str, str] = Field(default_factory=dict)
    # A column in the files that the schema does not declare: add it to bronze as a
    # nullable column, ignore it, or reject the batch. Type changes and missing
    # required columns are always rejected.
    schema_evolution: Literal["add_new_columns", "ignore_new_columns", "fail"] = (
        "add_new_columns")
    # A landing file is known by its bytes (sha256), not its mtime: a touched file or a
    # byte-identical copy is never read twice. A file at a path already ingested whose
    # bytes changed: stop the ingest (fail, the default: its old rows are downstream and
    # only a person can say whether the new ones replace or add to them), ignore the new
    # bytes (skip), or read them into the new batch (reingest).
    on_changed_file: Literal["fail", "skip", "reingest"] = "fail"

    @field_validator("options", mode="before")
    @classmethod
    def _options_as_text(cls, value: Any) -> Any:
        # Spark reader options are strings; YAML's `multiLine: true` means "true"
        if not isinstance(value, dict):
            return value
        return {k: (str(v).lower() if isinstance(v, bool) else
                    str(v) if isinstance(v, int | float) else v) for k, v in value.items()}


class ColumnSpec(StrictModel):
    name: str = Field(pattern=IDENTIFIER)
    source: str | None = None
    type: SparkType
    nullable: bool = True
    # A double/float column holding NaN or +-Infinity is quarantined at ingest (Spark's
    # readers parse `NaN`, `Infinity`, `-Inf`, and MLlib cannot train or score on
    # them); true keeps them, for a column where they mean something.
    allow_non_finite: bool = False

    @model_validator(mode="after")
    def _non_finite_only_for_floats(self) -> ColumnSpec:
        if self.allow_non_finite and self.type not in FLOAT_TYPES:
            raise ValueError(f"allow_non_finite: only a double or float column can hold NaN "
                             f"or Infinity; {self.name} is {self.type}")
        return self

    @property
    def source_name(self) -> str:
        return self.source or self.name


class ExpectationSpec(StrictModel):
    """One Great Expectations expectation, by its GX name and arguments."""

    expectation: str = Field(pattern=r"^expect_[a-z0-9_]+$")
    kwargs: dict[str, Any] = Field(default_factory=dict)
    severity: Literal["critical", "warning"] = "critical"

    @model_validator(mode="after")
    def _known_to_gx(self) -> ExpectationSpec:
        names = gx_expectation_names()
        if names and self.expectation not in names:
            close = difflib.get_close_matches(self.expectation, list(names), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"unknown Great Expectations expectation {self.expectation!r}{hint}")
        return self

    @property
    def column(self) -> str | None:
        value = self.kwargs.get("column")
        return str(value) if value is not None else None

    @property
    def columns(self) -> list[str]:
        """Every column the expectation names (column, column_A/B, column_list)."""
        named = [self.kwargs.get(k) for k in ("column", "column_A", "column_B")]
        listed = self.kwargs.get("column_list") or []
        return [str(c) for c in [*named, *listed] if c is not None]

    @property
    def label(self) -> str:
        """A stable readable name, e.g. ``expect_column_values_to_not_be_null(sex)``."""
        return f"{self.expectation}({self.column})" if self.column else self.expectation


@functools.cache
def gx_expectation_names() -> dict[str, str]:
    """GX 1.x core expectations, snake_case name → class name, without importing GX.

    Read from ``great_expectations/expectations/core/__init__.py`` (importing GX
    takes seconds; every job loads config). Empty when GX is not installed.
    """
    spec = importlib.util.find_spec("great_expectations")
    if spec is None or not spec.submodule_search_locations:
        return {}
    core = Path(next(iter(spec.submodule_search_locations))) / "expectations" / "core"
    try:
        text = (core / "__init__.py").read_text()
    except OSError:
        return {}
    return dict(re.findall(r"from \.(expect_\w+) import \(?\s*(Expect\w+)", text))


class QualitySettings(StrictModel):
    gate: GateMode = "enabled"
    expectations: list[ExpectationSpec] = Field(default_factory=list)
    # sample failing values per row-level expectation in the GX result and Data Docs;
    # each costs GX one more Spark job (a full scan when nothing fails), and the
    # failing rows are in quarantine anyway
    partial_unexpected_count: int = Field(0, ge=0, le=1000)


# each is the Spark SQL function of that name (dayofweek: 1 = Sunday ... 7 = Saturday)
DatePart = Literal["year", "quarter", "month", "weekofyear", "dayofmonth", "dayofweek",
                   "dayofyear", "hour"]
# names the gold table or the fitted pipeline already uses
RESERVED_COLUMNS = frozenset({"label", "label_raw", "_batch_id", "features", "prediction",
                              "probability", "rawPrediction"})
NUMERIC_TYPES = frozenset({"int", "long", "float", "double"})
_INFINITIES = {"inf": float("inf"), "+inf": float("inf"), "infinity": float("inf"),
               "-inf": float("-inf"), "-infinity": float("-inf")}


class DatePartsFeature(StrictModel):
    """Numeric calendar parts of a date or timestamp column, named ``<column>_<part>``."""

    column: str
    parts: list[DatePart] = Field(min_length=1)

    @property
    def outputs(self) -> list[str]:
        return [f"{self.column}_{part}" for part in self.parts]


class DerivedFeature(StrictModel):
    """A Spark SQL expression; later ones may use earlier ones."""

    name: str = Field(pattern=IDENTIFIER)
    expr: str


class TransformFeature(StrictModel):
    """A registered Python ``DataFrame -> DataFrame`` function that adds ``outputs``."""

    function: str
    params: dict[str, Any] = Field(default_factory=dict)
    outputs: list[Annotated[str, Field(pattern=IDENTIFIER)]] = Field(min_length=1)

    @field_validator("function")
    @classmethod
    def _importable(cls, value: str) -> str:
        from sparkmlops.errors import FeatureTransformError
        from sparkmlops.features.transforms import resolve_transform

        try:
            resolve_transform(value)
        except FeatureTransformError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _params_fit_the_function(self) -> TransformFeature:
        from sparkmlops.features.transforms import check_transform_params, resolve_transform

        try:
            json.dumps(self.params, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"params: must be plain JSON values (they are saved with the "
                             f"model): {exc}") from None
        try:
            check_transform_params(resolve_transform(self.function), self.params)
        except TypeError as exc:
            raise ValueError(f"params: do not fit {self.function}: {exc}") from None
        return self


class BucketFeature(StrictModel):
    """``column`` cut at ``splits`` by MLlib's Bucketizer into bucket indexes 0..n-1;
    null and NaN get bucket n (their own). Splits may be "-inf" / "inf"."""

    name: str = Field(pattern=IDENTIFIER)
    column: str
    splits: list[float] = Field(min_length=3)

    @field_validator("splits", mode="before")
    @classmethod
    def _infinities_as_text(cls, value: Any) -> Any:
        # YAML has .inf, but "-inf" / "inf" read better and are what people write
        if not isinstance(value, list):
            return value
        return [_INFINITIES.get(v.strip().lower(), v) if isinstance(v, str) else v
                for v in value]

    @field_validator("splits")
    @classmethod
    def _strictly_increasing(cls, value: list[float]) -> list[float]:
        if any(math.isnan(v) for v in value):
            raise ValueError(f"NaN is not a split point: {value}")
        if any(b <= a for a, b in zip(value, value[1:], strict=False)):
            raise ValueError(f"split points must be strictly increasing, got {value}")
        return value


class FeatureSettings(StrictModel):
    """The features, all computed inside the MLlib pipeline, in this order: date parts,
    derived SQL, Python transforms, buckets; then imputation, encoding, scaling.

    The model's inputs are ``numeric`` and ``categorical`` (schema or defined columns),
    plus every date part (numeric) and bucket (categorical) not listed as the other kind.
    Derived and transform columns not listed are intermediates.
    """

    date_parts: list[DatePartsFeature] = Field(default_factory=list)
    derived: list[DerivedFeature] = Field(default_factory=list)
    transforms: list[TransformFeature] = Field(default_factory=list)
    buckets: list[BucketFeature] = Field(default_factory=list)
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    categorical_encoding: Literal["onehot", "index"] = "onehot"
    impute: Literal["median", "mean", "mode"] = "median"
    scale: Literal["auto", "standard", "minmax", "none"] = "auto"

    @property
    def numeric_inputs(self) -> list[str]:
        """The numeric model inputs: ``numeric``, then date parts not listed as categorical."""
        parts = [c for d in self.date_parts for c in d.outputs]
        return _unique([*self.numeric, *[c for c in parts if c not in self.categorical]])

    @property
    def categorical_inputs(self) -> list[str]:
        """The categorical model inputs: ``categorical``, then buckets not listed as numeric."""
        buckets = [b.name for b in self.buckets]
        return _unique([*self.categorical, *[c for c in buckets if c not in self.numeric]])

    @property
    def columns(self) -> list[str]:
        """Every model input, numeric first."""
        return [*self.numeric_inputs, *self.categorical_inputs]

    def defined_columns(self) -> list[tuple[str, str]]:
        """(key path, column) of every column the feature definitions add, in stage order."""
        return [
            *[(f"features.date_parts.{i}", c) for i, d in enumerate(self.date_parts)
              for c in d.outputs],
            *[(f"features.derived.{i}", d.name) for i, d in enumerate(self.derived)],
            *[(f"features.transforms.{i}", c) for i, t in enumerate(self.transforms)
              for c in t.outputs],
            *[(f"features.buckets.{i}", b.name) for i, b in enumerate(self.buckets)],
        ]

    def check_columns(self, types: dict[str, str]) -> None:
        """Check every column reference against the schema (``name → type``) and the
        columns defined before it; raise ``ValueError`` naming the key path."""
        seen: dict[str, str] = {}
        for key, column in self.defined_columns():
            clash = ("a schema column" if column in types else
                     "a reserved name" if column in RESERVED_COLUMNS else seen.get(column))
            if clash:
                raise ValueError(f"{key}: column {column!r} is already {clash}")
            seen[column] = f"defined by {key}"
        for i, spec in enumerate(self.date_parts):
            kind = types.get(spec.column)
            if kind not in ("date", "timestamp"):
                raise ValueError(f"features.date_parts.{i}.column: {spec.column!r} must be a "
                                 f"date or timestamp schema column, found {kind or 'no column'}")
            if kind == "date" and "hour" in spec.parts:
                raise ValueError(f"features.date_parts.{i}.parts: hour needs a timestamp, "
                                 f"{spec.column!r} is a date")
        upstream = {c for _, c in self.defined_columns()} - {b.name for b in self.buckets}
        for i, bucket in enumerate(self.buckets):
            if bucket.column in types and types[bucket.column] not in NUMERIC_TYPES:
                raise ValueError(f"features.buckets.{i}.column: {bucket.column!r} is a "
                                 f"{types[bucket.column]} column; buckets need a number")
            _require_known(f"features.buckets.{i}.column", [bucket.column],
                           set(types) | upstream)
        known = set(types) | set(seen)
        _require_known("features.numeric", self.numeric, known)
        _require_known("features.categorical", self.categorical, known)
        textual = [c for c in self.numeric if c in types and types[c] not in NUMERIC_TYPES]
        if textual:
            raise ValueError(f"features.numeric: {textual} are not number columns; list them "
                             "under categorical (or use date_parts for dates)")
        twice = sorted({c for c in self.numeric if c in self.categorical}
                       | {c for c in self.numeric if self.numeric.count(c) > 1}
                       | {c for c in self.categorical if self.categorical.count(c) > 1})
        if twice:
            raise ValueError(f"features: {twice} listed more than once in numeric/categorical")
        if not self.columns:
            raise ValueError("features: no model inputs; list columns under numeric or "
                             "categorical, or define date_parts or buckets")


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


class LabelSettings(StrictModel):
    source: str
    classes: list[str] | None = None  # class index = position; None for regression


ESTIMATOR_CLASSES: dict[str, str] = {
    "logistic_regression": "pyspark.ml.classification.LogisticRegression",
    "decision_tree_classifier": "pyspark.ml.classification.DecisionTreeClassifier",
    "random_forest_classifier": "pyspark.ml.classification.RandomForestClassifier",
    "gbt_classifier": "pyspark.ml.classification.GBTClassifier",
    "linear_regression": "pyspark.ml.regression.LinearRegression",
    "decision_tree_regressor": "pyspark.ml.regression.DecisionTreeRegressor",
    "random_forest_regressor": "pyspark.ml.regression.RandomForestRegressor",
    "gbt_regressor": "pyspark.ml.regression.GBTRegressor",
}
EstimatorType = Literal[
    "logistic_regression", "decision_tree_classifier", "random_forest_classifier",
    "gbt_classifier", "linear_regression", "decision_tree_regressor",
    "random_forest_regressor", "gbt_regressor",
]
REGRESSORS = frozenset({"linear_regression", "decision_tree_regressor",
                        "random_forest_regressor", "gbt_regressor"})
# MLlib's GBTClassifier is binary only
BINARY_ONLY = frozenset({"gbt_classifier"})
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "binary_classification": ("areaUnderROC", "areaUnderPR", "accuracy", "f1", "precision",
                              "recall", "logLoss"),
    "multiclass_classification": ("accuracy", "f1", "precision", "recall", "logLoss"),
    "regression": ("rmse", "mae", "r2"),
}
# params the platform sets itself on every estimator
RESERVED_PARAMS = frozenset({"featuresCol", "labelCol", "predictionCol", "probabilityCol",
                             "rawPredictionCol"})


def estimator_param_names(estimator_type: str) -> set[str]:
    """The MLlib Params of an estimator class, read from the class (no JVM needed)."""
    from pyspark.ml.param import Param

    module, _, name = ESTIMATOR_CLASSES[estimator_type].rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    return {attr for attr in dir(cls) if isinstance(getattr(cls, attr, None), Param)}


def _check_params(key: str, estimator_type: str, names: list[str]) -> None:
    known = estimator_param_names(estimator_type) - RESERVED_PARAMS
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{key}: {estimator_type} has no parameter {name!r}{hint}")


class EstimatorSettings(StrictModel):
    type: EstimatorType
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_params(self) -> EstimatorSettings:
        _check_params("model.estimator.params", self.type, list(self.params))
        return self


class TuningSettings(StrictModel):
    """Hyperparameter search over ``grid`` (MLlib param name → values to try).

    ``cross_validator`` assigns rows to folds by a hash of the business keys and the
    seed (deterministic); ``train_validation_split`` holds out ``train_ratio`` of
    the training rows. ``parallelism`` candidates are fitted at once.
    """

    method: Literal["none", "cross_validator", "train_validation_split"] = "none"
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    folds: int = Field(3, ge=2, le=20)
    train_ratio: float = Field(0.75, gt=0, lt=1)
    parallelism: int = Field(2, ge=1)

    @field_validator("grid")
    @classmethod
    def _non_empty_values(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        empty = [name for name, values in grid.items() if not values]
        if empty:
            raise ValueError(f"no values to try for {empty}")
        return grid


class AutomlSettings(StrictModel):
    """AutoML: try estimator families (each with its grid) within a time budget.

    ``families`` defaults to every family that fits the task; ``grids`` replaces a
    family's built-in grid. A family is started only while budget remains, and the
    one started finishes, so a run can overshoot by one family's search.
    """

    enabled: bool = False
    time_budget_s: float = Field(600.0, gt=0)
    families: list[EstimatorType] = Field(default_factory=list)
    grids: dict[EstimatorType, dict[str, list[Any]]] = Field(default_factory=dict)
    method: Literal["cross_validator", "train_validation_split"] = "cross_validator"
    folds: int = Field(3, ge=2, le=20)
    train_ratio: float = Field(0.75, gt=0, lt=1)
    parallelism: int = Field(2, ge=1)

    @model_validator(mode="after")
    def _known_grid_params(self) -> AutomlSettings:
        for family, grid in self.grids.items():
            if not grid:
                raise ValueError(f"model.automl.grids.{family}: give at least one parameter "
                                 "to search, or leave the family out to use its built-in grid")
            _check_params(f"model.automl.grids.{family}", family, list(grid))
        return self


class SplitSettings(StrictModel):
    test_fraction: float = Field(0.25, gt=0, lt=1)
    seed: int = 42


class DataCheckSettings(StrictModel):
    """What ``train`` checks before fitting (and ``promote`` before judging): the least
    rows per class of ``label.classes`` in the training rows and the holdout, and the
    least holdout rows; data below them ends the run with ``TrainingDataError``."""

    min_train_rows_per_class: int = Field(5, ge=1)
    min_holdout_rows_per_class: int = Field(1, ge=1)
    min_holdout_rows: int = Field(10, ge=1)


class ModelSettings(StrictModel):
    name: str
    task: Literal["binary_classification", "multiclass_classification", "regression"]
    estimator: EstimatorSettings
    split: SplitSettings = Field(default_factory=SplitSettings)
    primary_metric: str
    tuning: TuningSettings = Field(default_factory=TuningSettings)
    automl: AutomlSettings = Field(default_factory=AutomlSettings)
    data_checks: DataCheckSettings = Field(default_factory=DataCheckSettings)
    # train (and the promotion holdout) on the latest N ingested batches; 0 = all
    window_batches: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _fits_task(self) -> ModelSettings:
        metrics = TASK_METRICS[self.task]
        if self.primary_metric not in metrics:
            raise ValueError(f"model.primary_metric: {self.primary_metric!r} is not a "
                             f"{self.task} metric; choose one of {list(metrics)}")
        families = [("model.estimator.type", self.estimator.type)] + [
            (f"model.automl.families.{i}", f) for i, f in enumerate(self.automl.families)]
        for key, family in families:
            if (family in REGRESSORS) != (self.task == "regression"):
                raise ValueError(f"{key}: {family} does not fit the task {self.task}")
            if family in BINARY_ONLY and self.task != "binary_classification":
                raise ValueError(f"{key}: MLlib's {family} is for binary classification only")
        if self.tuning.method != "none":
            _check_params("model.tuning.grid", self.estimator.type, list(self.tuning.grid))
        return self


class PromotionSettings(StrictModel):
    mode: GateMode = "enabled"
    min_metrics: dict[str, float] = Field(default_factory=dict)
    min_improvement: float = 0.0


class Levels(StrictModel):
    """Warn and alert levels of one metric: a ceiling when warn < alert (drift), a
    floor when warn > alert (live accuracy)."""

    warn: float
    alert: float

    def status(self, value: float) -> str:
        if self.warn <= self.alert:
            return "alert" if value >= self.alert else "warn" if value >= self.warn else "ok"
        return "alert" if value <= self.alert else "warn" if value <= self.warn else "ok"


def _default_drift_levels() -> dict[str, Levels]:
    return {"psi": Levels(warn=0.1, alert=0.25), "ks": Levels(warn=0.1, alert=0.2),
            "null_rate_increase": Levels(warn=0.05, alert=0.2),
            "out_of_range_rate": Levels(warn=0.02, alert=0.1),
            "unseen_rate": Levels(warn=0.02, alert=0.1)}


class MonitoringSettings(StrictModel):
    """Thresholds of ``monitor``: drift metrics per feature and live model metrics.

    ``drift`` applies to every model input and to the prediction (``_score``, the
    positive-class probability, and ``_predicted``, the class); a batch's status is
    its worst row's. ``live`` levels apply once labels for scored rows arrive.
    """

    drift: dict[str, Levels] = Field(default_factory=_default_drift_levels)
    live: dict[str, Levels] = Field(default_factory=dict)

    @field_validator("drift")
    @classmethod
    def _known_drift_metrics(cls, drift: dict[str, Levels]) -> dict[str, Levels]:
        known = {"psi", "ks", "chi_square", "null_rate", "null_rate_increase",
                 "out_of_range_rate", "unseen_rate"}
        unknown = sorted(set(drift) - known)
        if unknown:
            raise ValueError(f"unknown drift metric(s) {unknown}; known: {sorted(known)}")
        return drift


class RetrainSettings(StrictModel):
    """When ``pipeline --mode continuous`` retrains after scoring and monitoring a batch.

    Any of: monitoring says ``alert`` (``on_alert``), a live metric of the batch is
    below its floor (``live_floor``), or at least ``min_new_labelled_rows`` labelled
    rows arrived since the champion's training data (0 turns it off). ``enabled:
    false`` records the decision but never retrains (a control run).
    """

    enabled: bool = True
    on_alert: bool = True
    live_floor: dict[str, float] = Field(default_factory=dict)
    min_new_labelled_rows: int = Field(0, ge=0)


class MaintenanceSettings(StrictModel):
    """OPTIMIZE / Z-ORDER and VACUUM of the dataset's tables."""

    zorder_by: list[str] = Field(default_factory=list)
    # Delta's safety default is 7 days; a shorter retention needs allow_unsafe_retention
    vacuum_retention_hours: float = Field(168.0, ge=0)
    allow_unsafe_retention: bool = False

    @model_validator(mode="after")
    def _retention_is_safe(self) -> MaintenanceSettings:
        if self.vacuum_retention_hours < 168 and not self.allow_unsafe_retention:
            raise ValueError(
                "maintenance.vacuum_retention_hours: below Delta's 168 h safety default; "
                "set allow_unsafe_retention: true to allow it"
            )
        return self


class WriteSettings(StrictModel):
    """How a batch's records land in silver, gold and predictions.

    ``append``: each batch's records are added; a key that an earlier batch already
    put in silver is handled by ``repeated_keys`` (within one batch, key uniqueness is
    the suite's ``expect_compound_columns_to_be_unique``).
    ``upsert``: those tables hold one row per business key, the record with the
    highest ``order_by`` value (a later batch wins a tie), written with a Delta
    MERGE. Bronze is append-only in both modes: the raw record of every row.

    ``repeated_keys`` (append mode; ignored in upsert mode, where the MERGE keeps one
    row per key anyway): a batch row whose key silver already holds from another
    batch (a re-upload, a copied or touched file) is ``quarantine``d with the earlier
    batch named, or makes validate ``fail`` (exit 4) before anything is written, or is
    kept (``allow``: this dataset's keys may repeat across batches, e.g. events).
    """

    mode: Literal["append", "upsert"] = "append"
    repeated_keys: Literal["quarantine", "fail", "allow"] = "quarantine"
    order_by: str | None = None
    # declared columns to partition a table by when it is created (bronze, silver;
    # gold and predictions when they carry the columns)
    partition_by: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _upsert_needs_order(self) -> WriteSettings:
        if self.mode == "upsert" and not self.order_by:
            raise ValueError("write.order_by: required when write.mode is upsert (the column "
                             "whose highest value wins per key)")
        return self


class DatasetSettings(StrictModel):
    name: str = Field(pattern=IDENTIFIER)
    description: str = ""
    source: SourceSettings
    schema_: list[ColumnSpec] = Field(alias="schema", min_length=1)
    keys: list[str] = Field(min_length=1)
    write: WriteSettings = Field(default_factory=WriteSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    features: FeatureSettings
    label: LabelSettings
    model: ModelSettings
    promotion: PromotionSettings = Field(default_factory=PromotionSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    retrain: RetrainSettings = Field(default_factory=RetrainSettings)
    maintenance: MaintenanceSettings = Field(default_factory=MaintenanceSettings)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _columns_exist(self) -> DatasetSettings:
        columns = [c.name for c in self.schema_]
        if len(set(columns)) != len(columns):
            raise ValueError(f"schema: duplicate column names in {columns}")
        known = set(columns)
        _require_known("keys", self.keys, known)
        self._check_write(known)
        for i, spec in enumerate(self.quality.expectations):
            _require_known(f"quality.expectations.{i} ({spec.expectation}) kwargs", spec.columns,
                           known)
        self.features.check_columns({c.name: c.type for c in self.schema_})
        _require_known("label.source", [self.label.source], known)
        _require_known("maintenance.zorder_by", self.maintenance.zorder_by, known)
        classification = self.model.task != "regression"
        if classification and not self.label.classes:
            raise ValueError(f"label.classes: required for task {self.model.task}")
        if self.model.task == "binary_classification" and len(self.label.classes or []) != 2:
            raise ValueError("label.classes: binary_classification needs exactly two classes")
        if self.label.source in self.features.columns:
            raise ValueError(f"features: the label {self.label.source!r} cannot be a feature")
        return self

    def _check_write(self, known: set[str]) -> None:
        write = self.write
        if write.order_by is not None:
            _require_known("write.order_by", [write.order_by], known)
        _require_known("write.partition_by", write.partition_by, known)
        nullable_keys = [c.name for c in self.schema_ if c.name in self.keys and c.nullable]
        if write.mode == "upsert" and nullable_keys:
            raise ValueError(f"keys: upsert merges on the business key, so {nullable_keys} "
                             "must be declared nullable: false")
        zordered = sorted(set(write.partition_by) & set(self.maintenance.zorder_by))
        if zordered:
            raise ValueError(f"maintenance.zorder_by: {zordered} are partition columns "
                             "(write.partition_by); Delta cannot Z-ORDER by them")


def _require_known(key: str, names: list[str], known: set[str]) -> None:
    missing = [n for n in names if n not in known]
    if missing:
        raise ValueError(f"{key}: unknown column(s) {missing}; schema has {sorted(known)}")


# ---------------------------------------------------------------- deployment settings
# The `deploy:` section of an env file: what `sparkmlops deploy` writes into the
# Databricks bundle, the EMR request bodies and the GitHub workflows.

PermissionLevel = Literal["CAN_VIEW", "CAN_MANAGE_RUN", "CAN_MANAGE", "IS_OWNER"]
DeployJob = Literal["batch", "continuous", "maintain"]
# deploy.env is written into job definitions in plain text: names that hold a
# credential belong in the platform's secret store instead
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|ACCESS_KEY",
                          re.IGNORECASE)


def check_quartz_cron(expression: str) -> str:
    """A Quartz cron expression (seconds first, 6 or 7 fields, one day field ``?``)."""
    fields = expression.split()
    if len(fields) not in (6, 7):
        raise ValueError(f"{expression!r} is not a Quartz cron expression: expected 6 or 7 "
                         f"fields (sec min hour day-of-month month day-of-week [year]), "
                         f"got {len(fields)}")
    if "?" not in (fields[3], fields[5]):
        raise ValueError(f"{expression!r}: Quartz needs '?' in day-of-month or day-of-week")
    return expression


class ScheduleSettings(StrictModel):
    # Quartz cron per job (Databricks' syntax); null: the job runs on demand only
    batch: str | None = None
    continuous: str | None = "0 0 * * * ?"
    maintain: str | None = "0 0 3 * * ?"
    timezone: str = "UTC"

    @field_validator("batch", "continuous", "maintain")
    @classmethod
    def _quartz(cls, value: str | None) -> str | None:
        return None if value is None else check_quartz_cron(value)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        import zoneinfo

        if value not in zoneinfo.available_timezones():
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as "
                             f"'UTC' or 'Europe/Berlin')")
        return value


class NotificationSettings(StrictModel):
    on_failure: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]] = (
        Field(default_factory=list))


class PermissionSpec(StrictModel):
    """One Databricks job permission: a level for exactly one principal."""

    level: PermissionLevel
    user_name: str | None = None
    group_name: str | None = None
    service_principal_name: str | None = None

    @model_validator(mode="after")
    def _one_principal(self) -> PermissionSpec:
        named = [k for k in ("user_name", "group_name", "service_principal_name")
                 if getattr(self, k) is not None]
        if len(named) != 1:
            raise ValueError("name exactly one of user_name, group_name, "
                             f"service_principal_name (got {named or 'none'})")
        return self


class AutoscaleSettings(StrictModel):
    min_workers: int = Field(ge=1)
    max_workers: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> AutoscaleSettings:
        if self.max_workers < self.min_workers:
            raise ValueError(f"max_workers {self.max_workers} < min_workers {self.min_workers}")
        return self


class DatabricksDeploySettings(StrictModel):
    spark_version: str
    node_type_id: str
    num_workers: int | None = Field(None, ge=0)
    autoscale: AutoscaleSettings | None = None
    # a service principal's application id: prod runs as it, not as whoever deployed
    run_as_service_principal: str | None = None

    @model_validator(mode="after")
    def _one_size(self) -> DatabricksDeploySettings:
        if (self.num_workers is None) == (self.autoscale is None):
            raise ValueError("set exactly one of num_workers and autoscale")
        return self


class ExecutorSettings(StrictModel):
    instances: int = Field(ge=1)
    cores: int = Field(ge=1)
    memory: str = Field(pattern=r"^[0-9]+[kmgtKMGT]?$")


class EmrServerlessSettings(StrictModel):
    application_id: str
    execution_role_arn: str = Field(pattern=r"^arn:aws[a-z-]*:iam::")
    # s3:// folder for the driver and executor logs; null: EMR Serverless keeps them
    log_uri: str | None = Field(None, pattern=r"^s3://")


def _default_emr_steps() -> list[DeployJob]:
    return ["batch", "maintain"]


class EmrDeploySettings(StrictModel):
    cluster_id: str
    steps: list[DeployJob] = Field(default_factory=_default_emr_steps, min_length=1)
    action_on_failure: Literal["TERMINATE_CLUSTER", "CANCEL_AND_WAIT", "CONTINUE"] = "CONTINUE"
    python: str = "/usr/bin/python3.11"
    executors: ExecutorSettings | None = None
    serverless: EmrServerlessSettings | None = None
    # EventBridge Scheduler runs each job that has a deploy.schedule cron, assuming this
    # role (it may call elasticmapreduce:AddJobFlowSteps or emr-serverless:StartJobRun);
    # null: no schedules are written
    scheduler_role_arn: str | None = Field(None, pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/")
    # what a schedule starts: a step on cluster_id, or an EMR Serverless job run
    schedule_on: Literal["cluster", "serverless"] = "cluster"
    # SNS topic that a failed step or job run is published to (subscribe the addresses of
    # deploy.notifications.on_failure to it); null: no failure rule is written
    failure_topic_arn: str | None = Field(None, pattern=r"^arn:aws[a-z-]*:sns:")

    @model_validator(mode="after")
    def _serverless_schedules_need_serverless(self) -> EmrDeploySettings:
        if self.schedule_on == "serverless" and self.serverless is None:
            raise ValueError("schedule_on: serverless needs the serverless section")
        return self


class GithubDeploySettings(StrictModel):
    branch: str = "main"
    test_command: str = "make test"


class DeploySettings(StrictModel):
    wheel: str = "dist/sparkmlops-{version}-py3-none-any.whl"
    conf_dir: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)
    permissions: list[PermissionSpec] = Field(default_factory=list)
    databricks: DatabricksDeploySettings | None = None
    emr: EmrDeploySettings | None = None
    github: GithubDeploySettings = Field(default_factory=GithubDeploySettings)

    @field_validator("env")
    @classmethod
    def _no_credentials(cls, env: dict[str, str]) -> dict[str, str]:
        secret = sorted(name for name in env if _SECRET_NAME.search(name))
        if secret:
            raise ValueError(f"{secret} look like credentials: they would be written in "
                             "plain text into the job definitions; use the platform's "
                             "secret store")
        return env


class Settings(StrictModel):
    """The effective settings of one job run."""

    env: str
    project_dir: str
    state_dir: str
    spark: SparkSettings
    storage: StorageSettings
    tracking: TrackingSettings
    quality: QualityPaths
    dataset: DatasetSettings
    deploy: DeploySettings = Field(default_factory=DeploySettings)

    @model_validator(mode="before")
    @classmethod
    def _qualify_uc_model_name(cls, data: Any) -> Any:
        # Unity Catalog names a model <catalog>.<schema>.<model>. The dataset file gives
        # the env-independent short name; a UC env puts it beside the tables
        # (storage.catalog / storage.schema) unless the name is already qualified.
        try:
            tracking, storage = data["tracking"], data["storage"]
            model = data["dataset"]["model"]
            uc = TrackingSettings.model_validate(tracking).unity_catalog_registry
        except (KeyError, TypeError, ValidationError):
            return data  # the field validators report what is missing or wrong
        name, catalog, schema = model.get("name"), storage.get("catalog"), storage.get("schema")
        if uc and isinstance(name, str) and "." not in name and catalog and schema:
            model = {**model, "name": f"{catalog}.{schema}.{name}"}
            data = {**data, "dataset": {**data["dataset"], "model": model}}
        return data

    @model_validator(mode="after")
    def _uc_model_name_is_three_part(self) -> Settings:
        name = self.dataset.model.name
        parts = name.split(".")
        if self.tracking.unity_catalog_registry and (
                len(parts) != 3 or not all(re.fullmatch(IDENTIFIER, p) for p in parts)):
            raise ValueError(
                f"dataset.model.name: {name!r} is not a Unity Catalog model name "
                "(tracking.registry_uri: databricks-uc needs catalog.schema.model); set "
                "dataset.model.name to catalog.schema.model, or storage.catalog and "
                "storage.schema to register it there")
        return self

    def config_hash(self) -> str:
        """SHA-256 of the effective settings (stable key order), recorded on every run."""
        payload = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    def resolve_path(self, path: str) -> str:
        """Make a config path absolute against the project dir (URIs pass through);
        the project dir itself may be a URI (a conf dir read from ``s3a://...``)."""
        if is_uri(path):
            return path
        return join(self.project_dir, path)


# ---------------------------------------------------------------- loading


def load_settings(
    env: str,
    dataset: str,
    *,
    overrides: list[str] | None = None,
    conf_dir: str | Path | None = None,
    spark: Any = None,
) -> Settings:
    """Load, merge and validate the settings of ``env`` for ``dataset``.

    ``conf_dir`` is the project's conf dir (default: ``$SPARKMLOPS_CONF_DIR``, else
    ``./conf``); a Hadoop URI is read with ``spark``, else with the session the env
    would use (see ``_session_for_uri``). Relative paths resolve against the conf
    dir's parent, the project dir, unless the config sets ``project_dir``.

    Raises:
        ConfigError: a file is missing, a key is unknown or missing, or a value is
            of the wrong type; the message names the key path.
    """
    check_name("--env", env)
    check_name("--dataset", dataset)
    conf = open_conf_dir(find_conf_dir(conf_dir),
                         spark=lambda: spark or _session_for_uri(env, dataset))
    merged = _merge_env_layers(conf, env)
    dataset_file = f"datasets/{dataset}.yml"
    merged["dataset"] = _parse_yaml(conf.read(dataset_file), conf.path(dataset_file))
    merged["env"] = env
    if os.environ.get(STATE_DIR_ENV):
        merged["state_dir"] = os.environ[STATE_DIR_ENV]
    for override in overrides or []:
        _apply_override(merged, override)
    # A conf dir kept apart from its project (conf in a workspace folder, data in a
    # bucket) names the root with `project_dir`; by default it is the conf dir's parent.
    project = str(merged.get("project_dir") or ".")
    merged["project_dir"] = project if is_uri(project) else join(parent(conf.location), project)
    # MLflow's own variables win over the files, as they do for MLflow itself
    for variable, key in (("MLFLOW_TRACKING_URI", "tracking_uri"),
                          ("MLFLOW_REGISTRY_URI", "registry_uri")):
        if os.environ.get(variable):
            merged.setdefault("tracking", {})[key] = os.environ[variable]
    merged = _substitute(merged, env=env, dataset=dataset)
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, conf.location, env, dataset)) from None


def _merge_env_layers(conf: ConfDir, env: str) -> dict[str, Any]:
    """packaged base < packaged <env> < project base < project <env>."""
    packaged = packaged_location()
    layers = [(f"{packaged}/base.yml", packaged_text("base.yml")),
              (f"{packaged}/{env}.yml", packaged_text(f"{env}.yml")),
              (conf.path("base.yml"), conf.read("base.yml")),
              (conf.path(f"{env}.yml"), conf.read(f"{env}.yml"))]
    if layers[1][1] is None and layers[3][1] is None:
        raise ConfigError(f"unknown env {env!r}: no {env}.yml in the packaged defaults "
                          f"({packaged}) nor in the project conf dir ({conf.location})")
    merged: dict[str, Any] = {}
    for where, text in layers:
        if text is not None:
            merged = _deep_merge(merged, _parse_yaml(text, where))
    return merged


def _session_for_uri(env: str, dataset: str) -> Any:
    """The session a URI conf dir is read with: the one the env would use.

    The project's overlays are not read yet, so it is started from the packaged
    ``base.yml`` + ``<env>.yml`` spark section; on a cluster (``use_existing_session``,
    or under spark-submit) that is the platform's own session anyway.
    """
    from sparkmlops.spark import get_spark

    section: dict[str, Any] = {}
    for name in ("base.yml", f"{env}.yml"):
        text = packaged_text(name)
        if text is not None:
            section = _deep_merge(section, _parse_yaml(text, name).get("spark") or {})
    section = _expand(section, {"env": env, "dataset": dataset})
    log.info("conf dir is a URI: reading it with a Spark session started from the "
             "packaged %s settings", env)
    return get_spark(SparkSettings.model_validate(section))


def _parse_yaml(text: str | None, where: str) -> dict[str, Any]:
    if text is None:
        raise ConfigError(f"config file not found: {where}")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    return data


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _apply_override(merged: dict[str, Any], override: str) -> None:
    """Apply ``key.path=value`` (list items by index: ``quality.expectations.0.severity``)."""
    if "=" not in override:
        raise ConfigError(f"--set {override!r}: expected key.path=value")
    key, raw = override.split("=", 1)
    node: Any = merged
    parts = key.strip().split(".")
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"--set {key}: {part} is not an index of a {len(node)}-item list")
            if last:
                node[int(part)] = yaml.safe_load(raw)
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = yaml.safe_load(raw)
            else:
                node = node.setdefault(part, {})
        else:
            raise ConfigError(f"--set {key}: {parts[depth - 1]} is not a mapping or list")


def _substitute(merged: dict[str, Any], **names: str) -> dict[str, Any]:
    """Expand ``{state_dir}``, ``{project_dir}``, ``{env}`` and ``{dataset}`` in strings.

    ``state_dir`` is expanded first (it may itself hold ``{env}``) and made absolute
    against the project dir, then used in every other value.
    """
    project = str(merged.get("project_dir", ""))
    state = str(_expand(str(merged.get("state_dir", "")), {**names, "project_dir": project}))
    if state and not is_uri(state) and not Path(state).is_absolute():
        state = join(project, state)
    values = {**names, "project_dir": project}
    if state:
        values["state_dir"] = state
    expanded = {k: _expand(v, values) for k, v in merged.items()}
    if state:
        expanded["state_dir"] = state
    return expanded


def _expand(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        for name, replacement in names.items():
            value = value.replace("{" + name + "}", replacement)
        return value
    if isinstance(value, dict):
        return {k: _expand(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, names) for v in value]
    return value


def _describe(exc: ValidationError, conf: str, env: str, dataset: str) -> str:
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        loc = re.sub(r"\bschema_\b", "schema", loc)
        if loc.startswith("dataset"):
            where = f"{conf}/datasets/{dataset}.yml: {loc.removeprefix('dataset').lstrip('.')}"
        else:
            where = f"{conf}/(base|{env}).yml over the packaged defaults: {loc}"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        elif err["type"] == "missing":
            message = "required key is missing"
        problems.append(f"{where.rstrip(': ')}: {message}")
    return "invalid config: " + "; ".join(problems)
