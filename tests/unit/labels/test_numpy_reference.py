"""labels.consensus equals a plain NumPy implementation of the same definitions.

The reference below is written from the module docstring of ``sparkmlops.labels.consensus``
alone (majority-vote start, α pseudo-counts, log-space E-step, stop on the log-likelihood
per judgment, report the parameters that produced the last posterior), one array operation
per formula, on the driver. On small simulated crowds (benchmarks/crowdgen.py, a few hundred
judgments, one worker with a single judgment) Spark's posteriors, confusion matrices, priors
and iteration counts match it within 1e-9 and the log-likelihood within a relative 1e-6;
majority vote and Wawa, which add and divide the same numbers in the same order, match
exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from benchmarks.crowdgen import CrowdSpec, simulate
from pyspark.sql import SparkSession

from sparkmlops.labels.consensus import (
    Consensus,
    EmSettings,
    SpammerSettings,
    consensus,
)

# tolerance 1e-4 bounds the test's time (9-11 iterations here instead of 14-18 at 1e-5);
# both sides stop at the same iteration either way
EM = EmSettings(max_iterations=40, tolerance=1e-4, smoothing=0.01)
SPAMMERS = SpammerSettings()


@dataclass
class Crowd:
    """Judgments as arrays, sorted by item and then worker (the order Spark sums in)."""

    classes: list[str]
    items: np.ndarray  # item names, sorted
    workers: np.ndarray  # worker names, sorted
    item: np.ndarray  # per judgment: index into items
    worker: np.ndarray  # per judgment: index into workers
    given: np.ndarray  # per judgment: class index

    @classmethod
    def of(cls, frame: pd.DataFrame, classes: list[str]) -> Crowd:
        items, item = np.unique(frame["item"].to_numpy(), return_inverse=True)
        workers, worker = np.unique(frame["worker"].to_numpy(), return_inverse=True)
        given = np.array([classes.index(label) for label in frame["label"]])
        order = np.lexsort((worker, item))
        return cls(classes, items, workers, item[order], worker[order], given[order])

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.items), len(self.workers), len(self.classes)


@dataclass
class Reference:
    label: np.ndarray  # per item: class index
    confidence: np.ndarray
    agreement: np.ndarray
    n_labels: np.ndarray
    accuracy: np.ndarray  # per worker
    confusion: np.ndarray  # per worker: K x K, row = true class
    worker_agreement: np.ndarray
    spammer_score: np.ndarray
    prior: np.ndarray | None = None
    iterations: int = 0
    log_likelihood: float | None = None
    converged: bool = True


# ---------------------------------------------------------------- the reference


def _votes(crowd: Crowd) -> np.ndarray:
    n_items, _, k = crowd.shape
    votes = np.zeros((n_items, k), dtype=np.int64)
    np.add.at(votes, (crowd.item, crowd.given), 1)
    return votes


def _one_accuracy_matrix(accuracy: np.ndarray, k: int) -> np.ndarray:
    matrix = np.empty((len(accuracy), k, k))
    matrix[:] = ((1.0 - accuracy) / (k - 1))[:, None, None]
    for t in range(k):
        matrix[:, t, t] = accuracy
    return matrix


def _spammer_score(confusion: np.ndarray) -> np.ndarray:
    """sqrt(Σ_c Σ_t (π[t][c] − mean_t π[t][c])² / (K − 1)), added in the module's order."""
    k = confusion.shape[1]
    scores = []
    for pi in confusion:
        spread = []
        for c in range(k):
            mean = _ordered_sum([pi[t, c] for t in range(k)]) / k
            spread += [(pi[t, c] - mean) * (pi[t, c] - mean) for t in range(k)]
        scores.append(np.sqrt(_ordered_sum(spread) / (k - 1)))
    return np.array(scores)


def _ordered_sum(values: list[float]) -> float:
    total = values[0]
    for v in values[1:]:
        total = total + v
    return float(total)


