"""The bad-input corpus (tests/data/bad_inputs): each file's exact bronze and quarantine
content and the reconciled counts."""

from __future__ import annotations

import json
import shutil

import pytest

from sparkmlops.cli import main
from sparkmlops.ingest.landing import MalformedCsvError, SchemaMismatchError
from sparkmlops.ingest.step import IngestOutcome, ingest_step
from sparkmlops.tables import dataset_tables, read_table, table_exists, table_ref

UNPARSEABLE = "unparseable record: malformed line or value not castable to its type"
LAYERS = ("bronze", "quarantine", "manifest", "ingest_log")


def _outcome(result: IngestOutcome, **counts: int | bool) -> IngestOutcome:
    """``result`` as it should be: ``counts`` and every other count 0 (its run and versions
    as they are)."""
    return IngestOutcome(result.run_id, result.outputs, bronze_version=result.bronze_version,
                         **counts)


@pytest.fixture
def ingest(spark, make_settings, tmp_path, bad_inputs):
    """``ingest(*corpus_files, overrides=())``: the ingest step on those files of the corpus;
    (settings, outcome, bronze, quarantine), the counts checked to reconcile."""
    return lambda *names, overrides=(): _ingest(spark, make_settings, tmp_path, bad_inputs,
                                                *names, overrides=overrides)


def _ingest(spark, make_settings, tmp_path, bad_inputs, *names: str,
            overrides: tuple[str, ...] = ()):
    landing = tmp_path / "landing"
    landing.mkdir()
    for name in names:
        shutil.copy(bad_inputs / name, landing / name)
    settings = make_settings(f"dataset.source.path={landing}", *overrides)
    result = ingest_step(spark, settings, "b1")
    bronze = read_table(spark, dataset_tables(settings).bronze)
    quarantine = read_table(spark, dataset_tables(settings).quarantine)
    assert result.rows_in == result.bronze_rows + result.quarantined
    assert bronze.count() == result.bronze_rows
    assert quarantine.count() == result.quarantined
    return settings, result, bronze, quarantine


def test_columns_are_matched_by_header_name_not_position(ingest):
    _, result, bronze, _ = ingest("reordered_columns.csv")

    rows = sorted((r.study_name, r.sample_number, r.island, r.sex, r.body_mass_g, r.stage)
                  for r in bronze.collect())
    assert rows == [("PAL0708", 1, "Torgersen", "MALE", 3750.0, "Adult, 1 Egg Stage"),
                    ("PAL0708", 2, "Dream", "FEMALE", 3750.0, "Adult, 1 Egg Stage")]
    assert result == _outcome(result, rows_in=2, bronze_rows=2, quarantined=0, files=1)


def test_missing_required_column_rejects_the_batch_and_writes_nothing(
        spark, make_settings, tmp_path, bad_inputs):
    landing = tmp_path / "landing"
    landing.mkdir()
    shutil.copy(bad_inputs / "missing_required_column.csv", landing)
    shutil.copy(bad_inputs / "bom.csv", landing)  # a good file in the same batch
    settings = make_settings(f"dataset.source.path={landing}")

    with pytest.raises(SchemaMismatchError,
                       match=r"missing_required_column.csv: required column\(s\) \['studyName'\]"):
        ingest_step(spark, settings, "b1")

    for layer in ("bronze", "quarantine", "manifest", "ingest_log"):
        assert not table_exists(spark, table_ref(settings, layer)), layer


def _landing(tmp_path, bad_inputs, *names: str):
    landing = tmp_path / "landing"
    landing.mkdir()
    for name in names:
        shutil.copy(bad_inputs / name, landing / name)
    return landing


def _uri(path) -> str:
    """A local file as the Hadoop FileSystem names it (file:/tmp/...)."""
    return path.resolve().as_uri().replace("file:///", "file:/")


def test_a_nullable_column_missing_from_the_header_rejects_the_batch(
        spark, make_settings, tmp_path, bad_inputs):
    landing = _landing(tmp_path, bad_inputs, "missing_optional_column.csv", "bom.csv")
    settings = make_settings(f"dataset.source.path={landing}")

    with pytest.raises(SchemaMismatchError) as rejected:
        ingest_step(spark, settings, "b1")

    assert str(rejected.value) == (
        f"{_uri(landing / 'missing_optional_column.csv')}: column(s) ['Comments'] missing from "
        "the header; set may_be_absent: true on comments if files may lack it; "
        "nothing was written")
    for layer in LAYERS:
        assert not table_exists(spark, table_ref(settings, layer)), layer


