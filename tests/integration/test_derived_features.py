"""A derived feature that fails on a row of the batch (ANSI SQL) stops the features step
before gold is written: one DerivedFeatureError line, exit 2, the run FAILED. A label
expression is computed into gold by the step (a row it gives no class kept with a null
label), recorded on its run; one that fails on a row stops it the same way."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from sparkmlops.cli import main
from sparkmlops.config import Settings, load_settings
from sparkmlops.errors import ConfigError
from sparkmlops.features.mllib import LABEL_COLUMN, LABEL_RAW_COLUMN
from sparkmlops.features.step import features_step
from sparkmlops.tables import current_version, dataset_tables, read_table
from sparkmlops.tracking.runs import TAG_OUTCOME
from sparkmlops.writes import replace_batch

BATCH = "b1"
# the shipped culmen_ratio, then a cast no island name survives
ISLAND_CODE = ("dataset.features.derived=["
               "{name: culmen_ratio, expr: 'try_divide(culmen_length_mm, culmen_depth_mm)'}, "
               "{name: island_code, expr: 'cast(island as int)'}]")
INPUTS = "dataset.features.numeric=[culmen_length_mm, culmen_ratio, island_code]"
# sample 1 (Dream) is the first row by key, though not the first written
MESSAGE = (
    "features.derived.1 (island_code): 'cast(island as int)' fails on silver.penguins v0 "
    "batch b1 (first failing row by study_name, species, sample_number): [CAST_INVALID_INPUT] "
    "The value 'Dream' of the type \"STRING\" cannot be cast to \"INT\" because it is "
    "malformed. Correct the value as per the syntax, or change its target type. Use "
    "`try_cast` to tolerate malformed input and return NULL instead. SQLSTATE: 22018")


def _settings(state_dir: Path, *overrides: str) -> Settings:
    return load_settings("local", "penguins", overrides=[f"state_dir={state_dir}", *overrides])


@pytest.fixture
def silver_batch(spark, tmp_path) -> Path:
    """A state dir whose silver holds batch b1 (v0): three Adelie birds, one per island."""
    dataset = _settings(tmp_path).dataset
    schema = ", ".join(f"`{c.name}` {c.type}" for c in dataset.schema_)
    blank = {c.name: None for c in dataset.schema_}
    birds = [{**blank, "study_name": "PAL0708", "species": "Adelie Penguin (Pygoscelis adeliae)",
              "sample_number": n, "island": island, "culmen_length_mm": 38.0 + n,
              "culmen_depth_mm": 18.0, "body_mass_g": 3700.0, "sex": "MALE"}
             for n, island in [(3, "Biscoe"), (2, "Torgersen"), (1, "Dream")]]
    rows = spark.createDataFrame([(*bird.values(), BATCH) for bird in birds],
                                 f"{schema}, _batch_id string")
    replace_batch(rows, dataset_tables(_settings(tmp_path)).silver, BATCH)
    return tmp_path


def test_a_derived_feature_failing_on_a_row_stops_features_before_gold(spark, silver_batch):
    settings = _settings(silver_batch, ISLAND_CODE, INPUTS)

    with pytest.raises(ConfigError) as error:
        features_step(spark, settings, BATCH)

    assert type(error.value).__name__ == "DerivedFeatureError"
    assert error.value.exit_code == 2
    assert str(error.value) == MESSAGE
    assert current_version(spark, dataset_tables(settings).gold) is None
    [run] = mlflow.search_runs(experiment_names=[settings.tracking.experiment],
                               output_format="list")
    assert run.info.status == "FAILED"
    assert run.data.tags[TAG_OUTCOME] == "DerivedFeatureError"
    assert run.data.tags["sparkmlops.error"] == MESSAGE


def test_the_features_command_exits_2_with_one_line_and_gold_keeps_its_version(
        spark, silver_batch, capsys):
    state = ["--batch-id", BATCH, "--set", f"state_dir={silver_batch}"]
    assert main(["features", *state]) == 0
    capsys.readouterr()

    code = main(["features", *state, "--set", ISLAND_CODE, "--set", INPUTS])

    err_lines = [line for line in capsys.readouterr().err.splitlines()
                 if line.startswith("sparkmlops ")]
    gold = dataset_tables(_settings(silver_batch)).gold
    assert code == 2
    assert err_lines == [f"sparkmlops features: DerivedFeatureError: {MESSAGE}"]
    assert current_version(spark, gold) == 0
    assert sorted(r.sample_number for r in read_table(spark, gold).collect()) == [1, 2, 3]


# sample_number is a key, which no feature reads
FIRST_TWO_BY_SEX = ("dataset.label={expr: 'CASE WHEN sample_number < 3 THEN substr(sex, 1, 1) "
                    "END', classes: [F, M]}")


def test_a_label_expression_is_computed_into_gold_and_recorded_on_the_features_run(
        spark, silver_batch):
    settings = _settings(silver_batch, FIRST_TWO_BY_SEX)

    outcome = features_step(spark, settings, BATCH)

    gold = read_table(spark, dataset_tables(settings).gold)
    assert sorted((r.sample_number, r[LABEL_RAW_COLUMN], r[LABEL_COLUMN])
                  for r in gold.collect()) == [(1, "M", 1.0), (2, "M", 1.0), (3, None, None)]
    run = mlflow.get_run(outcome.run_id)
    assert run.data.params["label.expr"] == settings.dataset.label.expr
    assert outcome.gold_rows == 3


def test_a_label_expression_failing_on_a_row_stops_features_before_gold(spark, silver_batch):
    # 'x3' is written first, 'x1' is the first row by key
    settings = _settings(silver_batch, "dataset.label={expr: \"cast(concat('x', "
                         "sample_number) as int) > 1\", classes: [false, true]}")

    with pytest.raises(ConfigError) as error:
        features_step(spark, settings, BATCH)

    assert type(error.value).__name__ == "LabelExpressionError"
    assert error.value.exit_code == 2
    assert str(error.value) == (
        "label.expr: \"cast(concat('x', sample_number) as int) > 1\" fails on silver.penguins "
        "v0 batch b1 (first failing row by study_name, species, sample_number): "
        "[CAST_INVALID_INPUT] The value 'x1' of the type \"STRING\" cannot be cast to \"INT\" "
        "because it is malformed. Correct the value as per the syntax, or change its target "
        "type. Use `try_cast` to tolerate malformed input and return NULL instead. "
        "SQLSTATE: 22018")
    assert current_version(spark, dataset_tables(settings).gold) is None
