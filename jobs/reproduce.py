"""The reproduce job (`sparkmlops reproduce`): a thin entry point, the logic is in sparkmlops.

    spark-submit jobs/reproduce.py <train run id> --env local --dataset penguins [--tolerance 1e-9]

Refits the model of a train run from its recorded lineage (Delta version by time travel,
effective config, estimator and seed), evaluates it on the same holdout and prints each
metric's difference; exit code 6 when a difference exceeds the tolerance.
"""

import sys

from sparkmlops.cli import job_main

main = job_main("reproduce")

if __name__ == "__main__":
    sys.exit(main(None))