def test_a_column_that_may_be_absent_reads_null_where_the_header_lacks_it(ingest):
    _, result, bronze, _ = ingest("missing_optional_column.csv", "bom.csv",
                                   overrides=("dataset.schema.16.may_be_absent=true",))

    assert sorted((r.sample_number, r.comments, r._source_file.rsplit("/", 1)[1])
                  for r in bronze.collect()) == [
        (1, None, "bom.csv"), (1, None, "missing_optional_column.csv")]
    assert result == _outcome(result, rows_in=2, bronze_rows=2, quarantined=0, files=2)


def test_a_renamed_header_exits_3_naming_the_file_and_the_column(
        spark, tmp_path, bad_inputs, capsys):
    # issue 20: 'Culmen Length (millimetres)' landed as an all-null culmen_length_mm and a
    # new column holding the values, with exit 0
    landing = _landing(tmp_path, bad_inputs, "renamed_column.csv")

    code = main(["ingest", "--set", f"state_dir={tmp_path}",
                 "--set", f"dataset.source.path={landing}", "--batch-id", "b1"])

    errors = [line for line in capsys.readouterr().err.splitlines()
              if line.startswith("sparkmlops ")]
    assert code == 3
    assert errors == [
        f"sparkmlops ingest: SchemaMismatchError: {_uri(landing / 'renamed_column.csv')}: "
        "column(s) ['Culmen Length (mm)'] missing from the header (it has undeclared column(s) "
        "['Culmen Length (millimetres)']); set may_be_absent: true on culmen_length_mm if "
        "files may lack it; nothing was written"]


def test_a_near_identical_rename_is_a_schema_mismatch_not_an_ambiguous_reference(
        spark, make_settings, tmp_path, bad_inputs):
    # 'Culmen Length mm' lands as culmen_length_mm: beside the declared column of that
    # name it failed the write with AMBIGUOUS_REFERENCE (exit 1, no file named)
    landing = _landing(tmp_path, bad_inputs, "near_identical_rename.csv")
    file = _uri(landing / "near_identical_rename.csv")

    with pytest.raises(SchemaMismatchError) as missing:
        ingest_step(spark, make_settings(f"dataset.source.path={landing}"), "b1")
    may_be_absent = make_settings(f"dataset.source.path={landing}",
                                  "dataset.schema.9.may_be_absent=true")
    with pytest.raises(SchemaMismatchError) as collides:
        ingest_step(spark, may_be_absent, "b1")

    assert str(missing.value) == (
        f"{file}: column(s) ['Culmen Length (mm)'] missing from the header (it has undeclared "
        "column(s) ['Culmen Length mm']); set may_be_absent: true on culmen_length_mm if "
        "files may lack it; nothing was written")
    assert str(collides.value) == (
        f"{file}: undeclared column 'Culmen Length mm' would be added to bronze as "
        "'culmen_length_mm', the name of declared column 'culmen_length_mm' (header "
        "'Culmen Length (mm)'); Spark compares column names case-insensitively; "
        "nothing was written")
    for layer in LAYERS:
        assert not table_exists(spark, table_ref(may_be_absent, layer)), layer


def test_undeclared_column_is_added_to_bronze(ingest):
    _, _, bronze, _ = ingest("extra_column.csv")

    assert bronze.columns[-4:] == ["observer", "_source_file", "_batch_id", "_ingested_at"]
    assert [(r.sample_number, r.observer) for r in bronze.collect()] == [(1, "K. Gorman")]


def test_undeclared_column_is_dropped_when_ignored(ingest):
    _, _, bronze, _ = ingest("extra_column.csv",
                              overrides=("dataset.source.schema_evolution=ignore_new_columns",))

    assert "observer" not in bronze.columns
    assert bronze.count() == 1


def test_undeclared_column_rejects_the_batch_when_policy_is_fail(
        spark, make_settings, tmp_path, bad_inputs):
    landing = tmp_path / "landing"
    landing.mkdir()
    shutil.copy(bad_inputs / "extra_column.csv", landing)
    settings = make_settings(f"dataset.source.path={landing}",
                             "dataset.source.schema_evolution=fail")

    with pytest.raises(SchemaMismatchError, match=r"undeclared column\(s\) \['Observer'\]"):
        ingest_step(spark, settings, "b1")
    assert not table_exists(spark, dataset_tables(settings).bronze)


