"""Crowd labels: ``sparkmlops.labels.consensus`` against crowd-kit on the same crowds.

For each size (default 1M, 10M and 100M judgments, 10 labels per item, 2 000 / 5 000 /
20 000 workers of crowdgen's default mix: good, poor, spammers, adversarial) the crowd
is written once by ``benchmarks/crowdgen.py`` to
``benchmarks/out/crowd-<judgments>-seed<seed>/`` (Parquet: truth/, judgments/,
workers/; reused while its spec is the same). Then, each in its own subprocess:

- **ours**: ``consensus(judgments, ["0", "1"], method)`` on the Parquet judgments with
  the env's Spark settings (``conf/<env>.yml`` over ``base.yml``, as ``run.py``;
  ``--driver-memory`` over the env's ``spark.driver.memory``), the items written to
  Parquet (every row computed), then the accuracy against the planted truth in Spark
  (a join with truth/; an item without a label counts as wrong);
- **crowd-kit** (``--reference crowdkit``, in ``.venv-crowdkit``, see
  ``deps/bench-labels.txt``): ``pd.read_parquet`` of the judgments as task, worker,
  label and ``MajorityVote().fit_predict`` / ``DawidSkene().fit_predict`` with crowd-kit's
  defaults (n_iter=100, tol=1e-5 on its loss; ours: 100 iterations, 1e-6 on the
  log-likelihood per judgment); the accuracy in pandas. ``--reference builtin`` is a
  small numpy majority vote and Dawid–Skene with the same interface, for the test and
  for a machine without crowd-kit.

Per process: ``seconds`` = reading the judgments → every label computed (ours: without
starting the Spark session, reported apart as ``session_seconds``; neither counts
interpreter start, imports or the accuracy check), ``wall_seconds`` of the process,
peak RSS of the process and all its children (the Spark JVM is a child of the Python
driver) polled every ``--poll`` seconds, the accuracy, the load average. A process is
killed when it runs past ``--timeout``, when its tree's RSS passes ``--max-rss-gib``,
or when the machine's available memory falls under ``--min-available-gib`` (the
machine is shared: that is "does not fit" too); a killed or failed process is reported
with the phase it reached and why ("crowd-kit stops at ...").

The table goes to stdout and, with every detail, to
``benchmarks/out/labels-bench-<timestamp>.json`` (rewritten after each process), with
the issue's goals marked met / not met / not measured. It is a report, not a test.

Usage::

    python benchmarks/labels_bench.py [--judgments 1000000 10000000 100000000]
        [--methods majority_vote dawid_skene] [--sides ours reference]
    make bench-labels BENCH_LABELS_ARGS="--judgments 1000000 10000000"

This file imports only the standard library at the top: the crowd-kit side runs it
with ``.venv-crowdkit``'s Python, which has neither pyspark nor sparkmlops.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "out"
CROWDKIT_PYTHON = ROOT / ".venv-crowdkit" / "bin" / "python"
DEFAULT_JUDGMENTS = [1_000_000, 10_000_000, 100_000_000]
DEFAULT_WORKERS = {1_000_000: 2_000, 10_000_000: 5_000, 100_000_000: 20_000}
METHODS = ("majority_vote", "dawid_skene")
SIDES = ("ours", "reference")
CLASSES = ("0", "1")
GIB = 1024 ** 3
# the issue's goals
ACCURACY_POINTS = 0.1     # DS accuracy within 0.1 point of crowd-kit's
TIME_RATIO_AT_10M = 3.0   # at 10M, at most 3x crowd-kit's time

log = logging.getLogger("labels_bench")


def default_workers(judgments: int, labels_per_item: int) -> int:
    """2 000 / 5 000 / 20 000 at 1M / 10M / 100M; else one worker per 500 judgments,
    at least twice the labels per item."""
    return DEFAULT_WORKERS.get(judgments,
                               max(2 * labels_per_item, min(20_000, judgments // 500)))


# ---------------------------------------------------------------- the crowd


def crowd_spec(judgments: int, labels_per_item: int, workers: int) -> dict[str, Any]:
    return {"items": judgments // labels_per_item, "labels_per_item": labels_per_item,
            "workers": workers, "classes": list(CLASSES)}


def mark_crowd(crowd: Path, spec: dict[str, Any], seed: int, seconds: float | None) -> None:
    """Record what ``crowd`` holds: it is reused only for the same spec and seed."""
    (crowd / "crowd.json").write_text(json.dumps(
        {"spec": spec, "seed": seed, "generate_seconds": seconds}, indent=2))


def crowd_for(out: Path, judgments: int, labels_per_item: int, workers: int, seed: int,
              env: str, regenerate: bool) -> tuple[Path, dict[str, Any]]:
    """The crowd folder of this size, written by ``benchmarks.crowdgen`` unless it holds
    this spec already; (folder, its crowd.json)."""
    crowd = out / f"crowd-{judgments}-seed{seed}"
    spec = crowd_spec(judgments, labels_per_item, workers)
    marker = crowd / "crowd.json"
    if marker.exists() and not regenerate:
        recorded = json.loads(marker.read_text())
        if recorded.get("spec") == spec and recorded.get("seed") == seed:
            log.info("reusing the crowd in %s", crowd)
            return crowd, recorded
    cmd = [sys.executable, "-m", "benchmarks.crowdgen", "--items", str(spec["items"]),
           "--labels-per-item", str(labels_per_item), "--workers", str(workers),
           "--classes", ",".join(CLASSES), "--seed", str(seed), "--out", str(crowd),
           "--env", env]
    logfile = out / "logs" / f"crowdgen-{judgments}-seed{seed}.log"
    logfile.parent.mkdir(parents=True, exist_ok=True)
    log.info("$ %s  (log: %s)", " ".join(cmd), logfile)
    started = time.monotonic()
    with logfile.open("w") as sink:
        code = subprocess.run(cmd, cwd=ROOT, env=child_env(), stdout=sink,
                              stderr=subprocess.STDOUT, check=False).returncode
    if code != 0:
        raise SystemExit(f"crowdgen failed (exit code {code}); see {logfile}")
    mark_crowd(crowd, spec, seed, round(time.monotonic() - started, 1))
    return crowd, json.loads(marker.read_text())


# ---------------------------------------------------------------- measuring a process


def child_env() -> dict[str, str]:
    """The environment of ``make``: jars folder, this venv's Python for Spark's workers."""
    env = dict(os.environ)
    env.setdefault("SPARKMLOPS_JARS_DIR", str(ROOT / ".jars"))
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    return env


@dataclass
class Measured:
    """One measured process: how it ended, its wall time and the peak RSS of its tree."""

    exit_code: int | None
    wall_seconds: float
    peak_rss_gib: float
    killed: str | None      # why the harness killed it (timeout, memory), else None
    load_average: tuple[float, float, float]  # when it started
    load_average_end: tuple[float, float, float]
    log: str


def _tree_rss(process: Any) -> int:
    """RSS of ``process`` and all its descendants (bytes); 0 for those already gone."""
    import psutil

    total = 0
    try:
        family = [process, *process.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in family:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_measured(cmd: Sequence[str], logfile: Path, *, timeout: float, max_rss_gib: float,
                 min_available_gib: float, poll: float = 0.25,
                 env: dict[str, str] | None = None) -> Measured:
    """Run ``cmd`` in its own process group with stdout+stderr into ``logfile``, polling
    the RSS of its tree; kill the group past ``timeout`` seconds, past ``max_rss_gib``, or
    when the machine's available memory drops under ``min_available_gib``."""
    import psutil

    logfile.parent.mkdir(parents=True, exist_ok=True)
    log.info("$ %s  (log: %s)", " ".join(cmd), logfile)
    load = os.getloadavg()
    peak, killed = 0, None
    started = time.monotonic()
    with logfile.open("w") as sink:
        proc = subprocess.Popen(list(cmd), cwd=ROOT, env=env or child_env(), stdout=sink,
                                stderr=subprocess.STDOUT, start_new_session=True)
        watched = psutil.Process(proc.pid)
        while proc.poll() is None:
            rss = _tree_rss(watched)
            peak = max(peak, rss)
            elapsed = time.monotonic() - started
            available = psutil.virtual_memory().available / GIB
            if elapsed > timeout:
                killed = f"timeout: still running after {timeout:g} s"
            elif rss > max_rss_gib * GIB:
                killed = f"memory: RSS {rss / GIB:.1f} GiB over the cap of {max_rss_gib:g} GiB"
            elif available < min_available_gib:
                killed = (f"memory: the machine had {available:.1f} GiB available (under "
                          f"{min_available_gib:g} GiB) at RSS {rss / GIB:.1f} GiB")
            if killed:
                log.warning("killing %s after %.0f s: %s", cmd[0], elapsed, killed)
                os.killpg(proc.pid, signal.SIGKILL)  # its own group: the JVM goes too
                proc.wait()
                break
            time.sleep(poll)
    return Measured(exit_code=proc.returncode, wall_seconds=round(time.monotonic() - started, 2),
                    peak_rss_gib=round(peak / GIB, 3), killed=killed, load_average=load,
                    load_average_end=os.getloadavg(), log=str(logfile))


