"""The Data Docs a validate run writes, rendered by a real headless Chromium (Debian's).

`make test` installs the chromium package; SPARKMLOPS_CHROMIUM (default
/usr/bin/chromium) points at it. A missing browser fails the test: it is not skipped.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
from pathlib import Path

from sparkmlops.ingest.step import ingest_step
from sparkmlops.validate.step import validate_step

CHROMIUM = os.environ.get("SPARKMLOPS_CHROMIUM", "/usr/bin/chromium")
# without the background-networking flags Chromium keeps dialling out of a closed network
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _render(page: Path, profile: Path, *extra: str) -> str:
    assert Path(CHROMIUM).exists(), (
        f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium package")
    proc = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
        capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _text(dom: str) -> str:
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", dom)))


def test_data_docs_render_the_suite_results_in_chromium(
        spark, make_settings, tmp_path, sample_landing):
    # expectation 10 (mean culmen length, a warning) made to fail: a failure to show
    settings = make_settings(f"dataset.source.path={sample_landing / 'penguins_raw_PAL0708.csv'}",
                             "dataset.validate.expectations.10.kwargs.min_value=50")
    ingest_step(spark, settings, "b1")
    result = validate_step(spark, settings, "b1")
    index = Path(result.data_docs)

    # the index names the suite and links this run's page (its table is drawn by
    # bootstrap-table from a CDN, so offline Chromium shows the page without it)
    assert index.is_file()
    assert "Data Docs | sparkmlops" in _text(_render(index, tmp_path / "chromium", "--dump-dom"))
    links = re.findall(r"'_table_row_link_path': '(validations/penguins_bronze/[^']+\.html)'",
                       index.read_text())
    assert len(links) == 1 and "'expectation_suite_name': 'penguins_bronze'" in index.read_text()

    page = index.parent / links[0]
    text = _text(_render(page, tmp_path / "chromium", "--dump-dom"))
    assert "Expectation Suite: penguins_bronze" in text
    assert "Status: Failed" in text
    assert re.search(r"Evaluated Expectations 11 Successful Expectations 10 "
                     r"Unsuccessful Expectations 1", text), text[:3000]
    assert "mean must be greater than or equal to 50" in text
    for column in ("culmen_length_mm", "body_mass_g", "island", "species", "study_name"):
        assert column in text

    shot = tmp_path / "validation.png"
    _render(page, tmp_path / "chromium", f"--screenshot={shot}", "--window-size=1280,1600")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_without_a_data_docs_dir_the_pages_are_artifacts_of_the_run(spark, make_settings,
                                                                     tmp_path):
    import mlflow

    from sparkmlops.tracking.runs import StepTracker, configure_mlflow
    from sparkmlops.validate.step import DATA_DOCS_ARTIFACT, _run_quality_checks

    settings = make_settings(
        "validate.data_docs_dir=null",
        "dataset.validate.expectations=[{expectation: expect_column_values_to_not_be_null, "
        "kwargs: {column: study_name}}]")
    batch = spark.createDataFrame([("PAL0708",), (None,)], "study_name string")
    configure_mlflow(settings)

    with mlflow.start_run() as run:
        tracker = StepTracker(step="validate", run_id=run.info.run_id)
        report = _run_quality_checks(batch, settings.dataset.validate_, tracker,
                                     dataset="penguins", data_docs_dir=None)

    assert report.status == "failed"
    assert report.data_docs_index == (f"{run.info.artifact_uri}/{DATA_DOCS_ARTIFACT}/"
                                      "index.html")
    local = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id,
                                                     artifact_path=DATA_DOCS_ARTIFACT))
    pages = sorted(str(p.relative_to(local)) for p in local.rglob("*.html"))
    assert [p.split("/")[:2] for p in pages] == [
        ["expectations", "penguins_bronze.html"], ["index.html"],
        ["validations", "penguins_bronze"]]
    assert "'expectation_suite_name': 'penguins_bronze'" in (local / "index.html").read_text()
    assert not (tmp_path / "data_docs").exists()  # nothing lasting on the driver's disk
