"""Delta table versions as MLflow Datasets: what fills a run's "Datasets" column in the UI.

A step's run records each Delta version it read as params (``input.<table>.version``) and in
``lineage.json``; the train and predict runs also log those inputs with ``mlflow.log_input``
(context ``training`` / ``scoring``), so the MLflow UI lists them beside the run.

The Dataset is built from what the step already knows (the table, its version, the rows it
counted), never from the DataFrame: ``mlflow.data.from_spark`` gives a ``SparkDataset``
whose ``profile`` runs a Spark job over the whole frame (``rdd.mapPartitions`` and
``sumApprox``, read when the input is logged) and whose source drops version 0 (MLflow 3.17's
``DeltaDatasetSource.to_dict`` keeps the version only when it is truthy) and, for a table of
a catalog other than ``hive_metastore`` / ``spark_catalog``, asks the Databricks REST API for
the table's id. The source path passes ``redact_text``: a credential in a URI never reaches
MLflow.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from mlflow.data.delta_dataset_source import DeltaDatasetSource
from mlflow.data.meta_dataset import MetaDataset

from sparkmlops.redact import redact_text

# the input tags besides MLflow's own ``mlflow.data.context``
TAG_TABLE = "sparkmlops.table"
TAG_TABLE_VERSION = "sparkmlops.table_version"


class DeltaTableVersion(DeltaDatasetSource):
    """A Delta table at a version, by path or by catalog name, described without a lookup
    (``table_ref`` names a catalog table ``catalog.schema.table``, which the parent's
    constructor takes as it is)."""

    def to_dict(self) -> dict[Any, Any]:
        info: dict[str, Any] = {}
        if self.path is not None:
            info["path"] = self.path
        if self.delta_table_name is not None:
            info["delta_table_name"] = self.delta_table_name
        if self.delta_table_version is not None:
            info["delta_table_version"] = self.delta_table_version
        return info


class TableDataset(MetaDataset):
    """A Delta table version as a Dataset: its source, a digest of (address, version) and the
    rows the step counted as its profile; no data is read to describe it."""

    def __init__(self, source: DeltaTableVersion, *, name: str, rows: int | None) -> None:
        self._rows = rows
        self._version = source.delta_table_version
        where = source.delta_table_name or source.path
        digest = hashlib.sha256(f"{where}@{source.delta_table_version}".encode()).hexdigest()
        super().__init__(source, name=name, digest=digest[:8])

    @property
    def profile(self) -> dict[str, Any]:
        profile: dict[str, Any] = {"delta_table_version": self._version}
        if self._rows is not None:
            profile["num_rows"] = self._rows
        return profile

    def to_dict(self) -> dict[str, str]:
        return {**super().to_dict(), "profile": json.dumps(self.profile)}


def table_dataset(*, fqn: str, path: str | None, table_name: str | None, version: int,
                  rows: int | None) -> TableDataset:
    """``<layer>.<dataset>@v<version>`` (the name MLflow's own ``load_delta`` would give a
    table version): by catalog name when the table has one, else by its redacted path."""
    if table_name is not None:
        source = DeltaTableVersion(delta_table_name=table_name, delta_table_version=version)
    else:
        source = DeltaTableVersion(path=redact_text(str(path)), delta_table_version=version)
    return TableDataset(source, name=f"{fqn}@v{version}", rows=rows)


def input_tags(fqn: str, version: int) -> dict[str, str]:
    """The tags of the logged input: which table and version, in sparkmlops' own names."""
    return {TAG_TABLE: fqn, TAG_TABLE_VERSION: str(version)}
