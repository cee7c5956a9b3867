"""What append mode's repeated-keys check costs ``validate``: a second batch, with and without it.

For each row count: the landing CSVs of ``run.py`` (4 files, from ``benchmarks.datagen``),
split into two batches in a fresh state dir: files 1-2 are ingested and validated as
``b1`` (so silver holds half the rows), files 3-4 are ingested as ``b2``. Then
``sparkmlops validate --batch-id b2`` runs ``--repeat`` times with each setting,
alternating (re-validating a batch replaces it):

- ``allow``, the baseline: silver is not looked at;
- ``quarantine``, the default: silver's rows with a key of the batch are found in one
  pass and cached, the keys repeated within the batch in one aggregation of its key
  columns, and the two writes flag the batch's repeated keys.

The batches share no key and repeat none inside, the usual case. The seconds are the
validate run's (``end_time - start_time`` in MLflow); the table prints the medians and
the ratio.
The JSON goes to ``benchmarks/out/repeated-keys-results-<timestamp>.json``; nothing
here asserts a timing.

Usage::

    python benchmarks/repeated_keys_bench.py [--rows 200000 1000000] [--repeat 2]
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import statistics
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

# benchmarks/ is sys.path[0] when this file runs as a script
from run import (
    bench_logging,
    bench_parser,
    landing_data,
    latest_step_run,
    run_logged,
    run_seconds,
    sparkmlops_command,
)

log = logging.getLogger("repeated_keys_bench")

DEFAULT_ROWS = [200_000, 1_000_000]
SETTINGS = ("allow", "quarantine")


def step(args: list[str], state: Path, landing: Path, logfile: Path, env: str) -> None:
    """One ``sparkmlops`` step on ``state``; a failure stops the benchmark with its log."""
    code, _ = run_logged([*sparkmlops_command(), *args, "--env", env,
                          "--set", f"state_dir={state}",
                          "--set", f"dataset.source.path={landing}"], logfile)
    if code != 0:
        raise SystemExit(f"{' '.join(args)} failed (exit {code}); see {logfile}")


def prepare(source: Path, state: Path, logs: Path, env: str) -> Path:
    """b1 (files 1-2) ingested and validated, b2 (files 3-4) ingested; the landing dir."""
    if state.exists():
        shutil.rmtree(state)
    landing = state / "landing"
    landing.mkdir(parents=True)
    files = sorted(p for p in source.iterdir() if p.suffix == ".csv")
    half = len(files) // 2
    for batch, part in (("b1", files[:half]), ("b2", files[half:])):
        for file in part:
            os.link(file, landing / file.name)
        step(["ingest", "--batch-id", batch], state, landing, logs / f"ingest-{batch}.log", env)
        if batch == "b1":
            step(["validate", "--batch-id", batch], state, landing, logs / "validate-b1.log", env)
    return landing


def measure(rows: int, args: Any, logs: Path) -> dict[str, Any]:
    source, _ = landing_data(args.out, rows, args.seed, 4, args.regenerate, logs)
    state = args.out / f"repeated-keys-state-{rows}"
    landing = prepare(source, state, logs, args.env)
    seconds: dict[str, list[float]] = {name: [] for name in SETTINGS}
    for attempt in range(args.repeat):
        for name in SETTINGS:
            step(["validate", "--batch-id", "b2", "--set", f"dataset.write.repeated_keys={name}"],
                 state, landing, logs / f"validate-b2-{name}-{attempt}.log", args.env)
            _, run = latest_step_run(state, "sparkmlops-penguins", "validate")
            took = run_seconds(run)
            if took is None:
                raise SystemExit(f"the validate run of {name} has no end time")
            seconds[name].append(took)
            log.info("%s rows, %s: %.1f s", rows, name, took)
    if not args.keep_state:
        shutil.rmtree(state)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    return {"rows": rows, "seconds": seconds, "median": medians,
            "ratio": round(medians["quarantine"] / medians["allow"], 3),
            "load_after": os.getloadavg()[0]}


def format_table(results: list[dict[str, Any]]) -> str:
    lines = ["| rows | allow s (baseline) | quarantine s | ratio |", "|---:|---:|---:|---:|"]
    lines += [f"| {r['rows']:,} | {r['median']['allow']:.1f} | {r['median']['quarantine']:.1f} "
              f"| {r['ratio']:.2f} |" for r in results]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser("benchmarks/repeated_keys_bench.py", __doc__, rows=DEFAULT_ROWS,
                          env_help="conf/<env>.yml of every step",
                          keep_state_help="keep each size's state dir",
                          repeat_help="validate runs per setting (medians)")
    args = parser.parse_args(argv)
    bench_logging("py4j")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    load_before = os.getloadavg()[0]
    logs = args.out / f"repeated-keys-logs-{stamp}"
    results = [measure(rows, args, logs) for rows in args.rows]
    out = args.out / f"repeated-keys-results-{stamp}.json"
    out.write_text(json.dumps({"results": results, "load_before": load_before}, indent=2) + "\n")
    print(format_table(results))
    print(f"ratio = quarantine / allow (median of {args.repeat}); details: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
