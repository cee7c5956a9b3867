"""The penguins batch as a bare, hand-written PySpark script: the benchmark's baseline.

Same work as the platform's ingest → train → predict, with Delta but without
validation, MLflow tracking, registry, lineage or audit columns:

- ingest:  read the landing CSV with the schema of conf/datasets/penguins.yml (never
           inferred), rename to the Delta column names, write ``bronze`` (Delta).
- train:   read ``bronze``, add ``culmen_ratio`` and the numeric label, split the
           labelled rows by a hash of the keys (seed 42, 25 % holdout), cache both
           halves (as the platform does), fit the same MLlib pipeline (Imputer →
           StringIndexer → OneHotEncoder → VectorAssembler → LogisticRegression with
           the same params), holdout areaUnderROC and accuracy (the two metrics the
           platform's promotion gate needs).
- predict: score every bronze row with the fitted model in memory, write
           ``predictions`` (Delta).

There is no ``features`` step (the derived column is computed on the fly, no gold
table), and the model is not saved anywhere. Only the Delta jars and settings are
taken from the project (``sparkmlops.spark.configure_delta``), so both sides run
with the same jars.

Usage::

    python benchmarks/bare_pipeline.py --landing <csv folder> --out <folder> \\
        [--master local[2]] [--conf key=value ...] [--json timings.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.evaluation import (
    BinaryClassificationEvaluator,
    MulticlassClassificationEvaluator,
)
from pyspark.ml.feature import Imputer, OneHotEncoder, StringIndexer, VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkmlops.spark import configure_delta

log = logging.getLogger("bare_pipeline")

# (Delta name, raw CSV header, type), in file order: conf/datasets/penguins.yml `schema`.
COLUMNS = [
    ("study_name", "studyName", "string"),
    ("sample_number", "Sample Number", "int"),
    ("species", "Species", "string"),
    ("region", "Region", "string"),
    ("island", "Island", "string"),
    ("stage", "Stage", "string"),
    ("individual_id", "Individual ID", "string"),
    ("clutch_completion", "Clutch Completion", "string"),
    ("date_egg", "Date Egg", "date"),
    ("culmen_length_mm", "Culmen Length (mm)", "double"),
    ("culmen_depth_mm", "Culmen Depth (mm)", "double"),
    ("flipper_length_mm", "Flipper Length (mm)", "double"),
    ("body_mass_g", "Body Mass (g)", "double"),
    ("sex", "Sex", "string"),
    ("delta_15_n", "Delta 15 N (o/oo)", "double"),
    ("delta_13_c", "Delta 13 C (o/oo)", "double"),
    ("comments", "Comments", "string"),
]
KEYS = ["study_name", "species", "sample_number"]
NUMERIC = ["culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g",
           "culmen_ratio"]
CATEGORICAL = ["species", "island"]
SEED, TEST_FRACTION = 42, 0.25
MAX_ITER, REG_PARAM, ELASTIC_NET_PARAM = 100, 0.01, 0.0  # model.estimator.params


class Timer:
    """Wall seconds of named sections, in order."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def section(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = round(time.monotonic() - started, 3)
            log.info("%s: %.1f s", name, self.seconds[name])


def start_session(master: str, conf: dict[str, str], log_level: str) -> SparkSession:
    builder = SparkSession.builder.appName("bare-penguins").master(master)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = configure_delta(builder).getOrCreate()
    spark.sparkContext.setLogLevel(log_level)
    return spark


def ingest(spark: SparkSession, landing: str, bronze: str) -> None:
    schema = ", ".join(f"`{raw}` {type_}" for _, raw, type_ in COLUMNS)
    raw = (
        spark.read.schema(schema)
        .options(header="true", nullValue="NA", dateFormat="yyyy-MM-dd", encoding="UTF-8")
        .csv(landing)
    )
    renamed = raw.select(*[F.col(f"`{source}`").alias(name) for name, source, _ in COLUMNS])
    renamed.write.format("delta").mode("overwrite").save(bronze)


