"""Ingest throughput: ``sparkmlops ingest`` against a plain CSV → Delta write.

For each row count: landing CSVs generated with ``benchmarks.datagen`` (reused when
they exist), with ``--bad-fraction`` of the rows (default 0.1 %) given a body mass
that does not cast to its type, so the quarantine path does real work; then, each in
its own subprocess with the same Spark settings (master and ``spark.*`` conf of
``conf/base.yml`` + ``conf/<env>.yml``, Delta jars via ``configure_delta``):

- platform: ``sparkmlops ingest --env <env> --set state_dir=<fresh dir>
  --set dataset.source.path=<landing> --batch-id bench`` (header checks, quarantine,
  audit columns, manifest, ingest log, MLflow run); seconds are the ``step_seconds``
  metric of its ingest run, plus the subprocess wall time;
- plain: this file with ``--plain``: ``spark.read.schema(<declared types>).csv(landing)``
  with the dataset's reader options (Spark's default PERMISSIVE mode silently
  turns the spoiled values into nulls and keeps the rows), renamed to the Delta column names (Delta
  refuses the raw headers' spaces and parentheses), ``.write.format("delta").save()``;
  seconds are the read+write, plus the subprocess wall time.

The table goes to stdout and to ``benchmarks/out/ingest-results-<timestamp>.json``.
It is a report, never a test: nothing here asserts a timing.

Usage::

    python benchmarks/ingest_bench.py [--rows 1000000 10000000] [--files 4 16]
                                      [--seed 7] [--keep-state] [--regenerate]
    make bench-ingest BENCH_INGEST_ARGS="--rows 1000000"
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

# benchmarks/ is sys.path[0] when this file runs as a script (make bench-ingest)
from run import (
    bench_logging,
    bench_parser,
    child_env,
    landing_data,
    latest_step_run,
    run_logged,
    run_seconds,
    run_sparkmlops,
)

log = logging.getLogger("ingest_bench")

DEFAULT_ROWS = [1_000_000, 10_000_000]


def files_for(rows: int) -> int:
    """Landing files per size: run.py's 4 up to 1M rows, 16 above (about 100 MB each)."""
    return 4 if rows <= 1_000_000 else 16


# ---------------------------------------------------------------- the plain side


def plain_main(args: argparse.Namespace) -> int:
    """Subprocess body of ``--plain``: read the landing CSVs, write one Delta table."""
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql.types import StructType

    from sparkmlops.config import load_settings
    from sparkmlops.ingest.landing import CORRUPT_COLUMN, read_schema
    from sparkmlops.spark import configure_delta

    settings = load_settings(args.env, "penguins")
    columns = settings.dataset.schema_
    schema = StructType([f for f in read_schema(columns).fields if f.name != CORRUPT_COLUMN])
    spark_settings = settings.spark
    seconds: dict[str, float] = {}

    started = time.monotonic()
    builder = SparkSession.builder.appName("plain-ingest").master(
        spark_settings.master or "local[*]")
    for key, value in spark_settings.conf.items():
        builder = builder.config(key, value)
    spark = configure_delta(builder).getOrCreate()
    spark.sparkContext.setLogLevel(spark_settings.log_level)
    seconds["session"] = round(time.monotonic() - started, 3)

    started = time.monotonic()
    raw = spark.read.schema(schema).options(**settings.dataset.source.options) \
        .option("header", True).csv(args.landing)
    raw.select(*[F.col(f"`{c.source_name}`").alias(c.name) for c in columns]) \
        .write.format("delta").mode("overwrite").save(args.delta)
    seconds["read_write"] = round(time.monotonic() - started, 3)

    from delta.tables import DeltaTable

    last = DeltaTable.forPath(spark, args.delta).history(1).first()
    rows = int((last["operationMetrics"] or {}).get("numOutputRows", 0)) if last else None
    Path(args.json).write_text(json.dumps(
        {"seconds": seconds, "rows_written": rows,
         "options": dict(settings.dataset.source.options)}) + "\n")
    spark.stop()
    return 0


