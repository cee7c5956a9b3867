"""Simulated crowds with planted truth: items, workers of known quality, their judgments.

For the labels tests and ``make bench-labels``: every item has a true class drawn from a
class prior, every worker a planted confusion matrix, and each item is judged by
``labels_per_item`` distinct workers who answer by their matrix::

    python -m benchmarks.crowdgen --items 200000 --labels-per-item 5 --workers 2000 \\
        --out /tmp/crowd-1m        # truth/, judgments/, workers/ (Parquet)

Everything is a Spark column expression on ``spark.range`` plus a broadcast join with
the workers (a table of ``n_workers`` rows), so 100M judgments are written without the
driver holding any of them. Randomness is ``xxhash64`` of the row's ids, the seed and a
stream number (as in ``benchmarks/datagen.py``), never ``F.rand``: a row depends only on
its ids, the seed and the spec, not on how the range is partitioned.

The crowd (a :class:`CrowdSpec`):

- Workers come in groups (:class:`WorkerGroup`) of exact sizes (shares of
  ``n_workers``, rounded cumulatively); which worker is in which group is a seeded
  permutation, so a group is not a block of neighbouring ids.
- ``good`` and ``poor``: for each true class t an accuracy π[t][t] drawn uniformly from
  the group's range (so the matrix is not one-coin: sensitivity and specificity differ);
  the rest of the row is split over the other classes by random weights (two classes:
  all of it on the other class).
- ``spammer``: one random distribution over the classes, the same for every true class:
  the answer does not depend on the truth.
- ``adversarial``: π[t][t] drawn from the range (low), the rest all on the next class
  (t + 1 mod K): a systematic flip.
- Assignment: item i gets the workers (start_i + j·stride_i) mod W for j < labels_per_item,
  with a random start and a stride drawn from 64 strides coprime with W: the workers of
  an item are distinct, and who judges with whom varies from item to item.
"""

from __future__ import annotations

import argparse
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyspark.sql.functions as F
from benchmarks.session import env_session, log_to_stderr
from pyspark.sql import Column, DataFrame, SparkSession, Window

log = logging.getLogger(__name__)

Kind = Literal["good", "poor", "spammer", "adversarial"]
KINDS: tuple[Kind, ...] = ("good", "poor", "spammer", "adversarial")
# π[t][t] ranges when a group names none (spammers have no accuracy of their own)
DEFAULT_ACCURACY: dict[Kind, tuple[float, float]] = {
    "good": (0.7, 0.95), "poor": (0.5, 0.6), "spammer": (0.0, 0.0), "adversarial": (0.05, 0.3)}


@dataclass(frozen=True)
class WorkerGroup:
    """``share`` of the workers, of one ``kind``, with π[t][t] drawn from ``accuracy``."""

    kind: Kind
    share: float
    accuracy: tuple[float, float] | None = None

    @property
    def accuracy_range(self) -> tuple[float, float]:
        return self.accuracy if self.accuracy is not None else DEFAULT_ACCURACY[self.kind]


DEFAULT_GROUPS = (WorkerGroup("good", 0.7), WorkerGroup("poor", 0.1),
                  WorkerGroup("spammer", 0.1), WorkerGroup("adversarial", 0.1))


@dataclass(frozen=True)
class CrowdSpec:
    """What to simulate; ``class_prior`` None is uniform."""

    n_items: int
    labels_per_item: int
    n_workers: int
    classes: tuple[str, ...] = ("0", "1")
    class_prior: tuple[float, ...] | None = None
    groups: tuple[WorkerGroup, ...] = field(default=DEFAULT_GROUPS)

    def __post_init__(self) -> None:
        if self.n_items < 0 or self.n_workers < 1:
            raise ValueError("n_items must be >= 0 and n_workers >= 1")
        if not 1 <= self.labels_per_item <= self.n_workers:
            raise ValueError(f"labels_per_item must be between 1 and n_workers "
                             f"({self.n_workers}), got {self.labels_per_item}")
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be two or more distinct labels: {self.classes}")
        if self.class_prior is not None and (
                len(self.class_prior) != len(self.classes) or min(self.class_prior) < 0
                or sum(self.class_prior) <= 0):
            raise ValueError(f"class_prior needs one non-negative weight per class: "
                             f"{self.class_prior}")
        if not self.groups or min(g.share for g in self.groups) < 0 \
                or sum(g.share for g in self.groups) <= 0:
            raise ValueError("groups need non-negative shares with a positive sum")
        for g in self.groups:
            lo, hi = g.accuracy_range
            if g.kind not in KINDS or not 0 <= lo <= hi <= 1:
                raise ValueError(f"bad worker group {g}")

    @property
    def prior(self) -> tuple[float, ...]:
        weights = self.class_prior or (1.0,) * len(self.classes)
        return tuple(w / sum(weights) for w in weights)

    @property
    def group_sizes(self) -> tuple[int, ...]:
        """Workers per group: exact, the shares rounded cumulatively (they sum to W)."""
        total = sum(g.share for g in self.groups)
        bounds, running = [0], 0.0
        for g in self.groups:
            running += g.share
            bounds.append(round(running / total * self.n_workers))
        return tuple(b - a for a, b in zip(bounds, bounds[1:], strict=False))


