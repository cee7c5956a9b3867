"""What a benchmark script's command line shares: log lines like the jobs', and the
Spark session of an env (``conf/<env>.yml``), for the data generators."""

from __future__ import annotations

import logging
import sys

from pyspark.sql import SparkSession


def log_to_stderr() -> None:
    """INFO lines with a timestamp on stderr (py4j's chatter left out)."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    logging.getLogger("py4j").setLevel(logging.WARNING)


def env_session(env: str) -> SparkSession:
    """The Spark session of ``env``'s settings (``conf/base.yml`` + ``conf/<env>.yml``)."""
    from sparkmlops.preflight import load_checked_settings
    from sparkmlops.spark import get_spark

    return get_spark(load_checked_settings(env, "penguins").spark)
