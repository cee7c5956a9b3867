"""Duplicate keys across batches: append keeps every record, upsert keeps the latest per key.

Bronze is the raw record in both modes. In upsert mode silver, gold and predictions
are written with a Delta MERGE on the business key: the highest ``write.order_by``
wins, an older record arriving late is counted as stale, and re-running a batch
changes no row.
"""

from __future__ import annotations

import pytest

from sparkmlops.errors import ConfigError

UPSERT = ("dataset.write.mode=upsert", "dataset.write.order_by=date_egg")


def test_latest_per_key_breaks_ties_the_same_way_every_time(spark, latest_per_key, sorted_rows):
    schema = "k int, v string, o int, _source_file string"
    rows = [(1, "x", 1, "a.csv"), (1, "y", 1, "b.csv"), (1, "z", 1, "b.csv"), (2, "w", None, "a")]
    for partitions in (1, 3):
        df = spark.createDataFrame(rows, schema).repartition(partitions)
        latest, _ = latest_per_key(df, ["k"], "o")
        # the later file wins a tie on o; within it, a hash of the record decides
        winners = sorted_rows(latest, "k", "v")
        assert winners[0][1] in {"y", "z"} and winners[1] == (2, "w")
        one_partition, _ = latest_per_key(spark.createDataFrame(rows, schema), ["k"], "o")
        assert winners == sorted_rows(one_partition, "k", "v")


def test_upsert_config_is_checked_at_load(make_settings):
    with pytest.raises(ConfigError, match="write.order_by: required when write.mode is upsert"):
        make_settings("dataset.write.mode=upsert")
    with pytest.raises(ConfigError, match=r"write.order_by: unknown column\(s\) \['updated'\]"):
        make_settings(*UPSERT[:1], "dataset.write.order_by=updated")
    with pytest.raises(ConfigError, match=r"\['sample_number'\] must be declared nullable: false"):
        make_settings(*UPSERT, "dataset.schema.1.nullable=true")
    with pytest.raises(ConfigError, match=r"\['island'\] are partition columns"):
        make_settings("dataset.write.partition_by=[island]",
                      "dataset.maintain.zorder_by=[island]")