def test_empty_and_header_only_files_hold_no_rows(ingest):
    _, result, _, _ = ingest("empty.csv", "header_only.csv",
                               "bom.csv")

    # a zero-byte file is an upload not finished: not ready, read once its bytes arrive
    assert result == _outcome(result, rows_in=1, bronze_rows=1, quarantined=0, files=2, not_ready=1)


def test_utf8_bom_does_not_hide_the_first_column(ingest):
    _, _, bronze, _ = ingest("bom.csv")

    assert [(r.study_name, r.sample_number) for r in bronze.collect()] == [("PAL0708", 1)]


def test_quoted_newline_stays_in_its_field(ingest):
    _, result, bronze, _ = ingest("quoted_newline.csv")

    rows = sorted((r.sample_number, r.comments) for r in bronze.collect())
    assert rows == [(1, "Nest lost\nafter storm, re-laid"), (2, None)]
    assert result.quarantined == 0


def test_text_not_in_the_declared_encoding_is_quarantined(ingest):
    _, result, bronze, quarantine = ingest("latin1.csv")

    assert [r.sample_number for r in bronze.collect()] == [2]
    assert [(r.step, r.reason) for r in quarantine.collect()] == [
        ("ingest", "text in column comments is not valid in the declared encoding")]
    assert json.loads(quarantine.first().record)["sample_number"] == 1


def test_malformed_values_and_nulls_in_required_columns(ingest):
    _, result, bronze, quarantine = ingest("malformed.csv")

    assert [r.sample_number for r in bronze.collect()] == [3]
    assert sorted(r.reason for r in quarantine.collect()) == [
        "null in required column sample_number",
        "unparseable record: malformed line or value not castable to its type",
    ]
    assert all(r._source_file.endswith("/malformed.csv") for r in quarantine.collect())
    # where each record sits: whole file read from offset 0, data records 1 and 2
    assert sorted((r._source_offset, r._source_row, r.reason[:4]) for r in quarantine.collect()) \
        == [(0, 1, "unpa"), (0, 2, "null")]


@pytest.mark.parametrize("multiline", ["true", "false"])
def test_a_line_with_too_few_or_too_many_fields_is_quarantined(multiline, ingest):
    # Spark's CSV column pruning would turn a short line's missing fields into nulls
    _, result, bronze, quarantine = ingest("wrong_field_count.csv",
        overrides=(f"dataset.source.options.multiLine={multiline}",))

    assert sorted(r.sample_number for r in bronze.collect()) == [1, 4]
    assert sorted((r._source_row, r.record.split(",")[1], r.reason) for r in quarantine.collect()) \
        == [(2, "2", UNPARSEABLE), (3, "3", UNPARSEABLE)]
    assert result == _outcome(result, rows_in=4, bronze_rows=2, quarantined=2, files=1)


def test_rows_are_located_in_large_split_files(spark, make_settings, tmp_path, bad_inputs):
    # a file larger than the split size is read by several tasks: a bad record is
    # located by its split's byte offset and its record number within the split
    landing = tmp_path / "landing"
    landing.mkdir()
    lines = (bad_inputs / "wrong_field_count.csv").read_text().splitlines()
    good = lines[1]
    body = [good.replace(",1,", f",{n},", 1) for n in range(1, 3001)]
    body[2499] = body[2499].replace(",3750,", ",heavy,")  # record 2500
    (landing / "big.csv").write_text("\n".join([lines[0], *body]) + "\n")
    settings = make_settings(f"dataset.source.path={landing}",
                             "dataset.source.options.multiLine=false")
    spark.conf.set("spark.sql.files.maxPartitionBytes", "131072")
    try:
        result = ingest_step(spark, settings, "b1")
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    quarantine = read_table(spark, dataset_tables(settings).quarantine).collect()

    assert result.rows_in == 3000 and len(quarantine) == 1
    bad = quarantine[0]
    assert bad._source_offset > 0
    with open(landing / "big.csv", "rb") as f:
        f.seek(bad._source_offset)
        f.readline()  # the split's first record starts after the next line break
        located = [f.readline() for _ in range(bad._source_row)][-1].decode()
    assert located.split(",")[1] == "2500" and ",heavy," in located


