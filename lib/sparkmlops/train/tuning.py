"""Hyperparameter search and AutoML on MLlib, every candidate logged to MLflow.

``search`` runs MLlib's ``CrossValidator`` or ``TrainValidationSplit`` over the whole
pipeline (feature stages included, so no fold sees statistics of another) and
refits the best candidate on all training rows. Cross-validation folds come from a
hash of the business keys and the seed, like the holdout split, so the same data
version, config and seed give the same folds and the same choice.

``automl`` tries estimator families one after another within a time budget, each
with its own grid, logs each family as a child run, and picks the family whose best
candidate has the best validation value of the primary metric. It says why in
words. The holdout is never used to choose: it stays for the final evaluation.

Example::

    trained = search(train, dataset)                     # config's estimator + tuning
    trained = automl(train, dataset, time_budget_s=120)  # families × grids
    trained.model.transform(test)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pyspark.sql.functions as F
from pyspark.ml import PipelineModel
from pyspark.ml.tuning import CrossValidator, ParamGridBuilder, TrainValidationSplit
from pyspark.sql import DataFrame

from sparkmlops.config import DatasetSettings, EstimatorSettings, TuningSettings
from sparkmlops.metrics import is_better, lower_is_better
from sparkmlops.tracking.runs import StepTracker
from sparkmlops.train.estimators import ESTIMATORS, build_estimator, default_families
from sparkmlops.train.fitting import build_pipeline, evaluator_for

log = logging.getLogger(__name__)

FOLD_COLUMN = "_fold"

@dataclass(frozen=True)
class Candidate:
    """One point of a grid and how it scored on the validation folds."""

    family: str
    params: dict[str, Any]
    metric: float
    std: float | None = None


@dataclass
class TrainedModel:
    """The refitted best model, the estimator that reproduces it, and the search."""

    model: PipelineModel
    estimator: EstimatorSettings
    candidates: list[Candidate] = field(default_factory=list)
    reason: str = ""
    leaderboard: list[dict[str, Any]] = field(default_factory=list)


def with_folds(df: DataFrame, keys: list[str], seed: int, folds: int) -> DataFrame:
    """Add ``_fold`` in [0, folds): a hash of the keys and seed, not of row order."""
    fold = F.pmod(F.xxhash64(*[F.col(k) for k in keys], F.lit(seed), F.lit("folds")),
                  F.lit(folds))
    return df.withColumn(FOLD_COLUMN, fold.cast("int"))


def search(
    train: DataFrame,
    dataset: DatasetSettings,
    *,
    estimator: EstimatorSettings | None = None,
    tuning: TuningSettings | None = None,
    tracker: StepTracker | None = None,
) -> TrainedModel:
    """Fit ``estimator`` (default: the config's), searching ``tuning.grid`` if set.

    With method ``none`` or an empty grid this is one plain fit. Otherwise every
    candidate is logged as a run nested under ``tracker``'s (when given) and the best
    is refitted on all of ``train``.
    """
    estimator = estimator or dataset.model.estimator
    tuning = tuning or dataset.model.tuning
    seed = dataset.model.split.seed
    stage = build_estimator(estimator, seed)
    pipeline = build_pipeline(dataset.features, stage)
    if tuning.method == "none" or not tuning.grid:
        return TrainedModel(pipeline.fit(train), estimator)

    grid_builder = ParamGridBuilder()
    for name, values in tuning.grid.items():
        grid_builder.addGrid(stage.getParam(name), values)
    grid = grid_builder.build()
    metric = dataset.model.primary_metric
    tuner: Any
    if tuning.method == "cross_validator":
        train = with_folds(train, dataset.keys, seed, tuning.folds)
        tuner = CrossValidator(estimator=pipeline, estimatorParamMaps=grid,
                               evaluator=evaluator_for(metric), numFolds=tuning.folds,
                               foldCol=FOLD_COLUMN, parallelism=tuning.parallelism, seed=seed)
    else:
        tuner = TrainValidationSplit(estimator=pipeline, estimatorParamMaps=grid,
                                     evaluator=evaluator_for(metric),
                                     trainRatio=tuning.train_ratio,
                                     parallelism=tuning.parallelism, seed=seed)
    log.info("searching %d %s candidates by %s (%s)", len(grid), estimator.type, metric,
             tuning.method)
    fitted = tuner.fit(train)
    values = fitted.avgMetrics if tuning.method == "cross_validator" else fitted.validationMetrics
    stds = list(fitted.stdMetrics) if tuning.method == "cross_validator" else [None] * len(grid)
    candidates = [
        Candidate(estimator.type, {p.name: _plain(v) for p, v in point.items()}, float(value),
                  None if std is None else float(std))
        for point, value, std in zip(grid, values, stds, strict=True)
    ]
    best = _best(candidates, metric)
    if tracker is not None:
        _log_candidates(tracker, candidates, metric, tuning.method)
    resolved = EstimatorSettings(type=estimator.type, params={**estimator.params, **best.params})
    reason = (f"{estimator.type} with {best.params}: validation {metric} "
              f"{best.metric:.4f}, best of {len(candidates)} candidates ({tuning.method})")
    # bestModel is the pipeline refitted with the best params on all training rows
    return TrainedModel(fitted.bestModel, resolved, candidates, reason)


def automl(
    train: DataFrame,
    dataset: DatasetSettings,
    *,
    time_budget_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    tracker: StepTracker | None = None,
) -> TrainedModel:
    """Try estimator families within a time budget; return the best, refitted, and why.

    With a ``tracker`` each family is a nested run and its candidates runs nested in it.
    """
    settings = dataset.model.automl
    budget = settings.time_budget_s if time_budget_s is None else time_budget_s
    metric = dataset.model.primary_metric
    families = settings.families or default_families(dataset.model.task)
    started = clock()
    results: list[tuple[str, TrainedModel, float]] = []
    leaderboard: list[dict[str, Any]] = []
    for family in families:
        elapsed = clock() - started
        if results and elapsed >= budget:
            leaderboard.append({"family": family, "status": "skipped",
                                "why": f"time budget {budget:.0f} s used up ({elapsed:.0f} s)"})
            continue
        grids: dict[str, dict[str, list[Any]]] = {str(k): v for k, v in settings.grids.items()}
        grid = grids.get(family, ESTIMATORS[family].grid)
        tuning = TuningSettings(method=settings.method, grid=grid, folds=settings.folds,
                                train_ratio=settings.train_ratio,
                                parallelism=settings.parallelism)
        family_started = clock()
        with _family_run(tracker, f"automl {family}") as family_run:
            trained = search(train, dataset, estimator=EstimatorSettings(type=family),
                             tuning=tuning, tracker=family_run)
            best = _best(trained.candidates, metric)
            seconds = clock() - family_started
            if family_run is not None:
                _log_family(family_run, family, best, metric, seconds,
                            len(trained.candidates))
        results.append((family, trained, best.metric))
        leaderboard.append({"family": family, "status": "tried", "params": best.params,
                            f"validation_{metric}": best.metric,
                            "candidates": len(trained.candidates),
                            "seconds": round(seconds, 3)})
        log.info("automl %s: validation %s %.4f (%d candidates, %.1f s)", family, metric,
                 best.metric, len(trained.candidates), seconds)
    winner_family, winner, winner_metric = results[0]
    for family, trained, value in results[1:]:
        if is_better(metric, value, winner_metric):
            winner_family, winner, winner_metric = family, trained, value
    winner.leaderboard = leaderboard
    winner.reason = _automl_reason(winner_family, winner, metric, results, leaderboard,
                                   clock() - started, budget)
    return winner


def _automl_reason(
    family: str, trained: TrainedModel, metric: str,
    results: list[tuple[str, TrainedModel, float]], leaderboard: list[dict[str, Any]],
    seconds: float, budget: float,
) -> str:
    best = _best(trained.candidates, metric)
    others = ", ".join(f"{f} {v:.4f}" for f, _, v in results if f != family) or "no other family"
    skipped = [row["family"] for row in leaderboard if row["status"] == "skipped"]
    direction = "lowest" if lower_is_better(metric) else "highest"
    text = (f"{family} {best.params} has the {direction} validation {metric} "
            f"({best.metric:.4f}; {others}); {len(results)} families tried in {seconds:.0f} s "
            f"of a {budget:.0f} s budget")
    if skipped:
        text += f"; not tried for lack of time: {', '.join(skipped)}"
    return text


def _best(candidates: list[Candidate], metric: str) -> Candidate:
    # first of equals wins, as in MLlib's own choice of bestModel
    best = candidates[0]
    for candidate in candidates[1:]:
        if is_better(metric, candidate.metric, best.metric):
            best = candidate
    return best


def _log_family(
    run: StepTracker, family: str, best: Candidate, metric: str, seconds: float, count: int
) -> None:
    run.params({"family": family, **{f"best.{k}": v for k, v in best.params.items()}})
    run.metrics({f"validation.{metric}": best.metric,
                 "search_seconds": round(seconds, 3), "candidates": count})
    run.tags({"sparkmlops.automl.family": family})


def _log_candidates(
    tracker: StepTracker, candidates: list[Candidate], metric: str, method: str
) -> None:
    for i, candidate in enumerate(candidates):
        with tracker.child_run(f"candidate {i} {candidate.family}") as run:
            run.params({"family": candidate.family, "search": method, **candidate.params})
            metrics = {f"validation.{metric}": candidate.metric}
            if candidate.std is not None:
                metrics[f"validation.{metric}.std"] = candidate.std
            run.metrics(metrics)
            run.tags({"sparkmlops.candidate": str(i)})


@contextmanager
def _family_run(tracker: StepTracker | None, name: str) -> Iterator[StepTracker | None]:
    """A run nested under ``tracker``'s for one AutoML family; none without a tracker."""
    if tracker is None:
        yield None
        return
    with tracker.child_run(name) as run:
        yield run


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
