"""`sparkmlops profile`: a starter suite from a table, which loads and passes on that table."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from sparkmlops.cli import main
from sparkmlops.config import load_settings
from sparkmlops.ingest.step import ingest_step
from sparkmlops.validate.step import validate_step

PROJECT = Path(__file__).resolve().parents[2]
SAMPLE = PROJECT / "data/sample/penguins/landing/penguins_raw_PAL0708.csv"


def test_profile_command_writes_a_suite_that_loads_and_passes(spark, make_settings, tmp_path,
                                                              capsys):
    settings = make_settings(f"dataset.source.path={SAMPLE}")
    ingest_step(spark, settings, "b1")
    out = tmp_path / "suite.yml"

    code = main(["profile", "--set", f"state_dir={tmp_path}", "--out", str(out)])

    assert code == 0
    assert f"written to {out}" in capsys.readouterr().out
    text = out.read_text()
    assert text.startswith(
        "# Starter suite proposed by `sparkmlops profile` from bronze.penguins v0")
    proposal = yaml.safe_load(text)["validate"]
    by_name = {(e["expectation"], e["kwargs"].get("column")): e for e in proposal["expectations"]}
    assert by_name[("expect_column_values_to_be_in_set", "island")]["kwargs"]["value_set"] == [
        "Biscoe", "Dream", "Torgersen"]
    assert by_name[("expect_table_row_count_to_be_between", None)]["kwargs"] == {
        "min_value": 1, "max_value": 1100}

    # the proposal, put in a dataset config, loads and passes on the table it came from
    conf = tmp_path / "conf"
    shutil.copytree(PROJECT / "conf", conf)
    dataset_file = conf / "datasets" / "penguins.yml"
    dataset = yaml.safe_load(dataset_file.read_text())
    dataset["validate"] = proposal
    dataset_file.write_text(yaml.safe_dump(dataset, sort_keys=False))
    profiled = load_settings("local", "penguins", conf_dir=conf,
                             overrides=[f"state_dir={tmp_path}", f"dataset.source.path={SAMPLE}"])
    result = validate_step(spark, profiled, "b1")

    assert result.status == "passed"
    assert result.expectations_failed == []
    # the proposal quarantines nothing of the data it came from (PAL0708's unmeasured
    # bird only lowers the share of non-null measurements)
    assert (result.silver_rows, result.quarantined) == (110, 0)
