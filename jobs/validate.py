"""The validate job: a thin entry point; the logic is in sparkmlops.

Run it with spark-submit (the venv's Spark has the Delta jars, see `make jars`)::

    spark-submit jobs/validate.py --env local --dataset penguins

or as `sparkmlops validate --env local --dataset penguins`. On EMR / Databricks, install
the sparkmlops wheel on the cluster and pass `--env emr` / `--env databricks`.
"""

from __future__ import annotations

import sys

from sparkmlops.cli import main as cli_main


def main(argv: list[str] | None = None) -> int:
    return cli_main(["validate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
