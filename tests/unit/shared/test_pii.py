"""``pii: hash | mask | drop``: the config that declares it, the key it needs, and the
transform ingest applies (hash = Python's HMAC-SHA256, the key in no plan text)."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from chispa import assert_df_equality

from sparkmlops.config import ColumnSpec, QuarantineSettings
from sparkmlops.errors import ConfigError
from sparkmlops.pii import (
    MASK,
    PII_KEY_ENV,
    hmac_hex,
    needs_key,
    pii_key,
    protect_pii,
    protected_value,
)

KEY = "k3y-for-tests-only-0123456789abcdef-0123456789"  # pragma: allowlist secret
OTHER_KEY = "another-key-for-tests-0123456789abcdef-98765"  # pragma: allowlist secret
INDIVIDUAL_ID = 6  # the index of individual_id in penguins' schema


def python_hmac(value: str, key: str = KEY) -> str:
    return hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()


COLUMNS = [ColumnSpec(name="user_id", type="int"),
           ColumnSpec(name="email", type="string", pii="hash"),
           ColumnSpec(name="name", type="string", pii="mask"),
           ColumnSpec(name="phone", type="string", pii="drop")]


# --- config ---------------------------------------------------------------------------

def test_a_column_can_be_marked_hash_mask_or_drop_and_quarantine_takes_a_record_default(
        make_settings):
    settings = make_settings(f"dataset.schema.{INDIVIDUAL_ID}.pii=hash",
                             "dataset.schema.16.pii=drop", "dataset.quarantine.pii_record=drop")

    marked = {c.name: c.pii for c in settings.dataset.schema_ if c.pii}
    assert marked == {"individual_id": "hash", "comments": "drop"}
    assert settings.dataset.quarantine.pii_record == "drop"


def test_quarantine_keeps_a_rebuilt_record_by_default(make_settings):
    assert make_settings().dataset.quarantine == QuarantineSettings(pii_record="rebuild")


@pytest.mark.parametrize(("overrides", "message"), [
    (("dataset.schema.1.pii=hash",),
     "pii: hash turns a value into text; sample_number is int: declare it string "
     "(or use pii: drop)"),
    (("dataset.schema.0.pii=mask",),
     "keys: study_name is pii: mask, which loses the key; a pii key column can only be "
     "pii: hash"),
    (("dataset.schema.9.pii=drop",),
     "features: culmen_length_mm is pii: drop and never reaches bronze; use pii: hash to "
     "keep a usable column"),
    (("dataset.schema.8.pii=drop",),
     "features.date_parts: date_egg is pii: drop and never reaches bronze"),
    (("dataset.schema.6.pii=encrypt",), "pii"),
    (("dataset.quarantine.pii_record=raw",), "quarantine.pii_record"),
])
def test_a_pii_setting_that_cannot_hold_fails_at_load_with_one_line(make_settings, overrides,
                                                                      message):
    with pytest.raises(ConfigError) as error:
        make_settings(*overrides)

    text = str(error.value)
    assert message in text
    assert "\n" not in text


# --- the key --------------------------------------------------------------------------

def test_the_key_comes_from_the_environment_when_a_column_is_hashed():
    assert pii_key(COLUMNS, environ={PII_KEY_ENV: KEY}) == KEY.encode()


def test_no_key_is_needed_without_a_hashed_column():
    masked_only = [ColumnSpec(name="name", type="string", pii="mask")]

    assert not needs_key(masked_only)
    assert pii_key(masked_only, environ={}) is None
    assert needs_key(masked_only, QuarantineSettings(pii_record="hash"))


def test_a_run_that_needs_the_key_and_lacks_it_fails_with_one_line():
    with pytest.raises(ConfigError) as error:
        pii_key(COLUMNS, environ={})

    assert str(error.value) == (
        "SPARKMLOPS_PII_KEY is not set: the dataset has pii: hash columns, whose HMAC key "
        "it is (e.g. `openssl rand -hex 32`, kept in the platform's secret store)")


def test_a_short_key_is_refused():
    with pytest.raises(ConfigError, match="SPARKMLOPS_PII_KEY: 5 characters; the HMAC key"):
        pii_key(COLUMNS, environ={PII_KEY_ENV: "short"})


# --- the transform --------------------------------------------------------------------

def test_hash_is_pythons_hmac_sha256_mask_keeps_presence_drop_removes_and_nulls_stay(spark):
    source_df = spark.createDataFrame(
        [(1, "ana@example.com", "Ana Lima", "555-0101"),
         (2, "bo@example.org", "", "555-0102"),
         (3, None, None, None),
         (4, "élodie@exemple.fr", "Élodie", "555-0104")],
        "user_id int, email string, name string, phone string")

    actual_df = protect_pii(source_df, COLUMNS, KEY.encode())

    expected_df = spark.createDataFrame(
        [(1, python_hmac("ana@example.com"), MASK),
         (2, python_hmac("bo@example.org"), MASK),
         (3, None, None),
         (4, python_hmac("élodie@exemple.fr"), MASK)],
        "user_id int, email string, name string")
    assert_df_equality(actual_df, expected_df, ignore_row_order=True)


def test_the_key_is_in_no_plan_text(spark):
    source_df = spark.createDataFrame([(1, "ana@example.com", "Ana", "1")],
                                      "user_id int, email string, name string, phone string")

    actual_df = protect_pii(source_df, COLUMNS, KEY.encode())
    actual_df.collect()

    plans = actual_df._jdf.queryExecution().toString()
    assert "pii_hmac_sha256" in plans  # the plan was read, and shows the UDF by name only
    key_bytes = KEY.encode()
    for secret in (KEY, key_bytes.hex(),
                   bytes(b ^ 0x36 for b in key_bytes.ljust(64, b"\0")).hex(),
                   bytes(b ^ 0x5C for b in key_bytes.ljust(64, b"\0")).hex()):
        assert secret not in plans


def test_a_join_on_a_hashed_key_matches_the_same_rows_as_on_the_raw_key(spark):
    people = spark.createDataFrame([("ana@example.com", "Ana"), ("bo@example.org", "Bo"),
                                    ("cy@example.net", "Cy")], "email string, first string")
    orders = spark.createDataFrame([("bo@example.org", 10), ("ana@example.com", 20),
                                    ("zed@example.com", 30)], "email string, amount int")
    email = [ColumnSpec(name="email", type="string", pii="hash")]

    actual_df = (protect_pii(people, email, KEY.encode())
                 .join(protect_pii(orders, email, KEY.encode()), "email")
                 .select("first", "amount"))

    expected_df = spark.createDataFrame([("Ana", 20), ("Bo", 10)], "first string, amount int")
    assert_df_equality(actual_df, expected_df, ignore_row_order=True)


def test_another_key_gives_other_hashes(spark):
    source_df = spark.createDataFrame([("ana@example.com",)], "email string")
    email = [ColumnSpec(name="email", type="string", pii="hash")]

    [one] = protect_pii(source_df, email, KEY.encode()).collect()
    [other] = protect_pii(source_df, email, OTHER_KEY.encode()).collect()

    assert one.email == python_hmac("ana@example.com")
    assert other.email == python_hmac("ana@example.com", OTHER_KEY)
    assert one.email != other.email


def test_a_raw_value_is_looked_up_as_the_tables_hold_it():
    email, name = COLUMNS[1], COLUMNS[2]

    assert protected_value(email, "ana@example.com", KEY.encode()) == hmac_hex(
        KEY.encode(), "ana@example.com") == python_hmac("ana@example.com")
    assert protected_value(COLUMNS[0], "7", None) == "7"
    with pytest.raises(ConfigError, match="name is pii: mask: no table holds a value"):
        protected_value(name, "Ana", KEY.encode())
    with pytest.raises(ConfigError, match="looking it up needs \\$SPARKMLOPS_PII_KEY"):
        protected_value(email, "ana@example.com", None)
