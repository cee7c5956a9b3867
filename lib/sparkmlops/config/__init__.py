"""Settings: the packaged defaults, the project's conf dir, ``--set`` overrides.

Everything a dataset needs is described in its YAML file: source, schema, keys,
expectations, features, label, model and gate. ``load_settings`` merges the files
(``loader``; where they are: ``confdir``) and validates them into typed settings:
the root ``Settings`` and shared sections (``settings``), one schema module per
stage, named like the stage's folder and command (``ingest``, ``validate``,
``labels``, ``features``, ``train``, ``promote``, ``monitor``, ``maintain``, ``deploy``). An
unknown or missing key fails at load with its key path. Nothing here imports Spark,
feature or estimator code: what needs them is checked after load by
``sparkmlops.preflight.check_settings``.

Example::

    settings = load_settings("local", "penguins", overrides=["state_dir=/tmp/run1"])
    settings.dataset.keys  # ['study_name', 'species', 'sample_number']
"""

from __future__ import annotations

from sparkmlops.config.base import (
    FLOAT_TYPES,
    IDENTIFIER,
    NUMERIC_TYPES,
    GateMode,
    SparkType,
    StrictModel,
)
from sparkmlops.config.deploy import (
    AutoscaleSettings,
    DatabricksDeploySettings,
    DeployJob,
    DeploySettings,
    EmrDeploySettings,
    EmrServerlessSettings,
    ExecutorSettings,
    GithubDeploySettings,
    NotificationSettings,
    PermissionLevel,
    PermissionSpec,
    ScheduleSettings,
    check_quartz_cron,
)
from sparkmlops.config.features import (
    RESERVED_COLUMNS,
    BucketFeature,
    DatePart,
    DatePartsFeature,
    DerivedFeature,
    FeatureSettings,
    TransformFeature,
)
from sparkmlops.config.ingest import (
    ColumnSpec,
    PiiTreatment,
    QuarantineSettings,
    SourceSettings,
    WriteSettings,
)
from sparkmlops.config.labels import AcceptSettings, CrowdSettings, EmSettings, SpammerSettings
from sparkmlops.config.loader import (
    STATE_DIR_ENV,
    load_settings,
    packaged_spark_settings,
    settings_error,
)
from sparkmlops.config.maintain import MaintainSettings
from sparkmlops.config.monitor import Levels, MonitorSettings, RetrainSettings
from sparkmlops.config.promote import PromoteSettings
from sparkmlops.config.settings import (
    PLACEHOLDER,
    REMOTE_ARTIFACT_SCHEMES,
    SERVER_TRACKING_SCHEMES,
    ConfigOrigin,
    DatasetSettings,
    Settings,
    SparkSettings,
    StorageSettings,
    TrackingSettings,
    ValidatePaths,
)
from sparkmlops.config.train import (
    AutomlSettings,
    DataCheckSettings,
    EstimatorSettings,
    LabelSettings,
    ModelSettings,
    SplitSettings,
    TuningSettings,
)
from sparkmlops.config.validate import (
    AnomalyRule,
    ExpectationSpec,
    QualityMetric,
    ValidateSettings,
    gx_expectation_names,
)

__all__ = [
    "FLOAT_TYPES", "IDENTIFIER", "NUMERIC_TYPES", "PLACEHOLDER", "REMOTE_ARTIFACT_SCHEMES",
    "RESERVED_COLUMNS", "SERVER_TRACKING_SCHEMES", "STATE_DIR_ENV", "AcceptSettings",
    "AnomalyRule",
    "AutomlSettings", "AutoscaleSettings", "BucketFeature", "ColumnSpec", "ConfigOrigin",
    "CrowdSettings", "DataCheckSettings", "DatabricksDeploySettings", "DatasetSettings",
    "DatePart", "DatePartsFeature", "DeployJob", "DeploySettings", "DerivedFeature",
    "EmSettings", "EmrDeploySettings", "EmrServerlessSettings", "EstimatorSettings",
    "ExecutorSettings", "ExpectationSpec", "FeatureSettings", "GateMode",
    "GithubDeploySettings", "LabelSettings", "Levels", "MaintainSettings", "ModelSettings",
    "MonitorSettings", "NotificationSettings", "PermissionLevel", "PermissionSpec",
    "PiiTreatment", "PromoteSettings", "QualityMetric", "QuarantineSettings", "RetrainSettings",
    "ScheduleSettings", "Settings", "SourceSettings",
    "SpammerSettings", "SparkSettings", "SparkType", "SplitSettings", "StorageSettings",
    "StrictModel", "TrackingSettings", "TransformFeature", "TuningSettings", "ValidatePaths",
    "ValidateSettings", "WriteSettings", "check_quartz_cron", "gx_expectation_names",
    "load_settings", "packaged_spark_settings", "settings_error",
]
