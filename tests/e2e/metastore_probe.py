"""A separate Spark driver on the e2e test's Hive metastore: what a deployer or catalog tool does.

    spark-submit <the metastore's --conf> metastore_probe.py create-schema CATALOG.SCHEMA
    spark-submit <the metastore's --conf> metastore_probe.py describe CATALOG.SCHEMA

``create-schema`` creates the schema the pipeline's catalog mode needs (the jobs never
create one); ``describe`` prints, for every table the schema lists, what the metastore
and Delta say about it, as one ``PROBE {json}`` line: found by name only, never a path.
The metastore is an embedded Derby database, which one JVM at a time may open, so the
test runs this before and after the spark-submit of the pipeline, never beside it.
"""

from __future__ import annotations

import json
import sys

from pyspark.sql import SparkSession


def describe(spark: SparkSession, schema: str) -> dict[str, dict[str, object]]:
    tables = {}
    for listed in spark.catalog.listTables(schema):
        name = f"{schema}.{listed.name}"
        [detail] = spark.sql(f"DESCRIBE DETAIL {name}").collect()
        [latest] = spark.sql(f"DESCRIBE HISTORY {name} LIMIT 1").collect()
        tables[name] = {"type": listed.tableType, "format": detail["format"],
                        "name": detail["name"], "location": detail["location"],
                        "version": latest["version"], "rows": spark.table(name).count()}
    return tables


def main(argv: list[str]) -> int:
    command, schema = argv
    spark = SparkSession.builder.appName(f"metastore-probe-{command}").getOrCreate()
    try:
        if command == "create-schema":
            spark.sql(f"CREATE SCHEMA {schema}")
            print("PROBE " + json.dumps({"created": schema}))
        else:
            print("PROBE " + json.dumps(describe(spark, schema), sort_keys=True))
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
