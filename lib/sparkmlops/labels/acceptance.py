"""The acceptance bar: which consensus labels are trusted, which items go back for review.

``route(items, min_labels=9, min_agreement=7, min_confidence=None)`` is the crowd
project's "7 of 9": an item's label is accepted when it had at least 9 judgments and at
least 7 of them agree with it (and, when ``min_confidence`` is set, the consensus
confidence reaches it). Every other item goes to ``needs_review`` with every bar it
missed, in words for the labelers and as codes for queries::

    reason:  "too_few_labels: 6 < 9; low_agreement: 5 of 6 < 7"
    reasons: ["too_few_labels", "low_agreement"]

A bar that is None is not applied; with none set, every item is accepted. A null value
(e.g. no confidence) misses its bar: nothing is accepted without its evidence.
"""

from __future__ import annotations

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame

REVIEW_REASONS = ("too_few_labels", "low_agreement", "low_confidence")


def route(items: DataFrame, *, min_labels: int | None, min_agreement: int | None,
          min_confidence: float | None) -> tuple[DataFrame, DataFrame]:
    """(accepted, needs_review) of a consensus ``items`` frame (label, confidence,
    agreement, n_labels, ...).

    ``accepted`` has the columns of ``items``; ``needs_review`` adds ``reason`` (string:
    each missed bar with its numbers, joined by "; ") and ``reasons`` (array<string> of
    codes from :data:`REVIEW_REASONS`). Both are filters of one flagged frame, so an item
    is in exactly one of them.
    """
    n_labels, agreement, confidence = F.col("n_labels"), F.col("agreement"), F.col("confidence")
    missed: list[tuple[str, Column, Column]] = []
    if min_labels is not None:
        missed.append(("too_few_labels", _misses(n_labels >= F.lit(min_labels)),
                       F.format_string("too_few_labels: %d < %d", n_labels,
                                       F.lit(min_labels))))
    if min_agreement is not None:
        missed.append(("low_agreement", _misses(agreement >= F.lit(min_agreement)),
                       F.format_string("low_agreement: %d of %d < %d", agreement, n_labels,
                                       F.lit(min_agreement))))
    if min_confidence is not None:
        missed.append(("low_confidence", _misses(confidence >= F.lit(min_confidence)),
                       F.format_string("low_confidence: %s < %s", confidence.cast("string"),
                                       F.lit(str(min_confidence)))))
    codes = F.array(*[F.when(failed, F.lit(code)) for code, failed, _ in missed])
    texts = F.array(*[F.when(failed, text) for _, failed, text in missed])
    flagged = items.select(
        "*",
        F.array_join(F.filter(texts.cast("array<string>"), lambda x: x.isNotNull()), "; ")
        .alias("reason"),
        F.filter(codes.cast("array<string>"), lambda x: x.isNotNull()).alias("reasons"))
    accepted = flagged.where(F.size("reasons") == 0).drop("reason", "reasons")
    return accepted, flagged.where(F.size("reasons") > 0)


def _misses(meets: Column) -> Column:
    """True unless ``meets`` is true (a null value misses the bar)."""
    return ~F.coalesce(meets, F.lit(False))