def _failure(measured: Measured, result: dict[str, Any] | None) -> str | None:
    """Why a process gave no result, with the phase it had reached; None when it did."""
    if measured.killed is None and measured.exit_code == 0 and result and "accuracy" in result:
        return None
    phases = (result or {}).get("phases", {})
    reached = max(phases, key=phases.get) if phases else "start"
    phase = f"after phase '{reached}' ({phases.get(reached, 0):.0f} s)"
    running = (result or {}).get("running")
    if running:
        phase = f"in '{running}' ({phase})"
    if measured.killed:
        return f"killed by the harness {phase}: {measured.killed}"
    tail = Path(measured.log).read_text(errors="replace").splitlines()[-40:]
    errors = [line.strip() for line in tail if "Error" in line or "Killed" in line]
    if measured.exit_code is not None and measured.exit_code < 0:
        why = f"killed by signal {-measured.exit_code}"
        if -measured.exit_code == signal.SIGKILL:
            why += " (the kernel's OOM killer?)"
    else:
        why = f"exit code {measured.exit_code}"
    return f"{why} {phase}" + (f": {errors[-1][:300]}" if errors else "")


def measure(side: str, method: str, crowd: Path, work: Path,
            args: argparse.Namespace) -> dict[str, Any]:
    """Run one side's subprocess for ``method`` on ``crowd``; its result and measurements."""
    tag = f"{crowd.name}-{side}-{method}"
    result_file = work / f"{tag}.json"
    result_file.unlink(missing_ok=True)
    common = ["--measure", side, "--method", method, "--crowd", str(crowd),
              "--result", str(result_file)]
    if side == "ours":
        cmd = [sys.executable, str(Path(__file__).resolve()), *common,
               "--items-out", str(work / f"{tag}-items"), "--env", args.env,
               "--driver-memory", args.driver_memory]
    else:
        python = str(args.crowdkit_python) if args.reference == "crowdkit" else sys.executable
        cmd = [python, str(Path(__file__).resolve()), *common, "--impl", args.reference]
    measured = run_measured(cmd, work / "logs" / f"{tag}.log", timeout=args.timeout,
                            max_rss_gib=args.max_rss_gib,
                            min_available_gib=args.min_available_gib, poll=args.poll)
    result = json.loads(result_file.read_text()) if result_file.exists() else None
    return {"side": side, "method": method, "impl": "sparkmlops" if side == "ours"
            else args.reference, **asdict(measured), "result": result,
            "failed": _failure(measured, result)}