def run_plain(landing: Path, delta: Path, logfile: Path, env: str) -> dict[str, Any]:
    if delta.exists():
        shutil.rmtree(delta)
    timings = delta.parent / f"{delta.name}.json"
    code, wall = run_logged(
        [sys.executable, str(Path(__file__).resolve()), "--plain", "--env", env,
         "--landing", str(landing), "--delta", str(delta), "--json", str(timings)],
        logfile,
    )
    result: dict[str, Any] = {"exit_code": code, "wall_seconds": wall, "log": str(logfile)}
    if code == 0 and timings.exists():
        data = json.loads(timings.read_text())
        result.update({"seconds": data["seconds"]["read_write"],
                       "session_seconds": data["seconds"]["session"],
                       "rows_written": data["rows_written"], "options": data["options"]})
        timings.unlink()
    else:
        result["error"] = f"exit code {code}; see {logfile}"
    return result


# ---------------------------------------------------------------- the platform side


def run_platform(landing: Path, state_dir: Path, logfile: Path, env: str,
                 experiment: str) -> dict[str, Any]:
    return run_sparkmlops(
        ["ingest", "--env", env, "--set", f"dataset.source.path={landing}",
         "--batch-id", "bench"],
        state_dir, logfile, lambda: ingest_run(state_dir, experiment))


def ingest_run(state_dir: Path, experiment: str) -> dict[str, Any]:
    """``step_seconds`` and row counts of the (only) ingest run in the state dir's store."""
    _, run = latest_step_run(state_dir, experiment, "ingest")
    metrics = run.data.metrics

    def metric(prefix: str) -> int | None:
        found = [v for k, v in metrics.items() if k.startswith(prefix)]
        return int(found[0]) if found else None

    return {"run_id": run.info.run_id, "status": run.info.status,
            "seconds": metrics.get("step_seconds"), "run_seconds": run_seconds(run),
            "rows_in": metric("rows_in.landing"), "bronze": metric("rows_out.bronze."),
            "quarantined": metric("rows_out.quarantine."), "files_in": metric("files_in"),
            "outcome": run.data.tags.get("sparkmlops.outcome")}


# ---------------------------------------------------------------- the report


def _rate(rows: int, seconds: float | None) -> float | None:
    return round(rows / seconds) if seconds else None


