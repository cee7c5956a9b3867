from __future__ import annotations

from datetime import datetime

from chispa import assert_df_equality

from sparkmlops.config import ColumnSpec
from sparkmlops.ingest.landing import CORRUPT_COLUMN, add_audit_columns, quarantine_reason


def test_quarantine_reason_names_the_first_problem(spark):
    columns = [ColumnSpec(name="id", type="int", nullable=False),
               ColumnSpec(name="note", type="string")]
    source_df = spark.createDataFrame(
        [(1, "ok", None), (None, "x", None), (None, None, "3,bad")],
        f"id int, note string, {CORRUPT_COLUMN} string",
    )

    actual_df = source_df.select("id", quarantine_reason(columns).alias("reason"))

    expected_df = spark.createDataFrame(
        [(1, None), (None, "null in required column id"),
         (None, "unparseable record: malformed line or value not castable to its type")],
        "id int, reason string",
    )
    assert_df_equality(actual_df, expected_df, ignore_nullable=True)


def test_quarantine_reason_flags_nan_and_infinity_unless_the_column_allows_them(spark):
    columns = [ColumnSpec(name="x", type="double"),
               ColumnSpec(name="y", type="float", allow_non_finite=True)]
    inf, nan = float("inf"), float("nan")
    source_df = spark.createDataFrame(
        [(1, 1.5, nan, None), (2, nan, 1.0, None), (3, inf, None, None), (4, -inf, inf, None),
         (5, None, -inf, None)],
        f"id int, x double, y float, {CORRUPT_COLUMN} string",
    )

    actual_df = source_df.select("id", quarantine_reason(columns).alias("reason"))

    # null is a missing value, not a non-finite one; y allows NaN and Infinity
    expected_df = spark.createDataFrame(
        [(1, None), (2, "non-finite value (NaN or Infinity) in column x"),
         (3, "non-finite value (NaN or Infinity) in column x"),
         (4, "non-finite value (NaN or Infinity) in column x"), (5, None)],
        "id int, reason string",
    )
    assert_df_equality(actual_df, expected_df, ignore_nullable=True)


def test_add_audit_columns(spark):
    source_df = spark.createDataFrame([("a",), (None,)], "k string")
    at = datetime(2026, 11, 26, 12, 0, 0)

    actual_df = add_audit_columns(source_df, "b1", at)

    expected_df = spark.createDataFrame(
        [("a", "b1", at), (None, "b1", at)], "k string, _batch_id string, _ingested_at timestamp"
    )
    assert_df_equality(actual_df, expected_df, ignore_nullable=True)
