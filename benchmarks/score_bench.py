"""Scoring throughput: the native MLlib model against ``mlflow.pyfunc.spark_udf``, and monitoring.

For each row count: the clean landing CSVs of ``run.py`` (``benchmarks.datagen``,
reused when cached) go once through ``sparkmlops ingest``, ``validate``,
``features``, ``train`` and ``promote`` into a cached state dir
(``benchmarks/out/score-state-<landing>/``), so gold holds the rows as batch
``bench`` and the registry a ``penguins_sex_classifier@champion`` trained on them.
Above ``--train-rows`` (default 1M) a size is not trained on: its state stops after
``features``, and it is scored with the champion of the ``--train-rows`` state,
whose MLflow store it uses (``--set tracking.tracking_uri=sqlite:///<that state>/mlflow.db``).

Then, per size:

- one measuring subprocess (``--measure``, the platform's Spark settings, one
  session for both sides) scores the gold batch ``--repeat`` times each way,
  alternating: **native**, ``mlflow.spark.load_model`` of ``@champion`` and its
  ``transform``; **pyfunc**, ``mlflow.pyfunc.spark_udf(spark, "models:/...@champion",
  result_type="double")`` on a struct of the model's signature input columns. Both
  write the keys and the prediction to a throwaway Delta table, so each timing is
  read gold → score → write, as ``predict`` does. A read + write of the same rows
  without a model is timed as the floor. For a Spark-flavor model the pyfunc UDF
  starts a local Spark session (a JVM) inside each Python worker and loads the model
  there for each task: that is part of what the route costs, and the first pyfunc
  run pays for the sessions;
- ``sparkmlops predict --batch-id bench`` (the platform's route: quarantine check,
  predictions shape, Delta write, MLflow run), its ``step_seconds`` and process wall;
- ``sparkmlops monitor --batch-id bench`` for the sizes in ``--monitor-rows``
  (default 1M): drift against the train run's reference profile and live metrics,
  its ``step_seconds`` and process wall.

The table goes to stdout and, with every detail, to
``benchmarks/out/score-results-<timestamp>.json`` (written after each size). It is a
report, never a test: nothing here asserts a timing.

Usage::

    python benchmarks/score_bench.py [--rows 1000000 10000000] [--repeat 2]
                                     [--train-rows 1000000] [--monitor-rows 1000000]
    make bench-score BENCH_SCORE_ARGS="--rows 100000 --train-rows 100000 --monitor-rows 100000"
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

# benchmarks/ is sys.path[0] when this file runs as a script (make bench-score)
from ingest_bench import files_for
from run import (
    bench_logging,
    bench_parser,
    landing_data,
    latest_step_run,
    run_logged,
    run_seconds,
    sparkmlops_command,
)
from train_bench import (
    PREPARE_STEPS,
    last_line,
    lib_fingerprint,
    prepared_state,
    report_header,
)

log = logging.getLogger("score_bench")

DEFAULT_ROWS = [1_000_000, 10_000_000]
BATCH = "bench"
SIDES = ("native", "pyfunc")


# ---------------------------------------------------------------- inside the measuring process


def measure_main(args: argparse.Namespace) -> int:
    """Subprocess body of ``--measure``: native and pyfunc scoring of one gold batch."""
    import mlflow
    import pyspark.sql.functions as F
    from mlflow.models import get_model_info
    from mlflow.tracking import MlflowClient

    from sparkmlops.config import load_settings
    from sparkmlops.features.mllib import model_input_columns
    from sparkmlops.spark import get_spark
    from sparkmlops.tables import current_version, dataset_tables, read_batch

    settings = load_settings(args.env, "penguins", overrides=cli_overrides(
        Path(args.state), Path(args.model_store)))
    mlflow.set_tracking_uri(settings.tracking.tracking_uri)
    dataset = settings.dataset
    uri = f"models:/{dataset.model.name}@champion"
    champion = MlflowClient().get_model_version_by_alias(dataset.model.name, "champion")
    spark = get_spark(settings.spark)
    gold = dataset_tables(settings).gold
    version = current_version(spark, gold)
    keys = list(dataset.keys)
    scratch = Path(args.state) / "score-bench-scratch"

    def write(name: str, frame: Callable[[], Any]) -> None:
        frame().write.format("delta").mode("overwrite").save(str(scratch / name))

    def timed(name: str, fn: Callable[[], Any]) -> tuple[Any, float]:
        started = time.monotonic()
        out = fn()
        seconds = round(time.monotonic() - started, 3)
        log.info("%s: %.2f s", name, seconds)
        return out, seconds

    def batch() -> Any:
        return read_batch(spark, gold, BATCH, version)

    signature = get_model_info(uri).signature
    inputs = (list(signature.inputs.input_names()) if signature and signature.inputs
              else model_input_columns(dataset))
    spark.range(1000).selectExpr("sum(id)").collect()  # JIT and session warm-up
    native_model, load_s = timed("native model load", lambda: mlflow.spark.load_model(uri))
    pyfunc_udf, udf_s = timed("pyfunc spark_udf", lambda: mlflow.pyfunc.spark_udf(
        spark, uri, result_type="double"))
    frames: dict[str, Callable[[], Any]] = {
        "read_write": lambda: batch().select(*keys),
        "native": lambda: native_model.transform(batch()).select(*keys, "prediction"),
        "pyfunc": lambda: batch().select(
            *keys, pyfunc_udf(F.struct(*inputs)).alias("prediction")),
    }
    runs: dict[str, list[float]] = {name: [] for name in frames}
    for i in range(args.repeat):
        for name, frame in frames.items():
            _, seconds = timed(f"{name} {i}", partial(write, f"{name}-{i}", frame))
            runs[name].append(seconds)
    last = args.repeat - 1
    results = {
        "rows": batch().count(), "gold_version": version, "model_uri": uri,
        "model_version": champion.version, "model_run_id": champion.run_id,
        "pyfunc_inputs": inputs, "input_partitions": batch().rdd.getNumPartitions(),
        "arrow_max_records_per_batch":
            spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch"),
        "native_load_s": load_s, "pyfunc_udf_s": udf_s, "runs_s": runs,
        "mismatches": prediction_mismatches(
            spark.read.format("delta").load(str(scratch / f"native-{last}")),
            spark.read.format("delta").load(str(scratch / f"pyfunc-{last}")), keys),
    }
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    spark.stop()
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


def prediction_mismatches(native: Any, pyfunc: Any, keys: list[str]) -> int:
    """Rows whose two predictions differ, or that one side lacks (the routes must agree)."""
    import pyspark.sql.functions as F

    both = native.alias("n").join(pyfunc.alias("p"), keys, "full_outer")
    return both.where(~F.col("n.prediction").eqNullSafe(F.col("p.prediction"))).count()


# ---------------------------------------------------------------- set-up, once per size


def cli_overrides(state: Path, model_store: Path) -> list[str]:
    """``--set`` values of a size's state, with the MLflow store that holds its champion."""
    overrides = [f"state_dir={state}"]
    if model_store != state:
        overrides.append(f"tracking.tracking_uri=sqlite:///{model_store}/mlflow.db")
    return overrides