# One independent random stream per use of the hash.
_S_RANK, _S_ACCURACY, _S_SPLIT, _S_SPAM = 1, 2, 3, 4
_S_TRUTH, _S_START, _S_STRIDE, _S_ANSWER = 11, 12, 13, 14
_TWO_POW_53 = float(1 << 53)
_STRIDES = 64


def uniform(seed: int, stream: int, *keys: Column) -> Column:
    """A uniform double in (0, 1) from the hash of ``keys``, the seed and the stream
    (the same construction as ``benchmarks/datagen.py``)."""
    h = F.xxhash64(*keys, F.lit(seed), F.lit(stream))
    return (F.shiftrightunsigned(h, 11).cast("double") + F.lit(0.5)) / F.lit(_TWO_POW_53)


def _draw(cumulative: list[float] | list[Column], u: Column) -> Column:
    """The index drawn by ``u`` from cumulative probabilities (K of them, last ≈ 1)."""
    return sum((F.when(u >= c, 1).otherwise(0) for c in cumulative[:-1]), F.lit(0))


def _sum(columns: list[Column]) -> Column:
    total = columns[0]
    for c in columns[1:]:
        total = total + c
    return total


def _planted(spark: SparkSession, spec: CrowdSpec, seed: int) -> DataFrame:
    """_idx, worker, kind, accuracy, _pi (K×K row-major, row = true class), _cum."""
    k, n = len(spec.classes), spec.n_workers
    idx = F.col("_idx")
    order = Window.partitionBy(F.lit(0)).orderBy(F.xxhash64(idx, F.lit(seed), F.lit(_S_RANK)),
                                                 idx)  # n rows: one partition is fine
    ranked = spark.range(n).withColumnRenamed("id", "_idx").withColumn(
        "_rank", F.row_number().over(order) - 1)
    group = F.lit(len(spec.groups) - 1)
    for g, bound in reversed(list(enumerate(np.cumsum(spec.group_sizes)))):
        group = F.when(F.col("_rank") < int(bound), g).otherwise(group)
    ranked = ranked.withColumn("_group", group)

    def per_group(values: list[object]) -> Column:
        return F.element_at(F.array(*[F.lit(v) for v in values]), F.col("_group") + 1)

    kind = per_group([g.kind for g in spec.groups])
    lo = per_group([float(g.accuracy_range[0]) for g in spec.groups])
    hi = per_group([float(g.accuracy_range[1]) for g in spec.groups])
    right = [lo + (hi - lo) * uniform(seed, _S_ACCURACY, idx, F.lit(t)) for t in range(k)]
    spam_weights = [uniform(seed, _S_SPAM, idx, F.lit(c)) for c in range(k)]
    spam = [w / _sum(spam_weights) for w in spam_weights]

    def cell(t: int, c: int) -> Column:
        if c == t:
            honest: Column = right[t]
        else:
            weights = {o: uniform(seed, _S_SPLIT, idx, F.lit(t), F.lit(o))
                       for o in range(k) if o != t}
            honest = (F.lit(1.0) - right[t]) * weights[c] / _sum(list(weights.values()))
        flip = right[t] if c == t else (
            F.lit(1.0) - right[t] if c == (t + 1) % k else F.lit(0.0))
        return (F.when(kind == "spammer", spam[c])
                .when(kind == "adversarial", flip).otherwise(honest))

    pi = [[cell(t, c) for c in range(k)] for t in range(k)]
    cum = [_sum(pi[t][:c + 1]) for t in range(k) for c in range(k)]
    accuracy = _sum([F.lit(spec.prior[t]) * pi[t][t] for t in range(k)])
    width = len(str(n - 1))
    return ranked.select(
        idx, F.format_string(f"w%0{width}d", idx).alias("worker"), kind.alias("kind"),
        accuracy.alias("accuracy"),
        F.array(*[pi[t][c] for t in range(k) for c in range(k)]).alias("_pi"),
        F.array(*cum).alias("_cum"))


def _strides(n_workers: int, seed: int) -> list[int]:
    """Up to 64 strides coprime with ``n_workers``: j·stride mod W are distinct for j < W."""
    coprime = [s for s in range(1, n_workers) if math.gcd(s, n_workers) == 1] or [1]
    chosen = np.random.default_rng(seed).choice(len(coprime), min(_STRIDES, len(coprime)),
                                                replace=False)
    return sorted(coprime[i] for i in chosen)


