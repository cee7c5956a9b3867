"""Builders of the unit tests: small inline DataFrames, no state dir, no MLflow, no Delta."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pyspark.sql.functions as F
import pytest
from pyspark.sql import DataFrame, SparkSession


@pytest.fixture
def toy_gold(spark: SparkSession) -> Callable[..., DataFrame]:
    """``toy_gold(n=200)``: a separable toy gold table: label 1 when x > 0, with null features
    and categories; x = (i % 40) - 19.5, so sample 1 is FEMALE and sample 30 MALE."""

    def gold(n: int = 200) -> DataFrame:
        rows = []
        for i in range(n):
            x = (i % 40) - 19.5
            rows.append(("S1", "A" if i % 3 else None, i, x, float(i % 7) + 1, 2.0 * x,
                         "Biscoe" if i % 2 else "Dream", date(2007 + i % 3, 11, 1 + i % 28),
                         "MALE" if x > 0 else "FEMALE", 1.0 if x > 0 else 0.0, "b1"))
        schema = ("study_name string, species string, sample_number int, "
                  "culmen_length_mm double, culmen_depth_mm double, flipper_length_mm double, "
                  "island string, date_egg date, label_raw string, label double, "
                  "_batch_id string")
        df = spark.createDataFrame(rows, schema)
        mass = F.when(F.col("sample_number") % 5 == 0, None).otherwise(F.col("culmen_depth_mm"))
        return df.withColumn("body_mass_g", (mass * 1000).cast("double"))

    return gold
