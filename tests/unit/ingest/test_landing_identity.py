"""A landing file is known by its bytes, not its mtime (issue 11, case 1): a touched file or a
byte-identical copy is not read again; a file whose bytes changed follows
``source.on_changed_file``. The plan is pure: listings, the manifest's index and the
content hashes go in, the plan comes out."""

from __future__ import annotations

from datetime import datetime

import pytest

from sparkmlops.errors import MissingInputError
from sparkmlops.ingest.records import (
    ChangedLandingFileError,
    LandingFile,
    LandingPlan,
    ManifestIndex,
    batch_id_for,
    earlier_batches,
    plan_landing,
    replan_batch,
    unread_rows,
)

NOW_MS = 1_800_000_000_000
EMPTY = ManifestIndex(set(), {}, {})


def _plan(listed, index=EMPTY, *, contents, reingest=False) -> LandingPlan:
    """The plan of ``listed`` (path, size, mtime) whose bytes hash to ``contents[path]``."""
    return plan_landing(listed, index, content_hash=_hashes(contents), exists=lambda _: True,
                        now_ms=NOW_MS, reingest=reingest)


def _hashes(contents: dict[str, str]):
    def content_hash(file: LandingFile) -> LandingFile:
        return LandingFile(file.path, file.size, file.modification_time, contents[file.path])

    return content_hash


def _never_hashed(file: LandingFile) -> LandingFile:
    raise AssertionError(f"{file.path} was hashed")


def test_batch_id_follows_content_not_mtime():
    first = batch_id_for(_plan([("a.csv", 10, 1)], contents={"a.csv": "h1"}).read)
    touched = batch_id_for(_plan([("a.csv", 10, 2)], contents={"a.csv": "h1"}).read)
    changed = batch_id_for(_plan([("a.csv", 10, 2)], contents={"a.csv": "h2"}).read)

    assert touched == first
    assert changed != first
    assert first.startswith("b") and len(first) == 13


def test_a_file_the_manifest_lists_is_not_hashed_again():
    index = ManifestIndex({("a.csv", 10, 1)}, {"h1": "b1"}, {"a.csv": "b1"})

    plan = plan_landing([("a.csv", 10, 1)], index, content_hash=_never_hashed,
                        exists=lambda _: True, now_ms=NOW_MS)

    assert plan == LandingPlan([], {}, {})


def test_a_touch_or_a_copy_is_a_duplicate_of_the_batch_holding_its_bytes():
    index = ManifestIndex({("a.csv", 10, 1)}, {"h1": "b1"}, {"a.csv": "b1"})

    plan = _plan([("a.csv", 10, 2), ("copy.csv", 10, 3), ("c.csv", 5, 3), ("c2.csv", 5, 4)],
                 index, contents={"a.csv": "h1", "copy.csv": "h1", "c.csv": "h3", "c2.csv": "h3"})

    assert plan.read == [LandingFile("c.csv", 5, 3, "h3")]
    assert plan.duplicates == {LandingFile("a.csv", 10, 2, "h1"): "b1",
                               LandingFile("copy.csv", 10, 3, "h1"): "b1",
                               LandingFile("c2.csv", 5, 4, "h3"): None}
    assert plan.unread == {"duplicates": 3, "changed_skipped": 0, "not_ready": 0, "pending": 0}


@pytest.mark.parametrize("reingest", [False, True])
def test_a_known_path_with_new_bytes_is_changed_and_read_only_with_reingest(reingest):
    index = ManifestIndex({("a.csv", 10, 1)}, {"h1": "b1"}, {"a.csv": "b1"})
    new_bytes = LandingFile("a.csv", 12, 2, "h2")

    plan = _plan([("a.csv", 12, 2)], index, contents={"a.csv": "h2"}, reingest=reingest)

    assert plan.changed == {new_bytes: "b1"}
    assert plan.read == ([new_bytes] if reingest else [])
    assert plan.unread["changed_skipped"] == (0 if reingest else 1)
    assert earlier_batches(plan, {}) == {new_bytes: "b1"}


def test_unread_files_are_recorded_under_no_batch_naming_the_batch_of_their_bytes():
    at = datetime(2026, 1, 2, 3, 4, 5)
    plan = LandingPlan(read=[], duplicates={LandingFile("copy.csv", 10, 3, "h1"): None,
                                            LandingFile("a.csv", 10, 2, "h1"): "b1"},
                       changed={LandingFile("c.csv", 12, 2, "h2"): "b0"})

    assert unread_rows(plan, "b2", at) == [
        ("a.csv", 10, 2, None, at, "h1", "duplicate", "b1"),
        ("c.csv", 12, 2, None, at, "h2", "changed_skipped", "b0"),
        ("copy.csv", 10, 3, None, at, "h1", "duplicate", "b2"),
    ]


def test_force_rereads_the_recorded_files_and_refuses_a_gone_or_changed_one():
    recorded = {LandingFile("a.csv", 10, 1, "h1"): None, LandingFile("b.csv", 5, 1, "h2"): "b0"}
    contents = {"a.csv": "h1", "b.csv": "h2"}

    touched = replan_batch([("a.csv", 10, 9), ("b.csv", 5, 1), ("new.csv", 1, 9)], recorded,
                           path="landing", batch_id="b1", content_hash=_hashes(contents))
    with pytest.raises(MissingInputError, match=r"1 of them are gone from landing: b.csv;"):
        replan_batch([("a.csv", 10, 1)], recorded, path="landing", batch_id="b1",
                     content_hash=_hashes(contents))
    with pytest.raises(ChangedLandingFileError, match=r"1 of them hold other bytes now: a.csv;"):
        replan_batch([("a.csv", 11, 9), ("b.csv", 5, 1)], recorded, path="landing",
                     batch_id="b1", content_hash=_hashes({**contents, "a.csv": "h3"}))

    assert touched.read == [LandingFile("a.csv", 10, 9, "h1"), LandingFile("b.csv", 5, 1, "h2")]
    assert earlier_batches(touched, recorded) == {LandingFile("b.csv", 5, 1, "h2"): "b0"}