def sparkmlops_step(step: str, state: Path, model_store: Path, env: str,
                    *extra: str) -> list[str]:
    """The command line of ``sparkmlops <step>`` on batch ``bench`` of a size's state."""
    sets = [arg for value in cli_overrides(state, model_store) for arg in ("--set", value)]
    return [*sparkmlops_command(), step, "--env", env, "--batch-id", BATCH, *sets, *extra]


def score_state(out: Path, landing: Path, logs: Path, env: str, *, train: bool,
                reprepare: bool) -> Path:
    """A state dir whose gold holds ``landing`` as batch ``bench``; with ``train``, a champion."""
    state = out / f"score-state-{landing.name}"
    steps = [*PREPARE_STEPS, *(("train", "promote") if train else ())]
    return prepared_state(
        state, landing, logs, steps, reprepare=reprepare, purpose="scoring",
        command=lambda step: sparkmlops_step(step, state, state, env, "--set",
                                             f"dataset.source.path={landing}"))


# ---------------------------------------------------------------- the platform's steps


def run_step(step: str, *, state: Path, model_store: Path, logfile: Path, env: str,
             experiment: str) -> dict[str, Any]:
    """``sparkmlops <step>`` on the state's batch; its ``step_seconds`` from the MLflow store."""
    code, wall = run_logged(sparkmlops_step(step, state, model_store, env), logfile)
    result: dict[str, Any] = {"exit_code": code, "wall_seconds": wall, "log": str(logfile)}
    try:
        _, run = latest_step_run(model_store, experiment, step)
        result.update({"run_id": run.info.run_id, "status": run.info.status,
                       "run_seconds": run_seconds(run),
                       "step_seconds": run.data.metrics.get("step_seconds"),
                       "outcome": run.data.tags.get("sparkmlops.outcome")})
    except Exception as exc:  # noqa: BLE001 - a failed run still gets a row in the report
        result["error"] = str(exc)
    if code != 0:
        result["error"] = f"exit code {code}: {last_line(logfile)}"
    return result


