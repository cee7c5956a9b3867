"""Evaluation plots of a holdout, computed with Spark and drawn as PNG files.

Nothing scales with the holdout on the driver: ROC and PR curves come from the
scores binned in Spark (``bins`` buckets of the positive-class probability), the
confusion matrix from a group-by, residuals from a bounded sample. Each plot's
numbers are written next to it as JSON, so a test (or a person) can check them.

- binary classification: ``roc_curve``, ``pr_curve``, ``confusion_matrix``;
- multiclass: ``confusion_matrix``;
- regression: ``residuals`` (against the prediction, and their histogram);
- any task: ``coefficients`` (linear models) or ``feature_importances`` (trees),
  named after the assembled features (one-hot levels included).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pyspark.sql.functions as F
from pyspark.ml import PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame

from sparkmlops.features.mllib import (
    FEATURES_VECTOR,
    IMPUTED,
    INDEXED,
    LABEL_COLUMN,
    ONE_HOT,
    UNSCALED_VECTOR,
)

log = logging.getLogger(__name__)

RESIDUAL_SAMPLE = 5000
TOP_FEATURES = 20


def curve_points(scored: DataFrame, bins: int = 1000) -> list[dict[str, float]]:
    """ROC/PR points of a binary holdout from ``bins`` buckets of the positive score.

    Each point is the threshold at a bucket's lower edge: everything scored at or
    above it is called positive.
    """
    score = vector_to_array(F.col("probability"))[1]
    bucket = F.least(F.floor(score * bins), F.lit(bins - 1)).cast("int")
    counts = (scored.select(bucket.alias("b"), F.col(LABEL_COLUMN).alias("y"))
              .groupBy("b").agg(F.sum("y").alias("pos"), F.count(F.lit(1)).alias("n"))
              .collect())
    by_bucket = {int(r["b"]): (int(r["pos"]), int(r["n"])) for r in counts}
    positives = sum(p for p, _ in by_bucket.values())
    negatives = sum(n - p for p, n in by_bucket.values())
    points = [{"threshold": 1.0, "fpr": 0.0, "tpr": 0.0, "precision": 1.0}]
    tp = fp = 0
    for b in sorted(by_bucket, reverse=True):
        pos, n = by_bucket[b]
        tp, fp = tp + pos, fp + n - pos
        points.append({
            "threshold": b / bins,
            "fpr": fp / negatives if negatives else 0.0,
            "tpr": tp / positives if positives else 0.0,
            "precision": tp / (tp + fp) if tp + fp else 1.0,
        })
    return points


def area(xs: list[float], ys: list[float]) -> float:
    """Trapezoidal area under the points (xs ascending)."""
    pairs = zip(zip(xs, ys, strict=True), zip(xs[1:], ys[1:], strict=True), strict=False)
    return sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in pairs)


def confusion(scored: DataFrame) -> dict[tuple[int, int], int]:
    """(true class index, predicted class index) → rows."""
    rows = scored.groupBy(F.col(LABEL_COLUMN).cast("int").alias("y"),
                          F.col("prediction").cast("int").alias("p")).count().collect()
    return {(int(r["y"]), int(r["p"])): int(r["count"]) for r in rows}


def feature_names(scored: DataFrame, vector: str = FEATURES_VECTOR) -> list[str]:
    """The names of the assembled vector's slots, from Spark's ML attribute metadata.

    Scalers keep only the vector's size, so a scaled vector is named by the assembled
    one before it (``features__unscaled``); scaling keeps the slots in place.
    """
    attrs = _ml_attrs(scored, vector)
    if not attrs and vector == FEATURES_VECTOR and UNSCALED_VECTOR in scored.columns:
        attrs = _ml_attrs(scored, UNSCALED_VECTOR)
    named = sorted((a["idx"], a["name"]) for group in attrs.values() for a in group)
    return [re.sub(f"({IMPUTED}|{INDEXED}|{ONE_HOT})", "", name) for _, name in named]


def _ml_attrs(scored: DataFrame, vector: str) -> dict[str, list[dict[str, Any]]]:
    return dict(scored.schema[vector].metadata.get("ml_attr", {}).get("attrs", {}))


def model_weights(model: PipelineModel, names: list[str]) -> tuple[str, list[tuple[str, float]]]:
    """("coefficients" | "feature_importances", [(feature, weight)]) of the last stage."""
    last = model.stages[-1]
    if hasattr(last, "featureImportances"):
        values = last.featureImportances.toArray().tolist()
        kind = "feature_importances"
    elif hasattr(last, "coefficientMatrix") and last.coefficientMatrix.numRows > 1:
        # multinomial: the largest absolute coefficient over the classes
        matrix = last.coefficientMatrix.toArray()
        values = [float(abs(matrix[:, j]).max()) for j in range(matrix.shape[1])]
        kind = "coefficients"
    elif hasattr(last, "coefficients"):
        values = last.coefficients.toArray().tolist()
        kind = "coefficients"
    else:
        return "none", []
    if len(names) != len(values):
        names = [f"f{i}" for i in range(len(values))]
    return kind, list(zip(names, [float(v) for v in values], strict=True))


def write_plots(
    scored: DataFrame, model: PipelineModel, task: str, classes: list[str] | None, out: Path
) -> list[Path]:
    """Draw the task's plots of the scored holdout into ``out``; return the PNG paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(fig: Any, name: str, data: Any) -> None:
        path = out / f"{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        (out / f"{name}.json").write_text(json.dumps(data, indent=1))
        written.append(path)

    if task == "binary_classification":
        points = curve_points(scored)
        fpr, tpr = [p["fpr"] for p in points], [p["tpr"] for p in points]
        auc = area(fpr, tpr)
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot(fpr, tpr, label=f"model (AUC {auc:.3f})")
        ax.plot([0, 1], [0, 1], "--", color="grey", label="chance")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve")
        ax.legend(loc="lower right")
        save(fig, "roc_curve", {"auc": auc, "points": points})
        recall, precision = tpr, [p["precision"] for p in points]
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.plot(recall, precision)
        ax.set(xlabel="recall", ylabel="precision", title="Precision-recall curve",
               ylim=(0, 1.05))
        save(fig, "pr_curve", {"auc": area(recall, precision), "points": points})
    if task != "regression":
        counts = confusion(scored)
        labels: list[str] = classes or [str(i) for i in sorted({i for pair in counts
                                                                 for i in pair})]
        n = len(labels)
        matrix = [[counts.get((y, p), 0) for p in range(n)] for y in range(n)]
        fig, ax = plt.subplots(figsize=(1.2 * n + 3, 1.2 * n + 2.5))
        ax.imshow(matrix, cmap="Blues")
        for y in range(n):
            for p in range(n):
                ax.text(p, y, str(matrix[y][p]), ha="center", va="center")
        ax.set(xticks=range(n), yticks=range(n), xticklabels=labels, yticklabels=labels,
               xlabel="predicted", ylabel="true", title="Confusion matrix")
        save(fig, "confusion_matrix", {"labels": [str(x) for x in labels], "matrix": matrix})
    else:
        sample = (scored.select(F.col("prediction"), (F.col(LABEL_COLUMN) - F.col("prediction"))
                                .alias("residual")).limit(RESIDUAL_SAMPLE).collect())
        predicted = [float(r["prediction"]) for r in sample]
        residual = [float(r["residual"]) for r in sample]
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
        left.scatter(predicted, residual, s=4, alpha=0.5)
        left.axhline(0, color="grey")
        left.set(xlabel="prediction", ylabel="label - prediction", title="Residuals")
        right.hist(residual, bins=50)
        right.set(xlabel="residual", title="Residual distribution")
        save(fig, "residuals", {"rows": len(sample), "mean_residual":
                                sum(residual) / len(residual) if residual else None})
    kind, weights = model_weights(model, feature_names(scored))
    if weights:
        top = sorted(weights, key=lambda w: abs(w[1]), reverse=True)[:TOP_FEATURES][::-1]
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(top) + 1.5))
        ax.barh([name for name, _ in top], [value for _, value in top])
        ax.set(title=kind.replace("_", " ").capitalize(), xlabel="weight")
        save(fig, kind, {name: value for name, value in weights})
    log.info("wrote %d evaluation plots to %s", len(written), out)
    return written
