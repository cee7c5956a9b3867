"""A landing file is known by its bytes, not its mtime (issue 11, case 1): a touched file or a
byte-identical copy is not read again; a file whose bytes changed follows
``source.on_changed_file``."""

from __future__ import annotations

from sparkmlops.ingest.records import default_batch_id


def test_batch_id_follows_content_not_mtime(spark, tmp_path, landing_csv, touch, make_settings):
    landing = tmp_path / "landing"
    settings = make_settings(f"dataset.source.path={landing}")  # no manifest: every file is new
    landing_csv.write(landing, "a.csv", landing_csv.birds(1))
    first = default_batch_id(spark, settings)
    touch(landing / "a.csv")
    touched = default_batch_id(spark, settings)
    landing_csv.write(landing, "a.csv", landing_csv.birds(2))
    changed = default_batch_id(spark, settings)

    assert touched == first
    assert changed != first
    assert first.startswith("b") and len(first) == 13
