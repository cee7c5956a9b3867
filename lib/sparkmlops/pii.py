"""Personal data, protected as it is read: the ``pii`` treatment of a schema column.

A column marked ``pii`` never reaches a table in its raw form: ingest applies
:func:`protect_pii` right after parsing, so bronze, quarantine and everything built from
them (silver, gold, predictions, profiles, Data Docs, MLflow) only ever see the result.

- ``hash``: the keyed HMAC-SHA256 of the UTF-8 text, as 64 hex digits, keyed by
  ``$SPARKMLOPS_PII_KEY``. Equal values hash equal under one key, so keys, joins and
  ``lineage --key`` still work; without the key a hash cannot be checked against a guess.
- ``mask``: every non-null value becomes ``***``: only whether a value was there is kept
  (not its length, not a character of it).
- ``drop``: the column is removed.
Nulls stay null.

The key is read on the driver and held only in the closure of a vectorized (Arrow) UDF:
it is never a literal of the query, so it is in no plan text (``explain``, the Spark UI,
event logs); executors receive it inside the pickled function, as they receive the code.

Example::

    key = pii_key(dataset.schema_, dataset.quarantine)   # ConfigError when missing
    bronze_rows = protect_pii(parsed, dataset.schema_, key)
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping

import pandas as pd
import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame

from sparkmlops.config import ColumnSpec, QuarantineSettings
from sparkmlops.errors import ConfigError

PII_KEY_ENV = "SPARKMLOPS_PII_KEY"
# shorter keys make the HMAC guessable by brute force over the key itself
MIN_KEY_LENGTH = 32
MASK = "***"


def needs_key(columns: Iterable[ColumnSpec], quarantine: QuarantineSettings | None = None) -> bool:
    """Whether protecting these columns (and quarantine's records) hashes anything."""
    columns = list(columns)
    if any(c.pii == "hash" for c in columns):
        return True
    return (quarantine is not None and quarantine.pii_record == "hash"
            and any(c.pii for c in columns))


def pii_key(columns: Iterable[ColumnSpec], quarantine: QuarantineSettings | None = None, *,
            environ: Mapping[str, str] | None = None) -> bytes | None:
    """The HMAC key from ``$SPARKMLOPS_PII_KEY`` when the dataset hashes (else None).

    Raises:
        ConfigError: one line, when a column is ``pii: hash`` and the key is missing or
            shorter than ``MIN_KEY_LENGTH`` characters.
    """
    if not needs_key(columns, quarantine):
        return None
    value = (os.environ if environ is None else environ).get(PII_KEY_ENV, "")
    if not value:
        raise ConfigError(f"{PII_KEY_ENV} is not set: the dataset has pii: hash columns, "
                          "whose HMAC key it is (e.g. `openssl rand -hex 32`, kept in the "
                          "platform's secret store)")
    if len(value) < MIN_KEY_LENGTH:
        raise ConfigError(f"{PII_KEY_ENV}: {len(value)} characters; the HMAC key of pii: "
                          f"hash columns needs at least {MIN_KEY_LENGTH} "
                          "(e.g. `openssl rand -hex 32`)")
    return value.encode("utf-8")


def hmac_hex(key: bytes, text: str) -> str:
    """The keyed HMAC-SHA256 of ``text`` (UTF-8) as hex: what a ``pii: hash`` column holds."""
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def hashed(column: Column, key: bytes) -> Column:
    """``column`` (text) as :func:`hmac_hex` under ``key``, null kept null.

    A pandas UDF whose closure holds the key: a Spark expression would need the key (or
    the key-derived pads) as a literal, and literals are printed in every plan.
    """
    @F.pandas_udf("string")  # type: ignore[call-overload]
    def pii_hmac_sha256(values: pd.Series) -> pd.Series:
        return values.map(lambda v: None if pd.isna(v) else hmac_hex(key, v))

    return pii_hmac_sha256(column)


def masked(column: Column) -> Column:
    """``column`` with every non-null value replaced by ``***``."""
    return F.when(column.isNull(), F.lit(None).cast("string")).otherwise(F.lit(MASK))


def protect_pii(df: DataFrame, columns: Iterable[ColumnSpec], key: bytes | None) -> DataFrame:
    """``df`` with each ``pii`` column hashed, masked or dropped (other columns untouched).

    Raises:
        ConfigError: a ``pii: hash`` column and no ``key``.
    """
    for spec in columns:
        if spec.pii is None or spec.name not in df.columns:
            continue
        if spec.pii == "drop":
            df = df.drop(spec.name)
        elif spec.pii == "mask":
            df = df.withColumn(spec.name, masked(F.col(spec.name)))
        else:
            if key is None:
                raise ConfigError(f"schema column {spec.name} is pii: hash and no key was "
                                  f"given (${PII_KEY_ENV})")
            df = df.withColumn(spec.name, hashed(F.col(spec.name), key))
    return df


def protected_value(spec: ColumnSpec, value: str, key: bytes | None) -> str:
    """One value as the tables hold it, for a lookup by raw value (``lineage --key``).

    Raises:
        ConfigError: ``spec`` is masked or dropped (no table can be searched by it), or
            hashed and there is no key.
    """
    if spec.pii is None:
        return value
    if spec.pii != "hash":
        raise ConfigError(f"{spec.name} is pii: {spec.pii}: no table holds a value of it "
                          "to look up")
    if key is None:
        raise ConfigError(f"{spec.name} is pii: hash: looking it up needs ${PII_KEY_ENV}")
    return hmac_hex(key, value)


def pii_columns(columns: Iterable[ColumnSpec]) -> list[str]:
    """The names of the columns marked ``pii`` (kept out of profiles and drift)."""
    return [c.name for c in columns if c.pii]
