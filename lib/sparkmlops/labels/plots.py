"""The worker-accuracy plot of a labels run, drawn from ``worker_quality`` (one row per
worker, small) as a PNG with its numbers beside it as JSON."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pyspark.sql.functions as F
from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

BINS = 20


def worker_accuracy_plot(workers: DataFrame, out: Path) -> Path:
    """``worker_accuracy.png``: a histogram of the workers' estimated accuracy, spammers
    stacked apart; the counts per bin go to ``worker_accuracy.json``. Binned in Spark,
    so a crowd of any size draws the same small picture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bucket = F.least(F.floor(F.col("accuracy") * BINS), F.lit(BINS - 1)).cast("int")
    rows = (workers.select(bucket.alias("b"), F.col("spammer").alias("s"))
            .groupBy("b", "s").count().collect())
    counts = {"workers": [0] * BINS, "spammers": [0] * BINS}
    for row in rows:
        if row["b"] is not None:
            counts["spammers" if row["s"] else "workers"][int(row["b"])] += int(row["count"])
    edges = [i / BINS for i in range(BINS)]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar(edges, counts["workers"], width=1 / BINS, align="edge", label="workers")
    ax.bar(edges, counts["spammers"], width=1 / BINS, align="edge",
           bottom=counts["workers"], label="spammers", color="tab:red")
    ax.set_xlabel("estimated accuracy")
    ax.set_ylabel("workers")
    ax.set_title("Worker accuracy")
    ax.legend()
    fig.tight_layout()
    path = out / "worker_accuracy.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    (out / "worker_accuracy.json").write_text(
        json.dumps({"bin_lower_edges": edges, **counts}, indent=2))
    log.info("worker accuracy plot: %d workers", sum(counts["workers"]) +
             sum(counts["spammers"]))
    return path
