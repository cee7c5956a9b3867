"""``sparkmlops <step> --env local --dataset penguins ...``: the command line of every job.

Exit codes: 0 done, 1 unexpected error, 2 bad config or usage, 3 missing input,
4 failed quality gate, 5 failed model gate, 6 a reproduced run's metrics differ,
7 the data cannot train a model. Expected failures print one line on stderr; the
summary of a successful run goes to stdout.

Each command is declared beside its code, in its stage folder's ``command.py`` (pipeline,
maintain and show-table, deploy and init included), as a ``sparkmlops.command.Command``
with its own options; ``COMMANDS`` registers them.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, cast

from sparkmlops.command import Command
from sparkmlops.config import Settings
from sparkmlops.deploy.command import DEPLOY
from sparkmlops.errors import SparkmlopsError
from sparkmlops.features.command import FEATURES
from sparkmlops.ingest.command import INGEST
from sparkmlops.init.command import INIT
from sparkmlops.labels.command import LABELS
from sparkmlops.lineage.command import LINEAGE
from sparkmlops.maintain.command import MAINTAIN, SHOW_TABLE
from sparkmlops.monitor.command import MONITOR
from sparkmlops.pipeline.command import PIPELINE
from sparkmlops.predict.command import PREDICT
from sparkmlops.preflight import load_checked_settings
from sparkmlops.promote.command import HISTORY, PROMOTE, ROLLBACK
from sparkmlops.redact import redact_text
from sparkmlops.secrets import resolve_aws_secrets
from sparkmlops.tables import check_batch_id
from sparkmlops.train.command import REPRODUCE, TRAIN
from sparkmlops.validate.command import PROFILE, VALIDATE

log = logging.getLogger("sparkmlops")

# every command, in the order of `sparkmlops --help`; each declares its own options
COMMANDS: dict[str, Command] = {c.name: c for c in (
    INGEST, VALIDATE, LABELS, FEATURES, TRAIN, PROMOTE, PREDICT, MONITOR, PIPELINE, MAINTAIN,
    SHOW_TABLE, REPRODUCE, PROFILE, ROLLBACK, HISTORY, LINEAGE, DEPLOY, INIT)}


def common_options() -> argparse.ArgumentParser:
    """The options every command takes: which config, which batch, how loud."""
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
    return common


# `sparkmlops --help` is read in a terminal: plain text, not the module docstring's reST
DESCRIPTION = """\
Batch ML on a lake: ingest files into Delta Lake, validate them with Great
Expectations, train Spark MLlib models, promote the better one and score, every
run tracked in MLflow."""
EPILOG = """\
Run 'sparkmlops <command> --help' for a command's options.
Exit codes: 0 done, 1 unexpected error, 2 bad config or usage, 3 missing input,
4 failed quality gate, 5 failed model gate, 6 a reproduced run's metrics differ,
7 the data cannot train a model."""
# the stack a run's results depend on, in `sparkmlops --version`
STACK = ("pyspark", "delta-spark", "mlflow", "great-expectations")


def version_text() -> str:
    """``sparkmlops 0.9.0 (pyspark 4.1.1, delta-spark 4.1.0, ...; Python 3.11.7)``: read from
    the installed distributions' metadata, so it starts no JVM and imports no library."""
    from importlib import metadata
    from platform import python_version

    from sparkmlops import __version__

    def installed(name: str) -> str:
        try:
            return f"{name} {metadata.version(name)}"
        except metadata.PackageNotFoundError:
            return f"{name} not installed"

    return (f"sparkmlops {__version__} ({', '.join(installed(n) for n in STACK)}; "
            f"Python {python_version()})")


class _TopHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Raw: the description and epilog keep their lines and --version stays on one. The
    command names get a column wide enough for ``show-table`` (argparse sizes it by the
    top-level options alone, and wraps longer names onto a line of their own)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=20)
        self._action_max_length = 18


