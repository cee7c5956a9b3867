"""A landing file is known by its bytes, not its mtime (issue 11, case 1): a touched file or a
byte-identical copy is not read again; a file whose bytes changed follows
``source.on_changed_file``."""

from __future__ import annotations

from sparkmlops.ingest.records import (
    landing_batch_id,
)


def test_batch_id_follows_content_not_mtime(spark, tmp_path, landing_csv, touch):
    landing = tmp_path / "landing"
    landing_csv.write(landing, "a.csv", landing_csv.birds(1))
    first = landing_batch_id(spark, str(landing))
    touch(landing / "a.csv")
    touched = landing_batch_id(spark, str(landing))
    landing_csv.write(landing, "a.csv", landing_csv.birds(2))
    changed = landing_batch_id(spark, str(landing))

    assert touched == first
    assert changed != first
    assert first.startswith("b") and len(first) == 13
