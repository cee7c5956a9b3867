from __future__ import annotations

import random

import mlflow
import pytest

from sparkmlops.tracking.runs import StepTracker, configure_mlflow
from sparkmlops.train.fitting import evaluate, split_train_test
from sparkmlops.train.tuning import search


def _linear(n=300, seed=5):
    """label = 1 where x + noise > 0: a line separates it."""
    rng = random.Random(seed)
    for _ in range(n):
        x, y = rng.uniform(-1, 1), rng.uniform(-1, 1)
        label = 1.0 if x + rng.gauss(0, 0.3) > 0 else 0.0
        yield x, y, "MALE" if label else "FEMALE", label


def test_grid_search_logs_every_candidate_and_refits_the_best(
    two_feature_settings, two_feature_gold
):
    # two folds: 2 x 3 fits + the refit per search (three folds took 20 fits in all)
    settings = two_feature_settings("dataset.model.tuning.method=cross_validator",
                                    "dataset.model.tuning.folds=2",
                                    "dataset.model.tuning.grid={regParam: [0.0, 0.5, 5.0]}")
    dataset = settings.dataset
    train, test = split_train_test(two_feature_gold(_linear()), dataset)
    configure_mlflow(settings)  # not mlflow.set_tracking_uri: it leaks into os.environ

    with mlflow.start_run() as parent:
        first = search(train, dataset, tracker=StepTracker(step="train",
                                                           run_id=parent.info.run_id))
    again = search(train.repartition(3), dataset)

    assert [c.params for c in first.candidates] == [{"regParam": 0.0}, {"regParam": 0.5},
                                                    {"regParam": 5.0}]
    metrics = [c.metric for c in first.candidates]
    # deterministic folds: the same data in other partitions gives the same numbers
    assert metrics == pytest.approx([c.metric for c in again.candidates], abs=1e-12)
    best = max(range(3), key=lambda i: metrics[i])
    assert first.estimator.params == {"maxIter": 100, "regParam": [0.0, 0.5, 5.0][best],
                                      "elasticNetParam": 0.0}
    assert first.model.stages[-1].getRegParam() == first.estimator.params["regParam"]
    children = mlflow.search_runs(
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'", output_format="list")
    logged = {float(r.data.params["regParam"]): r.data.metrics["validation.areaUnderROC"]
              for r in children}
    assert logged == pytest.approx(dict(zip([0.0, 0.5, 5.0], metrics, strict=True)))
    assert evaluate(first.model.transform(test), dataset.model.task)["areaUnderROC"] > 0.85
