"""Training time per estimator family, and the share of the train step spent in MLflow.

For each row count: the clean landing CSVs of ``run.py`` (``benchmarks.datagen``,
reused when cached) go through ``sparkmlops ingest``, ``validate`` and ``features``
once into a cached state dir (``benchmarks/out/train-gold-<landing>/``). Then, per
estimator family, one ``sparkmlops train --env <env> --batch-id bench`` subprocess
reads that gold table (``--set storage.root=<cached lake>``, the family's
``--set dataset.model.estimator.type=`` and ``params=``) with its own fresh
state dir, so every family trains against the same data and a store holding no
earlier runs or model versions. The store is a copy of an empty, already created
MLflow SQLite database: a train job normally finds its store in place, and creating
one (about 1.5 s) is not what a train run costs.

Everything is read back from the train run in the MLflow store:

- ``fit_seconds``: the MLlib ``Pipeline.fit``;
- ``tracking_seconds``: the seconds the step itself counts as spent in MLflow calls
  (which calls is up to ``train_step`` in ``lib/sparkmlops/steps.py``: on 24792b7
  only ``log_model`` and the registry version, alias and tags);
- the run's wall time (``end_time - start_time``): the whole train step;
- ``areaUnderROC`` on the holdout, so the seconds buy a known model;

plus the wall time of the subprocess (interpreter, imports, Spark session). The
table goes to stdout and, with every detail, to
``benchmarks/out/train-results-<timestamp>.json``. It is a report, never a test:
nothing here asserts a timing.

Usage::

    python benchmarks/train_bench.py [--rows 100000 1000000]
                                     [--families logistic_regression gbt_classifier]
                                     [--repeat 1] [--keep-state] [--reprepare]
    make bench-train BENCH_TRAIN_ARGS="--rows 100000"
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

# benchmarks/ is sys.path[0] when this file runs as a script (make bench-train)
from ingest_bench import files_for
from run import (
    ROOT,
    bench_logging,
    bench_parser,
    landing_data,
    latest_step_run,
    median_of,
    run_logged,
    run_seconds,
    sparkmlops_command,
)

log = logging.getLogger("train_bench")

DEFAULT_ROWS = [100_000, 1_000_000]
# The binary classifiers of sparkmlops.train.estimators.ESTIMATORS, each with params of a
# model one would ship on ~10 features: the dataset's logistic regression, trees of
# moderate depth, ensembles of the size MLlib's docs and tutorials use.
FAMILY_PARAMS: dict[str, dict[str, Any]] = {
    "logistic_regression": {"maxIter": 100, "regParam": 0.01, "elasticNetParam": 0.0},
    "decision_tree_classifier": {"maxDepth": 8, "maxBins": 32},
    "random_forest_classifier": {"numTrees": 50, "maxDepth": 8, "maxBins": 32},
    "gbt_classifier": {"maxIter": 30, "maxDepth": 5, "stepSize": 0.1},
}
PREPARE_STEPS = ("ingest", "validate", "features")
TRAIN_METRICS = ("fit_seconds", "tracking_seconds", "step_seconds", "areaUnderROC",
                 "accuracy", "rows_train", "rows_test")


# ---------------------------------------------------------------- set-up, once per size


def report_header(args: Any, settings: Any) -> dict[str, Any]:
    """When, where (machine, code) and with what (arguments, Spark) a benchmark ran."""
    return {
        "started": datetime.now().isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(),
                 "platform": platform.platform()},
        "git": git_state(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "spark": {"master": settings.spark.master, "conf": settings.spark.conf},
    }


def prepared_state(state: Path, landing: Path, logs: Path, steps: list[str], *,
                   command: Any, reprepare: bool, purpose: str) -> Path:
    """``state`` after running ``steps`` on ``landing`` once; reused while its steps match.

    ``command(step)`` gives a step's command line. ``prepared.json`` is written only
    after every step succeeded, so a killed preparation is redone rather than reused.
    """
    marker = state / "prepared.json"
    if marker.exists() and not reprepare:
        prepared = json.loads(marker.read_text())
        if prepared.get("steps", list(PREPARE_STEPS)) == steps:
            log.info("reusing %s (prepared %s)", state, prepared.get("prepared"))
            return state
    if state.exists():
        shutil.rmtree(state)
    seconds: dict[str, float] = {}
    for step in steps:
        logfile = logs / f"prepare-{landing.name}-{step}.log"
        code, seconds[step] = run_logged(command(step), logfile)
        if code != 0:
            raise SystemExit(f"{step} for the {purpose} benchmark failed (exit {code}): "
                             f"{last_line(logfile)}")
    marker.write_text(json.dumps({"landing": str(landing), "steps": steps,
                                  "wall_seconds": seconds, "git": git_state(),
                                  "prepared": datetime.now().isoformat(timespec="seconds")})
                      + "\n")
    return state


def gold_state(out: Path, landing: Path, logs: Path, env: str, reprepare: bool) -> Path:
    """A state dir whose gold feature table holds ``landing`` as batch ``bench`` (made once)."""
    state = out / f"train-gold-{landing.name}"
    return prepared_state(
        state, landing, logs, list(PREPARE_STEPS), reprepare=reprepare, purpose="training",
        command=lambda step: [*sparkmlops_command(), step, "--env", env, "--set",
                              f"state_dir={state}", "--set", f"dataset.source.path={landing}",
                              "--batch-id", "bench"])


def empty_store(path: Path) -> Path:
    """An MLflow SQLite store with its tables created and nothing logged, to copy per run."""
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


def git_state() -> dict[str, str]:
    """The commit the CLI ran from, and whether lib/ had uncommitted changes (shared tree)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=False).stdout.strip()

    return {"commit": git("rev-parse", "HEAD"),
            "lib_changes": git("status", "--porcelain", "--", "lib")}


