"""Batch ids: the default one follows the landing files' bytes; ids are checked at the CLI
and library edge; predicates are never pasted SQL."""

from __future__ import annotations

import pyspark.sql.functions as F
import pytest
from chispa import assert_df_equality

from sparkmlops.cli import main
from sparkmlops.errors import InvalidBatchIdError
from sparkmlops.ingest.step import default_batch_id
from sparkmlops.tables import BATCH_COLUMN, TableRef, current_version, read_batch, read_table
from sparkmlops.tracking.runs import step_run
from sparkmlops.writes import replace_batch, replace_where

# the id that made a replaceWhere predicate match every row (issue 11, case 5)
ESCAPING_ID = "x\\' OR 1=1 --"


def test_default_batch_id_is_deterministic_and_follows_the_files(spark, tmp_path, landing_csv,
                                                                  make_settings):
    landing = landing_csv.write(tmp_path / "landing", "a.csv", landing_csv.birds(1))
    settings = make_settings(f"dataset.source.path={landing}")  # no manifest: every file is new

    first = default_batch_id(spark, settings)
    again = default_batch_id(spark, settings)
    landing_csv.write(landing, "b.csv", landing_csv.birds(2))
    changed = default_batch_id(spark, settings)

    (landing / "_temporary" / "0").mkdir(parents=True)
    (landing / "_temporary" / "0" / "part-0.csv").write_text("left by a failed write")
    (landing / ".hidden.csv").write_text("x")
    with_hidden = default_batch_id(spark, settings)

    assert first == again
    assert first != changed
    assert with_hidden == changed
    assert first.startswith("b") and len(first) == 13


def test_default_batch_id_follows_content_not_mtime(spark, tmp_path, landing_csv, touch,
                                                    make_settings):
    landing = tmp_path / "landing"
    settings = make_settings(f"dataset.source.path={landing}")  # no manifest: every file is new
    landing_csv.write(landing, "a.csv", landing_csv.birds(1))
    first = default_batch_id(spark, settings)
    touch(landing / "a.csv")
    touched = default_batch_id(spark, settings)
    landing_csv.write(landing, "a.csv", landing_csv.birds(2))
    changed = default_batch_id(spark, settings)

    assert touched == first
    assert changed != first
    assert first.startswith("b") and len(first) == 13


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


def test_a_step_with_a_bad_batch_id_starts_no_run(make_settings, tmp_path):
    settings = make_settings()

    with pytest.raises(InvalidBatchIdError), step_run(settings, "ingest", ESCAPING_ID):
        raise AssertionError("the step body must not run")

    assert not (tmp_path / "mlflow.db").exists()
