"""Exit codes and the one-line error contract of the jobs, run in-process; the command
registry and its dispatch (the tests before the Spark ones start neither Spark nor MLflow)."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from sparkmlops.cli import (
    COMMANDS,
    build_parser,
    common_options,
    entry,
    job_main,
    main,
    run_command,
)
from sparkmlops.command import Command
from sparkmlops.config import load_settings
from sparkmlops.errors import ModelGateFailed
from sparkmlops.promote.command import decision_lines, gate_failure
from sparkmlops.promote.promotion import PromotionDecision
from sparkmlops.promote.step import PromoteOutcome
from sparkmlops.tables import current_version, dataset_tables, read_table
from sparkmlops.train.command import automl_overrides

REPO = Path(__file__).resolve().parents[2]
SAMPLE_FILE = REPO / "data/sample/penguins/landing/penguins_raw_PAL0809.csv"
COMMON = {"-h", "--help", "--env", "--dataset", "--batch-id", "--set", "--conf-dir", "-v",
          "--verbose"}
# each command's own options (positionals by name), in the order `sparkmlops --help` lists them
OWN_OPTIONS = {
    "ingest": {"--force"},
    "validate": {"--bronze-version"},
    "labels": {"--force", "--export-review"},
    "features": {"--silver-version"},
    "train": {"--automl", "--time-budget", "--gold-version"},
    "promote": {"--challenger-version", "--gold-version"},
    "predict": {"--model", "--gold-version"},
    "monitor": {"--gold-version"},
    "pipeline": {"--automl", "--time-budget", "--mode"},
    "maintain": {"--no-vacuum", "--no-optimize"},
    "show-table": {"layer", "--version", "--timestamp", "--limit"},
    "reproduce": {"run_id", "--tolerance"},
    "profile": {"--layer", "--version", "--out"},
    "rollback": {"--to", "--reason"},
    "history": {"--limit"},
    "lineage": {"--key", "--json"},
    "deploy": {"--target", "--out"},
    "init": {"directory", "--ci", "--platform"},
}


def _subparser(name: str) -> argparse.ArgumentParser:
    [commands] = [a for a in build_parser()._actions
                  if isinstance(a, argparse._SubParsersAction)]
    return commands.choices[name]


def _usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """(exit code, argparse's error line) of a command line the parser refuses."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    return exited.value.code, capsys.readouterr().err.splitlines()[-1]


def test_every_command_is_registered_in_help_order_with_its_own_options():
    assert list(COMMANDS) == list(OWN_OPTIONS)
    for name, command in COMMANDS.items():
        parser = _subparser(name)
        options = {s for a in parser._actions for s in (a.option_strings or [a.dest])}
        assert command.name == name
        assert parser.prog == f"sparkmlops {name}"
        assert options - COMMON == OWN_OPTIONS[name], name
        assert options & COMMON == COMMON, name


def test_version_names_sparkmlops_and_the_stack_its_results_depend_on(capsys):
    from importlib.metadata import version
    from platform import python_version

    from sparkmlops import __version__

    with pytest.raises(SystemExit) as exited:
        main(["--version"])

    assert exited.value.code == 0
    assert capsys.readouterr().out == (
        f"sparkmlops {__version__} (pyspark {version('pyspark')}, delta-spark "
        f"{version('delta-spark')}, mlflow {version('mlflow')}, great-expectations "
        f"{version('great-expectations')}; Python {python_version()})\n")


def test_help_is_plain_text_with_every_command_and_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    # a line per command: its name, then its help on the same line
    listed = [line.split()[0] for line in text.splitlines()
              if line.startswith("    ") and line.split()[0] in COMMANDS and len(line.split()) > 1]
    assert listed == list(COMMANDS)
    assert "Exit codes: 0 done, 1 unexpected error, 2 bad config or usage" in text
    # no reST or Markdown markup from the docstrings, in the top help nor any command's
    helps = [text, *(_subparser(name).format_help() for name in COMMANDS)]
    assert [h for h in helps if "``" in h or ":func:" in h or ":class:" in h] == []


@pytest.mark.parametrize(("argv", "expected"), [
    (["ingest", "--force"], {"force": True}),
    (["validate", "--bronze-version", "3"], {"bronze_version": 3}),
    (["labels", "--force", "--export-review", "r.csv"],
     {"force": True, "export_review": Path("r.csv")}),
    (["features", "--silver-version", "4"], {"silver_version": 4}),
    (["train", "--automl", "--time-budget", "30", "--gold-version", "2"],
     {"automl": True, "time_budget": 30.0, "gold_version": 2}),
    (["promote", "--challenger-version", "4", "--gold-version", "7"],
     {"challenger_version": "4", "gold_version": 7}),
    (["predict", "--gold-version", "1"], {"model": "champion", "gold_version": 1}),
    (["monitor"], {"gold_version": None}),
    (["pipeline", "--mode", "continuous"], {"automl": False, "time_budget": None,
                                            "mode": "continuous"}),
    (["maintain", "--no-vacuum"], {"vacuum": False, "optimize": True}),
    (["show-table", "silver", "--timestamp", "2026-11-26 12:00:00"],
     {"layer": "silver", "version": None, "timestamp": "2026-11-26 12:00:00", "limit": 20}),
    (["reproduce", "abc123", "--tolerance", "0.01"], {"run_id": "abc123", "tolerance": 0.01}),
    (["profile", "--layer", "silver"], {"layer": "silver", "version": None, "out": None}),
    (["rollback", "--to", "3", "--reason", "v4 is worse"],
     {"to_version": "3", "reason": "v4 is worse"}),
    (["history", "--limit", "5"], {"limit": 5}),
    (["lineage", "--key", "species=Adelie", "--key", "sample_number=1", "--json"],
     {"keys": ["species=Adelie", "sample_number=1"], "json": True}),
    (["deploy", "--target", "emr", "--target", "github", "--out", "x"],
     {"target": ["emr", "github"], "out": "x"}),
])
def test_a_command_parses_its_own_options(argv, expected):
    args = vars(build_parser().parse_args(argv))

    assert args == {"step": argv[0], "env": "local", "dataset": "penguins", "batch_id": None,
                    "overrides": [], "conf_dir": None, "verbose": False, **expected}


def test_an_unknown_command_exits_2_with_argparse_line(capsys):
    assert _usage_error(["retrain"], capsys) == (2, (
        "sparkmlops: error: argument <command>: invalid choice: 'retrain' (choose from 'ingest', "
        "'validate', 'labels', 'features', 'train', 'promote', 'predict', 'monitor', 'pipeline', "
        "'maintain', 'show-table', 'reproduce', 'profile', 'rollback', 'history', 'lineage', "
        "'deploy', 'init')"))


def test_an_unknown_option_exits_2_with_argparse_line(capsys):
    assert _usage_error(["ingest", "--forse"], capsys) == (
        2, "sparkmlops: error: unrecognized arguments: --forse")


@pytest.mark.parametrize("argv", [
    ["validate", "--force"],
    ["ingest", "--bronze-version", "1"],
    ["promote", "--model", "3"],
    ["predict", "--challenger-version", "3"],
    ["train", "--mode", "batch"],
    ["ingest", "--automl"],
    ["monitor", "--tolerance", "1"],
    ["maintain", "--out", "x"],
])
def test_an_option_of_another_command_is_refused(argv, capsys):
    assert _usage_error(argv, capsys) == (
        2, f"sparkmlops: error: unrecognized arguments: {' '.join(argv[1:])}")


def _load_job(path: Path):
    spec = importlib.util.spec_from_file_location(f"job_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_job_runs_the_command_of_its_name(monkeypatch):
    ran: list[tuple[Command, argparse.Namespace]] = []
    monkeypatch.setattr("sparkmlops.cli.run_command",
                        lambda command, args: ran.append((command, args)) or 0)
    jobs = sorted(p for p in (REPO / "jobs").glob("*.py") if p.stem != "__init__")

    for path in jobs:
        argv = ["--batch-id", "b1", *(["r1"] if path.stem == "reproduce" else [])]
        monkeypatch.setattr("sys.argv", [str(path), *argv])
        assert _load_job(path).main(None) == 0

    assert [p.stem for p in jobs] == ["features", "ingest", "labels", "maintain", "monitor",
                                      "pipeline", "predict", "promote", "reproduce", "rollback",
                                      "train", "validate"]
    assert [(command, args.step, args.batch_id) for command, args in ran] == [
        (COMMANDS[p.stem], p.stem, "b1") for p in jobs]


def test_loading_the_commands_imports_no_step_and_no_mlflow():
    """A command imports its step when it runs, so the parser and --help load no I/O edge."""
    loaded = ("import sys, sparkmlops.cli; print(*sorted(m for m in sys.modules "
              "if m.endswith('.step') or m.split('.')[0] == 'mlflow'))")

    proc = subprocess.run([sys.executable, "-c", loaded], capture_output=True, text=True,
                          check=True, timeout=120)

    assert proc.stdout.strip() == ""


def test_job_main_refuses_a_name_no_command_has():
    with pytest.raises(ValueError, match="no sparkmlops command 'retrain'; commands: ingest, "):
        job_main("retrain")


def _config_command(run, **fields) -> Command:
    """A command that needs no Spark session, to run the CLI's contract alone."""
    return Command("fake", "a command for the test", run, scope="config", **fields)


def test_a_named_error_ends_the_job_with_its_code_and_one_line(capsys):
    def run(spark, settings, batch_id, args):
        raise ModelGateFailed("model m v2 failed the gate")

    code = run_command(_config_command(run), common_options().parse_args(["--batch-id", "b1"]))

    captured = capsys.readouterr()
    assert code == 5
    assert captured.out == ""
    assert [line for line in captured.err.splitlines() if line.startswith("sparkmlops ")] == [
        "sparkmlops fake: ModelGateFailed: model m v2 failed the gate"]


def test_a_command_gets_the_config_its_options_stand_for(capsys):
    seen = []

    def run(spark, settings, batch_id, args):
        automl = settings.dataset.model.automl
        seen.append((spark, batch_id, automl.enabled, automl.time_budget_s))
        return "two lines\nof output"

    args = build_parser().parse_args(["train", "--automl", "--time-budget", "30",
                                      "--set", "dataset.model.automl.time_budget_s=5"])
    code = run_command(_config_command(run, overrides=automl_overrides), args)

    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert seen == [(None, "all", True, 30.0)]  # the option wins over --set
    assert out[:2] == ["two lines", "of output"]
    assert out[2].startswith("done in ") and out[2].endswith(" s")


def _promote(*, mode="enabled", passed=False, promoted=False, champion="1",
             reasons=("accuracy=0.7000 misses the threshold 0.8",
                      "areaUnderROC=0.8100 does not beat the champion's 0.8300 by the "
                      "required 0.0")) -> PromoteOutcome:
    """A promote outcome for challenger v2 judged against champion v1."""
    decision = PromotionDecision(mode, "2", "1", promoted=promoted, passed=passed,
                                 reasons=list(reasons))
    return PromoteOutcome("run", {}, decision=decision, champion=champion, decisions=[decision])


def test_a_challenger_failing_an_enabled_gate_is_a_model_gate_failure():
    assert gate_failure(_promote(), "m") == (
        "model m v2 failed the gate against champion v1: accuracy=0.7000 misses the threshold "
        "0.8; areaUnderROC=0.8100 does not beat the champion's 0.8300 by the required 0.0; "
        "@champion is v1")


@pytest.mark.parametrize("decision", [
    {"mode": "dry_run"},
    {"mode": "disabled", "passed": True},
    {"passed": True, "reasons": ["the challenger already is the champion"]},
    {"passed": True, "promoted": True, "champion": "2"},
])
def test_dry_run_disabled_and_a_passing_challenger_are_no_failure(decision):
    assert gate_failure(_promote(**decision), "m") is None


def test_each_judged_version_is_one_line_oldest_first():
    older = PromotionDecision("enabled", "2", "1", promoted=False, passed=False,
                              reasons=["f1=0.5000 misses the threshold 0.7"])
    newer = PromotionDecision("enabled", "3", "1", promoted=True, passed=True)

    assert decision_lines([older, newer]) == [
        "  judged 2 version(s):",
        "    v2 against champion v1: not promoted; f1=0.5000 misses the threshold 0.7",
        "    v3 against champion v1: promoted"]
    assert decision_lines([]) == []


def _args(step: str, tmp_path: Path, *extra: str) -> list[str]:
    return [step, "--env", "local", "--batch-id", "b1", "--set", f"state_dir={tmp_path}",
            "--set", f"dataset.source.path={SAMPLE_FILE}", *extra]


def test_ingest_exits_zero_and_prints_the_version_it_wrote(spark, tmp_path, capsys):
    code = main(_args("ingest", tmp_path))

    out = capsys.readouterr().out
    bronze = dataset_tables(load_settings("local", "penguins",
                                          overrides=[f"state_dir={tmp_path}"])).bronze
    assert code == 0
    assert out.startswith("sparkmlops ingest: dataset penguins, batch b1\n")
    assert "wrote bronze.penguins v0" in out
    assert (current_version(spark, bronze), read_table(spark, bronze).count()) == (0, 114)


def test_failed_quality_gate_exits_4_with_one_line(spark, tmp_path, capsys):
    assert main(_args("ingest", tmp_path)) == 0
    capsys.readouterr()

    code = main(_args("validate", tmp_path,
                      "--set", "dataset.validate.expectations.0.kwargs.min_value=1000"))

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
    scripts.read(Path(__file__).parents[2] / "setup.cfg")
    assert scripts["options.entry_points"]["console_scripts"].split() == [
        "sparkmlops", "=", "sparkmlops.cli:entry"]
    monkeypatch.setattr("sys.argv", ["sparkmlops", "validate", "--batch-id", "x'y"])

    with pytest.raises(SystemExit) as exited:
        entry()

    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith("sparkmlops validate: InvalidBatchIdError: ")
