"""``sparkmlops <step> --env local --dataset penguins ...``: the command line of every job.

Exit codes: 0 done, 1 unexpected error, 2 bad config or usage, 3 missing input,
4 failed quality gate, 5 failed model gate, 6 a reproduced run's metrics differ,
7 the data cannot train a model. Expected failures print one line on stderr; the
summary of a successful run goes to stdout.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from sparkmlops.config import Settings
from sparkmlops.errors import SparkmlopsError
from sparkmlops.preflight import load_checked_settings
from sparkmlops.tables import check_batch_id

log = logging.getLogger("sparkmlops")

STEP_NAMES = ("ingest", "validate", "features", "train", "promote", "predict", "monitor",
              "pipeline", "maintain")
# commands over whole tables: the run's batch id is "all", not derived from landing files
WHOLE_TABLE_COMMANDS = ("maintain", "show-table", "profile", "reproduce")
# commands that only read config: no Spark session is started
CONFIG_COMMANDS = ("deploy",)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--env", default="local",
                        help="<env>.yml, packaged and/or in the conf dir (default: local)")
    common.add_argument("--dataset", default="penguins", help="<conf dir>/datasets/<name>.yml")
    common.add_argument("--batch-id", help="default: a hash of the files not ingested yet "
                        "(with none, the latest ingested batch); 'all' for maintain and "
                        "show-table")
    common.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY.PATH=VALUE", help="override a config key (repeatable)")
    common.add_argument("--conf-dir", help="the project's conf dir, a path or a Hadoop URI "
                        "(default: $SPARKMLOPS_CONF_DIR, else ./conf)")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    parser = argparse.ArgumentParser(prog="sparkmlops", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    sub.add_parser("ingest", parents=[common], help="landing files → bronze (+ quarantine)") \
        .add_argument("--force", action="store_true", help="re-ingest a batch already in bronze")
    sub.add_parser("validate", parents=[common], help="GX suite on bronze → silver/quarantine") \
        .add_argument("--bronze-version", type=int)
    sub.add_parser("features", parents=[common], help="silver → gold feature table") \
        .add_argument("--silver-version", type=int)
    automl = argparse.ArgumentParser(add_help=False)
    automl.add_argument("--automl", action="store_true",
                        help="AutoML: try estimator families, keep the best (model.automl)")
    automl.add_argument("--time-budget", type=float, metavar="SECONDS",
                        help="AutoML time budget (default: model.automl.time_budget_s)")
    sub.add_parser("train", parents=[common, automl],
                   help="gold → MLlib model → registry @challenger") \
        .add_argument("--gold-version", type=int)
    promote = sub.add_parser("promote", parents=[common],
                             help="score @challenger and @champion on the current holdout; "
                                  "move @champion if the challenger is better")
    promote.add_argument("--challenger-version")
    promote.add_argument("--gold-version", type=int, help="holdout from this gold version "
                                                          "(default: the latest)")
    predict = sub.add_parser("predict", parents=[common], help="score with @champion")
    predict.add_argument("--model", default="champion", help="alias or version number")
    predict.add_argument("--gold-version", type=int)
    sub.add_parser("monitor", parents=[common],
                   help="drift and live metrics of a scored batch → monitoring + report") \
        .add_argument("--gold-version", type=int)
    pipeline = sub.add_parser("pipeline", parents=[common, automl],
                              help="all steps, one session, one parent run")
    pipeline.add_argument(
        "--mode", choices=("batch", "continuous"), default="batch",
        help="batch: ingest → … → train → promote → predict; continuous: score and "
             "monitor with @champion, retrain and promote when dataset.retrain says so")
    maintain = sub.add_parser("maintain", parents=[common],
                              help="OPTIMIZE (Z-ORDER) and VACUUM the dataset's tables")
    maintain.add_argument("--no-vacuum", dest="vacuum", action="store_false",
                          help="skip VACUUM (maintenance.vacuum_retention_hours)")
    maintain.add_argument("--no-optimize", dest="optimize", action="store_false",
                          help="skip OPTIMIZE / Z-ORDER (maintenance.zorder_by)")
    show = sub.add_parser("show-table", parents=[common], help="print a table as of a version")
    show.add_argument("layer", help="bronze, quarantine, manifest, ingest_log, silver, "
                                    "validation_results, gold or predictions")
    as_of = show.add_mutually_exclusive_group()
    as_of.add_argument("--version", type=int, help="Delta version (default: the latest)")
    as_of.add_argument("--timestamp", help="the version current at this time, e.g. "
                                           "'2026-11-26 12:00:00'")
    show.add_argument("--limit", type=int, default=20, help="rows to print (default: 20)")
    reproduce = sub.add_parser("reproduce", parents=[common],
                               help="retrain a train run from its lineage, compare metrics")
    reproduce.add_argument("run_id", help="the MLflow run id of a train step")
    reproduce.add_argument("--tolerance", type=float, default=1e-9,
                           help="largest metric difference that counts as the same "
                                "(default: 1e-9); above it the exit code is 6")
    profile = sub.add_parser("profile", parents=[common],
                             help="propose a starter expectation suite (YAML) from a table")
    profile.add_argument("--layer", default="bronze", help="table to profile (default: bronze)")
    profile.add_argument("--version", type=int, help="Delta version (default: the latest)")
    profile.add_argument("--out", help="write the YAML here (default: print it)")
    deploy = sub.add_parser("deploy", parents=[common],
                            help="write Databricks / EMR / GitHub Actions job definitions "
                                 "from the env's deploy: section")
    deploy.add_argument("--target", action="append", required=True,
                        help="databricks, emr, github or all (repeatable or comma-separated; "
                             "github deploys to the platforms named with it, else to all "
                             "the env configures)")
    deploy.add_argument("--out", required=True,
                        help="folder to write into (the root of your repository: the "
                             "workflows go to <out>/.github/workflows)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_step(args)


def entry() -> None:
    """The ``sparkmlops`` console script, also the Databricks ``python_wheel_task`` entry
    point: it exits with ``main()``'s code itself, since a task runner that calls the
    function ignores what it returns (a failed job would show as succeeded)."""
    sys.exit(main())


def job_main(step: str) -> Callable[[list[str] | None], int]:
    """The ``main(argv)`` of ``jobs/<step>.py``: the CLI with the step filled in."""

    def main_for_step(argv: list[str] | None = None) -> int:
        return main([step, *(sys.argv[1:] if argv is None else argv)])

    main_for_step.__name__ = f"{step}_main"
    return main_for_step


def run_step(args: argparse.Namespace) -> int:
    _configure_logging(args.verbose)
    started = time.monotonic()
    try:
        if args.batch_id is not None:
            check_batch_id(args.batch_id)
        settings = load_checked_settings(args.env, args.dataset, overrides=_overrides(args),
                                         conf_dir=args.conf_dir)
        if args.step in CONFIG_COMMANDS:
            print(_CONFIG_COMMANDS[args.step](settings, args))
            return 0
        from sparkmlops.spark import get_spark

        spark = get_spark(settings.spark)
        batch_id = args.batch_id or (
            "all" if args.step in WHOLE_TABLE_COMMANDS else _default_batch_id(spark, settings))
        output = _STEPS[args.step](spark, settings, batch_id, args)
    except SparkmlopsError as exc:
        print(f"sparkmlops {args.step}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - the last line of defence of a job
        log.exception("unexpected error")
        print(f"sparkmlops {args.step}: unexpected error: {exc}", file=sys.stderr)
        return 1
    print(output)
    print(f"done in {time.monotonic() - started:.1f} s")
    return 0


def _overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` overrides, plus what ``--automl`` / ``--time-budget`` stand for."""
    overrides = list(args.overrides)
    if getattr(args, "automl", False):
        overrides.append("model.automl.enabled=true")
    if getattr(args, "time_budget", None) is not None:
        overrides.append(f"model.automl.time_budget_s={args.time_budget}")
    return overrides


