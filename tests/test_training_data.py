"""Data no model can be trained or judged on: one TrainingDataError line (exit 7), no model.

The pure checks are tested on numbers; the profile on the small toy gold of
test_training; the steps on one small gold table whose Delta versions each break
one thing (an all-null input, an Infinity, one class), so no test fits a model it
does not need: only the gate test trains (once).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import mlflow
import pyspark.sql.functions as F
import pytest
from mlflow.tracking import MlflowClient

from sparkmlops.cli import main
from sparkmlops.config import PromotionSettings, Settings, load_settings
from sparkmlops.errors import TrainingDataError
from sparkmlops.features.stages import LABEL_COLUMN, LABEL_RAW_COLUMN, build_feature_table
from sparkmlops.model_registry import CHALLENGER, CHAMPION, ModelRegistry
from sparkmlops.registry.promotion import decide
from sparkmlops.registry.step import promote_step
from sparkmlops.tables import features_table_name, read_table, table_ref
from sparkmlops.tracking import TAG_OUTCOME, configure_mlflow
from sparkmlops.training.fitting import (
    DataProfile,
    check_training_data,
    fit_failures_named,
    named_fit_failure,
    profile_training_data,
    split_train_test,
    training_data_problems,
)
from sparkmlops.training.step import train_step
from sparkmlops.writes import replace_batch
from tests.conftest import SAMPLE_LANDING
from tests.test_training import _gold

BATCH = "b1"


# ---------------------------------------------------------------- pure: the problems


def test_one_class_in_both_splits_names_the_counts_and_the_keys(make_settings):
    dataset = make_settings().dataset
    profile = DataProfile(train_rows=250, holdout_rows=91,
                          train_classes={"FEMALE": 0, "MALE": 250},
                          holdout_classes={"FEMALE": 0, "MALE": 91})

    assert training_data_problems(profile, dataset) == [
        "label sex has one value, MALE, in all 250 training rows; every class of "
        "label.classes needs at least 5 (model.data_checks.min_train_rows_per_class)",
        "label sex has one value, MALE, in all 91 holdout rows; every class of "
        "label.classes needs at least 1 (model.data_checks.min_holdout_rows_per_class)",
    ]


def test_a_rare_class_and_a_small_holdout_follow_the_configured_minimums(make_settings):
    dataset = make_settings("dataset.model.data_checks={min_train_rows_per_class: 10, "
                            "min_holdout_rows: 50}").dataset
    profile = DataProfile(train_rows=120, holdout_rows=40,
                          train_classes={"FEMALE": 9, "MALE": 111},
                          holdout_classes={"FEMALE": 20, "MALE": 20})

    assert training_data_problems(profile, dataset) == [
        "label sex in the 120 training rows: FEMALE 9, MALE 111; every class of "
        "label.classes needs at least 10 (model.data_checks.min_train_rows_per_class)",
        "the holdout has 40 rows; its metrics need at least 50 "
        "(model.data_checks.min_holdout_rows)",
    ]


def test_enough_of_every_class_is_no_problem(make_settings):
    profile = DataProfile(train_rows=250, holdout_rows=91,
                          train_classes={"FEMALE": 5, "MALE": 245},
                          holdout_classes={"FEMALE": 1, "MALE": 90})

    assert training_data_problems(profile, make_settings().dataset) == []


def test_a_minimum_below_one_is_a_config_error(make_settings):
    from sparkmlops.errors import ConfigError

    with pytest.raises(ConfigError, match="model.data_checks.min_holdout_rows_per_class"):
        make_settings("dataset.model.data_checks.min_holdout_rows_per_class=0")


# ---------------------------------------------------------------- the profile, on Spark


def _regression(make_settings):
    """Regression of flipper length on the rest (the toy gold's label is its target)."""
    return make_settings(
        "dataset.model.task=regression", "dataset.label.classes=null",
        "dataset.label.source=flipper_length_mm",
        "dataset.model.estimator={type: linear_regression}",
        "dataset.model.primary_metric=rmse", "dataset.promotion.min_metrics={}",
        "dataset.features.numeric=[culmen_length_mm, culmen_depth_mm, body_mass_g]").dataset


def test_a_constant_regression_label_is_refused(spark, make_settings):
    dataset = _regression(make_settings)
    source_df = _gold(spark, 60).withColumn(LABEL_COLUMN, F.lit(190.0))
    train, holdout = split_train_test(source_df, dataset)
    n_train = train.count()

    with pytest.raises(TrainingDataError) as error:
        check_training_data(train, holdout, dataset, source="gold.toy v4")

    assert str(error.value) == (
        f"gold.toy v4 cannot train penguins_sex_classifier: label flipper_length_mm has one "
        f"value 190.0 in all {n_train} training rows: nothing to learn")


def test_profile_counts_missing_and_infinite_inputs_after_the_derived_stage(spark,
                                                                           make_settings):
    dataset = make_settings().dataset
    inf = F.lit(math.inf)
    source_df = (_gold(spark)
                 .withColumn("body_mass_g", F.lit(None).cast("double"))
                 .withColumn("culmen_length_mm", F.when(F.col("sample_number") < 3, -inf)
                             .otherwise(F.col("culmen_length_mm")))
                 .withColumn("flipper_length_mm", F.lit(float("nan"))))
    train, holdout = split_train_test(source_df, dataset)
    in_holdout = {r.sample_number for r in holdout.collect()} & {0, 1, 2}

    actual = profile_training_data(train, holdout, dataset)

    n_train, n_holdout = train.count(), holdout.count()
    assert actual.train_rows + actual.holdout_rows == 200
    assert (actual.train_rows, actual.holdout_rows) == (n_train, n_holdout)
    assert actual.train_classes == {
        "FEMALE": train.where("label = 0").count(), "MALE": train.where("label = 1").count()}
    assert actual.empty_numeric == ["flipper_length_mm", "body_mass_g"]
    # culmen_ratio is derived from culmen_length_mm: -inf / x is -inf too
    pair = (3 - len(in_holdout), len(in_holdout))
    assert actual.infinite == {"culmen_length_mm": pair, "culmen_ratio": pair}
    assert actual.out_of_bounds == {}


def test_a_bucket_input_outside_its_splits_is_counted(spark, make_settings):
    dataset = make_settings(
        "dataset.features.buckets=[{name: mass_band, column: body_mass_g, "
        "splits: [0, 4000, 99000]}]").dataset
    source_df = _gold(spark).withColumn(
        "body_mass_g", F.when(F.col("sample_number") == 7, 1e6).otherwise(F.col("body_mass_g")))
    train, holdout = split_train_test(source_df, dataset)
    pair = (train.where("sample_number = 7").count(), holdout.where("sample_number = 7").count())

    actual = profile_training_data(train, holdout, dataset)

    assert actual.out_of_bounds == {"mass_band": pair}
    assert training_data_problems(actual, dataset) == [
        "bucket inputs outside their splits, which MLlib's Bucketizer rejects: mass_band "
        f"(body_mass_g outside [0.0, 99000.0]) in {pair[0]} training and {pair[1]} holdout rows"]


# ---------------------------------------------------------------- the safety net


def test_mllib_data_failures_are_named_and_other_errors_pass_through():
    surrogate = RuntimeError(
        "An error occurred while calling o3155.fit.\n: org.apache.spark.SparkException: "
        "surrogate cannot be computed. All the values in body_mass_g are Null, Nan or "
        "missingValue(NaN)\n\tat org.apache.spark.ml.feature.Imputer.fit(Imputer.scala:1)")

    named = named_fit_failure(surrogate, "gold.x v2")

    assert str(named) == ("gold.x v2: MLlib cannot fit the data: surrogate cannot be computed. "
                          "All the values in body_mass_g are Null, Nan or missingValue(NaN)")
    with pytest.raises(TrainingDataError, match="Vector values MUST NOT be NaN or Infinity$"), \
            fit_failures_named("gold.x v2"):
        raise RuntimeError("[USER_RAISED_EXCEPTION] Vector values MUST NOT be NaN or "
                           "Infinity, but got [NaN,1.0] SQLSTATE: P0001")
    with pytest.raises(KeyError), fit_failures_named("gold.x v2"):
        raise KeyError("not about the data")


# ---------------------------------------------------------------- the gate


def test_decide_fails_a_non_finite_metric_with_the_reason():
    gate = PromotionSettings(min_metrics={"areaUnderROC": 0.8})

    passed, reasons = decide({"areaUnderROC": math.nan, "accuracy": 1.0}, None, gate,
                             "areaUnderROC")
    ranked, why = decide({"areaUnderROC": 0.9}, {"areaUnderROC": math.nan}, gate,
                         "areaUnderROC")

    assert passed is False
    assert reasons == ["the challenger's areaUnderROC=nan undefined on the holdout "
                       "(not a finite number)", "no champion yet"]
    assert ranked is False
    assert why[-1] == ("areaUnderROC is 0.9 for the challenger and nan for the champion: "
                       "models cannot be ranked on an undefined metric")


def test_decide_fails_on_a_holdout_problem_even_with_perfect_metrics():
    passed, reasons = decide({"areaUnderROC": 1.0}, None, PromotionSettings(), "areaUnderROC",
                             holdout_problems=["one class"])

    assert (passed, reasons) == (False, ["one class", "no champion yet"])


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


def _silver(spark, n: int):
    """Silver-like birds with every schema column; sex follows body mass (learnable)."""
    species = ["Adelie Penguin (Pygoscelis adeliae)", "Gentoo penguin (Pygoscelis papua)"]
    rows = [("PAL0708", i, species[i % 2], "Anvers", ["Biscoe", "Dream", "Torgersen"][i % 3],
             "Adult, 1 Egg Stage", f"N{i}", "Yes", date(2007 + i % 3, 11, 1 + i % 28),
             38.0 + i % 9, 17.0 + i % 4, 180.0 + i % 30, 3000.0 + 25 * (i % 80),
             "MALE" if i % 80 >= 40 else "FEMALE", 8.5, -25.0, None, BATCH) for i in range(n)]
    return spark.createDataFrame(rows, (
        "study_name string, sample_number int, species string, region string, island string, "
        "stage string, individual_id string, clutch_completion string, date_egg date, "
        "culmen_length_mm double, culmen_depth_mm double, flipper_length_mm double, "
        "body_mass_g double, sex string, delta_15_n double, delta_13_c double, "
        "comments string, _batch_id string"))


@pytest.fixture(scope="module")
def broken(spark, tmp_path_factory) -> BrokenGold:
    state_dir = str(tmp_path_factory.mktemp("training_data"))
    settings = load_settings("local", "penguins", overrides=[f"state_dir={state_dir}"])
    gold_ref = table_ref(settings, "gold", features_table_name(settings))
    gold = build_feature_table(_silver(spark, 160), settings.dataset).localCheckpoint()
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
        table_ref(settings, "gold", features_table_name(settings)).path)
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
    settings = broken.settings("data_gate", "dataset.promotion.min_metrics={}")
    version = str(train_step(spark, settings, BATCH, gold_version=broken.good)
                  .summary["version"])

    decision = promote_step(spark, settings, BATCH, gold_version=broken.one_class)

    assert message == (
        f"gold.penguins_features v{broken.one_class} cannot train data_one: label sex has "
        f"one value, MALE, in all {n_train} training rows; every class of label.classes needs "
        "at least 5 (model.data_checks.min_train_rows_per_class); label sex has one value, "
        f"MALE, in all {n_holdout} holdout rows; every class of label.classes needs at least 1 "
        "(model.data_checks.min_holdout_rows_per_class)")
    reason = (f"the holdout of gold.penguins_features v{broken.one_class} cannot rank models: "
              f"label sex has one value, MALE, in all {n_holdout} holdout rows; every class of "
              "label.classes needs at least 1 (model.data_checks.min_holdout_rows_per_class)")
    assert decision.summary["promoted"] is False
    assert decision.summary["passed"] is False
    assert decision.summary["reasons"] == [reason, "no champion yet"]
    client = MlflowClient()
    assert ModelRegistry(client).by_alias("data_gate", CHAMPION) is None
    assert str(ModelRegistry(client).by_alias("data_gate", CHALLENGER).version) == version
    tags = client.get_model_version("data_gate", version).tags
    assert json.loads(tags["promotion.reasons"]) == [reason, "no champion yet"]
    assert tags["promotion.promoted"] == "False"


# ---------------------------------------------------------------- the case, by CLI


def _all_male_landing(target: Path) -> Path:
    target.mkdir()
    for source in sorted(SAMPLE_LANDING.glob("*.csv")):
        with source.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header, rows = reader.fieldnames, list(reader)
        with (target / source.name).open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=header)
            writer.writeheader()
            writer.writerows({**row, "Sex": "MALE"} for row in rows)
    return target


@pytest.mark.e2e  # the whole pipeline on the sample: about 30 s
def test_the_all_male_sample_exits_7_and_nothing_becomes_champion(spark, tmp_path, capsys):
    landing = _all_male_landing(tmp_path / "landing")
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
    gold = read_table(spark, table_ref(settings, "gold", features_table_name(settings)))
    assert gold.where(f"{LABEL_RAW_COLUMN} = 'MALE'").count() == gold.count() == 247 + 95
    assert (train.data.metrics["rows_train"], train.data.metrics["rows_test"]) == (247, 95)
