from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sparkmlops.cli import main
from sparkmlops.config import load_settings
from sparkmlops.errors import ConfigError
from sparkmlops.preflight import check_settings
from sparkmlops.train.estimators import ESTIMATORS

REPO = Path(__file__).resolve().parents[2]


def _conf_copy(tmp_path: Path, edit_dataset=None, base=None) -> Path:
    """A project conf dir: the repo's penguins.yml (edited), and ``base`` as its base.yml."""
    conf = tmp_path / "conf"
    (conf / "datasets").mkdir(parents=True)
    if base is not None:
        (conf / "base.yml").write_text(yaml.safe_dump(base))
    dataset = yaml.safe_load((REPO / "conf/datasets/penguins.yml").read_text())
    if edit_dataset:
        edit_dataset(dataset)
    (conf / "datasets" / "penguins.yml").write_text(yaml.safe_dump(dataset))
    return conf


def test_local_settings_resolve_state_dir_and_derived_paths(tmp_path):
    settings = load_settings("local", "penguins", overrides=[f"state_dir={tmp_path}"])

    assert settings.state_dir == str(tmp_path)
    assert settings.storage.root == f"{tmp_path}/lake"
    assert settings.tracking.tracking_uri == f"sqlite:///{tmp_path}/mlflow.db"
    assert settings.spark.master == "local[2]"
    assert settings.dataset.keys == ["study_name", "species", "sample_number"]
    assert settings.dataset.schema_[1].source_name == "Sample Number"
    assert settings.dataset.label.classes == ["FEMALE", "MALE"]


# what a deployment sets for emr (the bucket and its tracking server; see test_cluster_config)
DEPLOYED = {"emr": ["storage.root=s3a://my-bucket/sparkmlops/lake"]}


@pytest.mark.parametrize("env", ["local", "emr", "databricks"])
def test_every_environment_file_is_valid(env, monkeypatch):
    if env == "emr":
        monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    settings = load_settings(env, "penguins", overrides=DEPLOYED.get(env, []))

    assert settings.env == env