# ---------------------------------------------------------------- the report


def table_row(size: dict[str, Any]) -> dict[str, Any]:
    """Best of the runs per side, their ratio and rows/s, the predict and monitor steps."""
    row: dict[str, Any] = {"rows": size["rows"]}
    for step in ("predict", "monitor"):
        row[f"{step}_s"] = size.get(step, {}).get("step_seconds")
        row[f"{step}_wall_s"] = size.get(step, {}).get("wall_seconds")
    measured = size.get("measured")
    if measured:
        runs = measured["runs_s"]
        best = {side: min(runs[side]) for side in (*SIDES, "read_write")}
        row.update({f"{side}_s": best[side] for side in best})
        row.update({f"{side}_rows_s": measured["rows"] / best[side] for side in SIDES})
        row["ratio"] = best["pyfunc"] / best["native"]
        row["first_ratio"] = runs["pyfunc"][0] / runs["native"][0]
    return row


def format_table(rows: list[dict[str, Any]]) -> str:
    def num(value: float | None, fmt: str = ".1f") -> str:
        return "-" if value is None else format(value, fmt)

    header = (f"{'rows':>10}{'native s':>10}{'pyfunc s':>10}{'pyfunc/native':>15}"
              f"{'native rows/s':>15}{'pyfunc rows/s':>15}{'read+write s':>14}"
              f"{'predict s':>11}{'monitor s':>11}")
    lines = [header, "-" * len(header)]
    for r in rows:
        ratio = "-" if r.get("ratio") is None else f"{r['ratio']:.2f}x"
        lines.append(
            f"{r['rows']:>10}{num(r.get('native_s')):>10}{num(r.get('pyfunc_s')):>10}"
            f"{ratio:>15}{num(r.get('native_rows_s'), ',.0f'):>15}"
            f"{num(r.get('pyfunc_rows_s'), ',.0f'):>15}{num(r.get('read_write_s')):>14}"
            f"{num(r['predict_s']):>11}{num(r['monitor_s']):>11}")
    return "\n".join(lines)


def size_lines(size: dict[str, Any]) -> list[str]:
    """Every run of one size, the process walls, the load average and anything that failed."""
    m = size.get("measured")
    gold = f"{m['rows']} in the gold batch, model v{m['model_version']}" if m else "model"
    lines = [f"{size['rows']} rows ({gold} trained on {size['model_rows']} rows; load average "
             f"{size['load_average'][0]:.1f} before, {size['load_average'][1]:.1f} after, on "
             f"{os.cpu_count()} cpus):"]
    if m:
        runs = m["runs_s"]
        lines.append("  runs s: " + "; ".join(
            f"{side} {', '.join(f'{s:.1f}' for s in runs[side])}" for side in runs)
            + f" (first pyfunc/native {runs['pyfunc'][0] / runs['native'][0]:.2f}x)")
        lines.append(f"  model load {m['native_load_s']:.1f} s, spark_udf {m['pyfunc_udf_s']:.1f}"
                     f" s, {m['input_partitions']} input partitions, predictions differing: "
                     f"{m['mismatches']}")
    else:
        lines.append(f"  measuring FAILED: see {size['measure_log']}")
    for step in ("predict", "monitor"):
        r = size.get(step)
        if r:
            lines.append(f"  {step}: step {r.get('step_seconds')} s, process {r['wall_seconds']}"
                         f" s" + (f", FAILED: {r['error']}" if r.get("error") else ""))
    return lines


# ---------------------------------------------------------------- main


