"""The rows of benchmarks/datagen.py: seeded, the sample's columns and distributions.

The generator is test and benchmark data, not platform code: it lives in benchmarks/, outside
the wheel, so its tests live here rather than beside the library's in tests/unit/.
"""

from __future__ import annotations

from pathlib import Path

import pyspark.sql.functions as F
import pytest
from benchmarks.datagen import COLUMNS, SPECIES, generate_penguins, write_landing

KEY = ["studyName", "Species", "Sample Number"]
ROWS = 500


def _rows(df):
    return [tuple(r) for r in df.collect()]


def test_same_seed_gives_identical_rows_whatever_the_partitioning(spark):
    one = _rows(generate_penguins(spark, ROWS, seed=11, partitions=1))
    three = _rows(generate_penguins(spark, ROWS, seed=11, partitions=3))
    default = _rows(generate_penguins(spark, ROWS, seed=11))

    assert one == three == default


def test_different_seed_gives_different_rows(spark):
    a = generate_penguins(spark, ROWS, seed=1)
    b = generate_penguins(spark, ROWS, seed=2)

    assert a.exceptAll(b).count() > ROWS * 0.9


def test_exact_row_count_and_unique_business_key(spark):
    df = generate_penguins(spark, 1234, seed=3)

    assert df.count() == 1234
    assert df.select(*KEY).distinct().count() == 1234
    assert df.where(F.col("Sample Number").isNull() | F.col("studyName").isNull()).count() == 0


def test_columns_are_the_raw_source_columns_of_the_sample(spark, make_settings, sample_landing):
    sample_header = (sample_landing / "penguins_raw_PAL0708.csv").read_text().splitlines()[0]
    configured = [c.source_name for c in make_settings().dataset.schema_]

    assert generate_penguins(spark, 1).columns == COLUMNS == sample_header.split(",")
    assert COLUMNS == configured


def test_distributions_are_close_to_the_sample(spark):
    n = 20_000
    df = generate_penguins(spark, n, seed=5)
    stats = df.agg(
        F.avg((F.col("Sex").isNull()).cast("int")).alias("unknown_sex"),
        F.avg((F.col("Body Mass (g)").isNull()).cast("int")).alias("not_sampled"),
        F.avg((F.col("Species") == SPECIES[0]).cast("int")).alias("adelie"),
        F.avg((F.col("Island") == "Torgersen").cast("int")).alias("torgersen"),
        F.min("Body Mass (g)").alias("min_mass"),
        F.max("Body Mass (g)").alias("max_mass"),
    ).first()

    assert 0.02 < stats["unknown_sex"] < 0.04
    assert 0.002 < stats["not_sampled"] < 0.009
    assert abs(stats["adelie"] - 152 / 344) < 0.02
    assert abs(stats["torgersen"] - 52 / 344) < 0.02
    assert 2000 <= stats["min_mass"] and stats["max_mass"] <= 7000
    gentoo_males = df.where((F.col("Species") == SPECIES[2]) & (F.col("Sex") == "MALE"))
    mean_mass = gentoo_males.agg(F.avg("Body Mass (g)")).first()[0]
    assert abs(mean_mass - 5484.8) < 30  # sample mean of Gentoo males
    islands = {r["Island"] for r in df.where(F.col("Species") != SPECIES[0])
               .select("Island").distinct().collect()}
    assert islands == {"Biscoe", "Dream"}


def test_written_files_use_the_landing_conventions(spark, tmp_path):
    out = write_landing(spark, ROWS, str(tmp_path / "landing"), seed=7, files=4)

    files = sorted(Path(out).glob("part-*.csv"))
    lines = [line for f in files for line in f.read_text().splitlines()]
    headers = [line for line in lines if line.startswith("studyName,")]
    assert len(files) == 4 and len(headers) == 4
    assert len(lines) - len(headers) == ROWS
    assert all(',"Adult, 1 Egg Stage",' in line for line in lines if line not in headers)
    assert any(",NA," in line for line in lines)
    assert ",2007-11-" in lines[1] or ",2007-12-" in lines[1]


def test_writing_twice_gives_the_same_files(spark, tmp_path):
    first = write_landing(spark, ROWS, str(tmp_path / "a"), seed=7, files=2)
    second = write_landing(spark, ROWS, str(tmp_path / "b"), seed=7, files=2)

    def contents(folder: str) -> list[str]:
        return [f.read_text() for f in sorted(Path(folder).glob("part-*.csv"))]

    assert contents(first) == contents(second)


def test_rejects_a_negative_row_count(spark):
    with pytest.raises(ValueError, match="rows"):
        generate_penguins(spark, -1)
