"""Validation cost in passes: the dataset's GX suite against one full pass over the same data.

For each row count: landing CSVs from ``benchmarks.datagen`` (shared with
``ingest_bench.py``), ingested once into a cached bronze table
(``benchmarks/out/validate-bronze-<landing>``), then, in one subprocess with the
platform's Spark settings (``--measure``):

- full pass: one aggregate over the bronze batch touching every column the suite
  reads (count, min and max of each; not ``count()``, which Delta answers from its
  log), timed before and after the validation; the baseline is their mean;
- validation: what ``sparkmlops validate`` does before it writes: count the batch
  and run the GX suite (``conf/datasets/penguins.yml``: 11 expectations, aggregate
  and row-level) on the Delta version, Data Docs included. GX's one-off setup in a
  process (its first suite) is timed apart, on 1000 rows;
- split pass: flag each row's failed row-level expectations and count both sides,
  timed for information: in ``validate`` the flags are computed inside the silver
  and quarantine writes.

Each phase also reports the Spark jobs it ran. The table goes to stdout and to
``benchmarks/out/validate-results-<timestamp>.json``; nothing here asserts a timing.

Usage::

    python benchmarks/validate_bench.py [--rows 1000000 10000000] [--repeat 1]
    make bench-validate BENCH_VALIDATE_ARGS="--rows 1000000"
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import time
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

# benchmarks/ is sys.path[0] when this file runs as a script (make bench-validate)
from ingest_bench import files_for
from run import (
    bench_logging,
    bench_parser,
    landing_data,
    run_logged,
    sparkmlops_command,
)

log = logging.getLogger("validate_bench")

DEFAULT_ROWS = [1_000_000, 10_000_000]


# ---------------------------------------------------------------- inside the measuring process


def measure_main(args: argparse.Namespace) -> int:
    """Subprocess body of ``--measure``: full passes and the validation, one session."""
    import pyspark.sql.functions as F

    from sparkmlops.config import load_settings
    from sparkmlops.spark import get_spark
    from sparkmlops.tables import current_version, dataset_tables, read_batch
    from sparkmlops.validate import expectations

    settings = load_settings(args.env, "penguins", overrides=[
        f"state_dir={args.state}", f"validate.data_docs_dir={args.state}/data_docs_bench"])
    spark = get_spark(settings.spark)
    sc = spark.sparkContext
    bronze = dataset_tables(settings).bronze
    version = current_version(spark, bronze)
    specs = settings.dataset.validate_.expectations
    columns = sorted({c for spec in specs for c in spec.columns})

    def timed(name: str, fn: Any) -> tuple[Any, float, int]:
        sc.setJobGroup(name, name)
        started = time.monotonic()
        out = fn()
        seconds = time.monotonic() - started
        jobs = len(sc.statusTracker().getJobIdsForGroup(name))
        log.info("%s: %.2f s, %d Spark jobs", name, seconds, jobs)
        return out, seconds, jobs

    def batch() -> Any:
        return read_batch(spark, bronze, "bench", version)

    def full_pass() -> Any:
        aggregates = [F.count(F.lit(1)).alias("rows")]
        for c in columns:
            aggregates += [F.min(c), F.max(c)]
        return batch().agg(*aggregates).first()

    def suite(frame: Any) -> Any:
        return expectations.run_suite(
            frame, specs, suite_name="penguins_bronze", asset_name="bronze_penguins",
            data_docs_dir=settings.resolve_path(settings.validate_.data_docs_dir),
            partial_unexpected_count=settings.dataset.validate_.partial_unexpected_count)

    spark.range(1000).selectExpr("sum(id)").collect()  # JIT and session warm-up
    timed("warm_up", full_pass)
    # GX's first suite in a process sets itself up (registries, models): a constant
    # per job, not a pass over the data, so it is timed apart on 1000 rows
    _, gx_setup, _ = timed("gx_first_suite_1000_rows", partial(suite, batch().limit(1000)))
    results: dict[str, Any] = {"columns": columns, "expectations": len(specs),
                               "gx_first_suite_1000_rows_s": round(gx_setup, 3), "runs": []}

    def validation(i: int) -> dict[str, Any]:
        phases: dict[str, Any] = {}
        rows, phases["count_s"], phases["count_jobs"] = timed(f"count_{i}", batch().count)
        (outcomes, _, _), phases["gx_suite_s"], phases["gx_suite_jobs"] = timed(
            f"gx_suite_{i}", partial(suite, batch()))
        phases["rows"] = rows
        phases["failed_expectations"] = sum(1 for o in outcomes if not o.success)
        return phases

    def split(i: int) -> Any:
        # what the two writes add: each row's failed row-level expectations
        flagged = expectations.flag_rows(batch(), specs)
        return flagged.groupBy(F.size(expectations.FAILED_COLUMN) == 0).count().collect()

    for i in range(args.repeat):
        _, before, before_jobs = timed(f"full_pass_before_{i}", full_pass)
        phases, seconds, _ = timed(f"validation_{i}", partial(validation, i))
        jobs = phases["count_jobs"] + phases["gx_suite_jobs"]
        _, after, after_jobs = timed(f"full_pass_after_{i}", full_pass)
        counts, split_s, _ = timed(f"split_{i}", partial(split, i))
        baseline = (before + after) / 2
        results["runs"].append({
            "full_pass_before_s": round(before, 3), "full_pass_after_s": round(after, 3),
            "full_pass_jobs": before_jobs, "validation_s": round(seconds, 3),
            "validation_jobs": jobs, "passes": round(seconds / baseline, 2),
            "split_s": round(split_s, 3), "split": {str(r[0]): r[1] for r in counts},
            **{k: round(v, 3) if isinstance(v, float) else v for k, v in phases.items()},
        })
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    spark.stop()
    return 0


# ---------------------------------------------------------------- driver


def bronze_state(out: Path, landing: Path, logs: Path, env: str) -> Path:
    """A state dir whose bronze holds ``landing`` as batch ``bench`` (ingested once)."""
    state = out / f"validate-bronze-{landing.name}"
    if (state / "lake" / "ingest_log" / "penguins" / "_delta_log").is_dir():
        log.info("reusing bronze in %s", state)
        return state
    if state.exists():
        shutil.rmtree(state)
    code, _ = run_logged(
        [*sparkmlops_command(), "ingest", "--env", env, "--set", f"state_dir={state}",
         "--set", f"dataset.source.path={landing}", "--batch-id", "bench"],
        logs / f"ingest-{landing.name}.log")
    if code != 0:
        raise SystemExit(f"ingest for the validation benchmark failed (exit {code})")
    return state


def format_table(rows: list[dict[str, Any]]) -> str:
    header = (f"{'rows':>10}{'full pass s':>13}{'validation s':>14}{'passes':>8}"
              f"{'count':>7}{'GX suite':>10}{'GX jobs':>9}{'split pass s':>14}")
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['rows']:>10}{r['full_pass_s']:>13.2f}{r['validation_s']:>14.2f}"
            f"{r['passes']:>7.2f}x{r['count_s']:>7.2f}{r['gx_suite_s']:>10.2f}"
            f"{r['gx_suite_jobs']:>9}{r['split_s']:>14.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser("benchmarks/validate_bench.py", __doc__, rows=DEFAULT_ROWS,
                          env_help="conf/<env>.yml (Spark settings)",
                          repeat_help="validations per size; the table shows the fastest")
    parser.add_argument("--bad-fraction", type=float, default=0.001)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--state", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    bench_logging("py4j", "great_expectations", "alembic", "mlflow")
    if args.measure:
        return measure_main(args)

    out: Path = args.out
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    logs = out / "logs" / f"validate-{stamp}"
    logs.mkdir(parents=True, exist_ok=True)
    table = []
    details: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version,
                                           "platform": platform.platform()}, "sizes": {}}
    for rows in args.rows:
        landing, _ = landing_data(out, rows, args.seed, files_for(rows), args.regenerate, logs,
                                  bad_fraction=args.bad_fraction)
        state = bronze_state(out, landing, logs, args.env)
        result_json = logs / f"measure-{rows}.json"
        code, wall = run_logged(
            [sys.executable, str(Path(__file__).resolve()), "--measure", "--env", args.env,
             "--state", str(state), "--json", str(result_json), "--repeat", str(args.repeat)],
            logs / f"measure-{rows}.log")
        if code != 0 or not result_json.exists():
            log.error("measuring %d rows failed (exit %d); see %s", rows, code,
                      logs / f"measure-{rows}.log")
            continue
        measured = json.loads(result_json.read_text())
        runs = measured["runs"]
        best = min(runs, key=lambda r: r["validation_s"])
        full = statistics.mean(
            [r["full_pass_before_s"] for r in runs] + [r["full_pass_after_s"] for r in runs])
        table.append({**best, "rows": rows, "bronze_rows": best["rows"], "full_pass_s": full,
                      "passes": best["validation_s"] / full})
        details["sizes"][str(rows)] = {**measured, "wall_s": wall, "landing": str(landing)}
    print()
    print(format_table(table))
    print()
    print("full pass: one aggregate (count, min and max of every column the suite reads) over "
          "the bronze batch,\nmean of the passes before and after the validation. validation: "
          "what `validate` does before\nit writes: count the batch, run the GX suite on the "
          "Delta version (Data Docs included).\nsplit pass: flag each row's failed row-level "
          "expectations and count both sides; in `validate`\nthis happens inside the silver "
          "and quarantine writes, so it adds no pass of its own.")
    target = out / f"validate-results-{stamp}.json"
    target.write_text(json.dumps({"table": table, **details}, indent=2, default=str) + "\n")
    print(f"details: {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
