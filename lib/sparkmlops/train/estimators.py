"""The estimator catalogue: every MLlib estimator a config may name, the task it fits,
its built-in AutoML grid, its parameters, and how it is built.

Config names estimators by these names only (``model.estimator.type``,
``model.automl.families``, ``model.automl.grids``); ``sparkmlops.preflight`` checks
those names and their parameters against this catalogue after load, and ``train``
builds them here.

Example::

    build_estimator(EstimatorSettings(type="gbt_classifier", params={"maxDepth": 3}), seed=42)
    default_families("regression")  # ['linear_regression', 'decision_tree_regressor', ...]
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from pyspark.ml.classification import (
    DecisionTreeClassifier,
    GBTClassifier,
    LogisticRegression,
    RandomForestClassifier,
)
from pyspark.ml.param import Param
from pyspark.ml.regression import (
    DecisionTreeRegressor,
    GBTRegressor,
    LinearRegression,
    RandomForestRegressor,
)

from sparkmlops.config import EstimatorSettings
from sparkmlops.errors import ConfigError
from sparkmlops.features.mllib import FEATURES_VECTOR, LABEL_COLUMN


@dataclass(frozen=True)
class Family:
    """One estimator a config may name: its MLlib class, the task it fits, its grid."""

    name: str
    cls: type
    regression: bool
    # MLlib's GBTClassifier is binary only
    binary_only: bool = False
    # the built-in AutoML grid: small
    grid: dict[str, list[Any]] = field(default_factory=dict)

    def fits(self, task: str) -> bool:
        if self.regression != (task == "regression"):
            return False
        return task == "binary_classification" or not self.binary_only


_LINEAR_GRID = {"regParam": [0.0, 0.01, 0.1], "elasticNetParam": [0.0, 0.5]}
_TREE_GRID = {"maxDepth": [3, 5, 8]}
_FOREST_GRID = {"numTrees": [20, 50], "maxDepth": [5, 8]}
_GBT_GRID = {"maxIter": [20, 50], "maxDepth": [3, 5]}
# cheapest family first: AutoML tries them in this order
ESTIMATORS: dict[str, Family] = {f.name: f for f in (
    Family("logistic_regression", LogisticRegression, False, grid=_LINEAR_GRID),
    Family("linear_regression", LinearRegression, True, grid=_LINEAR_GRID),
    Family("decision_tree_classifier", DecisionTreeClassifier, False, grid=_TREE_GRID),
    Family("decision_tree_regressor", DecisionTreeRegressor, True, grid=_TREE_GRID),
    Family("random_forest_classifier", RandomForestClassifier, False, grid=_FOREST_GRID),
    Family("random_forest_regressor", RandomForestRegressor, True, grid=_FOREST_GRID),
    Family("gbt_classifier", GBTClassifier, False, binary_only=True, grid=_GBT_GRID),
    Family("gbt_regressor", GBTRegressor, True, grid=_GBT_GRID),
)}
# params the platform sets itself on every estimator
RESERVED_PARAMS = frozenset({"featuresCol", "labelCol", "predictionCol", "probabilityCol",
                             "rawPredictionCol"})


def default_families(task: str) -> list[str]:
    """Every family that fits ``task``, cheapest first."""
    return [name for name, family in ESTIMATORS.items() if family.fits(task)]


def param_names(name: str) -> set[str]:
    """The MLlib Params of estimator ``name`` that a config may set (read from the
    class: no JVM needed)."""
    cls = ESTIMATORS[name].cls
    return {attr for attr in dir(cls)
            if isinstance(getattr(cls, attr, None), Param)} - RESERVED_PARAMS


def family_problem(name: str, task: str) -> str | None:
    """Why ``name`` cannot train a ``task`` model (unknown, or another task), or None."""
    family = ESTIMATORS.get(name)
    if family is None:
        close = difflib.get_close_matches(name, list(ESTIMATORS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown estimator {name!r}{hint} (one of {', '.join(ESTIMATORS)})"
    if family.regression != (task == "regression"):
        return f"{name} does not fit the task {task}"
    if not family.fits(task):
        return f"MLlib's {name} is for binary classification only"
    return None


def param_problems(name: str, params: list[str]) -> list[str]:
    """Why each of ``params`` is not a parameter of the known estimator ``name``."""
    known = param_names(name)
    problems = []
    for param in params:
        if param not in known:
            close = difflib.get_close_matches(param, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(f"{name} has no parameter {param!r}{hint}")
    return problems


def build_estimator(settings: EstimatorSettings, seed: int) -> Any:
    """The MLlib estimator of ``settings``, reading the pipeline's feature vector and
    label, seeded with ``seed`` unless its params set one."""
    cls = ESTIMATORS[settings.type].cls
    params = dict(settings.params)
    if cls().hasParam("seed"):
        params.setdefault("seed", seed)
    try:
        return cls(featuresCol=FEATURES_VECTOR, labelCol=LABEL_COLUMN, **params)
    except TypeError as exc:
        raise ConfigError(f"model.estimator.params: {exc}") from None
