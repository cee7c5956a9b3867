"""Every config input error is one ConfigError line and exit 2: YAML that does not parse
(in ``--set`` and in files) and values the gate cannot honour. No Spark, no MLflow."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sparkmlops.cli import main, one_line
from sparkmlops.config import load_settings
from sparkmlops.errors import ConfigError

REPO_CONF = Path(__file__).resolve().parents[3] / "conf"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    code = main(["train", "--batch-id", "b1", *argv])
    captured = capsys.readouterr()
    assert captured.out == ""
    return code, [line for line in captured.err.splitlines() if line.startswith("sparkmlops ")]


@pytest.mark.parametrize(("override", "expected"), [
    ("dataset.keys=[study_name",
     "sparkmlops train: ConfigError: --set dataset.keys: '[study_name' is not a YAML value: "
     "expected ',' or ']', but got '<stream end>' at line 1, column 12 "
     "(while parsing a flow sequence)"),
    ("dataset.name=\tpenguins",
     "sparkmlops train: ConfigError: --set dataset.name: '\\tpenguins' is not a YAML value: "
     "found character '\\t' that cannot start any token at line 1, column 1 "
     "(while scanning for the next token)"),
    ("dataset.label.column='sex",
     "sparkmlops train: ConfigError: --set dataset.label.column: \"'sex\" is not a YAML "
     "value: found unexpected end of stream at line 1, column 5 "
     "(while scanning a quoted scalar)"),
])
def test_a_set_value_that_is_not_yaml_is_one_line_and_exit_2(capsys, override, expected):
    code, lines = run_cli(capsys, "--set", override)

    assert code == 2
    assert lines == [expected]


def test_a_dataset_file_that_is_not_yaml_names_the_file_and_the_line(tmp_path, capsys):
    conf = tmp_path / "conf"
    shutil.copytree(REPO_CONF, conf)
    dataset = conf / "datasets" / "penguins.yml"
    dataset.write_text(dataset.read_text() + "extra: [unclosed\n")

    code, lines = run_cli(capsys, "--conf-dir", str(conf))

    n = len(dataset.read_text().splitlines())
    assert code == 2
    assert lines == [
        f"sparkmlops train: ConfigError: {dataset}: not valid YAML: expected ',' or ']', but "
        f"got '<stream end>' at line {n + 1}, column 1 (while parsing a flow sequence)"]


def test_a_tab_indented_overlay_is_one_line(tmp_path):
    conf = tmp_path / "conf"
    shutil.copytree(REPO_CONF, conf)
    (conf / "base.yml").write_text("tracking:\n\texperiment: x\n")

    with pytest.raises(ConfigError) as caught:
        load_settings("local", "penguins", conf_dir=conf)

    assert str(caught.value) == (
        f"{conf}/base.yml: not valid YAML: found character '\\t' that cannot start any token "
        "at line 2, column 1 (while scanning for the next token)")


def test_a_negative_min_improvement_is_refused_at_load(capsys):
    code, lines = run_cli(capsys, "--set", "dataset.promote.min_improvement=-0.01")

    assert code == 2
    assert len(lines) == 1
    assert lines[0].startswith("sparkmlops train: ConfigError: invalid config: ")
    assert lines[0].endswith(
        "datasets/penguins.yml: promote.min_improvement: Input should be greater than or "
        "equal to 0")


def test_a_zero_min_improvement_still_loads():
    settings = load_settings("local", "penguins",
                             overrides=["dataset.promote.min_improvement=0"])

    assert settings.dataset.promote.min_improvement == 0.0


def test_a_multi_line_error_message_is_printed_on_one_line():
    assert one_line("first\n  in <string>, line 1\n\n    ^\n") == (
        "first | in <string>, line 1 | ^")


def test_set_starts_a_section_an_overlay_sets_to_null(tmp_path):
    # `sparkmlops init` writes `serverless: null` into conf/emr.yml; the packaged emr.yml
    # says to --set deploy.emr.serverless.application_id=... to turn EMR Serverless on
    shutil.copytree(REPO_CONF / "datasets", tmp_path / "datasets")
    (tmp_path / "emr.yml").write_text(
        "storage: {root: s3a://acme/lake}\ntracking: {tracking_uri: https://mlflow.acme}\n"
        "deploy:\n  emr:\n    cluster_id: j-1\n    serverless: null\n")

    settings = load_settings("emr", "penguins", conf_dir=tmp_path, overrides=[
        "deploy.emr.serverless.application_id=00fabc",
        "deploy.emr.serverless.execution_role_arn=arn:aws:iam::123456789012:role/job"])

    assert settings.deploy.emr is not None
    assert settings.deploy.emr.serverless is not None
    assert settings.deploy.emr.serverless.model_dump() == {
        "application_id": "00fabc",
        "execution_role_arn": "arn:aws:iam::123456789012:role/job", "log_uri": None}