def build_parser() -> argparse.ArgumentParser:
    """``sparkmlops <command>``: one subparser per registered command, with its own options."""
    common = common_options()
    parser = argparse.ArgumentParser(prog="sparkmlops", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=_TopHelpFormatter)
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(dest="step", required=True, metavar="<command>")
    for command in COMMANDS.values():
        command.add_arguments(sub.add_parser(command.name, parents=[common], help=command.help))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(COMMANDS[args.step], args)


def entry() -> None:
    """The ``sparkmlops`` console script, also the Databricks ``python_wheel_task`` entry
    point: it exits with ``main()``'s code itself, since a task runner that calls the
    function ignores what it returns (a failed job would show as succeeded)."""
    sys.exit(main())


def job_main(step: str) -> Callable[[list[str] | None], int]:
    """The ``main(argv)`` of ``jobs/<step>.py``: the CLI with the command filled in."""
    if step not in COMMANDS:
        raise ValueError(f"no sparkmlops command {step!r}; commands: {', '.join(COMMANDS)}")

    def main_for_step(argv: list[str] | None = None) -> int:
        return main([step, *(sys.argv[1:] if argv is None else argv)])

    main_for_step.__name__ = f"{step}_main"
    return main_for_step


def run_command(command: Command, args: argparse.Namespace) -> int:
    """Load the config, start Spark unless the command only reads config, run it.

    Prints the command's text and "done in" on stdout (exit 0; a command's ``--json``
    document alone, "done in" on stderr), or one line on stderr with the exit code of the
    named error (1 for anything unexpected).
    """
    _configure_logging(args.verbose)
    started = time.monotonic()
    try:
        if command.scope == "none":
            # init writes the conf dir: there are no settings to load yet
            print(command.run(None, cast(Settings, None), "all", args))
            return 0
        if args.batch_id is not None:
            check_batch_id(args.batch_id)
        # before config: a conf dir on S3, or MLflow, may need what the secrets hold
        resolve_aws_secrets()
        settings = load_checked_settings(
            args.env, args.dataset, overrides=[*args.overrides, *command.overrides(args)],
            conf_dir=args.conf_dir)
        if command.scope == "config":
            output = command.run(None, settings, args.batch_id or "all", args)
        else:
            from sparkmlops.spark import get_spark

            spark = get_spark(settings.spark)
            default = command.default_batch_id or _default_batch_id
            batch_id = args.batch_id or (
                "all" if command.scope == "tables" else default(spark, settings))
            output = command.run(spark, settings, batch_id, args)
    except SparkmlopsError as exc:
        print(f"sparkmlops {command.name}: {type(exc).__name__}: {one_line(str(exc))}",
              file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - the last line of defence of a job
        log.exception("unexpected error")
        print(f"sparkmlops {command.name}: unexpected error: {one_line(str(exc))}",
              file=sys.stderr)
        return 1
    print(output)
    # with --json, stdout is the document alone: the timing goes to stderr
    print(f"done in {time.monotonic() - started:.1f} s",
          file=sys.stderr if getattr(args, "json", False) else sys.stdout)
    return 0


def one_line(message: str) -> str:
    """``message`` on one line: a scheduler shows the last line of stderr, and the error
    contract is one line per failure, whatever text a library put in an exception. The
    credentials of a URI it names are replaced: the line lands in the job's log."""
    return redact_text(" | ".join(part.strip() for part in message.splitlines()
                                  if part.strip()))


def _default_batch_id(spark: Any, settings: Settings) -> str:
    from sparkmlops.ingest.step import default_batch_id

    return default_batch_id(spark, settings)


class RedactingFormatter(logging.Formatter):
    """Log lines (tracebacks included) with the credentials of every URI replaced: a
    library's message may name the tracking URI or a path that carries a token."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


def _configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                            datefmt="%H:%M:%S"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    for noisy in ("py4j", "great_expectations", "alembic", "mlflow", "urllib3", "git"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


if __name__ == "__main__":
    sys.exit(main())
