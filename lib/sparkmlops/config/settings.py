"""The root ``Settings`` of one job run, its shared platform sections (``spark``,
``storage``, ``tracking``, ``validate``) and the ``dataset`` that gathers the stage
sections (one schema module per stage beside this one)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import (
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from sparkmlops.config.base import IDENTIFIER, NUMERIC_TYPES, StrictModel, require_known
from sparkmlops.config.confdir import is_uri, join
from sparkmlops.config.deploy import DeploySettings
from sparkmlops.config.features import FeatureSettings
from sparkmlops.config.ingest import (
    ColumnSpec,
    QuarantineSettings,
    SourceSettings,
    WriteSettings,
)
from sparkmlops.config.labels import CrowdSettings
from sparkmlops.config.maintain import MaintainSettings
from sparkmlops.config.monitor import MonitorSettings, RetrainSettings
from sparkmlops.config.promote import PromoteSettings
from sparkmlops.config.train import LabelSettings, ModelSettings, expression_columns
from sparkmlops.config.validate import ValidateSettings


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


class ValidatePaths(StrictModel):
    # null: each validation's Data Docs are logged to its MLflow run (data_docs/)
    data_docs_dir: str | None


class DatasetSettings(StrictModel):
    name: str = Field(pattern=IDENTIFIER)
    description: str = ""
    source: SourceSettings
    schema_: list[ColumnSpec] = Field(alias="schema", min_length=1)
    keys: list[str] = Field(min_length=1)
    write: WriteSettings = Field(default_factory=WriteSettings)
    # what quarantine keeps of a refused row's raw record when columns are pii
    quarantine: QuarantineSettings = Field(default_factory=QuarantineSettings)
    # `validate` would shadow pydantic's BaseModel.validate: the key is `validate`
    validate_: ValidateSettings = Field(alias="validate", default_factory=ValidateSettings)
    features: FeatureSettings
    label: LabelSettings
    # judgments of a crowd of labelers, turned into accepted labels by `labels`
    crowd: CrowdSettings | None = None
    model: ModelSettings
    promote: PromoteSettings = Field(default_factory=PromoteSettings)
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    retrain: RetrainSettings = Field(default_factory=RetrainSettings)
    maintain: MaintainSettings = Field(default_factory=MaintainSettings)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _crowd_label_classes(cls, data: Any) -> Any:
        # label.from: crowd trains on the crowd's classes: label.classes defaults to them
        try:
            label, crowd = data["label"], data["crowd"]
            crowd_label = label.get("from") == "crowd" and "classes" not in label
            classes = crowd["classes"]
        except (KeyError, TypeError, AttributeError):
            return data  # the field validators report what is missing or wrong
        if crowd_label and isinstance(classes, list):
            texts = [str(c).lower() if isinstance(c, bool) else str(c) for c in classes]
            data = {**data, "label": {**label, "classes": texts}}
        return data

    @model_validator(mode="after")
    def _columns_exist(self) -> DatasetSettings:
        columns = [c.name for c in self.schema_]
        if len(set(columns)) != len(columns):
            raise ValueError(f"schema: duplicate column names in {columns}")
        known = set(columns)
        require_known("keys", self.keys, known)
        self._check_write(known)
        for i, spec in enumerate(self.validate_.expectations):
            require_known(f"validate.expectations.{i} ({spec.expectation}) kwargs", spec.columns,
                           known)
        self._check_anomaly_columns()
        self.features.check_columns({c.name: c.type for c in self.schema_})
        if self.label.source is not None:
            require_known("label.source", [self.label.source], known)
        self._check_label_expr()
        self._check_crowd()
        self._check_pii()
        require_known("maintain.zorder_by", self.maintain.zorder_by, known)
        classification = self.model.task != "regression"
        if classification and not self.label.classes:
            raise ValueError(f"label.classes: required for task {self.model.task}")
        if self.model.task == "binary_classification" and len(self.label.classes or []) != 2:
            raise ValueError("label.classes: binary_classification needs exactly two classes")
        if self.label.source in self.features.columns:
            raise ValueError(f"features: the label {self.label.source!r} cannot be a feature")
        return self

    def _check_label_expr(self) -> None:
        """``label.expr``: a regression label has no classes, and no column the label is
        computed from is a model input (listed, or named by a derived feature's SQL):
        the model would be handed its answer."""
        label = self.label
        if label.expr is None:
            return
        if self.model.task == "regression" and label.classes:
            raise ValueError("label.classes: a regression label is the number label.expr "
                             "yields; leave label.classes out")
        known = [c.name for c in self.schema_]
        feeds = set(label.columns(known))
        fed = [c for c in self.features.columns if c in feeds]
        for feature in self.features.derived:
            named = expression_columns(feature.expr, known)
            fed += [f"{feature.name} ({c})" for c in named if c in feeds]
        if fed:
            raise ValueError(f"features: {', '.join(dict.fromkeys(fed))} read what "
                             f"label.expr {label.expr!r} computes the label from; the model "
                             "would be given its own label")

    def _check_crowd(self) -> None:
        crowd = self.crowd
        if crowd is None:
            if self.label.crowd:
                raise ValueError("label.from: crowd needs a crowd section (where the "
                                 "judgments land and how they become labels)")
            return
        if len(crowd.item_keys) != len(self.keys):
            raise ValueError(f"crowd.item_keys: {crowd.item_keys} must name the item by the "
                             f"dataset's keys {self.keys}, one column each, in order")
        if self.label.crowd:
            if self.model.task == "regression":
                raise ValueError("label.from: crowd gives class labels; the model's task is "
                                 "regression")
            if self.label.classes != crowd.classes:
                raise ValueError(f"label.classes: {self.label.classes} differ from "
                                 f"crowd.classes {crowd.classes}; leave label.classes out to "
                                 "train on the crowd's classes")

    @property
    def stored_schema(self) -> list[ColumnSpec]:
        """The schema columns the tables hold: all but the ``pii: drop`` ones, which
        ingest removes as it reads (a hashed or masked column keeps its name)."""
        return [c for c in self.schema_ if c.pii != "drop"]

    def _check_pii(self) -> None:
        """A dropped pii column is named nowhere else; a key may be hashed (equal values
        stay equal), never masked or dropped (every key would collapse into one)."""
        pii = {c.name: c.pii for c in self.schema_ if c.pii}
        for key in self.keys:
            if pii.get(key) in ("mask", "drop"):
                raise ValueError(f"keys: {key} is pii: {pii[key]}, which loses the key; a "
                                 "pii key column can only be pii: hash")
        dropped = {name for name, how in pii.items() if how == "drop"}
        used = [("write.order_by", [self.write.order_by] if self.write.order_by else []),
                ("write.partition_by", self.write.partition_by),
                ("maintain.zorder_by", self.maintain.zorder_by),
                ("features", self.features.columns),
                ("features.date_parts", [d.column for d in self.features.date_parts]),
                ("features.buckets", [b.column for b in self.features.buckets]),
                ("label.source", [self.label.source] if self.label.source else []),
                ("label.expr", self.label.columns([c.name for c in self.schema_])
                 if self.label.expr is not None else []),
                *((f"validate.expectations.{i} ({spec.expectation}) kwargs", spec.columns)
                  for i, spec in enumerate(self.validate_.expectations)),
                *((f"validate.anomalies.{i} ({rule.metric}) column", [rule.column])
                  for i, rule in enumerate(self.validate_.anomalies) if rule.column)]
        for key, names in used:
            gone = [n for n in names if n in dropped]
            if gone:
                raise ValueError(f"{key}: {', '.join(gone)} is pii: drop and never reaches "
                                 "bronze; use pii: hash to keep a usable column")

    def _check_anomaly_columns(self) -> None:
        """A rule's column is a schema column, and a numeric one for min, max and mean."""
        types = {c.name: c.type for c in self.schema_}
        for i, rule in enumerate(self.validate_.anomalies):
            if rule.column is None:
                continue
            require_known(f"validate.anomalies.{i} ({rule.metric}) column", [rule.column],
                          set(types))
            if rule.metric in ("min", "max", "mean") and types[rule.column] not in NUMERIC_TYPES:
                raise ValueError(f"validate.anomalies.{i}: {rule.metric} is recorded for numeric "
                                 f"columns only, and {rule.column} is {types[rule.column]}")

    def _check_write(self, known: set[str]) -> None:
        write = self.write
        if write.order_by is not None:
            require_known("write.order_by", [write.order_by], known)
        require_known("write.partition_by", write.partition_by, known)
        nullable_keys = [c.name for c in self.schema_ if c.name in self.keys and c.nullable]
        if write.mode == "upsert" and nullable_keys:
            raise ValueError(f"keys: upsert merges on the business key, so {nullable_keys} "
                             "must be declared nullable: false")
        zordered = sorted(set(write.partition_by) & set(self.maintain.zorder_by))
        if zordered:
            raise ValueError(f"maintain.zorder_by: {zordered} are partition columns "
                             "(write.partition_by); Delta cannot Z-ORDER by them")


@dataclass(frozen=True)
class ConfigOrigin:
    """Which files settings were loaded from: a problem found after the load (see
    ``sparkmlops.preflight``) names its file like a problem found at load."""

    conf_dir: str
    env: str
    dataset: str

    def where(self, key: str) -> str:
        """The file and key path of ``key`` (``dataset.model.x`` → the dataset file)."""
        if key == "dataset" or key.startswith("dataset."):
            where = f"{self.conf_dir}/datasets/{self.dataset}.yml: " + \
                key.removeprefix("dataset").lstrip(".")
        else:
            where = f"{self.conf_dir}/(base|{self.env}).yml over the packaged defaults: {key}"
        return where.rstrip(": ")


class Settings(StrictModel):
    """The effective settings of one job run."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    env: str
    project_dir: str
    state_dir: str
    spark: SparkSettings
    storage: StorageSettings
    tracking: TrackingSettings
    validate_: ValidatePaths = Field(alias="validate")
    dataset: DatasetSettings
    deploy: DeploySettings = Field(default_factory=DeploySettings)
    # set by load_settings; not part of the settings (nor of their hash)
    _origin: ConfigOrigin | None = PrivateAttr(default=None)

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

    @property
    def origin(self) -> ConfigOrigin | None:
        """The files these settings were loaded from; None when built another way."""
        return self._origin

    def config_hash(self) -> str:
        """SHA-256 of the effective settings (stable key order), recorded on every run."""
        payload = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    def resolve_path(self, path: str) -> str:
        """Make a config path absolute against the project dir (URIs and absolute paths
        pass through); the project dir itself may be a URI (a conf dir read from
        ``s3a://...``): an absolute path is still a path of the machine the job runs on
        (``/mnt/tmp/...``), never one in the project's bucket."""
        if is_uri(path) or path.startswith("/"):
            return path
        return join(self.project_dir, path)
