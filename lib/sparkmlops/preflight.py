"""Checks of loaded settings that need more than the YAML: the estimator catalogue and
the feature code. ``sparkmlops.config`` imports neither (nor Spark), so these run right
after the load, before any data is read: a misspelt estimator parameter, a family that
does not fit the task, a Python feature transform that does not import or does not take
its ``params``. Each is a ``ConfigError`` worded like a load-time one (file, key path).

Example::

    settings = load_checked_settings("local", "penguins")   # load_settings + check_settings
    check_settings(settings)                                 # on settings loaded another way
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sparkmlops.config import (
    FeatureSettings,
    ModelSettings,
    Settings,
    load_settings,
    packaged_spark_settings,
    settings_error,
)
from sparkmlops.errors import FeatureTransformError
from sparkmlops.features.transforms import check_transform_params, resolve_transform
from sparkmlops.train.estimators import ESTIMATORS, family_problem, param_problems

log = logging.getLogger(__name__)

Problems = list[tuple[str, str]]


def check_settings(settings: Settings) -> None:
    """Check what ``load_settings`` cannot without the estimator and feature code.

    Raises:
        ConfigError: one line, every problem with its file and key path, ``;``-joined.
    """
    dataset = settings.dataset
    problems = [*transform_problems(dataset.features), *estimator_problems(dataset.model)]
    if problems:
        raise settings_error(settings, [(f"dataset.{key}", message)
                                        for key, message in problems])


def load_checked_settings(env: str, dataset: str, *, overrides: list[str] | None = None,
                          conf_dir: str | Path | None = None, spark: Any = None) -> Settings:
    """``load_settings`` then ``check_settings``: the settings of a run. A conf dir that
    is a Hadoop URI is read with ``spark``, else with the session the env would use."""
    settings = load_settings(env, dataset, overrides=overrides, conf_dir=conf_dir,
                             spark=spark or conf_dir_session(env, dataset))
    check_settings(settings)
    return settings


def conf_dir_session(env: str, dataset: str) -> Callable[[], Any]:
    """What starts the session a URI conf dir is read with (only called for a URI): the
    one the env would use, from the packaged ``spark`` settings, since the project's
    overlays are not read yet; on a cluster that is the platform's own session anyway."""

    def start() -> Any:
        # imported here, as in the CLI: a local conf dir never loads the session code
        from sparkmlops.spark import get_spark

        log.info("conf dir is a URI: reading it with a Spark session started from the "
                 "packaged %s settings", env)
        return get_spark(packaged_spark_settings(env, dataset))

    return start


def transform_problems(features: FeatureSettings) -> Problems:
    """(key path, why) of each Python transform that does not import or take its params."""
    problems: Problems = []
    for i, transform in enumerate(features.transforms):
        try:
            function = resolve_transform(transform.function)
        except FeatureTransformError as exc:
            problems.append((f"features.transforms.{i}.function", str(exc)))
            continue
        try:
            check_transform_params(function, transform.params)
        except TypeError as exc:
            problems.append((f"features.transforms.{i}",
                             f"params: do not fit {transform.function}: {exc}"))
    return problems


def estimator_problems(model: ModelSettings) -> Problems:
    """(key path, why) of each estimator name, family or parameter the catalogue
    (``sparkmlops.train.estimators``) does not have or that does not fit the task."""
    families = [("model.estimator.type", model.estimator.type),
                *[(f"model.automl.families.{i}", f) for i, f in enumerate(model.automl.families)]]
    problems: Problems = []
    for key, family in families:
        problem = family_problem(family, model.task)
        if problem:
            problems.append((key, problem))
    # a grid may wait for a family the task does not use: its name must only be known
    problems += [(f"model.automl.grids.{f}", family_problem(f, model.task) or "")
                 for f in model.automl.grids if f not in ESTIMATORS]
    searched = [("model.estimator.params", model.estimator.type, list(model.estimator.params)),
                *[(f"model.automl.grids.{f}", f, list(grid))
                  for f, grid in model.automl.grids.items()]]
    if model.tuning.method != "none":
        searched.append(("model.tuning.grid", model.estimator.type, list(model.tuning.grid)))
    for key, family, params in searched:
        if family in ESTIMATORS:
            problems += [(key, problem) for problem in param_problems(family, params)]
    return problems