def table_row(rows: int, p: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    ps, bs = p.get("seconds"), b.get("seconds")
    return {
        "rows": rows, "platform_step_s": ps, "plain_read_write_s": bs,
        "ratio": round(ps / bs, 2) if ps is not None and bs else None,
        "platform_rows_per_s": _rate(rows, ps), "plain_rows_per_s": _rate(rows, bs),
        "platform_wall_s": p.get("wall_seconds"), "plain_wall_s": b.get("wall_seconds"),
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    def num(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    header = (f"{'rows':>10}{'platform s':>12}{'plain s':>10}{'ratio':>8}"
              f"{'platform rows/s':>17}{'plain rows/s':>14}{'platform wall':>15}"
              f"{'plain wall':>12}")
    lines = [header, "-" * len(header)]
    for r in rows:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        lines.append(
            f"{r['rows']:>10}{num(r['platform_step_s'], '.1f'):>12}"
            f"{num(r['plain_read_write_s'], '.1f'):>10}{ratio:>8}"
            f"{num(r['platform_rows_per_s'], ',.0f'):>17}{num(r['plain_rows_per_s'], ',.0f'):>14}"
            f"{num(r['platform_wall_s'], '.1f'):>15}{num(r['plain_wall_s'], '.1f'):>12}")
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser("benchmarks/ingest_bench.py", __doc__, rows=DEFAULT_ROWS,
                          env_help="conf/<env>.yml for both sides",
                          keep_state_help="keep the platform state dirs and plain Delta tables")
    parser.add_argument("--files", type=int, nargs="+",
                        help="landing CSV files per size (one value, or one per --rows); "
                             "default 4 up to 1M rows, 16 above")
    parser.add_argument("--bad-fraction", type=float, default=0.001,
                        help="rows with an unparseable value, quarantined by the platform "
                             "(default: 0.001)")
    # internal: the plain side's subprocess
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--landing", help=argparse.SUPPRESS)
    parser.add_argument("--delta", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    bench_logging()
    if args.plain:
        return plain_main(args)
    files = args.files or [files_for(r) for r in args.rows]
    if len(files) == 1:
        files = files * len(args.rows)
    if len(files) != len(args.rows):
        parser.error("--files takes one value or one per --rows")

    from sparkmlops.config import load_settings

    settings = load_settings(args.env, "penguins")
    out: Path = args.out.resolve()
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    logs = out / "logs" / f"ingest-{stamp}"
    logs.mkdir(parents=True, exist_ok=True)
    os.environ.update({k: v for k, v in child_env().items() if k not in os.environ})

    report: dict[str, Any] = {
        "started": datetime.now().isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(),
                 "platform": platform.platform()},
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                 if k not in ("plain", "landing", "delta", "json")},
        "spark": {"master": settings.spark.master, "conf": settings.spark.conf},
        "sizes": [],
    }
    results = out / f"ingest-results-{stamp}.json"
    table: list[dict[str, Any]] = []
    for rows, n_files in zip(args.rows, files, strict=True):
        landing, gen_seconds = landing_data(out, rows, args.seed, n_files, args.regenerate, logs,
                                            bad_fraction=args.bad_fraction)
        load_before = os.getloadavg()
        state_dir = out / f"ingest-state-{rows}-{stamp}"
        delta = out / f"ingest-plain-{rows}-{stamp}"
        p = run_platform(landing, state_dir, logs / f"platform-{rows}.log", args.env,
                         settings.tracking.experiment)
        log.info("platform %d rows: %s s step, %.1f s wall %s", rows, p.get("seconds"),
                 p["wall_seconds"], p.get("error", ""))
        b = run_plain(landing, delta, logs / f"plain-{rows}.log", args.env)
        log.info("plain %d rows: %s s read+write, %.1f s wall %s", rows, b.get("seconds"),
                 b["wall_seconds"], b.get("error", ""))
        if not args.keep_state:
            shutil.rmtree(state_dir, ignore_errors=True)
            shutil.rmtree(delta, ignore_errors=True)
        row = table_row(rows, p, b)
        table.append(row)
        report["sizes"].append({
            "rows": rows, "files": n_files, "landing": str(landing),
            "datagen_seconds": gen_seconds, "load_average_before": load_before,
            "load_average_after": os.getloadavg(), "platform": p, "plain": b, "table": row,
        })
        report["table"] = table
        results.write_text(json.dumps(report, indent=2) + "\n")  # partial results survive

    report["finished"] = datetime.now().isoformat(timespec="seconds")
    results.write_text(json.dumps(report, indent=2) + "\n")

    print()
    print(format_table(table))
    print()
    print("platform s: step_seconds of the MLflow ingest run (header checks, read, persist,")
    print("count, quarantine + bronze commits, manifest, ingest log); plain s: CSV read +")
    print("rename + one Delta write. Wall: each subprocess (interpreter, imports, Spark session).")
    for size in report["sizes"]:
        p, b = size["platform"], size["plain"]
        failed = [f"{side} ({size[side].get('error')})" for side in ("platform", "plain")
                  if size[side].get("error")]
        loads = ", ".join(f"{a:.1f}" for a in size["load_average_before"][:1]
                          + size["load_average_after"][:1])
        print(f"{size['rows']} rows ({size['files']} files): rows_in {p.get('rows_in')}, "
              f"bronze {p.get('bronze')}, quarantined {p.get('quarantined')}; plain wrote "
              f"{b.get('rows_written')}; load average before/after {loads} on "
              f"{os.cpu_count()} cpus" + (f"; FAILED: {'; '.join(failed)}" if failed else ""))
    print(f"details: {results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
