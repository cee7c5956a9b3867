"""``make bench``: the platform pipeline against a bare PySpark script, per step.

For each row count: synthetic penguins in the raw landing format
(``benchmarks.datagen``), then

- platform: ``sparkmlops pipeline --env local`` in a subprocess on a fresh state dir;
  per-step seconds are the ``step_seconds`` metric of the nested MLflow runs under
  the pipeline's parent run;
- bare: ``benchmarks/bare_pipeline.py`` in a subprocess with the same Spark settings
  (master, conf, Delta jars), timing its own steps.

Both sides pay interpreter start, imports and Spark session start; "total" is the
wall time of each subprocess. The table goes to stdout and, with every detail, to
``benchmarks/out/results-<timestamp>.json``. It is a report, never a test: nothing
here asserts a timing.

Usage::

    python benchmarks/run.py [--rows 100000 1000000] [--seed 7] [--files 4]
                             [--repeat 1] [--keep-state] [--regenerate]
    make bench BENCH_ARGS="--rows 100000"
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "benchmarks"
DEFAULT_OUT = BENCH_DIR / "out"
BIN = Path(sys.executable).parent
PLATFORM_STEPS = ["ingest", "validate", "features", "train", "promote", "predict"]
BARE_STEPS = ["ingest", "train", "predict"]  # bare has no validate/features/promote

log = logging.getLogger("bench")


# ---------------------------------------------------------------- subprocesses


def child_env() -> dict[str, str]:
    """The environment of ``make``: jars folder, venv Python for the workers, no MLflow URI."""
    env = dict(os.environ)
    env.setdefault("SPARKMLOPS_JARS_DIR", str(ROOT / ".jars"))
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    env.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    # the platform side must use its fresh state dir and SQLite store, nothing else
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("SPARKMLOPS_STATE_DIR", None)
    return env


def run_logged(cmd: list[str], logfile: Path) -> tuple[int, float]:
    """Run ``cmd`` with stdout+stderr into ``logfile``; (exit code, wall seconds)."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    log.info("$ %s  (log: %s)", " ".join(cmd), logfile)
    started = time.monotonic()
    with logfile.open("w") as out:
        code = subprocess.run(cmd, cwd=ROOT, env=child_env(), stdout=out,
                              stderr=subprocess.STDOUT, check=False).returncode
    return code, round(time.monotonic() - started, 3)


def sparkmlops_command() -> list[str]:
    script = BIN / "sparkmlops"
    return [str(script)] if script.exists() else [sys.executable, "-m", "sparkmlops.cli"]


# ---------------------------------------------------------------- data


def landing_data(out: Path, rows: int, seed: int, files: int, regenerate: bool,
                 logs: Path, bad_fraction: float = 0.0) -> tuple[Path, float | None]:
    """The landing folder for this size (reused when generated with the same args)."""
    spoiled = f"-bad{bad_fraction:g}" if bad_fraction else ""
    landing = out / f"landing-{rows}-seed{seed}-files{files}{spoiled}"
    manifest = out / f"{landing.name}.json"
    wanted: dict[str, Any] = {"rows": rows, "seed": seed, "files": files}
    if bad_fraction:
        wanted["bad_fraction"] = bad_fraction
    if not regenerate and manifest.exists() and (landing / "_SUCCESS").exists():
        if json.loads(manifest.read_text()).get("args") == wanted:
            log.info("reusing %s", landing)
            return landing, None
    code, seconds = run_logged(
        [sys.executable, str(Path(__file__).with_name("datagen.py")), "--rows", str(rows),
         "--out", str(landing), "--seed", str(seed), "--files", str(files),
         "--bad-fraction", str(bad_fraction)],
        logs / f"datagen-{rows}.log",
    )
    if code != 0:
        raise SystemExit(f"datagen failed (exit {code}); see {logs / f'datagen-{rows}.log'}")
    manifest.write_text(json.dumps({"args": wanted, "seconds": seconds}) + "\n")
    return landing, seconds


# ---------------------------------------------------------------- the two sides


def run_sparkmlops(args: list[str], state_dir: Path, logfile: Path,
                   read_runs: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``sparkmlops <args>`` on a fresh ``state_dir``, then ``read_runs()`` of its MLflow store.

    A failed run still gets a row in the report, with its error.
    """
    if state_dir.exists():
        shutil.rmtree(state_dir)
    code, wall = run_logged(
        [*sparkmlops_command(), *args, "--set", f"state_dir={state_dir}"], logfile)
    result: dict[str, Any] = {"exit_code": code, "wall_seconds": wall, "log": str(logfile),
                              "state_dir": str(state_dir)}
    try:
        result.update(read_runs())
    except Exception as exc:  # noqa: BLE001 - a failed run still gets a row in the report
        log.warning("could not read the MLflow runs of %s: %s", state_dir, exc)
        result["error"] = str(exc)
    if code != 0:
        result.setdefault("error", f"exit code {code}; see {logfile}")
    return result


def run_platform(landing: Path, state_dir: Path, logfile: Path,
                 experiment: str) -> dict[str, Any]:
    return run_sparkmlops(
        ["pipeline", "--env", "local", "--set", f"dataset.source.path={landing}"],
        state_dir, logfile, lambda: platform_step_seconds(state_dir, experiment))


def latest_step_run(state_dir: Path, experiment: str, step: str) -> tuple[Any, Any]:
    """(client, run): the latest MLflow run of ``step`` in the state dir's SQLite store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{state_dir}/mlflow.db")
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise RuntimeError(f"no experiment {experiment!r} in {state_dir}/mlflow.db")
    runs = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.`sparkmlops.step` = '{step}'",
        order_by=["attributes.start_time DESC"], max_results=1,
    )
    if not runs:
        raise RuntimeError(f"no {step} run in the store")
    return client, runs[0]


