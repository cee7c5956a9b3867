"""The monitor job (`sparkmlops monitor`): a thin entry point, the logic is in sparkmlops.

    spark-submit jobs/monitor.py --env local --dataset penguins --batch-id <batch>

Drift of a scored batch against its model's reference profile, live metrics where labels
are known; writes the monitoring table and a report (PNG + HTML) and exits 0 even on alert.
"""

import sys

from sparkmlops.cli import job_main

main = job_main("monitor")

if __name__ == "__main__":
    sys.exit(main(None))
