"""Config keys renamed so a stage has one name (folder, command, config) still load: the old
key with a warning naming the new one, both names at once refused. No Spark, no MLflow."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import yaml

from sparkmlops.config import load_settings
from sparkmlops.errors import ConfigError

REPO_CONF = Path(__file__).resolve().parents[3] / "conf"
RENAMED = {"validate": "quality", "promote": "promotion", "monitor": "monitoring",
           "maintain": "maintenance"}


def _conf_with(tmp_path: Path, edit) -> Path:
    conf = tmp_path / "conf"
    shutil.copytree(REPO_CONF, conf)
    path = conf / "datasets" / "penguins.yml"
    dataset = yaml.safe_load(path.read_text())
    edit(dataset)
    path.write_text(yaml.safe_dump(dataset, sort_keys=False))
    return conf


def test_the_old_dataset_keys_load_into_the_new_sections_with_a_warning(tmp_path, caplog):
    current = load_settings("local", "penguins", conf_dir=REPO_CONF,
                            overrides=[f"state_dir={tmp_path}/state"])

    def to_old_names(dataset: dict) -> None:
        for new, old in RENAMED.items():
            dataset[old] = dataset.pop(new)
        dataset["quality"]["gate"] = "dry_run"
        dataset["promotion"]["min_improvement"] = 0.25

    conf = _conf_with(tmp_path, to_old_names)
    with caplog.at_level(logging.WARNING, logger="sparkmlops.config.loader"):
        old = load_settings("local", "penguins", conf_dir=conf,
                            overrides=[f"state_dir={tmp_path}/state"])

    assert old.dataset.validate_.gate == "dry_run"
    assert old.dataset.promote.min_improvement == 0.25
    assert old.dataset.monitor == current.dataset.monitor
    assert old.dataset.maintain == current.dataset.maintain
    assert old.dataset.validate_.expectations == current.dataset.validate_.expectations
    warned = sorted(r.getMessage().split(": the key ")[1] for r in caplog.records)
    assert warned == sorted(f"{old!r} is deprecated; rename it {new!r} (it still loads)"
                            for new, old in RENAMED.items())


def test_a_section_under_both_names_is_refused(tmp_path):
    conf = _conf_with(tmp_path, lambda d: d.update(quality={"gate": "disabled"}))

    with pytest.raises(ConfigError) as raised:
        load_settings("local", "penguins", conf_dir=conf)

    assert str(raised.value) == (
        f"{conf}/datasets/penguins.yml: both 'quality' and 'validate'; 'quality' is the old "
        "name of 'validate': keep only 'validate'")


def test_an_old_key_in_set_and_in_an_env_file_still_applies(tmp_path, caplog):
    conf = _conf_with(tmp_path, lambda d: None)
    (conf / "local.yml").write_text(f"quality:\n  data_docs_dir: {tmp_path}/docs\n")

    with caplog.at_level(logging.WARNING, logger="sparkmlops.config.loader"):
        settings = load_settings("local", "penguins", conf_dir=conf, overrides=[
            "dataset.quality.gate=disabled", "dataset.monitoring.drift.psi.warn=0.2"])

    assert settings.dataset.validate_.gate == "disabled"
    assert settings.dataset.monitor.drift["psi"].warn == 0.2
    assert settings.validate_.data_docs_dir == f"{tmp_path}/docs"
    messages = [r.getMessage() for r in caplog.records]
    assert (f"{conf}/local.yml: the key 'quality' is deprecated; rename it 'validate' "
            "(it still loads)") in messages
    assert ("--set dataset.quality.gate: the key 'quality' is deprecated; use "
            "dataset.validate.gate (it still applies)") in messages