def _worker_agreement(crowd: Crowd, label: np.ndarray) -> np.ndarray:
    _, n_workers, _ = crowd.shape
    agree = np.zeros(n_workers, dtype=np.int64)
    np.add.at(agree, crowd.worker, crowd.given == label[crowd.item])
    return agree / np.bincount(crowd.worker, minlength=n_workers)


def _items(crowd: Crowd, scores: np.ndarray, confidence: np.ndarray) -> dict[str, np.ndarray]:
    votes = _votes(crowd)
    label = scores.argmax(axis=1)  # the first of equal maxima: the class listed first
    rows = np.arange(len(label))
    return {"label": label, "confidence": confidence[rows, label],
            "agreement": votes[rows, label], "n_labels": votes.sum(axis=1)}


def majority_vote(crowd: Crowd) -> Reference:
    votes = _votes(crowd)
    items = _items(crowd, votes, votes / votes.sum(axis=1)[:, None])
    accuracy = _worker_agreement(crowd, items["label"])
    confusion = _one_accuracy_matrix(accuracy, crowd.shape[2])
    return Reference(**items, accuracy=accuracy, confusion=confusion,
                     worker_agreement=accuracy, spammer_score=_spammer_score(confusion))


def wawa(crowd: Crowd) -> Reference:
    n_items, _, k = crowd.shape
    skill = majority_vote(crowd).accuracy
    weights = np.zeros((n_items, k))
    np.add.at(weights, (crowd.item, crowd.given), skill[crowd.worker])
    totals = np.array([_ordered_sum(list(row)) for row in weights])
    items = _items(crowd, weights, weights / totals[:, None])
    confusion = _one_accuracy_matrix(skill, k)
    return Reference(**items, accuracy=skill, confusion=confusion,
                     worker_agreement=_worker_agreement(crowd, items["label"]),
                     spammer_score=_spammer_score(confusion))