def test_cluster_environments_use_the_platform_session(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert load_settings("emr", "penguins",
                         overrides=DEPLOYED["emr"]).spark.use_existing_session is True
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    databricks = load_settings("databricks", "penguins")
    assert databricks.tracking.tracking_uri == "databricks"


def test_override_with_set_and_env_tracking_uri(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    settings = load_settings(
        "local", "penguins", overrides=[f"state_dir={tmp_path}", "dataset.validate.gate=dry_run"]
    )

    assert settings.tracking.tracking_uri == "http://127.0.0.1:5999"
    assert settings.dataset.validate_.gate == "dry_run"


def test_config_hash_changes_with_the_config(tmp_path):
    a = load_settings("local", "penguins", overrides=[f"state_dir={tmp_path}"])
    b = load_settings("local", "penguins", overrides=[f"state_dir={tmp_path}"])
    c = load_settings("local", "penguins",
                      overrides=[f"state_dir={tmp_path}", "dataset.model.split.seed=43"])

    assert a.config_hash() == b.config_hash()
    assert a.config_hash() != c.config_hash()


def test_unknown_key_fails_with_its_key_path(tmp_path):
    conf = _conf_copy(tmp_path, edit_dataset=lambda d: d["model"].update(estimatr={}))

    with pytest.raises(ConfigError, match=r"datasets/penguins.yml: model.estimatr: unknown key"):
        load_settings("local", "penguins", conf_dir=conf)


def test_missing_key_fails_with_its_key_path(tmp_path):
    conf = _conf_copy(tmp_path, edit_dataset=lambda d: d.pop("source"))

    with pytest.raises(ConfigError, match=r"datasets/penguins.yml: source: required key is "
                                          r"missing"):
        load_settings("local", "penguins", conf_dir=conf)


def test_unknown_key_in_a_project_overlay_names_the_overlay(tmp_path):
    conf = _conf_copy(tmp_path, base={"trackng": {"experiment": "x"}})

    with pytest.raises(ConfigError) as caught:
        load_settings("local", "penguins", conf_dir=conf)

    assert str(caught.value) == (f"invalid config: {conf}/(base|local).yml over the packaged "
                                 "defaults: trackng: unknown key")


def test_wrong_type_fails_with_its_key_path(tmp_path):
    conf = _conf_copy(tmp_path, edit_dataset=lambda d: d["model"]["split"].update(
        test_fraction="a lot"))

    with pytest.raises(ConfigError, match=r"model.split.test_fraction"):
        load_settings("local", "penguins", conf_dir=conf)


def test_unknown_column_in_keys_is_rejected(tmp_path):
    conf = _conf_copy(tmp_path, edit_dataset=lambda d: d.update(keys=["study_name", "nope"]))

    with pytest.raises(ConfigError, match=r"keys: unknown column\(s\) \['nope'\]"):
        load_settings("local", "penguins", conf_dir=conf)


def test_expectation_on_missing_column_is_rejected(tmp_path):
    def edit(d):
        d["validate"]["expectations"].append(
            {"expectation": "expect_column_values_to_not_be_null",
             "kwargs": {"column": "wingspan"}})

    conf = _conf_copy(tmp_path, edit_dataset=edit)

    with pytest.raises(ConfigError, match=r"validate.expectations.11 \(expect_column_values_"
                       r"to_not_be_null\) kwargs: unknown column\(s\) \[.wingspan.\]"):
        load_settings("local", "penguins", conf_dir=conf)


def test_binary_task_needs_two_classes(tmp_path):
    conf = _conf_copy(tmp_path, edit_dataset=lambda d: d["label"].update(classes=["MALE"]))

    with pytest.raises(ConfigError, match="exactly two classes"):
        load_settings("local", "penguins", conf_dir=conf)


def test_missing_config_file_is_a_config_error():
    with pytest.raises(ConfigError, match=r"config file not found: .*datasets/nosuch.yml"):
        load_settings("local", "nosuch")


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="expected key.path=value"):
        load_settings("local", "penguins", overrides=["state_dir"])


def test_default_state_dir_expands_env_everywhere(monkeypatch):
    monkeypatch.delenv("SPARKMLOPS_STATE_DIR", raising=False)

    settings = load_settings("local", "penguins")

    expected = str(REPO / ".sparkmlops" / "local")
    assert settings.state_dir == expected
    assert settings.storage.root == f"{expected}/lake"
    assert settings.tracking.tracking_uri == f"sqlite:///{expected}/mlflow.db"
    assert settings.tracking.artifact_location == f"{expected}/mlartifacts"
    assert settings.validate_.data_docs_dir == f"{expected}/data_docs"
    dumped = settings.model_dump_json()
    assert not any(f"{{{name}}}" in dumped
                   for name in ("env", "dataset", "state_dir", "project_dir"))


def _features(tmp_path, **changes):
    """Load penguins with ``features`` keys changed; the ConfigError if it fails."""
    conf = _conf_copy(tmp_path, edit_dataset=lambda d: d["features"].update(changes))
    return load_settings("local", "penguins", conf_dir=conf).dataset.features


def test_penguins_features_add_the_egg_year_to_the_listed_inputs():
    features = load_settings("local", "penguins").dataset.features

    assert features.numeric_inputs == [
        "culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g",
        "culmen_ratio", "date_egg_year"]
    assert features.categorical_inputs == ["species", "island"]


def test_bucket_splits_may_be_infinite_and_buckets_are_categorical(tmp_path):
    bucket = {"name": "band", "column": "body_mass_g", "splits": ["-inf", 3500, "+Inf"]}

    features = _features(tmp_path, buckets=[bucket])

    assert features.buckets[0].splits == [float("-inf"), 3500.0, float("inf")]
    assert features.categorical_inputs == ["species", "island", "band"]


def test_a_bucket_listed_as_numeric_and_a_date_part_as_categorical_switch_kind(tmp_path):
    features = _features(
        tmp_path, date_parts=[{"column": "date_egg", "parts": ["year", "month"]}],
        buckets=[{"name": "band", "column": "body_mass_g", "splits": [0, 4000, 8000]}],
        numeric=["body_mass_g", "band"], categorical=["date_egg_month"])

    assert features.numeric_inputs == ["body_mass_g", "band", "date_egg_year"]
    assert features.categorical_inputs == ["date_egg_month"]


def test_unknown_date_part_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match=r"features.date_parts.0.parts.1: Input should be "
                                          r"'year', 'quarter', 'month'"):
        _features(tmp_path, date_parts=[{"column": "date_egg", "parts": ["year", "fortnight"]}])


def test_date_parts_need_a_date_column(tmp_path):
    with pytest.raises(ConfigError, match=r"features.date_parts.0.column: 'island' must be a "
                                          r"date or timestamp schema column, found string"):
        _features(tmp_path, date_parts=[{"column": "island", "parts": ["year"]}])


@pytest.mark.parametrize("splits", [[0, 3500, 3500, 6000], ["-inf", 5000, 4000, "inf"],
                                    ["inf", 0, 1]])
def test_bucket_splits_must_increase_strictly(tmp_path, splits):
    bucket = {"name": "band", "column": "body_mass_g", "splits": splits}

    with pytest.raises(ConfigError, match=r"features.buckets.0.splits: .*split points must be "
                                          r"strictly increasing"):
        _features(tmp_path, buckets=[bucket])


def test_bucket_of_a_missing_column_is_rejected(tmp_path):
    bucket = {"name": "band", "column": "wingspan", "splits": [0, 1, 2]}

    with pytest.raises(ConfigError, match=r"features.buckets.0.column: unknown column\(s\) "
                                          r"\['wingspan'\]"):
        _features(tmp_path, buckets=[bucket])


def test_a_numeric_input_naming_a_missing_column_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match=r"features.numeric: unknown column\(s\) \['wingspan'\]"):
        _features(tmp_path, numeric=["body_mass_g", "wingspan"])


@pytest.fixture
def builtin_transforms_only(monkeypatch):
    """The transform registry as a fresh process has it: tests elsewhere register their own
    at import (collection), which would change the "registered: [...]" list."""
    from sparkmlops.features import transforms

    monkeypatch.setattr(transforms, "_REGISTRY", {
        "normalize_text": transforms._REGISTRY["normalize_text"]})


