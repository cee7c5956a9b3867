"""benchmarks/labels_bench.py end to end on a tiny crowd, and its process runner.

The crowd-kit side needs ``.venv-crowdkit``, which ``make test`` does not build: here the
reference side is the harness's ``--reference builtin`` (a numpy majority vote and
Dawid–Skene run by the same subprocess runner, from the same Parquet, with pandas), so
the test proves the harness (crowd reuse, one measured process per side and method,
accuracy against the planted truth, the table's ratios and differences, the goals)
without crowd-kit; the ours side is the real ``consensus`` in its own Spark process.
"""

from __future__ import annotations

import json
import sys
import textwrap

import pyspark.sql.functions as F
from benchmarks.crowdgen import CrowdSpec, write_crowd
from benchmarks.labels_bench import (
    _failure,
    bench,
    crowd_spec,
    mark_crowd,
    parser,
    run_measured,
)

ITEMS, PER_ITEM, WORKERS, SEED = 200, 10, 20, 7


def _majority_vote_accuracy(spark, crowd) -> float:
    """The planted truth against a majority vote computed here (a tie goes to "0")."""
    votes = spark.read.parquet(str(crowd / "judgments")).groupBy("item").agg(
        F.sum((F.col("label") == "1").cast("int")).alias("ones"), F.count("*").alias("n"))
    voted = votes.select("item", F.when(F.col("ones") * 2 > F.col("n"), "1")
                         .otherwise("0").alias("label"))
    truth = spark.read.parquet(str(crowd / "truth"))
    row = truth.join(voted, "item", "left").agg(
        F.avg((F.col("label") == F.col("truth")).cast("double"))).first()
    return row[0]


def test_the_bench_measures_both_sides_against_the_planted_truth(spark, tmp_path):
    crowd = tmp_path / f"crowd-{ITEMS * PER_ITEM}-seed{SEED}"
    write_crowd(spark, CrowdSpec(ITEMS, PER_ITEM, WORKERS), SEED, str(crowd))
    mark_crowd(crowd, crowd_spec(ITEMS * PER_ITEM, PER_ITEM, WORKERS), SEED, None)
    args = parser().parse_args([
        "--judgments", str(ITEMS * PER_ITEM), "--labels-per-item", str(PER_ITEM),
        "--workers", str(WORKERS), "--seed", str(SEED), "--reference", "builtin",
        # one method proves the harness (majority vote's results are consensus's unit
        # tests'); each ours process starts a JVM
        "--methods", "dawid_skene",
        "--out", str(tmp_path), "--driver-memory", "1g", "--timeout", "600"])

    report = bench(args)

    # the crowd written above was reused, not generated again
    assert not (tmp_path / "logs").exists()
    runs = report["sizes"][0]["runs"]
    assert [(r["side"], r["method"]) for r in runs] == [
        ("ours", "dawid_skene"), ("reference", "dawid_skene")]
    for run in runs:
        assert run["failed"] is None and run["exit_code"] == 0
        assert run["result"]["items"] == ITEMS and run["result"]["labelled"] == ITEMS
        assert run["result"]["accuracy"] == run["result"]["correct"] / ITEMS
        assert 0 < run["result"]["seconds"] < run["wall_seconds"]
        assert run["peak_rss_gib"] > 0.01
    ours = {r["method"]: r for r in runs if r["side"] == "ours"}
    # the ours process tree holds the Spark JVM: far above a bare Python's RSS
    assert ours["dawid_skene"]["peak_rss_gib"] > 0.3
    # the accuracy is the written items against the planted truth, recomputed here
    items = spark.read.parquet(str(args.out / f"labels-bench-{report['started']}"
                                   / f"{crowd.name}-ours-dawid_skene-items"))
    assert items.count() == ITEMS
    truth = spark.read.parquet(str(crowd / "truth"))
    correct = truth.join(items, "item").where(F.col("label") == F.col("truth")).count()
    assert ours["dawid_skene"]["result"]["correct"] == correct

    rows = {r["method"]: r for r in report["rows"]}
    assert list(rows) == ["dawid_skene"]
    expected_mv = _majority_vote_accuracy(spark, crowd)
    # a fifth of the workers are spammers or adversaries: Dawid–Skene reads them right
    assert rows["dawid_skene"]["ours_accuracy"] > expected_mv
    assert abs(rows["dawid_skene"]["difference_points"]) <= 100 / ITEMS  # at most one item
    for row in rows.values():
        assert row["ratio"] == round(row["ours_seconds"] / row["reference_seconds"], 2)
        assert row["difference_points"] == round(
            100 * (row["ours_accuracy"] - row["reference_accuracy"]), 4)
    goals = report["goals"]
    assert goals["ds_accuracy_within_0.1_point"]["met"] is (
        abs(rows["dawid_skene"]["difference_points"]) <= 0.1)
    assert goals["at_10m_at_most_3x_time"]["met"] is None  # no 10M size in this run
    assert goals["100m_completes_where_reference_does_not"]["met"] is None
    assert json.loads((tmp_path / f"labels-bench-{report['started']}.json").read_text()) \
        == json.loads(json.dumps(report))


def test_a_process_over_the_memory_cap_is_killed_and_says_where(tmp_path):
    grow = textwrap.dedent("""
        import json, sys, time
        open(sys.argv[1], "w").write(json.dumps({"phases": {"read": 0.5},
                                                 "running": "fit_predict"}))
        blocks = []
        while True:
            blocks.append(b"x" * (64 << 20))
            time.sleep(0.05)
    """)
    measured = run_measured([sys.executable, "-c", grow, str(tmp_path / "r.json")],
                            tmp_path / "grow.log", timeout=60, max_rss_gib=0.3,
                            min_available_gib=0.0, poll=0.05)

    assert measured.killed is not None and measured.killed.startswith("memory: RSS")
    assert measured.exit_code == -9
    assert 0.3 <= measured.peak_rss_gib < 1.0  # killed over 0.3 GiB (rounded to 3 places)
    result = json.loads((tmp_path / "r.json").read_text())
    assert _failure(measured, result).startswith(
        "killed by the harness in 'fit_predict' (after phase 'read' (0 s)): memory: RSS")


def test_a_process_that_fails_is_reported_with_its_error(tmp_path):
    measured = run_measured([sys.executable, "-c", "raise MemoryError('pandas ran out')"],
                            tmp_path / "fail.log", timeout=60, max_rss_gib=10,
                            min_available_gib=0.0)
    assert measured.killed is None and measured.exit_code == 1
    assert _failure(measured, None) == (
        "exit code 1 after phase 'start' (0 s): MemoryError: pandas ran out")

    slow = run_measured([sys.executable, "-c", "import time; time.sleep(30)"],
                        tmp_path / "slow.log", timeout=0.5, max_rss_gib=10,
                        min_available_gib=0.0, poll=0.05)
    assert slow.killed == "timeout: still running after 0.5 s" and slow.wall_seconds < 10
