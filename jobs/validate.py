"""The validate job (`sparkmlops validate`): a thin entry point, the logic is in sparkmlops.

    spark-submit jobs/validate.py --env local --dataset penguins [--set key.path=value]

The venv's Spark already has the Delta jars (`make jars`); on EMR / Databricks,
install the sparkmlops wheel on the cluster and pass `--env emr` / `--env databricks`.
"""

import sys

from sparkmlops.cli import job_main

main = job_main("validate")

if __name__ == "__main__":
    sys.exit(main(None))