def em(crowd: Crowd, method: str, settings: EmSettings) -> Reference:
    n_items, n_workers, k = crowd.shape
    alpha, n = settings.smoothing, len(crowd.given)

    def m_step(post: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        counts = np.zeros((n_workers, k, k))  # n_w[t][c]
        for t in range(k):
            np.add.at(counts[:, t, :], (crowd.worker, crowd.given), post[crowd.item, t])
        if method == "dawid_skene":
            rows = counts.sum(axis=2)
            pi = (counts + alpha) / (rows[:, :, None] + k * alpha)
            accuracy = sum(rows[:, t] / rows.sum(axis=1) * pi[:, t, t] for t in range(k))
            return pi, accuracy
        right = np.trace(counts, axis1=1, axis2=2)
        accuracy = (right + k * alpha) / (counts.sum(axis=(1, 2)) + k * k * alpha)
        return _one_accuracy_matrix(accuracy, k), accuracy

    def e_step(prior: np.ndarray, pi: np.ndarray) -> tuple[np.ndarray, float]:
        sums = np.zeros((n_items, k))
        np.add.at(sums, crowd.item, np.log(pi)[crowd.worker, :, crowd.given])
        log_q = np.log(prior)[None, :] + sums
        top = log_q.max(axis=1)
        log_likelihood = top + np.log(np.exp(log_q - top[:, None]).sum(axis=1))
        return np.exp(log_q - log_likelihood[:, None]), float(log_likelihood.sum())

    votes = _votes(crowd)
    post = votes / votes.sum(axis=1)[:, None]
    prior = (post.sum(axis=0) + alpha) / (n_items + k * alpha)
    pi, accuracy = m_step(post)
    iterations, converged, previous, log_likelihood = 0, False, None, None
    while iterations < settings.max_iterations:
        iterations += 1
        post, log_likelihood = e_step(prior, pi)
        if previous is not None and abs(log_likelihood - previous) / n < settings.tolerance:
            converged = True
            break
        previous = log_likelihood
        if iterations < settings.max_iterations:
            prior = (post.sum(axis=0) + alpha) / (n_items + k * alpha)
            pi, accuracy = m_step(post)
    items = _items(crowd, post, post)
    return Reference(**items, accuracy=accuracy, confusion=pi,
                     worker_agreement=_worker_agreement(crowd, items["label"]),
                     spammer_score=_spammer_score(pi), prior=prior, iterations=iterations,
                     log_likelihood=log_likelihood, converged=converged)


# ---------------------------------------------------------------- the comparison

CROWDS = {
    # default mix (good, poor, spammer, adversarial), imbalanced, plus a one-judgment worker
    "binary": (CrowdSpec(n_items=100, labels_per_item=4, n_workers=10, class_prior=(0.7, 0.3)),
               ["0", "1"]),
    "three_classes": (CrowdSpec(n_items=80, labels_per_item=4, n_workers=8,
                                classes=("a", "b", "c"), class_prior=(0.5, 0.3, 0.2)),
                      ["a", "b", "c"]),
}


@pytest.fixture(scope="module")
def crowds(spark: SparkSession):
    built = {}
    for name, (spec, classes) in CROWDS.items():
        _, judgments, _ = simulate(spark, spec, seed=17)
        frame = pd.concat([judgments.toPandas(), pd.DataFrame(
            [{"item": 0, "worker": "newcomer", "label": classes[-1]}])], ignore_index=True)
        built[name] = (spark.createDataFrame(frame), Crowd.of(frame, classes))
    return built


def _assert_equal(result: Consensus, crowd: Crowd, expected: Reference, *, exact: bool):
    def close(actual: float, wanted: float) -> bool:
        return actual == wanted if exact else abs(actual - wanted) <= 1e-9

    items = {r.item: r for r in result.items.collect()}
    assert sorted(items) == sorted(crowd.items.tolist())
    for i, name in enumerate(crowd.items.tolist()):
        row = items[name]
        assert (row.label, row.agreement, row.n_labels) == (
            crowd.classes[expected.label[i]], expected.agreement[i], expected.n_labels[i]), name
        assert close(row.confidence, expected.confidence[i]), (name, row.confidence,
                                                               expected.confidence[i])
    workers = {r.worker: r for r in result.workers.collect()}
    assert sorted(workers) == crowd.workers.tolist()
    for w, name in enumerate(crowd.workers.tolist()):
        row = workers[name]
        assert row.agreement == expected.worker_agreement[w], name
        assert close(row.accuracy, expected.accuracy[w]), (name, row.accuracy)
        assert close(row.spammer_score, expected.spammer_score[w]), (name, row.spammer_score)
        for t, true_class in enumerate(crowd.classes):
            for c, given in enumerate(crowd.classes):
                assert close(row.confusion[true_class][given], expected.confusion[w, t, c]), (
                    name, true_class, given)


@pytest.mark.parametrize("crowd_name", list(CROWDS))
@pytest.mark.parametrize("method", ["majority_vote", "wawa"])
def test_majority_vote_and_wawa_equal_the_reference_exactly(crowds, crowd_name, method):
    frame, crowd = crowds[crowd_name]
    expected = majority_vote(crowd) if method == "majority_vote" else wawa(crowd)

    result = consensus(frame, crowd.classes, method)

    _assert_equal(result, crowd, expected, exact=True)


@pytest.mark.parametrize("crowd_name, method", [
    ("binary", "one_coin"), ("binary", "dawid_skene"), ("three_classes", "dawid_skene"),
])
def test_em_equals_the_reference_in_posteriors_parameters_and_iterations(
        crowds, crowd_name, method):
    frame, crowd = crowds[crowd_name]
    expected = em(crowd, method, EM)

    result = consensus(frame, crowd.classes, method, em=EM, spammers=SPAMMERS)

    assert (result.iterations, result.converged) == (expected.iterations, expected.converged)
    assert result.log_likelihood == pytest.approx(expected.log_likelihood, rel=1e-6)
    assert list(result.class_prior) == crowd.classes
    assert np.allclose(list(result.class_prior.values()), expected.prior, rtol=0, atol=1e-9)
    _assert_equal(result, crowd, expected, exact=False)
