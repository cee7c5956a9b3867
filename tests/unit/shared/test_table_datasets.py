"""A Delta table version as an MLflow Dataset: described from what the step knows."""

from __future__ import annotations

import json

from sparkmlops.tracking.datasets import input_tags, table_dataset


def test_a_table_version_is_described_with_its_version_even_zero_and_its_rows():
    entity = table_dataset(fqn="gold.penguins_features", path="/lake/gold/penguins_features",
                           table_name=None, version=0, rows=342)._to_mlflow_entity()

    assert entity.name == "gold.penguins_features@v0"
    assert entity.source_type == "delta_table"
    assert json.loads(entity.source) == {"path": "/lake/gold/penguins_features",
                                         "delta_table_version": 0}
    assert json.loads(entity.profile) == {"delta_table_version": 0, "num_rows": 342}


def test_a_catalog_table_is_named_not_looked_up_and_a_path_loses_its_credentials():
    by_name = table_dataset(fqn="gold.p", path=None, table_name="main.ml.gold_p", version=3,
                            rows=None)._to_mlflow_entity()
    # pragma: allowlist nextline secret
    by_path = table_dataset(fqn="gold.p", path="s3a://KEY:hunter2@bucket/gold/p",
                            table_name=None, version=3, rows=1)._to_mlflow_entity()

    assert json.loads(by_name.source) == {"delta_table_name": "main.ml.gold_p",
                                          "delta_table_version": 3}
    assert json.loads(by_path.source)["path"] == "s3a://KEY:***REDACTED***@bucket/gold/p"
    assert "hunter2" not in by_path.digest + by_path.source + by_path.profile


def test_two_versions_of_a_table_have_different_digests_and_the_same_version_the_same():
    def digest(version: int) -> str:
        return table_dataset(fqn="gold.p", path="/lake/gold/p", table_name=None,
                             version=version, rows=None).digest

    assert digest(1) == digest(1) != digest(2)
    assert input_tags("gold.p", 0) == {"sparkmlops.table": "gold.p",
                                       "sparkmlops.table_version": "0"}
