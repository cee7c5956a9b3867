"""Data no model can be trained or judged on: one TrainingDataError line (exit 7), no model.

The pure checks are tested on numbers; the profile on the small toy gold of
test_training; the steps on one small gold table whose Delta versions each break
one thing (an all-null input, an Infinity, one class), so no test fits a model it
does not need: only the gate test trains (once).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pyspark.sql.functions as F
import pytest
from mlflow.tracking import MlflowClient

from sparkmlops.cli import main
from sparkmlops.config import Settings, load_settings
from sparkmlops.errors import ConfigError, TrainingDataError
from sparkmlops.features.mllib import LABEL_COLUMN, LABEL_RAW_COLUMN, build_feature_table
from sparkmlops.promote.promotion import decision_record
from sparkmlops.promote.step import promote_step
from sparkmlops.tables import dataset_tables, read_table
from sparkmlops.tracking.registry import CHALLENGER, CHAMPION, ModelRegistry
from sparkmlops.tracking.runs import TAG_OUTCOME, configure_mlflow
from sparkmlops.train.fitting import (
    split_train_test,
)
from sparkmlops.train.step import train_step
from sparkmlops.writes import replace_batch

BATCH = "b1"


# ---------------------------------------------------------------- the steps, on one gold


@dataclass
class BrokenGold:
    """One small gold table; each Delta version breaks one thing."""

    state_dir: str
    good: int
    all_null_mass: int
    infinite: int
    one_class: int
    infinite_key: int  # the sample number of the one row holding -Infinity (a training row)
    rows: int

    def settings(self, model: str, *overrides: str) -> Settings:
        return load_settings("local", "penguins", overrides=[
            f"state_dir={self.state_dir}", f"dataset.model.name={model}", *overrides])


@pytest.fixture(scope="module")
def broken(spark, tmp_path_factory, learnable_silver) -> BrokenGold:
    state_dir = str(tmp_path_factory.mktemp("training_data"))
    settings = load_settings("local", "penguins", overrides=[f"state_dir={state_dir}"])
    gold_ref = dataset_tables(settings).gold
    # the label by an expression that leaves every 16th bird without one (10 of 160):
    # such rows stay in gold and are never trained on
    unlabelled = load_settings("local", "penguins", overrides=[
        f"state_dir={state_dir}", "dataset.label={expr: 'CASE WHEN sample_number % 16 != 15 "
        "THEN sex END', classes: [FEMALE, MALE]}"])
    gold = build_feature_table(learnable_silver(160, BATCH),
                               unlabelled.dataset).localCheckpoint()
    train, _ = split_train_test(gold, settings.dataset)
    key = train.agg(F.min("sample_number")).first()[0]
    versions = [replace_batch(df, gold_ref, BATCH).version for df in (
        gold,
        gold.withColumn("body_mass_g", F.lit(None).cast("double")),
        gold.withColumn("culmen_depth_mm", F.when(F.col("sample_number") == key, -math.inf)
                        .otherwise(F.col("culmen_depth_mm"))),
        gold.withColumn(LABEL_RAW_COLUMN, F.lit("MALE")).withColumn(LABEL_COLUMN, F.lit(1.0)),
    )]
    return BrokenGold(state_dir, *versions, infinite_key=key, rows=gold.count())


def _failed_train(spark, broken: BrokenGold, model: str, version: int, *overrides: str):
    settings = broken.settings(model, *overrides)
    with pytest.raises(TrainingDataError) as error:
        train_step(spark, settings, BATCH, gold_version=version)
    client = MlflowClient()
    [run] = mlflow.search_runs(
        experiment_names=[settings.tracking.experiment], output_format="list",
        filter_string=f"tags.`sparkmlops.error` LIKE '%cannot train {model}:%'")
    assert run.info.status == "FAILED"
    assert run.data.tags[TAG_OUTCOME] == "TrainingDataError"
    assert run.data.tags["sparkmlops.error"] == str(error.value)
    assert client.search_model_versions(f"name = '{model}'") == []
    return str(error.value), run, settings


def _counts(spark, broken: BrokenGold, version: int) -> tuple[int, int]:
    settings = broken.settings("counts")
    data = spark.read.format("delta").option("versionAsOf", version).load(
        dataset_tables(settings).gold.path)
    train, holdout = split_train_test(data, settings.dataset)
    return train.count(), holdout.count()


def test_an_all_null_numeric_input_is_named_before_automl_fits_anything(spark, broken):
    message, run, _ = _failed_train(
        spark, broken, "data_null", broken.all_null_mass, "dataset.model.automl.enabled=true")

    n_train, _ = _counts(spark, broken, broken.all_null_mass)
    assert message == (
        f"gold.penguins_features v{broken.all_null_mass} cannot train data_null: numeric "
        f"inputs with no value (all null or NaN) in the {n_train} training rows, which the "
        "median imputer cannot fill: body_mass_g")
    children = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'",
                                  output_format="list")
    assert children == []  # refused before the first AutoML family


def test_an_infinity_in_gold_names_the_column_and_its_rows(spark, broken):
    message, _, _ = _failed_train(spark, broken, "data_inf", broken.infinite)

    # culmen_ratio = culmen_length_mm / culmen_depth_mm: -Infinity in, -0.0 out
    assert message == (
        f"gold.penguins_features v{broken.infinite} cannot train data_inf: numeric inputs "
        "holding ±Infinity, which no model can fit: culmen_depth_mm in 1 training and 0 "
        "holdout rows")


def test_one_class_gold_trains_nothing_and_a_one_class_holdout_promotes_nothing(spark, broken):
    n_train, n_holdout = _counts(spark, broken, broken.one_class)
    message, _, _ = _failed_train(spark, broken, "data_one", broken.one_class)
    # a model trained on good data, judged on a holdout of one class: no minimums to miss
    settings = broken.settings("data_gate", "dataset.promote.min_metrics={}")
    trained = train_step(spark, settings, BATCH, gold_version=broken.good)
    version = trained.model_version

    result = promote_step(spark, settings, BATCH, gold_version=broken.one_class)

    assert message == (
        f"gold.penguins_features v{broken.one_class} cannot train data_one: label sex has "
        f"one value, MALE, in all {n_train} training rows; every class of label.classes needs "
        "at least 5 (model.data_checks.min_train_rows_per_class); label sex has one value, "
        f"MALE, in all {n_holdout} holdout rows; every class of label.classes needs at least 1 "
        "(model.data_checks.min_holdout_rows_per_class)")
    reason = (f"the holdout of gold.penguins_features v{broken.one_class} cannot rank models: "
              f"label sex has one value, MALE, in all {n_holdout} holdout rows; every class of "
              "label.classes needs at least 1 (model.data_checks.min_holdout_rows_per_class)")
    assert result.decision is not None
    assert (result.promoted, result.decision.passed) == (False, False)
    assert result.decision.reasons == [reason, "no champion yet"]
    client = MlflowClient()
    assert ModelRegistry(client).by_alias("data_gate", CHAMPION) is None
    assert str(ModelRegistry(client).by_alias("data_gate", CHALLENGER).version) == version
    tags = client.get_model_version("data_gate", version).tags
    assert decision_record(tags)["reasons"] == [reason, "no champion yet"]
    assert tags["promotion.promoted"] == "False"
    # the good gold's 10 birds without a label: counted, kept out of training and holdout
    metrics = client.get_run(trained.run_id).data.metrics
    assert metrics["rows_without_label"] == 10
    assert trained.rows_train + trained.rows_test == broken.rows - 10 == 150


# ---------------------------------------------------------------- the case, by CLI


def _all_male_landing(target: Path, sample_landing) -> Path:
    target.mkdir()
    for source in sorted(sample_landing.glob("*.csv")):
        with source.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header, rows = reader.fieldnames, list(reader)
        with (target / source.name).open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=header)
            writer.writeheader()
            writer.writerows({**row, "Sex": "MALE"} for row in rows)
    return target


@pytest.mark.e2e  # the whole pipeline on the sample: about 30 s
def test_the_all_male_sample_exits_7_and_nothing_becomes_champion(
        spark, tmp_path, capsys, sample_landing):
    landing = _all_male_landing(tmp_path / "landing", sample_landing)
    state = tmp_path / "state"

    code = main(["pipeline", "--set", f"state_dir={state}",
                 "--set", f"dataset.source.path={landing}"])

    err = capsys.readouterr().err.strip().splitlines()
    settings = load_settings("local", "penguins", overrides=[f"state_dir={state}"])
    assert code == 7
    assert err[-1] == (
        "sparkmlops pipeline: TrainingDataError: gold.penguins_features v0 cannot train "
        "penguins_sex_classifier: label sex has one value, MALE, in all 247 training rows; "
        "every class of label.classes needs at least 5 "
        "(model.data_checks.min_train_rows_per_class); label sex has one value, MALE, in all "
        "95 holdout rows; every class of label.classes needs at least 1 "
        "(model.data_checks.min_holdout_rows_per_class)")
    configure_mlflow(settings)
    client = MlflowClient()
    assert client.search_model_versions("name = 'penguins_sex_classifier'") == []
    [train] = mlflow.search_runs(experiment_names=[settings.tracking.experiment],
                                 filter_string="tags.`sparkmlops.step` = 'train'",
                                 output_format="list")
    assert train.data.tags[TAG_OUTCOME] == "TrainingDataError"
    assert train.data.tags["sparkmlops.error"] == err[-1].split("TrainingDataError: ", 1)[1]
    gold = read_table(spark, dataset_tables(settings).gold)
    assert gold.where(f"{LABEL_RAW_COLUMN} = 'MALE'").count() == gold.count() == 247 + 95
    assert (train.data.metrics["rows_train"], train.data.metrics["rows_test"]) == (247, 95)


def test_a_derived_feature_that_fails_on_gold_is_named_by_train_not_traced(spark, broken):
    # gold written before the features step checked derived SQL, or config changed since
    settings = broken.settings(
        "data_cast", "dataset.features.derived=[{name: island_code, expr: 'cast(island as int)'}]",
        "dataset.features.numeric=[culmen_length_mm, island_code]")

    with pytest.raises(ConfigError) as error:
        train_step(spark, settings, BATCH, gold_version=broken.good)

    assert type(error.value).__name__ == "DerivedFeatureError"
    assert error.value.exit_code == 2
    # the first row by key (PAL0708, 0) lives on Biscoe
    assert str(error.value) == (
        f"features.derived.0 (island_code): 'cast(island as int)' fails on "
        f"gold.penguins_features v{broken.good} (first failing row by study_name, species, "
        "sample_number): [CAST_INVALID_INPUT] The value 'Biscoe' of the type \"STRING\" cannot "
        "be cast to \"INT\" because it is malformed. Correct the value as per the syntax, or "
        "change its target type. Use `try_cast` to tolerate malformed input and return NULL "
        "instead. SQLSTATE: 22018")
    assert MlflowClient().search_model_versions("name = 'data_cast'") == []
