"""The dataset's ``label`` and ``model`` sections: what to train, how to split, search
and judge the data.

Estimator names and their MLlib parameters are plain names here: the one estimator
catalogue is ``sparkmlops.train.estimators`` (above config), and
``sparkmlops.preflight`` checks every name, parameter and family against it after load.
The metrics come from ``sparkmlops.metrics``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from sparkmlops.config.base import StrictModel
from sparkmlops.metrics import TASK_METRICS


class LabelSettings(StrictModel):
    """Where a row's label comes from (``label``), one of: a column of the files
    (``source``); a Spark SQL expression over the dataset's columns (``expr``, e.g.
    ``"arr_delay > 15"`` with ``classes: ["false", "true"]``, or a number for regression),
    computed by ``features``; or ``from: crowd``, the accepted consensus of the dataset's
    ``crowd`` judgments, joined by key (its classes are the crowd's). Rows without a label
    (null, or a value not in ``classes``) are scored, never trained on.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    source: str | None = None
    expr: str | None = None
    from_: Literal["column", "crowd"] = Field("column", alias="from")
    classes: list[str] | None = None  # class index = position; None for regression

    @field_validator("classes", mode="before")
    @classmethod
    def _classes_as_spark_text(cls, value: Any) -> Any:
        # YAML reads [false, true] and [0, 1] as booleans and numbers; a label's value is
        # compared as Spark's text of it ('false', 'true', '0', '1')
        if not isinstance(value, list):
            return value
        return [str(v).lower() if isinstance(v, bool) else
                str(v) if isinstance(v, int | float) else v for v in value]

    @field_validator("expr")
    @classmethod
    def _expr_not_blank(cls, expr: str | None) -> str | None:
        if expr is not None and not expr.strip():
            raise ValueError("empty; give a Spark SQL expression over the dataset's columns, "
                             "e.g. 'arr_delay > 15'")
        return expr

    @model_validator(mode="after")
    def _one_origin(self) -> LabelSettings:
        given = [*([f"label.source: {self.source!r}"] if self.source else []),
                 *([f"label.expr: {self.expr!r}"] if self.expr is not None else []),
                 *(["label.from: crowd"] if self.from_ == "crowd" else [])]
        if not given:
            raise ValueError("label.source: required (the column holding the label), or "
                             "label.expr (a Spark SQL expression over the columns), or "
                             "set label.from: crowd to take the crowd's consensus label")
        if len(given) > 1:
            raise ValueError(f"{' and '.join(given)} each name the label; keep one")
        return self

    @property
    def crowd(self) -> bool:
        return self.from_ == "crowd"

    @property
    def described(self) -> str:
        """The label's origin in messages ("label <described> has one value"): its column,
        its expression quoted, or the crowd consensus."""
        if self.crowd:
            return "the crowd consensus label"
        return str(self.source) if self.source else repr(self.expr)

    def columns(self, known: Iterable[str]) -> list[str]:
        """The ``known`` columns the label is computed from: ``source``, or the ones
        ``expr`` names (:func:`expression_columns`); none for the crowd's."""
        if self.source:
            return [self.source]
        return expression_columns(self.expr, known) if self.expr is not None else []


def expression_columns(expr: str, known: Iterable[str]) -> list[str]:
    """The ``known`` columns a Spark SQL expression names, in order of first use.

    Not a SQL parser (config loads without Spark): outside quoted text, each identifier
    that is a known column (matched case-insensitively, as Spark does, or back-quoted) and
    neither a function call nor a struct field (``name(``, ``.name``). A name that is no
    known column is left to Spark's analysis (``features`` analyses the label against the
    batch before computing it).
    """
    by_lower = {name.lower(): name for name in known}
    found = []
    for match in _IDENTIFIER_TOKEN.finditer(_QUOTED_TEXT.sub("''", expr)):
        quoted, bare = match.group("quoted"), match.group("bare")
        if bare is not None and match.group("call"):
            continue
        name = quoted.replace("``", "`") if quoted is not None else bare
        column = by_lower.get(name.lower())
        if column is not None:
            found.append(column)
    return list(dict.fromkeys(found))


# string literals of Spark SQL ('it''s', "a\"b"), whose words are no column names
_QUOTED_TEXT = re.compile(r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\"")
# an identifier not after a dot (a struct field); `back quoted`, or bare with a following
# "(" (a function call) captured so it can be told apart
_IDENTIFIER_TOKEN = re.compile(
    r"(?<![.\w`])(?:`(?P<quoted>(?:[^`]|``)+)`|(?P<bare>[A-Za-z_][A-Za-z0-9_]*)(?P<call>\s*\()?)")


class EstimatorSettings(StrictModel):
    # a name of sparkmlops.train.estimators, with its MLlib params (see preflight)
    type: str
    params: dict[str, Any] = Field(default_factory=dict)


class TuningSettings(StrictModel):
    """Hyperparameter search over ``grid`` (MLlib param name → values to try).

    ``cross_validator`` assigns rows to folds by a hash of the business keys and the
    seed (deterministic); ``train_validation_split`` holds out ``train_ratio`` of
    the training rows. ``parallelism`` candidates are fitted at once.
    """

    method: Literal["none", "cross_validator", "train_validation_split"] = "none"
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    folds: int = Field(3, ge=2, le=20)
    train_ratio: float = Field(0.75, gt=0, lt=1)
    parallelism: int = Field(2, ge=1)

    @field_validator("grid")
    @classmethod
    def _non_empty_values(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        empty = [name for name, values in grid.items() if not values]
        if empty:
            raise ValueError(f"no values to try for {empty}")
        return grid


class AutomlSettings(StrictModel):
    """AutoML: try estimator families (each with its grid) within a time budget.

    ``families`` defaults to every family that fits the task; ``grids`` replaces a
    family's built-in grid. A family is started only while budget remains, and the
    one started finishes, so a run can overshoot by one family's search.
    """

    enabled: bool = False
    time_budget_s: float = Field(600.0, gt=0)
    families: list[str] = Field(default_factory=list)
    grids: dict[str, dict[str, list[Any]]] = Field(default_factory=dict)
    method: Literal["cross_validator", "train_validation_split"] = "cross_validator"
    folds: int = Field(3, ge=2, le=20)
    train_ratio: float = Field(0.75, gt=0, lt=1)
    parallelism: int = Field(2, ge=1)

    @model_validator(mode="after")
    def _grids_not_empty(self) -> AutomlSettings:
        for family, grid in self.grids.items():
            if not grid:
                raise ValueError(f"model.automl.grids.{family}: give at least one parameter "
                                 "to search, or leave the family out to use its built-in grid")
        return self


class SplitSettings(StrictModel):
    test_fraction: float = Field(0.25, gt=0, lt=1)
    seed: int = 42


class DataCheckSettings(StrictModel):
    """What ``train`` checks before fitting (and ``promote`` before judging): the least
    rows per class of ``label.classes`` in the training rows and the holdout, and the
    least holdout rows; data below them ends the run with ``TrainingDataError``."""

    min_train_rows_per_class: int = Field(5, ge=1)
    min_holdout_rows_per_class: int = Field(1, ge=1)
    min_holdout_rows: int = Field(10, ge=1)


class ModelSettings(StrictModel):
    name: str
    task: Literal["binary_classification", "multiclass_classification", "regression"]
    estimator: EstimatorSettings
    split: SplitSettings = Field(default_factory=SplitSettings)
    primary_metric: str
    tuning: TuningSettings = Field(default_factory=TuningSettings)
    automl: AutomlSettings = Field(default_factory=AutomlSettings)
    data_checks: DataCheckSettings = Field(default_factory=DataCheckSettings)
    # train (and the promotion holdout) on the latest N ingested batches; 0 = all
    window_batches: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _metric_fits_task(self) -> ModelSettings:
        metrics = TASK_METRICS[self.task]
        if self.primary_metric not in metrics:
            raise ValueError(f"model.primary_metric: {self.primary_metric!r} is not a "
                             f"{self.task} metric; choose one of {list(metrics)}")
        return self

