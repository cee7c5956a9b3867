from __future__ import annotations

import random

import mlflow
import pytest

from sparkmlops.tracking import StepTracker, configure_mlflow
from sparkmlops.training.fitting import evaluate, split_train_test
from sparkmlops.training.tuning import search

# Two measurements only, so the toy frames below need no other column
TWO_FEATURES = ["dataset.features.derived=[]", "dataset.features.categorical=[]",
                "dataset.features.date_parts=[]",
                "dataset.features.numeric=[culmen_length_mm, culmen_depth_mm]"]
SCHEMA = ("study_name string, species string, sample_number int, culmen_length_mm double, "
          "culmen_depth_mm double, label_raw string, label double, _batch_id string")


def _linear_gold(spark, n=300, seed=5):
    """label = 1 where x + noise > 0: a line separates it."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        x, y = rng.uniform(-1, 1), rng.uniform(-1, 1)
        label = 1.0 if x + rng.gauss(0, 0.3) > 0 else 0.0
        rows.append(("S1", "A", i, x, y, "MALE" if label else "FEMALE", label, "b1"))
    return spark.createDataFrame(rows, SCHEMA)


def test_grid_search_logs_every_candidate_and_refits_the_best(spark, make_settings):
    # two folds: 2 x 3 fits + the refit per search (three folds took 20 fits in all)
    settings = make_settings(*TWO_FEATURES, "dataset.model.tuning.method=cross_validator",
                             "dataset.model.tuning.folds=2",
                             "dataset.model.tuning.grid={regParam: [0.0, 0.5, 5.0]}")
    dataset = settings.dataset
    train, test = split_train_test(_linear_gold(spark), dataset)
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
