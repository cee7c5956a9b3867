"""The offline index of Data Docs, on folders laid out as GX lays them out (no GX, no Spark)."""

from __future__ import annotations

import re
from pathlib import Path

from sparkmlops.validate import data_docs

SUITE = "penguins_bronze"


def _page(root: Path, name: str, run_time: str) -> Path:
    page = root / "validations" / SUITE / name / run_time / "spark-bronze_penguins.html"
    page.parent.mkdir(parents=True)
    page.write_text("<html>a validation</html>")
    return page


def test_run_name_names_the_batch_and_the_run_safely():
    assert data_docs.run_name("2026-12-06", "0123456789abcdef") == "2026-12-06-01234567"
    assert data_docs.run_name("../b 1/<x>", "feedc0de99") == ".._b_1_x_-feedc0de"


def test_the_index_lists_recorded_and_older_pages_newest_first(tmp_path):
    old = _page(tmp_path, "__none__", "20261201T080000.000000Z")  # before runs were named
    _page(tmp_path, "b1-01234567", "20261205T090000.000000Z")
    _page(tmp_path, "b<2>-89abcdef", "20261206T100000.000000Z")
    data_docs.record_run(tmp_path, suite=SUITE, name="b1-01234567", batch_id="b1",
                         validation_id="0123456789", status="passed")
    data_docs.record_run(tmp_path, suite=SUITE, name="b<2>-89abcdef", batch_id="b<2>",
                         validation_id="89abcdef00", status="failed")

    pages = data_docs.pages_on_disk(tmp_path)
    assert [(p.batch_id, p.run_name, p.status, p.validated_at) for p in pages] == [
        ("b<2>", "b<2>-89abcdef", "failed", "2026-12-06 10:00:00 UTC"),
        ("b1", "b1-01234567", "passed", "2026-12-05 09:00:00 UTC"),
        (None, "__none__", None, "2026-12-01 08:00:00 UTC")]
    assert pages[2].page == old.relative_to(tmp_path).as_posix()

    index = data_docs.write_index(tmp_path)
    text = index.read_text()
    assert index == tmp_path / data_docs.INDEX and "<script" not in text
    assert "<td>b&lt;2&gt;</td>" in text and "b<2>" not in text  # escaped, as text
    hrefs = re.findall(r'<a href="(validations/[^"]+)"', text)
    assert hrefs == ["validations/penguins_bronze/b%3C2%3E-89abcdef/20261206T100000.000000Z/"
                     "spark-bronze_penguins.html", *[p.page for p in pages[1:]]]


def test_a_site_built_aside_joins_the_folder_and_keeps_earlier_pages(tmp_path):
    folder, built = tmp_path / "docs", tmp_path / "built"
    _page(folder, "b1-01234567", "20261205T090000.000000Z")
    data_docs.record_run(folder, suite=SUITE, name="b1-01234567", batch_id="b1",
                         validation_id="0123456789", status="passed")
    _page(built, "b2-89abcdef", "20261206T100000.000000Z")
    data_docs.record_run(built, suite=SUITE, name="b2-89abcdef", batch_id="b2",
                         validation_id="89abcdef00", status="passed_with_warnings")

    index = data_docs.add_to_folder(built, folder)

    assert index == folder / data_docs.INDEX
    assert [p.batch_id for p in data_docs.pages_on_disk(folder)] == ["b2", "b1"]
    assert all((folder / h).is_file()
               for h in re.findall(r'<a href="(validations/[^"]+)"', index.read_text()))
