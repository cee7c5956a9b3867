"""The crowds of benchmarks/crowdgen.py: seeded, with the planted properties they promise.

Like the penguin generator, the crowd generator is test and benchmark data, not platform
code (it lives in benchmarks/, outside the wheel), so its tests live here.
"""

from __future__ import annotations

import pyspark.sql.functions as F
import pytest
from benchmarks.crowdgen import CrowdSpec, WorkerGroup, simulate

MIXED = CrowdSpec(n_items=6000, labels_per_item=5, n_workers=20, class_prior=(0.7, 0.3),
                  groups=(WorkerGroup("good", 0.5), WorkerGroup("poor", 0.2),
                          WorkerGroup("spammer", 0.15), WorkerGroup("adversarial", 0.15)))


@pytest.fixture(scope="module")
def mixed(spark):
    truth, judgments, workers = simulate(spark, MIXED, seed=11)
    judged = judgments.join(truth, "item").persist()
    yield truth, judgments, {r.worker: r.asDict() for r in workers.collect()}, judged
    judged.unpersist()


def _rows(df):
    return [tuple(r) for r in df.collect()]


def test_each_item_is_judged_by_labels_per_item_distinct_workers(mixed):
    truth, judgments, workers, _ = mixed

    per_item = judgments.groupBy("item").agg(
        F.count(F.lit(1)).alias("n"), F.count_distinct("worker").alias("distinct"))

    assert judgments.count() == 6000 * 5
    assert per_item.count() == truth.count() == 6000
    assert per_item.where("n != 5 OR distinct != 5").count() == 0
    assert judgments.select("worker").distinct().count() == len(workers) == 20
    # every worker judges about N / W = 1500 items
    counts = [r["count"] for r in judgments.groupBy("worker").count().collect()]
    assert 1300 < min(counts) and max(counts) < 1700


def test_true_classes_follow_the_class_prior(mixed):
    truth, _, _, _ = mixed

    share = truth.where(F.col("truth") == "0").count() / 6000

    assert share == pytest.approx(0.7, abs=0.02)


def test_worker_groups_have_their_exact_sizes_and_planted_matrices(mixed):
    _, _, workers, _ = mixed
    kinds = [w["kind"] for w in workers.values()]

    assert {k: kinds.count(k) for k in set(kinds)} == {
        "good": 10, "poor": 4, "spammer": 3, "adversarial": 3}
    for w in workers.values():
        pi = w["confusion"]
        assert all(sum(pi[t].values()) == pytest.approx(1.0) for t in ("0", "1"))
        assert w["accuracy"] == pytest.approx(0.7 * pi["0"]["0"] + 0.3 * pi["1"]["1"])
        if w["kind"] == "spammer":
            assert pi["0"] == pytest.approx(pi["1"])  # the answer ignores the truth
        else:
            low, high = {"good": (0.7, 0.95), "poor": (0.5, 0.6),
                         "adversarial": (0.05, 0.3)}[w["kind"]]
            assert all(low <= pi[t][t] <= high for t in ("0", "1"))
    # which worker is in which group is shuffled, not blocks of neighbouring ids
    assert kinds[:10] != ["good"] * 10


def test_answers_follow_each_workers_planted_confusion_matrix(mixed):
    _, _, workers, judged = mixed

    observed = {(r.worker, r.truth): r.said_one for r in judged.groupBy("worker", "truth").agg(
        F.avg((F.col("label") == "1").cast("double")).alias("said_one")).collect()}

    for name, w in workers.items():
        for t in ("0", "1"):
            # about 1050 judgments of true "0" and 450 of true "1" per worker
            assert observed[(name, t)] == pytest.approx(w["confusion"][t]["1"], abs=0.1), (
                name, t, w["kind"])


def test_spammer_answers_do_not_depend_on_the_truth(mixed):
    _, _, workers, judged = mixed

    gap = {r.worker: r.gap for r in judged.groupBy("worker").agg(F.abs(
        F.avg(F.when(F.col("truth") == "0", (F.col("label") == "1").cast("double")))
        - F.avg(F.when(F.col("truth") == "1", (F.col("label") == "1").cast("double")))
    ).alias("gap")).collect()}

    spammers = [w for w, r in workers.items() if r["kind"] == "spammer"]
    good = [w for w, r in workers.items() if r["kind"] == "good"]
    # a good worker's answer moves with the truth by sensitivity + specificity - 1 >= 0.4
    assert max(gap[w] for w in spammers) < 0.1 < 0.3 < min(gap[w] for w in good)


def test_three_classes_and_an_adversary_flip_to_the_next_class(spark):
    spec = CrowdSpec(n_items=10, labels_per_item=3, n_workers=4, classes=("a", "b", "c"),
                     groups=(WorkerGroup("adversarial", 1.0),))

    _, judgments, workers = simulate(spark, spec, seed=2)

    assert {r.label for r in judgments.collect()} <= {"a", "b", "c"}
    for w in workers.collect():
        pi = w.confusion
        assert (pi["a"]["c"], pi["b"]["a"], pi["c"]["b"]) == (0.0, 0.0, 0.0)
        assert pi["a"]["b"] == pytest.approx(1 - pi["a"]["a"])


def test_same_seed_gives_identical_rows_whatever_the_partitioning(spark):
    spec = CrowdSpec(n_items=300, labels_per_item=3, n_workers=7)

    one = [_rows(df) for df in simulate(spark, spec, seed=4, partitions=1)]
    three = [_rows(df) for df in simulate(spark, spec, seed=4, partitions=3)]
    other_seed = _rows(simulate(spark, spec, seed=5)[1])

    assert one == three
    assert len(set(other_seed) - set(one[1])) > 300


@pytest.mark.parametrize("spec", [
    dict(n_items=10, labels_per_item=8, n_workers=7),
    dict(n_items=10, labels_per_item=3, n_workers=7, classes=("a",)),
    dict(n_items=10, labels_per_item=3, n_workers=7, class_prior=(1.0,)),
    dict(n_items=10, labels_per_item=3, n_workers=7, groups=(WorkerGroup("good", 1, (0.9, 0.8)),)),
])
def test_a_crowd_that_cannot_be_built_is_refused(spec):
    with pytest.raises(ValueError):
        CrowdSpec(**spec)
