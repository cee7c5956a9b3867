"""The same pipeline in catalog mode: every table found by name in the metastore.

Spark's own catalog (``spark_catalog``, Delta's catalog on the test session, a temp
warehouse dir) stands in for Unity Catalog / Glue: one run of the bundled sample into a
fresh schema, then the tables are looked up by name only.
"""

from __future__ import annotations

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from sparkmlops.ingest import landing_batch_id
from sparkmlops.pipeline import run_pipeline
from sparkmlops.summary import pipeline_summary
from sparkmlops.tracking import configure_mlflow
from tests.conftest import SAMPLE_LANDING

pytestmark = pytest.mark.e2e


def test_pipeline_in_catalog_mode_writes_managed_tables_found_by_name(
        spark, make_settings, catalog_schema, tmp_path):
    settings = make_settings("storage.catalog=spark_catalog", f"storage.schema={catalog_schema}")
    batch_id = landing_batch_id(spark, str(SAMPLE_LANDING))
    expectations = len(settings.dataset.quality.expectations)

    result = run_pipeline(spark, settings, batch_id)

    schema = f"spark_catalog.{catalog_schema}"
    counts = {t.name: spark.table(f"{schema}.{t.name}").count()
              for t in spark.catalog.listTables(schema)}
    assert counts == {
        "bronze_penguins": 344, "silver_penguins": 342, "quarantine_penguins": 2,
        "gold_penguins_features": 342, "predictions_penguins": 342,
        "validation_results_penguins": expectations,
        # the three landing files, and one ingest_log row for the batch
        "manifest_penguins": 3, "ingest_log_penguins": 1,
    }
    assert all(spark.catalog.tableExists(f"{schema}.{name}") for name in counts)
    assert {t.tableType for t in spark.catalog.listTables(schema)} == {"MANAGED"}
    assert not (tmp_path / "lake").exists(), "a catalog-mode table was written by path"

    # lineage names the catalog tables: the model walks back to its training table by name
    configure_mlflow(settings)
    train = result.step("train")
    champion = MlflowClient().get_model_version_by_alias(settings.dataset.model.name, "champion")
    assert champion.tags["training_table_name"] == f"{schema}.gold_penguins_features"
    assert "training_table_path" not in champion.tags
    lineage = mlflow.artifacts.load_dict(
        f"{MlflowClient().get_run(train.run_id).info.artifact_uri}/lineage.json")
    assert [(i["table"], i["table_name"], i["path"], i["version"]) for i in lineage["inputs"]] \
        == [("gold.penguins_features", f"{schema}.gold_penguins_features", None, 0)]
    summary = pipeline_summary(spark, settings, result)
    assert f"Delta tables in {schema}:" in summary
    assert f"bronze.penguins                  v0    {schema}.bronze_penguins" in summary
    # step outputs and MLflow params keep the logical names, as in path mode
    assert result.step("predict").outputs == {"predictions.penguins": 0}
