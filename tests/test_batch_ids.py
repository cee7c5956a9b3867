"""Batch ids are checked at the CLI and library edge; predicates are never pasted SQL."""

from __future__ import annotations

import pyspark.sql.functions as F
import pytest
from chispa import assert_df_equality

from sparkmlops.cli import main
from sparkmlops.errors import InvalidBatchIdError
from sparkmlops.tables import (
    BATCH_COLUMN,
    TableRef,
    check_batch_id,
    current_version,
    read_batch,
    read_table,
)
from sparkmlops.tracking import step_run
from sparkmlops.writes import predicate_sql, replace_batch, replace_where

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


@pytest.mark.parametrize("batch_id", [ESCAPING_ID, "b1 -- x", "é", "b" * 500])
def test_cli_rejects_a_bad_batch_id_with_one_line_and_exit_2(batch_id, tmp_path, capsys):
    state = tmp_path / "state"

    code = main(["ingest", "--batch-id", batch_id, "--set", f"state_dir={state}"])

    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1
    assert err[0].startswith("sparkmlops ingest: InvalidBatchIdError: batch id ")
    assert err[0].endswith("starting with a letter or digit; nothing was written")
    assert not state.exists()


def _table(spark, tmp_path) -> tuple[TableRef, object]:
    ref = TableRef("silver", "t", str(tmp_path / "silver" / "t"))
    source_df = spark.createDataFrame([(1, "b1"), (2, "b2"), (3, None)],
                                      f"v int, {BATCH_COLUMN} string")
    replace_batch(source_df.where(F.col(BATCH_COLUMN) == "b1"), ref, "b1")
    replace_batch(source_df.where(F.col(BATCH_COLUMN) == "b2"), ref, "b2")
    return ref, source_df


def test_replace_batch_refuses_the_escaping_id_and_keeps_the_table(spark, tmp_path):
    ref, _ = _table(spark, tmp_path)
    before = current_version(spark, ref)
    hostile_df = spark.createDataFrame([(9, ESCAPING_ID)], f"v int, {BATCH_COLUMN} string")

    with pytest.raises(InvalidBatchIdError):
        replace_batch(hostile_df, ref, ESCAPING_ID)
    with pytest.raises(InvalidBatchIdError):
        read_batch(spark, ref, ESCAPING_ID)

    assert current_version(spark, ref) == before
    assert sorted(tuple(r) for r in read_table(spark, ref).collect()) == [(1, "b1"), (2, "b2")]


def test_a_predicate_holding_quotes_and_backslashes_replaces_only_its_rows(spark, tmp_path):
    """The mechanism, not the charset: a literal rendered by Spark matches itself only."""
    ref, _ = _table(spark, tmp_path)
    hostile_df = spark.createDataFrame([(9, ESCAPING_ID)], f"v int, {BATCH_COLUMN} string")

    replace_where(hostile_df, ref, F.col(BATCH_COLUMN) == F.lit(ESCAPING_ID))
    replace_where(hostile_df, ref, F.col(BATCH_COLUMN) == F.lit(ESCAPING_ID))

    actual_df = read_table(spark, ref).orderBy("v")
    expected_df = spark.createDataFrame([(1, "b1"), (2, "b2"), (9, ESCAPING_ID)],
                                        f"v int, {BATCH_COLUMN} string")
    assert_df_equality(actual_df, expected_df, ignore_nullable=True)


def test_predicate_sql_round_trips_through_spark_parser(spark):
    source_df = spark.createDataFrame([(ESCAPING_ID,), ("x",), ("it's",), (None,)], "s string")
    predicate = F.col("s").isin(ESCAPING_ID, "it's")

    actual_df = source_df.where(predicate_sql(spark, predicate))

    expected_df = spark.createDataFrame([(ESCAPING_ID,), ("it's",)], "s string")
    assert_df_equality(actual_df, expected_df, ignore_row_order=True)


def test_a_step_with_a_bad_batch_id_starts_no_run(make_settings, tmp_path):
    settings = make_settings()

    with pytest.raises(InvalidBatchIdError), step_run(settings, "ingest", ESCAPING_ID):
        raise AssertionError("the step body must not run")

    assert not (tmp_path / "mlflow.db").exists()