# ---------------------------------------------------------------- inside a measured process


class _Progress:
    """The result file of a measured process, rewritten at every phase so that the
    harness knows how far a process got when it is killed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.started = time.monotonic()
        self.data: dict[str, Any] = {"phases": {}}

    def phase(self, name: str, running: str | None = None, **values: Any) -> None:
        """``name`` is done; ``running``: what starts now (named when it dies)."""
        self.data["phases"][name] = round(time.monotonic() - self.started, 3)
        self.data["running"] = running
        self.data.update(values)
        self.path.write_text(json.dumps(self.data, indent=2))


def measure_ours(method: str, crowd: Path, items_out: Path, progress: _Progress, env: str,
                 driver_memory: str) -> None:
    import pyspark.sql.functions as F

    from sparkmlops.config import load_settings
    from sparkmlops.labels.consensus import consensus
    from sparkmlops.spark import get_spark

    settings = load_settings(env, "penguins").spark
    conf = {**settings.conf, "spark.driver.memory": driver_memory}
    progress.phase("imports", running="Spark session start")
    spark = get_spark(settings.model_copy(update={"conf": conf, "app_name": "labels-bench"}))
    progress.phase("session", running="consensus", spark_master=spark.sparkContext.master,
                   spark_conf=conf)
    started = time.monotonic()
    result = consensus(spark.read.parquet(str(crowd / "judgments")), list(CLASSES),
                       method)  # type: ignore[arg-type]
    progress.phase("consensus", running="write the items", iterations=result.iterations,
                   converged=result.converged, log_likelihood=result.log_likelihood)
    result.items.write.mode("overwrite").parquet(str(items_out))
    seconds = time.monotonic() - started
    progress.phase("labels written", running="accuracy", seconds=round(seconds, 3))
    items = spark.read.parquet(str(items_out))
    truth = spark.read.parquet(str(crowd / "truth"))
    row = truth.join(items, "item", "left").agg(
        F.count("*").alias("items"), F.count("label").alias("labelled"),
        F.sum((F.col("label") == F.col("truth")).cast("long")).alias("correct")).first()
    assert row is not None
    progress.phase("accuracy", items=row["items"], labelled=row["labelled"],
                   correct=row["correct"], accuracy=row["correct"] / row["items"])
    spark.stop()


def measure_reference(method: str, crowd: Path, progress: _Progress, impl: str) -> None:
    import pandas as pd

    if impl == "crowdkit":
        from crowdkit.aggregation import DawidSkene, MajorityVote

        aggregator = MajorityVote() if method == "majority_vote" else DawidSkene()
        progress.phase("imports", running="read_parquet", crowdkit_params={
            k: v for k, v in vars(aggregator).items() if not k.endswith("_")})
    else:
        progress.phase("imports", running="read_parquet")
    started = time.monotonic()
    judgments = pd.read_parquet(crowd / "judgments", columns=["item", "worker", "label"]) \
        .rename(columns={"item": "task"})
    progress.phase("read", running="fit_predict", judgments=len(judgments))
    if impl == "crowdkit":
        labels = aggregator.fit_predict(judgments)
        extra = {"iterations": len(getattr(aggregator, "loss_history_", []) or [])} \
            if method == "dawid_skene" else {}
    else:
        labels, iterations = builtin_aggregate(judgments, method)
        extra = {"iterations": iterations}
    seconds = time.monotonic() - started
    progress.phase("labels computed", running="accuracy", seconds=round(seconds, 3), **extra)
    del judgments
    truth = pd.read_parquet(crowd / "truth", columns=["item", "truth"])
    given = labels.reindex(truth["item"].to_numpy()).to_numpy()
    correct = int((given == truth["truth"].to_numpy()).sum())
    progress.phase("accuracy", items=len(truth), labelled=int(pd.notna(given).sum()),
                   correct=correct, accuracy=correct / len(truth))


def builtin_aggregate(judgments: Any, method: str, n_iter: int = 100,
                      tol: float = 1e-6) -> tuple[Any, int]:
    """A small numpy majority vote / Dawid–Skene (crowd-kit's algorithm: start from the
    majority vote's vote shares, M-step, E-step, stop when the log-likelihood per
    judgment moves less than ``tol``); a tie goes to the first class in sorted order.
    The reference when crowd-kit is not installed (the test's): (labels by task, E-steps)."""
    import numpy as np
    import pandas as pd

    tasks, t = np.unique(judgments["task"].to_numpy(), return_inverse=True)
    _, w = np.unique(judgments["worker"].to_numpy(), return_inverse=True)
    classes, c = np.unique(judgments["label"].to_numpy(), return_inverse=True)
    k = len(classes)
    post = np.zeros((len(tasks), k))
    np.add.at(post, (t, c), 1.0)
    post /= post.sum(axis=1, keepdims=True)
    iterations, last = 0, -np.inf
    while method == "dawid_skene" and iterations < n_iter:
        prior = post.mean(axis=0)
        counts = np.zeros((w.max() + 1, k, k))  # worker, true class, given class
        for true in range(k):
            np.add.at(counts[:, true, :], (w, c), post[t, true])
        pi = np.clip(counts / np.maximum(counts.sum(axis=2, keepdims=True), 1e-300),
                     1e-10, 1.0)
        log_q = np.tile(np.log(np.clip(prior, 1e-10, 1.0)), (len(tasks), 1))
        np.add.at(log_q, t, np.log(pi[w, :, c]))
        top = log_q.max(axis=1, keepdims=True)
        norm = top[:, 0] + np.log(np.exp(log_q - top).sum(axis=1))
        post = np.exp(log_q - norm[:, None])
        iterations += 1
        ll = norm.sum() / len(t)
        if abs(ll - last) < tol:
            break
        last = ll
    return pd.Series(classes[post.argmax(axis=1)], index=tasks), iterations


def measured_main(args: argparse.Namespace) -> int:
    progress = _Progress(args.result)
    if args.measure == "ours":
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
        logging.getLogger("py4j").setLevel(logging.WARNING)
        measure_ours(args.method, args.crowd, args.items_out, progress, args.env,
                     args.driver_memory)
    else:
        measure_reference(args.method, args.crowd, progress, args.impl)
    return 0


# ---------------------------------------------------------------- the report


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def table_rows(judgments: int, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per method: ours against the reference at this size."""
    rows = []
    for method in METHODS:
        by_side = {r["side"]: r for r in runs if r["method"] == method}
        if not by_side:
            continue

        def value(side: str, key: str, by_side: dict[str, Any] = by_side) -> Any:
            run = by_side.get(side)
            if run is None or run["failed"]:
                return None
            return run["result"].get(key) if key in run["result"] else run.get(key)

        ours_s, ref_s = value("ours", "seconds"), value("reference", "seconds")
        ours_acc, ref_acc = value("ours", "accuracy"), value("reference", "accuracy")
        rows.append({
            "judgments": judgments, "method": method,
            "ours_seconds": ours_s, "reference_seconds": ref_s, "ratio": _ratio(ours_s, ref_s),
            "ours_peak_gib": by_side["ours"]["peak_rss_gib"] if "ours" in by_side else None,
            "reference_peak_gib": (by_side["reference"]["peak_rss_gib"]
                                   if "reference" in by_side else None),
            "ours_accuracy": ours_acc, "reference_accuracy": ref_acc,
            "difference_points": (round(100 * (ours_acc - ref_acc), 4)
                                  if ours_acc is not None and ref_acc is not None else None),
            "ours_iterations": value("ours", "iterations"),
            "reference_iterations": value("reference", "iterations"),
            "ours_failed": by_side.get("ours", {}).get("failed"),
            "reference_failed": by_side.get("reference", {}).get("failed"),
            "load_average": {s: r["load_average"] for s, r in by_side.items()},
        })
    return rows


def goals(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The issue's three goals: met (True), not met (False) or not measured (None)."""
    ds = [r for r in rows if r["method"] == "dawid_skene"]
    diffs = [r["difference_points"] for r in ds if r["difference_points"] is not None]
    at_10m = [r for r in rows if r["judgments"] == 10_000_000 and r["ratio"] is not None]
    at_100m = [r for r in rows if r["judgments"] == 100_000_000]
    fits = None
    if at_100m:
        ours_done = all(r["ours_seconds"] is not None for r in at_100m)
        ref_fails = [r for r in at_100m if r["reference_failed"]]
        fits = ours_done and bool(ref_fails) and all(
            r["ours_peak_gib"] is not None for r in at_100m)
    return {
        "ds_accuracy_within_0.1_point": {
            "met": all(abs(d) <= ACCURACY_POINTS for d in diffs) if diffs else None,
            "differences_points": diffs},
        "at_10m_at_most_3x_time": {
            "met": all(r["ratio"] <= TIME_RATIO_AT_10M for r in at_10m) if at_10m else None,
            "ratios": {r["method"]: r["ratio"] for r in at_10m}},
        "100m_completes_where_reference_does_not": {
            "met": fits,
            "methods_measured": [r["method"] for r in at_100m]},
    }


def format_table(rows: list[dict[str, Any]], reference: str) -> str:
    def cell(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    header = (f"{'judgments':>11} {'method':<14}{'ours s':>9}{reference + ' s':>12}"
              f"{'ratio':>9}{'ours GiB':>10}{reference + ' GiB':>14}{'acc ours':>10}"
              f"{'acc ref':>9}{'diff pt':>9}")
    lines = [header, "-" * len(header)]
    for r in rows:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        lines.append(
            f"{r['judgments']:>11,} {r['method']:<14}{cell(r['ours_seconds'], '.1f'):>9}"
            f"{cell(r['reference_seconds'], '.1f'):>12}{ratio:>9}"
            f"{cell(r['ours_peak_gib'], '.2f'):>10}{cell(r['reference_peak_gib'], '.2f'):>14}"
            f"{cell(r['ours_accuracy'] and 100 * r['ours_accuracy'], '.2f'):>10}"
            f"{cell(r['reference_accuracy'] and 100 * r['reference_accuracy'], '.2f'):>9}"
            f"{cell(r['difference_points'], '+.3f'):>9}")
        for side in ("ours", "reference"):
            if r[f"{side}_failed"]:
                lines.append(f"{'':>12}{side if side == 'ours' else reference} stops: "
                             f"{r[f'{side}_failed']}")
    return "\n".join(lines)


def format_goals(met: dict[str, dict[str, Any]]) -> str:
    word = {True: "met", False: "NOT met", None: "not measured"}
    return "\n".join(f"goal {name}: {word[g['met']]}  "
                     f"{ {k: v for k, v in g.items() if k != 'met'} }"
                     for name, g in met.items())


# ---------------------------------------------------------------- main


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchmarks/labels_bench.py",
                                description=(__doc__ or "").split("\n")[0])
    p.add_argument("--judgments", type=int, nargs="+", default=DEFAULT_JUDGMENTS)
    p.add_argument("--labels-per-item", type=int, default=10)
    p.add_argument("--workers", type=int, nargs="+", default=None,
                   help="per size (default 2000 / 5000 / 20000 at 1M / 10M / 100M)")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--sides", nargs="+", choices=SIDES, default=list(SIDES))
    p.add_argument("--reference", choices=("crowdkit", "builtin"), default="crowdkit",
                   help="crowd-kit (in --crowdkit-python's venv) or the small numpy one")
    p.add_argument("--crowdkit-python", type=Path, default=CROWDKIT_PYTHON)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--env", default="local", help="Spark settings of conf/<env>.yml (ours)")
    p.add_argument("--driver-memory", default="10g", help="ours: spark.driver.memory")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per process")
    p.add_argument("--max-rss-gib", type=float, default=20.0,
                   help="kill a process whose tree's RSS passes this")
    p.add_argument("--min-available-gib", type=float, default=1.0,
                   help="kill a process when the machine's available memory drops under this")
    p.add_argument("--poll", type=float, default=0.25, help="RSS poll interval (s)")
    p.add_argument("--regenerate", action="store_true", help="rewrite the crowds")
    # inside a measured process
    p.add_argument("--measure", choices=SIDES, help=argparse.SUPPRESS)
    p.add_argument("--method", choices=METHODS, help=argparse.SUPPRESS)
    p.add_argument("--crowd", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--items-out", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--impl", choices=("crowdkit", "builtin"), help=argparse.SUPPRESS)
    return p


def code_state() -> dict[str, Any]:
    """The git commit and a hash of the measured code: numbers belong to a version."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True,
                           text=True, check=False).stdout.strip()
    files = ["lib/sparkmlops/labels/consensus.py", "benchmarks/crowdgen.py",
             "benchmarks/labels_bench.py"]
    return {"commit": head, "dirty": bool(dirty), "sha256": {
        f: hashlib.sha256((ROOT / f).read_bytes()).hexdigest()[:16]
        for f in files if (ROOT / f).exists()}}


def bench(args: argparse.Namespace) -> dict[str, Any]:
    """Every size, every method, both sides; the report (also written as JSON)."""
    if "reference" in args.sides and args.reference == "crowdkit" \
            and not args.crowdkit_python.exists():
        raise SystemExit(f"no crowd-kit venv at {args.crowdkit_python}: "
                         "`make bench-labels` builds it (deps/bench-labels.txt)")
    workers = args.workers or [default_workers(n, args.labels_per_item) for n in args.judgments]
    if len(workers) != len(args.judgments):
        raise SystemExit("--workers needs one count per --judgments size")
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    report_file = args.out / f"labels-bench-{stamp}.json"
    work = args.out / f"labels-bench-{stamp}"
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "started": stamp, "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "reference": args.reference, "driver_memory": args.driver_memory, "env": args.env,
        "timeout": args.timeout, "max_rss_gib": args.max_rss_gib,
        "min_available_gib": args.min_available_gib, "code": code_state(),
        "sizes": [], "rows": []}
    for judgments, n_workers in zip(args.judgments, workers, strict=True):
        crowd, recorded = crowd_for(args.out, judgments, args.labels_per_item, n_workers,
                                    args.seed, args.env, args.regenerate)
        size: dict[str, Any] = {"judgments": judgments, "crowd": str(crowd), **recorded,
                                "runs": []}
        report["sizes"].append(size)
        for method in args.methods:
            for side in args.sides:
                run = measure(side, method, crowd, work, args)
                size["runs"].append(run)
                log.info("%s %s %s: %s", judgments, side, method, run["failed"] or (
                    f"{run['result']['seconds']:.1f} s, peak {run['peak_rss_gib']:.2f} GiB, "
                    f"accuracy {run['result']['accuracy']:.4f}"))
                report["rows"] = [row for s in report["sizes"]
                                  for row in table_rows(s["judgments"], s["runs"])]
                report["goals"] = goals(report["rows"])
                report_file.write_text(json.dumps(report, indent=2))
    report["report_file"] = str(report_file)
    report_file.write_text(json.dumps(report, indent=2))
    return report


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.measure:
        return measured_main(args)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    report = bench(args)
    print(format_table(report["rows"], "crowd-kit" if args.reference == "crowdkit"
                       else args.reference))
    print(format_goals(report["goals"]))
    print(f"report: {report['report_file']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