def _default_batch_id(spark: Any, settings: Settings) -> str:
    from sparkmlops.ingest.records import default_batch_id

    return default_batch_id(spark, settings)


def _run_single(name: str) -> Callable[..., str]:
    def run(spark: Any, settings: Settings, batch_id: str, args: argparse.Namespace) -> str:
        kwargs: dict[str, Any] = {}
        for option in ("force", "bronze_version", "silver_version", "gold_version",
                       "challenger_version", "model"):
            if getattr(args, option, None) is not None:
                kwargs[option] = getattr(args, option)
        result = _step_function(name)(spark, settings, batch_id, **kwargs)
        lines = [f"sparkmlops {name}: dataset {settings.dataset.name}, batch {batch_id}",
                 f"  MLflow run {result.run_id}"]
        lines += [f"  wrote {table} v{version}" for table, version in result.outputs.items()]
        lines += [f"  {key}: {value}" for key, value in result.summary.items()
                  if key != "decisions"]
        lines += _decision_lines(result.summary.get("decisions", []))
        return "\n".join(lines)

    return run


def _decision_lines(decisions: list[dict[str, Any]]) -> list[str]:
    """One line per version ``promote`` judged, oldest first."""
    lines = [f"  judged {len(decisions)} version(s):"] if decisions else []
    for d in decisions:
        verdict = ("promoted" if d["promoted"] else
                   "passed, not promoted" if d["passed"] else "not promoted")
        against = f"champion v{d['champion_before']}" if d["champion_before"] else "no champion"
        lines.append(f"    v{d['version']} against {against}: {verdict}; "
                     + "; ".join(d["reasons"]))
    return lines


