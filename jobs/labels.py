"""The labels job (`sparkmlops labels`): a thin entry point, the logic is in sparkmlops.

    spark-submit jobs/labels.py --env local --dataset penguins_crowd [--export-review FILE]

The crowd's annotation files → bronze annotations → consensus labels, needs_review and
worker_quality; with `label: {from: crowd}`, the accepted labels into gold.
"""

import sys

from sparkmlops.cli import job_main

main = job_main("labels")

if __name__ == "__main__":
    sys.exit(main(None))
