"""Exit codes and the one-line error contract of the jobs, run in-process."""

from __future__ import annotations

from pathlib import Path

from sparkmlops.cli import entry, main

SAMPLE_FILE = Path(__file__).resolve().parents[1] / "data/sample/penguins/landing/" \
    "penguins_raw_PAL0809.csv"


def _args(step: str, tmp_path: Path, *extra: str) -> list[str]:
    return [step, "--env", "local", "--batch-id", "b1", "--set", f"state_dir={tmp_path}",
            "--set", f"dataset.source.path={SAMPLE_FILE}", *extra]


def test_ingest_exits_zero_and_prints_its_summary(spark, tmp_path, capsys):
    code = main(_args("ingest", tmp_path))

    out = capsys.readouterr().out
    assert code == 0
    assert "wrote bronze.penguins v0" in out
    assert "rows_in: 114" in out


def test_failed_quality_gate_exits_4_with_one_line(spark, tmp_path, capsys):
    assert main(_args("ingest", tmp_path)) == 0
    capsys.readouterr()

    code = main(_args("validate", tmp_path,
                      "--set", "dataset.quality.expectations.0.kwargs.min_value=1000"))

    err_lines = [line for line in capsys.readouterr().err.splitlines()
                 if line.startswith("sparkmlops ")]
    assert code == 4
    assert len(err_lines) == 1
    assert err_lines[0].startswith(
        "sparkmlops validate: QualityGateFailed: quality gate failed for bronze.penguins v0 "
        "batch b1: critical expectation(s) failed: expect_table_row_count_to_be_between()")


def test_bad_config_exits_2(tmp_path, capsys):
    code = main(_args("ingest", tmp_path, "--set", "dataset.model.task=clustering"))

    err = capsys.readouterr().err
    assert code == 2
    assert "sparkmlops ingest: ConfigError: invalid config: " in err
    assert "model.task" in err


def test_missing_input_exits_3(spark, tmp_path, capsys):
    code = main(["ingest", "--set", f"state_dir={tmp_path}",
                 "--set", f"dataset.source.path={tmp_path / 'nothing-here'}"])

    assert code == 3
    assert "MissingInputError: input path does not exist" in capsys.readouterr().err


def test_predict_without_a_champion_exits_3(spark, tmp_path, capsys):
    code = main(_args("predict", tmp_path))

    assert code == 3
    assert "model penguins_sex_classifier has no version with alias @champion" in \
        capsys.readouterr().err


def test_the_console_script_exits_with_the_code_itself(monkeypatch, capsys):
    """A Databricks python_wheel_task calls the entry point and ignores what it returns."""
    import configparser

    import pytest

    scripts = configparser.ConfigParser()
    scripts.read(Path(__file__).parents[1] / "setup.cfg")
    assert scripts["options.entry_points"]["console_scripts"].split() == [
        "sparkmlops", "=", "sparkmlops.cli:entry"]
    monkeypatch.setattr("sys.argv", ["sparkmlops", "validate", "--batch-id", "x'y"])

    with pytest.raises(SystemExit) as exited:
        entry()

    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith("sparkmlops validate: InvalidBatchIdError: ")
