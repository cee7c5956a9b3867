"""The rollback job (`sparkmlops rollback`): a thin entry point, the logic is in sparkmlops.

    spark-submit jobs/rollback.py --to 3 --reason "v4 scores the new sites badly" \
        --env local --dataset penguins

Moves @champion of the dataset's model back to an earlier version and appends a
`rollback` event (who, when, from, to, reason) to `model_events.<dataset>`; refused, with
one line and nothing moved, without a reason, for an unknown version, the champion
itself or a later one.
"""

import sys

from sparkmlops.cli import job_main

main = job_main("rollback")

if __name__ == "__main__":
    sys.exit(main(None))
