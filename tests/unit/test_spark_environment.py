"""``spark.environ``: get_spark sets PYSPARK_PYTHON only while SparkContext starts."""

from __future__ import annotations

import os

import pytest

from sparkmlops.spark import environ


def test_a_variable_is_set_inside_the_block_and_unset_after_it(monkeypatch):
    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)

    with environ(PYSPARK_PYTHON="/opt/python"):
        inside = os.environ.get("PYSPARK_PYTHON")

    assert (inside, os.environ.get("PYSPARK_PYTHON")) == ("/opt/python", None)


def test_a_users_value_comes_back_even_when_the_block_fails(monkeypatch):
    monkeypatch.setenv("PYSPARK_PYTHON", "/usr/bin/python3")

    with pytest.raises(RuntimeError), environ(PYSPARK_PYTHON="/opt/python"):
        raise RuntimeError("SparkContext failed to start")

    assert os.environ["PYSPARK_PYTHON"] == "/usr/bin/python3"


def test_none_unsets_the_variable_for_the_block_only(monkeypatch):
    monkeypatch.setenv("PYSPARK_PYTHON", "/usr/bin/python3")

    with environ(PYSPARK_PYTHON=None):
        inside = os.environ.get("PYSPARK_PYTHON")

    assert (inside, os.environ["PYSPARK_PYTHON"]) == (None, "/usr/bin/python3")
