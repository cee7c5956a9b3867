"""Batch ids are checked at the CLI and library edge; predicates are never pasted SQL."""

from __future__ import annotations

import pyspark.sql.functions as F
import pytest
from chispa import assert_df_equality

from sparkmlops.errors import InvalidBatchIdError
from sparkmlops.tables import check_batch_id
from sparkmlops.writes import predicate_sql

# the id that made a replaceWhere predicate match every row (issue 11, case 5)
ESCAPING_ID = "x\\' OR 1=1 --"

HOSTILE_IDS = [
    ESCAPING_ID,
    "x' OR '1'='1",
    "x'' OR ''1''=''1",
    "b1'; DROP TABLE bronze; --",
    "b1 -- comment",
    "b1/* comment */",
    "b1\\",
    "b1\n OR true",
    "b1\x00",
    "b1 b2",
    "b1%",
    "b1:00",
    "a/b",
    "../../etc",
    ".hidden",
    "_hidden",
    "-starts-with-dash",
    "",
    "b" * 129,
    "é",
    "b1é",
    "ｂ1",  # fullwidth b
    "b1\u200b",  # zero-width space
    "١٢٣",  # Arabic-Indic digits: str.isdigit() says yes, the charset says no
]


@pytest.mark.parametrize("batch_id", HOSTILE_IDS, ids=range(len(HOSTILE_IDS)))
def test_hostile_batch_ids_are_rejected(batch_id):
    with pytest.raises(InvalidBatchIdError, match="is not valid: use 1-128 ASCII") as raised:
        check_batch_id(batch_id)
    assert raised.value.exit_code == 2
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("batch_id", ["b2e41c0a9f3d1", "all", "2026-12-03", "run_1.2",
                                      "B" * 128, "0"])
def test_ordinary_batch_ids_pass(batch_id):
    assert check_batch_id(batch_id) == batch_id


def test_predicate_sql_round_trips_through_spark_parser(spark):
    source_df = spark.createDataFrame([(ESCAPING_ID,), ("x",), ("it's",), (None,)], "s string")
    predicate = F.col("s").isin(ESCAPING_ID, "it's")

    actual_df = source_df.where(predicate_sql(spark, predicate))

    expected_df = spark.createDataFrame([(ESCAPING_ID,), ("it's",)], "s string")
    assert_df_equality(actual_df, expected_df, ignore_row_order=True)