def simulate(spark: SparkSession, spec: CrowdSpec, seed: int, *,
             partitions: int | None = None) -> tuple[DataFrame, DataFrame, DataFrame]:
    """(truth, judgments, workers) of the crowd ``spec`` with ``seed``.

    - truth: item (long), truth (string): the planted class of every item;
    - judgments: item (long), worker (string), label (string): ``labels_per_item`` rows
      per item, from distinct workers;
    - workers: worker, kind (good/poor/spammer/adversarial), accuracy (double: Σ_t
      prior[t]·π[t][t]), confusion (map<string, map<string, double>>: true class -> given
      class -> probability, as ``sparkmlops.labels.consensus`` reports it).

    ``partitions``: of the item and judgment ranges (default: Spark's parallelism); the
    rows are the same whatever it is.
    """
    k, n, per_item = len(spec.classes), spec.n_workers, spec.labels_per_item
    classes = F.array(*[F.lit(c) for c in spec.classes])
    cum_prior = list(np.cumsum(spec.prior))

    def truth_of(item: Column) -> Column:
        return _draw([F.lit(float(c)) for c in cum_prior], uniform(seed, _S_TRUTH, item))

    planted = _planted(spark, spec, seed)
    truth = spark.range(spec.n_items, numPartitions=partitions).select(
        F.col("id").alias("item"),
        F.element_at(classes, truth_of(F.col("id")) + 1).alias("truth"))

    strides = _strides(n, seed)
    item = ((F.col("id") - F.col("id") % per_item) / per_item).cast("long")  # exact
    start = F.floor(uniform(seed, _S_START, item) * n).cast("long")
    stride = F.element_at(F.array(*[F.lit(s) for s in strides]),
                          (F.floor(uniform(seed, _S_STRIDE, item) * len(strides)) + 1)
                          .cast("int"))
    slots = spark.range(spec.n_items * per_item, numPartitions=partitions).select(
        "id", item.alias("item"), truth_of(item).alias("_truth"),
        ((start + (F.col("id") % per_item) * stride) % n).alias("_idx"))
    answered = slots.join(F.broadcast(planted.select("_idx", "worker", "_cum")), "_idx")
    u = uniform(seed, _S_ANSWER, F.col("id"))
    given = _draw([F.element_at("_cum", F.col("_truth") * k + (c + 1)) for c in range(k)], u)
    # the broadcast join keeps the range's order: rows come out by item, then slot
    judgments = answered.select("item", "worker", F.element_at(classes, given + 1).alias("label"))

    pi = [[F.col("_pi")[t * k + c] for c in range(k)] for t in range(k)]
    confusion = F.create_map(*[
        x for t in range(k) for x in (
            F.lit(spec.classes[t]),
            F.create_map(*[y for c in range(k) for y in (F.lit(spec.classes[c]), pi[t][c])]))])
    workers = planted.select("worker", "kind", "accuracy", confusion.alias("confusion")) \
        .orderBy("worker")
    return truth, judgments, workers


def write_crowd(spark: SparkSession, spec: CrowdSpec, seed: int, out: str, *,
                judgments_format: str = "parquet") -> str:
    """Write ``out``/truth, ``out``/judgments (``judgments_format``: parquet or csv with a
    header) and ``out``/workers (Parquet), each overwritten. Returns ``out``."""
    truth, judgments, workers = simulate(spark, spec, seed)
    truth.write.mode("overwrite").parquet(f"{out}/truth")
    writer = judgments.write.mode("overwrite")
    if judgments_format == "csv":
        writer.option("header", "true").csv(f"{out}/judgments")
    else:
        writer.parquet(f"{out}/judgments")
    workers.write.mode("overwrite").parquet(f"{out}/workers")
    log.info("wrote a crowd of %d items x %d labels by %d workers (seed %d) to %s",
             spec.n_items, spec.labels_per_item, spec.n_workers, seed, out)
    return out


def _mix(text: str) -> tuple[WorkerGroup, ...]:
    """``good=0.7,poor=0.1,spammer=0.1,adversarial=0.1`` (each kind's default range)."""
    groups = []
    for part in text.split(","):
        kind, _, share = part.partition("=")
        if kind not in KINDS:
            raise argparse.ArgumentTypeError(f"unknown worker kind {kind!r}: one of {KINDS}")
        groups.append(WorkerGroup(kind, float(share)))  # type: ignore[arg-type]
    return tuple(groups)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.crowdgen",
        description="Write a seeded simulated crowd (truth, judgments, workers).")
    parser.add_argument("--items", type=int, required=True, help="number of items")
    parser.add_argument("--labels-per-item", type=int, default=5)
    parser.add_argument("--workers", type=int, required=True, help="number of workers")
    parser.add_argument("--classes", default="0,1", help="comma-separated (default: 0,1)")
    parser.add_argument("--prior", default=None,
                        help="comma-separated class weights (default: uniform)")
    parser.add_argument("--mix", type=_mix, default=DEFAULT_GROUPS,
                        help="worker kinds and shares, e.g. good=0.7,poor=0.1,spammer=0.1,"
                             "adversarial=0.1 (the default)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet",
                        help="of the judgments (default: parquet)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--env", default="local",
                        help="Spark settings of conf/<env>.yml (default: local)")
    args = parser.parse_args(argv)
    log_to_stderr()
    spec = CrowdSpec(
        n_items=args.items, labels_per_item=args.labels_per_item, n_workers=args.workers,
        classes=tuple(args.classes.split(",")),
        class_prior=tuple(float(w) for w in args.prior.split(",")) if args.prior else None,
        groups=args.mix)

    spark = env_session(args.env)
    try:
        write_crowd(spark, spec, args.seed, str(args.out), judgments_format=args.format)
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