def run_seconds(run: Any) -> float | None:
    """Wall seconds of a finished MLflow run (None while it has no end time)."""
    if run.info.end_time and run.info.start_time:
        return round((run.info.end_time - run.info.start_time) / 1000, 3)
    return None


def platform_step_seconds(state_dir: Path, experiment: str) -> dict[str, Any]:
    """``step_seconds`` of each nested step run of the (only) pipeline run in the store."""
    client, parent = latest_step_run(state_dir, experiment, "pipeline")
    children = client.search_runs(
        [parent.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
    )
    steps: dict[str, float] = {}
    extra: dict[str, Any] = {}
    for run in children:
        name = run.data.tags.get("sparkmlops.step", run.info.run_name)
        if "step_seconds" in run.data.metrics:
            steps[name] = float(run.data.metrics["step_seconds"])
        if name == "train":
            extra = {k: run.data.metrics[k] for k in
                     ("fit_seconds", "tracking_seconds", "areaUnderROC", "accuracy",
                      "rows_train", "rows_test") if k in run.data.metrics}
        if name == "ingest":
            extra["rows_in_landing"] = run.data.metrics.get("rows_in.landing")
    return {"parent_run_id": parent.info.run_id, "status": parent.info.status,
            "parent_run_seconds": run_seconds(parent), "steps": steps, "train": extra}


def run_bare(landing: Path, out_dir: Path, logfile: Path, spark_master: str,
             spark_conf: dict[str, str], log_level: str) -> dict[str, Any]:
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    timings = out_dir / "timings.json"
    cmd = [sys.executable, str(BENCH_DIR / "bare_pipeline.py"), "--landing", str(landing),
           "--out", str(out_dir), "--master", spark_master, "--log-level", log_level,
           "--json", str(timings)]
    for key, value in spark_conf.items():
        cmd += ["--conf", f"{key}={value}"]
    code, wall = run_logged(cmd, logfile)
    result: dict[str, Any] = {"exit_code": code, "wall_seconds": wall, "log": str(logfile),
                              "out_dir": str(out_dir)}
    if code == 0 and timings.exists():
        data = json.loads(timings.read_text())
        seconds = data["seconds"]
        result.update({"steps": {s: seconds[s] for s in BARE_STEPS if s in seconds},
                       "session_seconds": seconds.get("session"),
                       "fit_seconds": seconds.get("train.fit"),
                       "metrics": data.get("metrics"), "rows": data.get("rows")})
    else:
        result["error"] = f"exit code {code}; see {logfile}"
    return result


# ---------------------------------------------------------------- the report


def median_of(runs: list[dict[str, Any]], *path: str) -> float | None:
    values = []
    for run in runs:
        node: Any = run
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, int | float):
            values.append(float(node))
    return round(statistics.median(values), 3) if values else None