def _checked_transform(tmp_path, transform) -> str:
    """Load penguins with one Python ``transform`` (the load itself passes: config does
    not import feature code) and return the preflight's ConfigError line."""
    conf = _conf_copy(tmp_path, edit_dataset=lambda d: d["features"].update(
        transforms=[transform]))
    settings = load_settings("local", "penguins", conf_dir=conf)
    with pytest.raises(ConfigError) as caught:
        check_settings(settings)
    prefix = f"invalid config: {conf}/datasets/penguins.yml: "
    assert str(caught.value).startswith(prefix)
    return str(caught.value).removeprefix(prefix)


def test_unknown_transform_function_is_rejected_with_the_known_names(
    tmp_path, builtin_transforms_only
):
    transform = {"function": "normalise_text", "outputs": ["x"]}

    assert _checked_transform(tmp_path, transform) == (
        "features.transforms.0.function: unknown feature transform 'normalise_text'; did you "
        "mean 'normalize_text'? registered: ['normalize_text'], or give an import path "
        "'package.module:function'")


def test_transform_import_path_of_a_missing_module_is_rejected(tmp_path):
    transform = {"function": "nosuch.module:fn", "outputs": ["x"]}

    assert _checked_transform(tmp_path, transform) == (
        "features.transforms.0.function: feature transform 'nosuch.module:fn': cannot import "
        "module 'nosuch.module' (No module named 'nosuch')")


def test_transform_params_must_fit_the_function(tmp_path):
    transform = {"function": "normalize_text", "params": {"column": "island", "ouput": "x"},
                 "outputs": ["x"]}

    assert _checked_transform(tmp_path, transform) == (
        "features.transforms.0: params: do not fit normalize_text: unknown parameter(s) "
        "['ouput']; it takes ['column', 'output', 'strip_accents', 'casefold']")


def test_transform_params_must_be_plain_json_at_load(tmp_path):
    transform = {"function": "normalize_text", "params": {"column": "island", "x": float("nan")},
                 "outputs": ["x"]}

    with pytest.raises(ConfigError, match=r"features.transforms.0: Value error, params: must "
                                          r"be plain JSON values"):
        _features(tmp_path, transforms=[transform])


def test_preflight_problems_exit_2_with_one_line_through_the_cli(tmp_path, capsys):
    conf = _conf_copy(tmp_path, edit_dataset=lambda d: d["model"]["estimator"].update(
        params={"regParm": 0.1}))

    code = main(["train", "--conf-dir", str(conf), "--set", f"state_dir={tmp_path / 's'}"])

    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"sparkmlops train: ConfigError: invalid config: {conf}/datasets/penguins.yml: "
        "model.estimator.params: logistic_regression has no parameter 'regParm'; did you mean "
        "'regParam'?"]


def test_every_preflight_problem_is_named_in_one_line(make_settings, builtin_transforms_only):
    settings = make_settings(
        "dataset.features.transforms=[{function: normalise_text, outputs: [x]}]",
        "dataset.model.estimator.type=logistic_regresion",
        "dataset.model.automl.grids={svm: {regParam: [0.1]}}")

    with pytest.raises(ConfigError) as caught:
        check_settings(settings)

    where = f"{settings.project_dir}/conf/datasets/penguins.yml"
    known = ", ".join(ESTIMATORS)
    assert str(caught.value) == (
        f"invalid config: {where}: features.transforms.0.function: unknown feature transform "
        "'normalise_text'; did you mean 'normalize_text'? registered: ['normalize_text'], or "
        "give an import path 'package.module:function'; "
        f"{where}: model.estimator.type: unknown estimator 'logistic_regresion'; did you mean "
        f"'logistic_regression'? (one of {known}); "
        f"{where}: model.automl.grids.svm: unknown estimator 'svm' (one of {known})")


def test_a_defined_column_may_not_shadow_a_schema_column(tmp_path):
    derived = [{"name": "body_mass_g", "expr": "body_mass_g / 1000"}]

    with pytest.raises(ConfigError, match=r"features.derived.0: column 'body_mass_g' is "
                                          r"already a schema column"):
        _features(tmp_path, derived=derived)


def test_allow_non_finite_only_on_a_double_or_float_column(make_settings):
    assert make_settings("dataset.schema.9.allow_non_finite=true").dataset.schema_[
        9].allow_non_finite is True
    with pytest.raises(ConfigError, match=r"datasets/penguins.yml: schema.1: Value error, "
                       r"allow_non_finite: only a double or float column can hold NaN or "
                       r"Infinity; sample_number is int"):
        make_settings("dataset.schema.1.allow_non_finite=true")


def test_repeated_keys_is_one_of_three_policies(make_settings):
    assert make_settings().dataset.write.repeated_keys == "quarantine"
    with pytest.raises(ConfigError, match=r"write.repeated_keys: Input should be 'quarantine', "
                       r"'fail' or 'allow'"):
        make_settings("dataset.write.repeated_keys=drop")
