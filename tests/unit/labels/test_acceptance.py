"""labels.acceptance: the k-of-n bar routes every item to accepted or needs_review, with why."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from sparkmlops.labels.acceptance import REVIEW_REASONS, route
from sparkmlops.labels.consensus import consensus

ITEMS_SCHEMA = ("item string, label string, confidence double, agreement long, n_labels long, "
                "method string")


def _judgments(spark: SparkSession, counts: dict[str, tuple[int, int]]):
    """Per item (judgments saying "yes", judgments saying "no"), each by its own worker."""
    rows = [(item, f"w{n}", label)
            for item, (yes, no) in counts.items()
            for n, label in enumerate(["yes"] * yes + ["no"] * no)]
    return spark.createDataFrame(rows, "item string, worker string, label string")


def test_seven_of_nine_accepts_and_routes_exactly_the_expected_items(spark):
    source_df = _judgments(spark, {
        "nine_seven_agree": (7, 2),
        "nine_all_agree": (0, 9),
        "ten_seven_agree": (3, 7),
        "nine_six_agree": (6, 3),
        "six_all_agree": (6, 0),
        "five_three_agree": (2, 3),
    })
    items = consensus(source_df, ["yes", "no"], "majority_vote").items

    accepted, needs_review = route(items, min_labels=9, min_agreement=7, min_confidence=None)

    assert sorted((r.item, r.label, r.agreement, r.n_labels) for r in accepted.collect()) == [
        ("nine_all_agree", "no", 9, 9),
        ("nine_seven_agree", "yes", 7, 9),
        ("ten_seven_agree", "no", 7, 10),
    ]
    assert accepted.columns == items.columns
    assert needs_review.columns == [*items.columns, "reason", "reasons"]
    assert sorted((r.item, r.label, r.agreement, r.n_labels, r.method, r.reason, r.reasons)
                  for r in needs_review.collect()) == [
        ("five_three_agree", "no", 3, 5, "majority_vote",
         "too_few_labels: 5 < 9; low_agreement: 3 of 5 < 7",
         ["too_few_labels", "low_agreement"]),
        ("nine_six_agree", "yes", 6, 9, "majority_vote",
         "low_agreement: 6 of 9 < 7", ["low_agreement"]),
        ("six_all_agree", "yes", 6, 6, "majority_vote",
         "too_few_labels: 6 < 9; low_agreement: 6 of 6 < 7",
         ["too_few_labels", "low_agreement"]),
    ]


def test_min_confidence_routes_items_below_it_and_a_null_confidence_never_passes(spark):
    source_df = spark.createDataFrame([
        ("sure", "1", 0.995, 3, 3, "dawid_skene"),
        ("exactly", "1", 0.99, 3, 3, "dawid_skene"),
        ("unsure", "0", 0.6, 2, 3, "dawid_skene"),
        ("unknown", "0", None, 2, 3, "dawid_skene"),
    ], ITEMS_SCHEMA)

    accepted, needs_review = route(source_df, min_labels=None, min_agreement=None,
                                   min_confidence=0.99)

    assert sorted(r.item for r in accepted.collect()) == ["exactly", "sure"]
    assert sorted((r.item, r.reason, r.reasons) for r in needs_review.collect()) == [
        ("unknown", "low_confidence: null < 0.99", ["low_confidence"]),
        ("unsure", "low_confidence: 0.6 < 0.99", ["low_confidence"]),
    ]


def test_every_bar_missed_is_named_in_the_order_of_review_reasons(spark):
    source_df = spark.createDataFrame([("weak", "1", 0.5, 1, 2, "one_coin")], ITEMS_SCHEMA)

    _, needs_review = route(source_df, min_labels=3, min_agreement=2, min_confidence=0.9)

    [row] = needs_review.collect()
    assert row.reasons == list(REVIEW_REASONS)
    assert row.reason == ("too_few_labels: 2 < 3; low_agreement: 1 of 2 < 2; "
                          "low_confidence: 0.5 < 0.9")


@pytest.mark.parametrize("bars", [
    {"min_labels": None, "min_agreement": None, "min_confidence": None},
    {"min_labels": 1, "min_agreement": 1, "min_confidence": 0.0},
])
def test_without_a_bar_or_below_every_bar_every_item_is_accepted(spark, bars):
    source_df = spark.createDataFrame([
        ("a", "1", 0.5, 1, 2, "wawa"), ("b", "0", 1.0, 3, 3, "wawa"),
    ], ITEMS_SCHEMA)

    accepted, needs_review = route(source_df, **bars)

    assert sorted(r.item for r in accepted.collect()) == ["a", "b"]
    assert needs_review.count() == 0
    assert needs_review.schema["reasons"].dataType.simpleString() == "array<string>"
