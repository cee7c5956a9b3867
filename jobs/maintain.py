"""The maintain job (`sparkmlops maintain`): a thin entry point, the logic is in sparkmlops.

    spark-submit jobs/maintain.py --env local --dataset penguins [--no-vacuum] [--no-optimize]

OPTIMIZE (Z-ORDER by `maintenance.zorder_by`) then VACUUM (`maintenance.vacuum_retention_hours`)
every existing table of the dataset; schedule it apart from the batch jobs, e.g. nightly.
"""

import sys

from sparkmlops.cli import job_main

main = job_main("maintain")

if __name__ == "__main__":
    sys.exit(main(None))
