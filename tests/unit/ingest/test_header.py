"""A landing file's columns against the declared schema (issue 20): a declared column missing
from a header, an undeclared one landing under a taken name, and a CSV quote that never
closes."""

from __future__ import annotations

import pytest
from chispa import assert_df_equality
from pydantic import ValidationError

from sparkmlops.config import ColumnSpec, SourceSettings
from sparkmlops.errors import ConfigError
from sparkmlops.ingest.landing import (
    SOURCE_FILE_COLUMN,
    SchemaMismatchError,
    check_header,
    first_quoting_error,
    rename_to_schema,
)

FILE = "file:/landing/part1.csv"
DIALECT = {"delimiter": ",", "quotechar": '"', "doublequote": True, "strict": True,
           "escapechar": "\\"}


@pytest.fixture
def penguins(make_settings) -> list[ColumnSpec]:
    return make_settings().dataset.schema_


@pytest.fixture
def header(penguins) -> list[str]:
    return [c.source_name for c in penguins]


def _renamed(header: list[str], old: str, new: str) -> list[str]:
    return [new if h == old else h for h in header]


def _rejection(header: list[str], columns: list[ColumnSpec],
               evolution: str = "add_new_columns") -> str:
    with pytest.raises(SchemaMismatchError) as rejected:
        check_header(FILE, header, columns, evolution)
    return str(rejected.value)


def test_a_renamed_header_of_a_nullable_column_is_a_missing_column(header, penguins):
    renamed = _renamed(header, "Culmen Length (mm)", "Culmen Length (millimetres)")

    assert _rejection(renamed, penguins) == (
        f"{FILE}: column(s) ['Culmen Length (mm)'] missing from the header (it has undeclared "
        "column(s) ['Culmen Length (millimetres)']); set may_be_absent: true on "
        "culmen_length_mm if files may lack it; nothing was written")


def test_a_column_that_may_be_absent_passes_the_header_check(header, penguins):
    columns = [c.model_copy(update={"may_be_absent": c.name == "comments"}) for c in penguins]

    check_header(FILE, header[:-1], columns, "fail")


def test_a_missing_required_and_nullable_column_are_named_together(header, penguins):
    assert _rejection([h for h in header if h not in ("studyName", "Sex")], penguins) == (
        f"{FILE}: required column(s) ['studyName'] and column(s) ['Sex'] missing from the "
        "header; set may_be_absent: true on sex if files may lack it; nothing was written")


def test_an_undeclared_column_under_a_declared_name_is_rejected(header, penguins):
    # the declared header is there too: the new one would land beside it as culmen_length_mm
    assert _rejection([*header, "CULMEN_length_mm"], penguins) == (
        f"{FILE}: undeclared column 'CULMEN_length_mm' would be added to bronze as "
        "'culmen_length_mm', the name of declared column 'culmen_length_mm' (header "
        "'Culmen Length (mm)'); Spark compares column names case-insensitively; "
        "nothing was written")


def test_two_undeclared_columns_under_one_name_are_rejected(header, penguins):
    assert _rejection([*header, "Observer", "observer "], penguins) == (
        f"{FILE}: undeclared column 'observer ' would be added to bronze as 'observer', "
        "as is undeclared column 'Observer'; Spark compares column names case-insensitively; "
        "nothing was written")


def test_an_ignored_undeclared_column_may_share_a_declared_name(header, penguins):
    # ignore_new_columns drops it: nothing lands under the taken name
    check_header(FILE, [*header, "culmen_length_mm", "Observer", "observer "], penguins,
                 "ignore_new_columns")


def test_names_that_differ_in_case_are_duplicates(header, penguins):
    assert _rejection([*header, "sex"], penguins, "ignore_new_columns") == (
        f"{FILE}: duplicate column(s) ['Sex', 'sex'] in the header (Spark compares column "
        "names case-insensitively); nothing was written")


def test_a_header_may_not_carry_a_column_name_of_the_reader(header, penguins):
    assert _rejection([*header, "_Source_File"], penguins, "ignore_new_columns") == (
        f"{FILE}: column(s) ['_Source_File'] in the header carry a name the reader gives its "
        "own columns; rename them in the file; nothing was written")


def test_only_a_nullable_column_may_be_absent(make_settings):
    assert ColumnSpec(name="note", type="string", may_be_absent=True).may_be_absent is True
    with pytest.raises(ValidationError, match=r"may_be_absent: id is nullable: false"):
        ColumnSpec(name="id", type="int", nullable=False, may_be_absent=True)
    with pytest.raises(ConfigError, match=r"datasets/penguins.yml: schema.1: Value error, "
                       r"may_be_absent: sample_number is nullable: false, and every row of a "
                       r"file without it would be quarantined; a column files may lack must "
                       r"be nullable"):
        make_settings("dataset.schema.1.may_be_absent=true")


def test_an_undeclared_column_starting_with_an_underscore_is_a_new_column(spark):
    columns = [ColumnSpec(name="id", type="int")]
    source_df = spark.createDataFrame([(1, "late", "a.csv")],
                                      f"id int, _notes string, {SOURCE_FILE_COLUMN} string")

    added_df = rename_to_schema(source_df, columns, _source("add_new_columns"))
    ignored_df = rename_to_schema(source_df, columns, _source("ignore_new_columns"))

    assert_df_equality(added_df, spark.createDataFrame(
        [(1, "late", "a.csv")], f"id int, notes string, {SOURCE_FILE_COLUMN} string"))
    assert_df_equality(ignored_df, spark.createDataFrame(
        [(1, "a.csv")], f"id int, {SOURCE_FILE_COLUMN} string"))


def _source(evolution: str) -> SourceSettings:
    return SourceSettings(path="landing", format="csv", schema_evolution=evolution)


HEADER = "id,note"


@pytest.mark.parametrize(("lines", "expected"), [
    # a quoted field with a line break in it, a doubled and an escaped quote, a bare one
    ([HEADER, '1,"lost\nre-laid"', '2,"said ""hi"""', '3,"x \\" y"', '4,a "b'], None),
    # the quote never closes: the tokenizer reaches the end of the file inside it
    ([HEADER, "1,ok", '2,"Nest lost', "3,ok", "4,ok"], (3, 5, "unexpected end of data")),
    # it closes on line 4 at a quote followed by text: record 2 swallowed record 3
    ([HEADER, '1,"a"', '2,"Nest lost', '3,"b"', "4,ok"], (3, 4, "',' expected after '\"'")),
    # a quote inside a quoted field that is neither doubled nor escaped
    ([HEADER, '1,"Torgersen,"Adult"'], (2, 2, "',' expected after '\"'")),
])
def test_first_quoting_error_names_the_line_of_the_broken_record(lines, expected):
    assert first_quoting_error("\n".join(lines).split("\n"), DIALECT) == expected