def test_duplicate_keys_within_a_batch_are_kept_in_bronze_for_validation(ingest):
    # bronze is the raw, append-only record; the suite's compound-unique expectation
    # (critical) is what stops a batch with duplicate keys
    _, result, bronze, _ = ingest("duplicate_keys.csv")

    assert sorted((r.sample_number, r.sex) for r in bronze.collect()) == [
        (1, "FEMALE"), (1, "MALE"), (2, "MALE")]


def test_a_file_that_is_not_csv_is_rejected(spark, make_settings, tmp_path, bad_inputs):
    landing = tmp_path / "landing"
    landing.mkdir()
    shutil.copy(bad_inputs / "not_csv.csv", landing)
    settings = make_settings(f"dataset.source.path={landing}")

    with pytest.raises(SchemaMismatchError, match=r"not_csv.csv: required column\(s\)"):
        ingest_step(spark, settings, "b1")


# columns the Parquet files below do not hold (all but studyName, Sample Number, Species
# and Body Mass (g))
PARQUET_ABSENT = tuple(f"dataset.schema.{i}.may_be_absent=true"
                       for i in (3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16))


def _json_line(n: int, **over: object) -> str:
    record = {"studyName": "PAL0708", "Sample Number": n, "Species": "Gentoo penguin (Pygoscelis "
              "papua)", "Island": "Biscoe", "Body Mass (g)": 5000.0, "Sex": "MALE",
              "Date Egg": "2007-11-27"}
    record.update(over)
    return json.dumps(record)


def test_json_lines_source_with_a_malformed_line(spark, make_settings, tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "part.jsonl").write_text("\n".join([
        _json_line(1), '{"studyName": "PAL0708", "Sample Number": 2, ', _json_line(3, Sex=None),
        _json_line(4, **{"Body Mass (g)": "heavy"})]) + "\n")
    settings = make_settings(f"dataset.source.path={landing}", "dataset.source.format=json",
                             "dataset.source.options={}")

    result = ingest_step(spark, settings, "b1")
    bronze = read_table(spark, dataset_tables(settings).bronze)
    quarantine = read_table(spark, dataset_tables(settings).quarantine)

    assert result == _outcome(result, rows_in=4, bronze_rows=2, quarantined=2, files=1)
    assert sorted((r.sample_number, r.sex, r.body_mass_g) for r in bronze.collect()) == [
        (1, "MALE", 5000.0), (3, None, 5000.0)]
    assert sorted((r._source_row, r.record[:30]) for r in quarantine.collect()) == [
        (2, '{"studyName": "PAL0708", "Samp'), (4, '{"studyName": "PAL0708", "Samp')]


def test_parquet_source_and_a_rejected_type_change(spark, make_settings, tmp_path):
    good = tmp_path / "good"
    spark.createDataFrame(
        [("PAL0708", 1, "Gentoo penguin (Pygoscelis papua)", 5000.0),
         (None, 2, "Gentoo penguin (Pygoscelis papua)", 4000.0),
         ("PAL0708", 3, "Gentoo penguin (Pygoscelis papua)", 4500.0)],
        "studyName string, `Sample Number` int, Species string, `Body Mass (g)` double",
    ).coalesce(1).write.parquet(str(good))
    settings = make_settings(f"dataset.source.path={good}", "dataset.source.format=parquet",
                             "dataset.source.options={}", *PARQUET_ABSENT)

    result = ingest_step(spark, settings, "b1")
    quarantine = read_table(spark, dataset_tables(settings).quarantine).collect()

    assert result == _outcome(result, rows_in=3, bronze_rows=2, quarantined=1, files=1)
    # Parquet gives the exact row index in the file
    assert [(r.reason, r._source_offset, r._source_row) for r in quarantine] == [
        ("null in required column study_name", 0, 2)]
    bad = tmp_path / "bad"
    spark.createDataFrame([("PAL0708", "one", "Gentoo")],
                          "studyName string, `Sample Number` string, Species string",
                          ).write.parquet(str(bad))
    settings = make_settings(f"dataset.source.path={bad}", "dataset.source.format=parquet",
                             "dataset.source.options={}", *PARQUET_ABSENT,
                             "dataset.schema.12.may_be_absent=true", state_dir=tmp_path / "other")
    with pytest.raises(SchemaMismatchError,
                       match=r"column 'Sample Number' is string, declared int; a type change"):
        ingest_step(spark, settings, "b1")