def table_rows(rows: int, platform_runs: list[dict[str, Any]],
               bare_runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The report rows of one size: medians over the runs, platform vs bare."""
    def row(step: str, platform: float | None, bare: float | None) -> dict[str, Any]:
        return {"rows": rows, "step": step, "platform": platform, "bare": bare,
                "ratio": _ratio(platform, bare)}

    out = []
    for step in PLATFORM_STEPS:
        bare = median_of(bare_runs, "steps", step) if step in BARE_STEPS else None
        out.append(row(step, median_of(platform_runs, "steps", step), bare))
        if step == "train":
            out.append(row("  of which fit", median_of(platform_runs, "train", "fit_seconds"),
                           median_of(bare_runs, "fit_seconds")))
            out.append(row("  of which model logging",
                           median_of(platform_runs, "train", "tracking_seconds"), None))
    p_sum = _median([sum(r["steps"].values()) for r in platform_runs if r.get("steps")])
    b_sum = _median([sum(r["steps"].values()) for r in bare_runs if r.get("steps")])
    p_parent = median_of(platform_runs, "parent_run_seconds")
    p_wall = median_of(platform_runs, "wall_seconds")
    b_wall = median_of(bare_runs, "wall_seconds")
    out.append(row("steps total", p_sum, b_sum))
    out.append(row("between steps (runs)", _minus(p_parent, p_sum), None))
    out.append(row("start, session, exit", _minus(p_wall, p_parent), _minus(b_wall, b_sum)))
    out.append(row("TOTAL (process wall)", p_wall, b_wall))
    return out


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def _minus(a: float | None, b: float | None) -> float | None:
    return round(a - b, 3) if a is not None and b is not None else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def format_table(rows: list[dict[str, Any]]) -> str:
    def cell(value: float | None, digits: int = 1) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    header = f"{'rows':>9}  {'step':<25}{'platform s':>11}{'bare s':>9}{'ratio':>8}"
    lines = [header, "-" * len(header)]
    previous = None
    for row in rows:
        if previous is not None and row["rows"] != previous:
            lines.append("")
        previous = row["rows"]
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}x"
        lines.append(f"{row['rows']:>9}  {row['step']:<25}{cell(row['platform']):>11}"
                     f"{cell(row['bare']):>9}{ratio:>8}")
    return "\n".join(lines)


# ---------------------------------------------------------------- shared by the benchmarks


def bench_parser(prog: str, doc: str | None, *, rows: list[int], env_help: str,
                 keep_state_help: str | None = None,
                 repeat_help: str | None = None) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes."""
    parser = argparse.ArgumentParser(prog=prog, description=(doc or "").split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=rows)
    parser.add_argument("--seed", type=int, default=7)
    if repeat_help is not None:
        parser.add_argument("--repeat", type=int, default=1, help=repeat_help)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--env", default="local", help=env_help)
    if keep_state_help is not None:
        parser.add_argument("--keep-state", action="store_true", help=keep_state_help)
    parser.add_argument("--regenerate", action="store_true",
                        help="regenerate landing data even when it exists")
    return parser


def bench_logging(*quiet: str) -> None:
    """INFO with timestamps to stderr; the ``quiet`` loggers at WARNING."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser("benchmarks/run.py", __doc__, rows=[100_000, 1_000_000],
                          env_help="conf/<env>.yml for both sides",
                          keep_state_help="keep the platform state dirs and bare Delta tables",
                          repeat_help="runs per side and size; the table shows medians")
    parser.add_argument("--files", type=int, default=4, help="landing CSV files per size")
    args = parser.parse_args(argv)
    bench_logging()

    from sparkmlops.config import load_settings

    settings = load_settings(args.env, "penguins")
    spark = settings.spark
    out: Path = args.out.resolve()
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    logs = out / "logs" / stamp
    logs.mkdir(parents=True, exist_ok=True)

    report: dict[str, Any] = {
        "started": datetime.now().isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(),
                 "platform": platform.platform()},
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "spark": {"master": spark.master, "conf": spark.conf},
        "sizes": [],
    }
    table: list[dict[str, Any]] = []
    for rows in args.rows:
        landing, gen_seconds = landing_data(out, rows, args.seed, args.files,
                                            args.regenerate, logs)
        platform_runs, bare_runs = [], []
        load_before = os.getloadavg()
        for i in range(args.repeat):
            tag = f"{rows}-{stamp}-{i}"
            state_dir = out / f"state-{tag}"
            p = run_platform(landing, state_dir, logs / f"platform-{rows}-{i}.log",
                             settings.tracking.experiment)
            log.info("platform %d rows: %.1f s wall %s", rows, p["wall_seconds"],
                     p.get("error", ""))
            b = run_bare(landing, out / f"bare-{tag}", logs / f"bare-{rows}-{i}.log",
                         spark.master or "local[*]", spark.conf, spark.log_level)
            log.info("bare %d rows: %.1f s wall %s", rows, b["wall_seconds"], b.get("error", ""))
            platform_runs.append(p)
            bare_runs.append(b)
            if not args.keep_state:
                shutil.rmtree(state_dir, ignore_errors=True)
                shutil.rmtree(out / f"bare-{tag}", ignore_errors=True)
        rows_table = table_rows(rows, platform_runs, bare_runs)
        table += rows_table
        report["sizes"].append({
            "rows": rows, "landing": str(landing), "datagen_seconds": gen_seconds,
            "load_average_before": load_before, "load_average_after": os.getloadavg(),
            "platform": platform_runs, "bare": bare_runs, "table": rows_table,
        })

    report["table"] = table
    report["finished"] = datetime.now().isoformat(timespec="seconds")
    results = out / f"results-{stamp}.json"
    results.write_text(json.dumps(report, indent=2) + "\n")

    print()
    print(format_table(table))
    print()
    print("platform: step_seconds of the nested MLflow runs; bare: benchmarks/bare_pipeline.py")
    print("(no validate, no features table: derived inline in train, no promote).")
    print("'between steps': parent MLflow run time outside the step timers (run set-up,")
    print("tags, config and lineage artifacts). 'start, session, exit': process wall")
    print("outside that: interpreter, imports, Spark session, batch id, summary, shutdown.")
    for size in report["sizes"]:
        failed = [f"{side} ({r.get('error')})" for side in ("platform", "bare")
                  for r in size[side] if r.get("error")]
        loads = ", ".join(f"{a:.1f}" for a in size["load_average_before"][:1]
                          + size["load_average_after"][:1])
        print(f"{size['rows']} rows: load average before/after {loads} on {os.cpu_count()} "
              f"cpus" + (f"; FAILED: {'; '.join(failed)}" if failed else ""))
    print(f"details: {results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