def _run_pipeline(spark: Any, settings: Settings, batch_id: str, args: argparse.Namespace) -> str:
    from sparkmlops.pipeline import run_pipeline
    from sparkmlops.summary import pipeline_summary

    if getattr(args, "mode", "batch") == "continuous":
        from sparkmlops.pipeline import run_continuous

        result = run_continuous(spark, settings, batch_id)
        decision = result.decision
        lines = [f"sparkmlops pipeline --mode continuous: dataset {settings.dataset.name}, "
                 f"batch {batch_id}", f"  parent run {result.parent_run_id}"]
        lines += [f"  {s.step:<9} {s.run_id}" for s in result.steps]
        lines += [f"  scored by v{decision['scored_by']}; monitoring {decision['monitoring']}; "
                  f"live {decision['live']}",
                  f"  retrain: {decision['retrain']} ({'; '.join(decision['reasons'])})",
                  f"  champion now: v{decision['champion_after']}"]
        return "\n".join(lines)
    result = run_pipeline(spark, settings, batch_id)
    return pipeline_summary(spark, settings, result)


def _run_maintain(spark: Any, settings: Settings, batch_id: str, args: argparse.Namespace) -> str:
    from sparkmlops.maintenance import maintain_step

    result = maintain_step(spark, settings, batch_id, vacuum=args.vacuum, optimize=args.optimize)
    lines = [f"sparkmlops maintain: dataset {settings.dataset.name}",
             f"  MLflow run {result.run_id}"]
    for table, r in result.summary["tables"].items():
        line = (f"  {table} v{r['version_before']} → v{r['version_after']}, "
                f"{r['files_before']} → {r['files_after']} files")
        if r["optimize"]:
            zorder = r["optimize"]["zorder_by"]
            line += f"; Z-ORDER by {', '.join(zorder)}" if zorder else "; OPTIMIZE"
        if r["vacuum"]:
            line += f"; VACUUM deleted {r['vacuum']['files_deleted']} files"
        lines.append(line)
    if result.summary["missing"]:
        lines.append(f"  not there yet: {', '.join(result.summary['missing'])}")
    return "\n".join(lines)


def _run_show_table(spark: Any, settings: Settings, batch_id: str,
                    args: argparse.Namespace) -> str:
    from sparkmlops.maintenance import read_as_of
    from sparkmlops.tables import current_version, dataset_table, read_table

    ref = dataset_table(settings, args.layer)
    if args.version is None and args.timestamp is None:
        frame, as_of = read_table(spark, ref), f"v{current_version(spark, ref)} (latest)"
    else:
        frame = read_as_of(spark, ref, version=args.version, timestamp=args.timestamp)
        as_of = f"v{args.version}" if args.version is not None else f"as of {args.timestamp}"
    frame.show(args.limit, truncate=False)
    return f"{ref.fqn} {as_of}, first {args.limit} rows"


def _run_profile(spark: Any, settings: Settings, batch_id: str,
                 args: argparse.Namespace) -> str:
    from pathlib import Path

    from sparkmlops.quality.profiling import profile_columns, propose_expectations, suite_yaml
    from sparkmlops.tables import current_version, dataset_table, read_table

    ref = dataset_table(settings, args.layer)
    version = args.version if args.version is not None else current_version(spark, ref)
    profiles = profile_columns(read_table(spark, ref, version))
    text = suite_yaml(propose_expectations(profiles, settings.dataset.keys),
                      source=f"{ref.fqn} v{version} ({ref.address})")
    if not args.out:
        return text
    Path(args.out).write_text(text)
    return f"proposed suite for {ref.fqn} v{version} written to {args.out}"


def _run_reproduce(spark: Any, settings: Settings, batch_id: str,
                   args: argparse.Namespace) -> str:
    from sparkmlops.training.reproduce import reproduce_run

    return reproduce_run(spark, settings, args.run_id, tolerance=args.tolerance).report()


def _run_deploy(settings: Settings, args: argparse.Namespace) -> str:
    from pathlib import Path

    from sparkmlops.deploy import placeholders, render, resolve_targets, write_files

    targets = resolve_targets(args.target, settings)
    written = write_files(render(settings, targets, out_dir=Path(args.out)))
    lines = [f"sparkmlops deploy: dataset {settings.dataset.name}, env {settings.env}, "
             f"targets {', '.join(targets)}"]
    lines += [f"  wrote {path}" for path in written]
    todo = placeholders(settings)
    if todo:
        lines.append(f"  fill before deploying (CHANGE-ME): {', '.join(todo)}")
    return "\n".join(lines)


_CONFIG_COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], str]] = {
    "deploy": _run_deploy,
}

_STEPS: dict[str, Callable[..., str]] = {
    **{name: _run_single(name) for name in STEP_NAMES if name not in ("pipeline", "maintain")},
    "pipeline": _run_pipeline,
    "maintain": _run_maintain,
    "show-table": _run_show_table,
    "profile": _run_profile,
    "reproduce": _run_reproduce,
}


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("py4j", "great_expectations", "alembic", "mlflow", "urllib3", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


if __name__ == "__main__":
    sys.exit(main())


def _step_function(name: str) -> Callable[..., Any]:
    import importlib

    stage = {"ingest": "ingest", "validate": "quality", "features": "features",
             "train": "training", "promote": "registry", "predict": "inference",
             "monitor": "monitoring"}[name]
    return getattr(importlib.import_module(f"sparkmlops.{stage}.step"), f"{name}_step")
