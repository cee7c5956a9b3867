"""When a landing file is ready to read (``source.ready``): size, age and marker."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sparkmlops.config.ingest import ReadySettings
from sparkmlops.ingest.records import LandingFile, is_marker, marker_path, not_ready_reason

NOW_MS = 1_800_000_000_000
FILE = LandingFile("s3a://bucket/landing/2026/a.csv", 120, NOW_MS - 30_000)


def _reason(file: LandingFile, present: tuple[str, ...] = (), **ready: object) -> str | None:
    return not_ready_reason(file, ReadySettings(**ready), now_ms=NOW_MS,
                            exists=lambda path: path in present)


def test_a_file_with_bytes_is_ready_by_default_and_an_empty_one_never_is():
    assert _reason(FILE) is None
    assert _reason(LandingFile(FILE.path, 0, NOW_MS - 86_400_000)) == (
        "empty (0 bytes): an upload that has not started or finished")


def test_a_file_younger_than_min_age_is_not_ready():
    assert _reason(FILE, min_age_seconds=30) is None
    assert _reason(FILE, min_age_seconds=31) == (
        "modified 30 s ago, under source.ready.min_age_seconds (31): it may still be written")


def test_a_folder_marker_is_looked_for_beside_the_file():
    marker = "s3a://bucket/landing/2026/_SUCCESS"
    assert marker_path(FILE.path, "_SUCCESS") == marker
    assert _reason(FILE, (marker,), marker="_SUCCESS") is None
    assert _reason(FILE, marker="_SUCCESS") == (
        f"no marker {marker} (source.ready.marker: '_SUCCESS')")


def test_a_per_file_marker_names_its_file_and_is_never_data():
    assert marker_path(FILE.path, "{file}.done") == "s3a://bucket/landing/2026/a.csv.done"
    assert _reason(FILE, ("s3a://bucket/landing/2026/a.csv.done",), marker="{file}.done") is None
    assert [is_marker(f"s3a://b/{name}", "{file}.done")
            for name in ("a.csv.done", "a.csv", ".done", "done")] == [True, False, False, False]
    assert [is_marker(f"s3a://b/{name}", "READY") for name in ("READY", "a.READY")] == [
        True, False]
    assert not is_marker("s3a://b/a.csv", None)


@pytest.mark.parametrize("marker", ["{file}", "done/{file}", "{file}.{file}", ""])
def test_a_marker_must_be_one_file_name(marker):
    with pytest.raises(ValidationError, match="marker"):
        ReadySettings(marker=marker)


def test_min_age_cannot_be_negative():
    with pytest.raises(ValidationError, match="min_age_seconds"):
        ReadySettings(min_age_seconds=-1)