def lib_fingerprint() -> str:
    """A hash of the library the CLI runs: lib/ may be edited while a benchmark runs."""
    digest = hashlib.sha1()
    for path in sorted((ROOT / "lib").rglob("*.py")):
        try:
            content = path.read_bytes()
        except OSError:  # deleted since the listing
            continue
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + content)
    return digest.hexdigest()[:12]


# ---------------------------------------------------------------- one train run


def run_train(family: str, *, gold: Path, store: Path, state_dir: Path, logfile: Path,
              env: str, experiment: str) -> dict[str, Any]:
    """``sparkmlops train`` of one family on the cached gold table; its numbers from MLflow."""
    if state_dir.exists():
        shutil.rmtree(state_dir)
    state_dir.mkdir(parents=True)
    shutil.copyfile(store, state_dir / "mlflow.db")
    params = FAMILY_PARAMS[family]
    load_before, lib_before = os.getloadavg()[0], lib_fingerprint()
    code, wall = run_logged(
        [*sparkmlops_command(), "train", "--env", env, "--batch-id", "bench",
         "--set", f"state_dir={state_dir}", "--set", f"storage.root={gold / 'lake'}",
         "--set", f"dataset.model.estimator.type={family}",
         "--set", f"dataset.model.estimator.params={json.dumps(params)}"],  # JSON is YAML
        logfile)
    result: dict[str, Any] = {"family": family, "params": params, "exit_code": code,
                              "wall_seconds": wall, "log": str(logfile),
                              "state_dir": str(state_dir),
                              "load_average": [load_before, os.getloadavg()[0]],
                              "lib_fingerprint": [lib_before, lib_fingerprint()]}
    try:
        result.update(train_run_numbers(state_dir, experiment))
    except Exception as exc:  # noqa: BLE001 - a failed run still gets a row in the report
        log.warning("could not read the train run of %s: %s", state_dir, exc)
        result["error"] = str(exc)
    if code != 0:
        result["error"] = f"exit code {code}: {last_line(logfile)}"
    elif result.get("estimator") not in (None, family):
        result["error"] = f"trained {result['estimator']}, not {family}: --set not applied?"
    return result