def test_a_parquet_file_without_a_declared_column_rejects_the_batch(
        spark, make_settings, tmp_path):
    renamed = tmp_path / "renamed"
    spark.createDataFrame(
        [("PAL0708", 1, "Gentoo penguin (Pygoscelis papua)", 5000.0, 45.1)],
        "studyName string, `Sample Number` int, Species string, `Body Mass (g)` double, "
        "`Culmen Length (millimetres)` double",
    ).coalesce(1).write.parquet(str(renamed))
    # every column the file lacks may be absent, except the renamed one
    absent = [o for o in PARQUET_ABSENT if not o.startswith("dataset.schema.9.")]
    settings = make_settings(f"dataset.source.path={renamed}", "dataset.source.format=parquet",
                             "dataset.source.options={}", *absent)

    with pytest.raises(SchemaMismatchError) as rejected:
        ingest_step(spark, settings, "b1")

    [file] = [f for f in renamed.iterdir() if f.name.endswith(".parquet")]
    assert str(rejected.value) == (
        f"{_uri(file)}: column(s) ['Culmen Length (mm)'] missing from the file's schema (it has "
        "undeclared column(s) ['Culmen Length (millimetres)']); set may_be_absent: true on "
        "culmen_length_mm if files may lack it; nothing was written")
    for layer in LAYERS:
        assert not table_exists(spark, table_ref(settings, layer)), layer


@pytest.mark.parametrize(("name", "problem"), [
    # no quote after it: Spark read records 3 and 4 into record 2's Comments, which landed
    # in bronze as 'Nest lost\nPAL0708,3,...' (2 rows in for 4 records, exit 0)
    ("unclosed_quote.csv", "a quoted field opens and never closes; Spark would read every "
     "line after it into that field and lose their records"),
    # the Stage quote of record 3 ends it: records 2 and 3 became one quarantined record
    # (3 rows in for 4 records)
    ("unclosed_quote_then_quotes.csv", "a quoted field does not close before a quote on "
     "line 4 that text follows; Spark would read lines 3-4 as one record and lose the "
     "records between"),
])
def test_an_unclosed_quote_in_a_multi_line_csv_rejects_the_batch_naming_its_line(
        name, problem, spark, make_settings, tmp_path, bad_inputs):
    landing = _landing(tmp_path, bad_inputs, name, "quoted_newline.csv")
    settings = make_settings(f"dataset.source.path={landing}")
    assert settings.dataset.source.options["multiLine"] == "true"

    with pytest.raises(MalformedCsvError) as rejected:
        ingest_step(spark, settings, "b1")

    assert str(rejected.value) == (
        f"{_uri(landing / name)}: line 3: {problem}; nothing was written")
    assert MalformedCsvError.exit_code == 3
    for layer in LAYERS:
        assert not table_exists(spark, table_ref(settings, layer)), layer


def test_an_unclosed_quote_without_multi_line_ends_with_its_line(ingest):
    # Spark's line-by-line reader ends the open field at the line break: every record is
    # one row, the open quote is dropped, nothing is joined
    _, result, bronze, _ = ingest("unclosed_quote.csv", "unclosed_quote_then_quotes.csv",
                                   overrides=("dataset.source.options.multiLine=false",))

    assert sorted((r._source_file.rsplit("/", 1)[1], r.sample_number, r.culmen_length_mm,
                   r.comments) for r in bronze.collect()) == [
        ("unclosed_quote.csv", 1, 39.1, None), ("unclosed_quote.csv", 2, 39.5, "Nest lost"),
        ("unclosed_quote.csv", 3, 40.3, None), ("unclosed_quote.csv", 4, 36.7, None),
        ("unclosed_quote_then_quotes.csv", 1, 39.1, None),
        ("unclosed_quote_then_quotes.csv", 2, 39.5, "Nest lost"),
        ("unclosed_quote_then_quotes.csv", 3, 40.3, None),
        ("unclosed_quote_then_quotes.csv", 4, 36.7, None)]
    assert result == _outcome(result, rows_in=8, bronze_rows=8, quarantined=0, files=2)