def with_features(df: DataFrame) -> DataFrame:
    label = F.when(F.col("sex") == "MALE", 1.0).when(F.col("sex") == "FEMALE", 0.0)
    return df.withColumn("culmen_ratio", F.col("culmen_length_mm") / F.col("culmen_depth_mm")) \
        .withColumn("label", label)


def train(spark: SparkSession, bronze: str, timer: Timer) -> tuple[object, dict[str, float]]:
    data = with_features(spark.read.format("delta").load(bronze))
    labelled = data.where(F.col("label").isNotNull())
    bucket = F.pmod(F.xxhash64(*[F.col(k) for k in KEYS], F.lit(SEED)), F.lit(10_000))
    holdout = bucket < F.lit(int(round(TEST_FRACTION * 10_000)))
    # cached as the platform does, so both fit from memory rather than re-reading Delta
    # once per pass (Imputer, StringIndexer, LogisticRegression, evaluators)
    train_df, test_df = labelled.where(~holdout).cache(), labelled.where(holdout).cache()
    imputed = [f"{c}__imputed" for c in NUMERIC]
    indexed = [f"{c}__index" for c in CATEGORICAL]
    encoded = [f"{c}__onehot" for c in CATEGORICAL]
    pipeline = Pipeline(stages=[
        Imputer(inputCols=NUMERIC, outputCols=imputed, strategy="median"),
        StringIndexer(inputCols=CATEGORICAL, outputCols=indexed, handleInvalid="keep",
                      stringOrderType="alphabetAsc"),
        OneHotEncoder(inputCols=indexed, outputCols=encoded, handleInvalid="keep"),
        VectorAssembler(inputCols=imputed + encoded, outputCol="features"),
        LogisticRegression(featuresCol="features", labelCol="label", maxIter=MAX_ITER,
                           regParam=REG_PARAM, elasticNetParam=ELASTIC_NET_PARAM),
    ])
    with timer.section("train.fit"):
        model = pipeline.fit(train_df)
    scored = model.transform(test_df)
    metrics = {
        "areaUnderROC": BinaryClassificationEvaluator(metricName="areaUnderROC")
        .evaluate(scored),
        "accuracy": MulticlassClassificationEvaluator(metricName="accuracy").evaluate(scored),
    }
    train_df.unpersist()
    test_df.unpersist()
    return model, metrics


def predict(spark: SparkSession, model: object, bronze: str, predictions: str) -> None:
    data = with_features(spark.read.format("delta").load(bronze))
    scored = model.transform(data)  # type: ignore[attr-defined]
    scored.select(
        *KEYS,
        F.col("prediction"),
        vector_to_array(F.col("probability"))[1].alias("probability"),
    ).write.format("delta").mode("overwrite").save(predictions)


def delta_rows(spark: SparkSession, path: str) -> int:
    """Rows of the last write, from the Delta log (no scan)."""
    from delta.tables import DeltaTable

    last = DeltaTable.forPath(spark, path).history(1).first()
    return int((last["operationMetrics"] or {}).get("numOutputRows", 0)) if last else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--landing", required=True, help="folder of landing CSV files")
    parser.add_argument("--out", required=True, help="folder for the Delta tables")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--log-level", default="WARN")
    parser.add_argument("--json", help="write the timings as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    conf = dict(item.split("=", 1) for item in args.conf)
    out = Path(args.out).resolve()
    bronze, predictions = str(out / "bronze"), str(out / "predictions")

    timer = Timer()
    with timer.section("session"):
        spark = start_session(args.master, conf, args.log_level)
    with timer.section("ingest"):
        ingest(spark, args.landing, bronze)
    with timer.section("train"):
        model, metrics = train(spark, bronze, timer)
    with timer.section("predict"):
        predict(spark, model, bronze, predictions)

    result = {
        "seconds": timer.seconds,
        "metrics": metrics,
        "rows": {"bronze": delta_rows(spark, bronze),
                 "predictions": delta_rows(spark, predictions)},
    }
    spark.stop()
    text = json.dumps(result, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