def last_line(logfile: Path) -> str:
    """The CLI's one-line reason for a failure (its last line of output)."""
    lines = logfile.read_text(errors="replace").strip().splitlines()
    return lines[-1][:300] if lines else f"no output; see {logfile}"


def train_run_numbers(state_dir: Path, experiment: str) -> dict[str, Any]:
    """Metrics, estimator and wall time of the (only) train run in the state dir's store."""
    _, run = latest_step_run(state_dir, experiment, "train")
    metrics = run.data.metrics
    numbers: dict[str, Any] = {
        "run_id": run.info.run_id, "status": run.info.status,
        "estimator": run.data.params.get("estimator"), "run_seconds": run_seconds(run),
        "model_version": run.data.tags.get("model_version"),
        "metrics": {k: metrics[k] for k in TRAIN_METRICS if k in metrics},
    }
    step, fit = numbers["run_seconds"], metrics.get("fit_seconds")
    tracking = metrics.get("tracking_seconds")
    if step and tracking is not None:
        numbers["mlflow_share"] = round(tracking / step, 4)
    if step and fit is not None and tracking is not None:
        numbers["rest_seconds"] = round(step - fit - tracking, 3)
    return numbers


# ---------------------------------------------------------------- the report


def table_row(rows: int, family: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the repeats of one family at one size."""
    return {
        "rows": rows, "family": family,
        "fit_s": median_of(runs, "metrics", "fit_seconds"),
        "mlflow_s": median_of(runs, "metrics", "tracking_seconds"),
        "rest_s": median_of(runs, "rest_seconds"),
        "train_step_s": median_of(runs, "run_seconds"),
        "mlflow_share": median_of(runs, "mlflow_share"),
        "process_s": median_of(runs, "wall_seconds"),
        "auc": median_of(runs, "metrics", "areaUnderROC"),
        "failed": sum(1 for r in runs if r.get("error")),
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    def num(value: float | None, fmt: str = ".1f") -> str:
        return "-" if value is None else format(value, fmt)

    header = (f"{'rows':>9}  {'family':<26}{'fit s':>7}{'MLflow s':>10}{'rest s':>8}"
              f"{'train step s':>14}{'MLflow %':>10}{'process s':>11}{'AUC':>8}")
    lines = [header, "-" * len(header)]
    previous = None
    for r in rows:
        if previous is not None and r["rows"] != previous:
            lines.append("")
        previous = r["rows"]
        share = None if r["mlflow_share"] is None else 100 * r["mlflow_share"]
        failed = f"  FAILED x{r['failed']}" if r["failed"] else ""
        lines.append(
            f"{r['rows']:>9}  {r['family']:<26}{num(r['fit_s']):>7}{num(r['mlflow_s']):>10}"
            f"{num(r['rest_s']):>8}{num(r['train_step_s']):>14}{num(share):>10}"
            f"{num(r['process_s']):>11}{num(r['auc'], '.4f'):>8}{failed}")
    return "\n".join(lines)


def overhead_line(rows: int, table: list[dict[str, Any]]) -> str:
    """The mean MLflow seconds and share per train run at one size."""
    mine = [r for r in table if r["rows"] == rows]
    seconds = [r["mlflow_s"] for r in mine if r["mlflow_s"] is not None]
    shares = [r["mlflow_share"] for r in mine if r["mlflow_share"] is not None]
    if not seconds:
        return (f"{rows} rows: no train run logged tracking_seconds; the train step of this "
                "checkout does not time its MLflow calls")
    return (f"{rows} rows: MLflow {statistics.mean(seconds):.1f} s per train run on average "
            f"({min(seconds):.1f}-{max(seconds):.1f} s over {len(seconds)} "
            f"famil{'y' if len(seconds) == 1 else 'ies'}), "
            f"{100 * statistics.mean(shares):.0f} % of the train step on average")


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(
        "benchmarks/train_bench.py", __doc__, rows=DEFAULT_ROWS,
        env_help="conf/<env>.yml (Spark settings)",
        keep_state_help="keep each train run's state dir (MLflow store, model artifacts)",
        repeat_help="train runs per family and size; the table shows medians")
    parser.add_argument("--families", nargs="+", choices=list(FAMILY_PARAMS),
                        default=list(FAMILY_PARAMS))
    parser.add_argument("--reprepare", action="store_true",
                        help="redo ingest, validate and features even when the gold is cached "
                             "(--regenerate implies it)")
    args = parser.parse_args(argv)
    bench_logging("alembic", "mlflow")

    from sparkmlops.config import load_settings

    settings = load_settings(args.env, "penguins")
    out: Path = args.out.resolve()
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    logs = out / "logs" / f"train-{stamp}"
    logs.mkdir(parents=True, exist_ok=True)
    store = empty_store(logs / "empty-mlflow.db")

    report: dict[str, Any] = {
        **report_header(args, settings),
        "family_params": {f: FAMILY_PARAMS[f] for f in args.families},
        "sizes": [],
    }
    results = out / f"train-results-{stamp}.json"
    table: list[dict[str, Any]] = []
    for rows in args.rows:
        landing, gen_seconds = landing_data(out, rows, args.seed, files_for(rows),
                                            args.regenerate, logs)
        gold = gold_state(out, landing, logs, args.env, args.reprepare or args.regenerate)
        runs: dict[str, list[dict[str, Any]]] = {}
        for family in args.families:
            for i in range(args.repeat):
                state_dir = out / f"train-state-{rows}-{family}-{stamp}-{i}"
                r = run_train(family, gold=gold, store=store, state_dir=state_dir,
                              logfile=logs / f"train-{rows}-{family}-{i}.log", env=args.env,
                              experiment=settings.tracking.experiment)
                log.info("%s %d rows: fit %s s, MLflow %s s, run %s s, wall %.1f s %s", family,
                         rows, r.get("metrics", {}).get("fit_seconds"),
                         r.get("metrics", {}).get("tracking_seconds"), r.get("run_seconds"),
                         r["wall_seconds"], r.get("error", ""))
                runs.setdefault(family, []).append(r)
                if not args.keep_state:
                    shutil.rmtree(state_dir, ignore_errors=True)
            table.append(table_row(rows, family, runs[family]))
        report["sizes"].append({"rows": rows, "landing": str(landing), "gold_state": str(gold),
                                "datagen_seconds": gen_seconds, "runs": runs})
        report["table"] = table
        results.write_text(json.dumps(report, indent=2) + "\n")  # partial results survive

    report["finished"] = datetime.now().isoformat(timespec="seconds")
    results.write_text(json.dumps(report, indent=2) + "\n")

    print()
    print(format_table(table))
    print()
    print("fit s: fit_seconds (MLlib Pipeline.fit). MLflow s: tracking_seconds, the step's")
    print("timed MLflow calls. train step s: wall time of the MLflow train run. rest s: train")
    print("step minus both (read, split and cache counts, holdout scoring and metrics, plots,")
    print("signature, and any MLflow call the step does not time). process s: the subprocess")
    print("(interpreter, imports, Spark session, shutdown). AUC: holdout areaUnderROC.")
    for rows in args.rows:
        print(overhead_line(rows, table))
    libs = {fp for size in report["sizes"] for family_runs in size["runs"].values()
            for r in family_runs for fp in r["lib_fingerprint"]}
    if len(libs) > 1:
        print(f"lib/ changed while this ran: {len(libs)} versions of it (lib_fingerprint "
              "of each run in the JSON), so the runs are not like for like")
    elif report["git"]["lib_changes"]:
        print("lib/ had uncommitted changes (the same in every run; see git in the JSON)")
    print(f"details: {results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