def score_size(rows: int, *, state: Path, store: Path, model_rows: int,
               args: argparse.Namespace, logs: Path, experiment: str) -> dict[str, Any]:
    """One size: the measuring subprocess, then ``predict`` and ``monitor`` where asked."""
    size: dict[str, Any] = {"rows": rows, "state": str(state), "model_rows": model_rows,
                            "model_store": str(store), "lib_fingerprint": [lib_fingerprint()],
                            "measure_log": str(logs / f"measure-{rows}.log")}
    load_before = os.getloadavg()[0]
    measure_json = logs / f"measure-{rows}.json"
    code, size["measure_wall_s"] = run_logged(
        [sys.executable, str(Path(__file__).resolve()), "--measure", "--env", args.env,
         "--state", str(state), "--model-store", str(store), "--json", str(measure_json),
         "--repeat", str(args.repeat)], Path(size["measure_log"]))
    size["measured"] = (json.loads(measure_json.read_text())
                        if code == 0 and measure_json.exists() else None)
    predict_rows = args.rows if args.predict_rows is None else args.predict_rows
    for step, sizes in (("predict", predict_rows), ("monitor", args.monitor_rows)):
        if rows in sizes:
            size[step] = run_step(step, state=state, model_store=store,
                                  logfile=logs / f"{step}-{rows}.log", env=args.env,
                                  experiment=experiment)
    size["load_average"] = [load_before, os.getloadavg()[0]]
    size["lib_fingerprint"].append(lib_fingerprint())
    return size


def print_report(report: dict[str, Any], path: Path) -> None:
    print()
    print(format_table(report["table"]))
    print()
    print("native: mlflow.spark.load_model(@champion).transform; pyfunc: mlflow.pyfunc.spark_udf")
    print("on the same model and rows. Each: read the gold batch, score, write keys + prediction")
    print("to Delta; fastest of the runs. read+write: the same without a model. predict s /")
    print("monitor s: step_seconds of `sparkmlops predict` / `monitor` (one run each).")
    for size in report["sizes"]:
        print("\n".join(size_lines(size)))
    if len({fp for size in report["sizes"] for fp in size["lib_fingerprint"]}) > 1:
        print("lib/ changed while this ran (lib_fingerprint in the JSON): not like for like")
    print(f"details: {path}")


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser("benchmarks/score_bench.py", __doc__, rows=DEFAULT_ROWS,
                          env_help="conf/<env>.yml (Spark settings)",
                          repeat_help="native and pyfunc runs per size, alternating; the "
                                      "table shows the fastest of each")
    parser.set_defaults(repeat=2)
    parser.add_argument("--train-rows", type=int, default=1_000_000,
                        help="larger sizes are scored with the champion trained on this many")
    parser.add_argument("--predict-rows", type=int, nargs="*",
                        help="sizes to run `sparkmlops predict` on (default: every size)")
    parser.add_argument("--monitor-rows", type=int, nargs="*", default=[1_000_000],
                        help="sizes to run `sparkmlops monitor` on (after predict)")
    parser.add_argument("--reprepare", action="store_true",
                        help="redo the cached states even when prepared (--regenerate implies it)")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--state", help=argparse.SUPPRESS)
    parser.add_argument("--model-store", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    bench_logging("py4j", "alembic", "mlflow")
    if args.measure:
        return measure_main(args)

    from sparkmlops.config import load_settings

    settings = load_settings(args.env, "penguins")
    out: Path = args.out.resolve()
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    logs = out / "logs" / f"score-{stamp}"
    logs.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        **report_header(args, settings),
        "sizes": [], "table": [],
    }
    path = out / f"score-results-{stamp}.json"
    states: dict[int, Path] = {}

    def state_for(rows: int) -> Path:
        if rows not in states:
            landing, _ = landing_data(out, rows, args.seed, files_for(rows), args.regenerate,
                                      logs)
            states[rows] = score_state(out, landing, logs, args.env,
                                       train=rows <= args.train_rows,
                                       reprepare=args.reprepare or args.regenerate)
        return states[rows]

    for rows in args.rows:
        model_rows = min(rows, args.train_rows)
        size = score_size(rows, state=state_for(rows), store=state_for(model_rows),
                          model_rows=model_rows, args=args, logs=logs,
                          experiment=settings.tracking.experiment)
        report["sizes"].append(size)
        report["table"].append(table_row(size))
        path.write_text(json.dumps(report, indent=2) + "\n")  # a killed 10M keeps 1M
    report["finished"] = datetime.now().isoformat(timespec="seconds")
    path.write_text(json.dumps(report, indent=2) + "\n")
    print_report(report, path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
