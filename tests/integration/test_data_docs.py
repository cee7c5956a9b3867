"""The Data Docs a validate run writes, rendered by a real headless Chromium (Debian's).

The browser, its offline flags and the helpers: tests/chromium.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

from sparkmlops.ingest.step import ingest_step
from sparkmlops.tracking.runs import StepTracker
from sparkmlops.validate.data_docs import INDEX
from sparkmlops.validate.step import _run_quality_checks, validate_step
from tests.chromium import OFFLINE, is_png, render, visible_text


def test_data_docs_render_the_suite_results_in_chromium(
        spark, make_settings, tmp_path, sample_landing):
    # expectation 10 (mean culmen length, a warning) made to fail: a failure to show
    settings = make_settings(f"dataset.source.path={sample_landing / 'penguins_raw_PAL0708.csv'}",
                             "dataset.validate.expectations.10.kwargs.min_value=50")
    ingest_step(spark, settings, "b1")
    result = validate_step(spark, settings, "b1")
    runs = Path(result.data_docs)  # the offline index, what the job prints
    docs = runs.parent
    index = docs / "index.html"  # GX's own
    assert runs.name == INDEX and runs.is_file()

    # the index names the suite and links this run's page (its table is drawn by
    # bootstrap-table from a CDN, so offline Chromium shows the page without it)
    assert index.is_file()
    assert "Data Docs | sparkmlops" in visible_text(
        render(index, tmp_path / "chromium", "--dump-dom"))
    links = re.findall(r"'_table_row_link_path': '(validations/penguins_bronze/[^']+\.html)'",
                       index.read_text())
    assert len(links) == 1 and "'expectation_suite_name': 'penguins_bronze'" in index.read_text()

    page = index.parent / links[0]
    text = visible_text(render(page, tmp_path / "chromium", "--dump-dom"))
    assert "Expectation Suite: penguins_bronze" in text
    assert "Status: Failed" in text
    assert re.search(r"Evaluated Expectations 11 Successful Expectations 10 "
                     r"Unsuccessful Expectations 1", text), text[:3000]
    assert "mean must be greater than or equal to 50" in text
    for column in ("culmen_length_mm", "body_mass_g", "island", "species", "study_name"):
        assert column in text

    shot = tmp_path / "validation.png"
    render(page, tmp_path / "chromium", f"--screenshot={shot}", "--window-size=1280,1600")
    assert is_png(shot, min_bytes=20_000)

    # the GX run is named after the batch and the step's MLflow run: no __none__ page
    assert page.relative_to(index.parent).parts[2] == f"b1-{result.run_id[:8]}"
    assert f"Run Name b1-{result.run_id[:8]}" in text

    # a second batch validated into the same folder (the suite alone, on two rows, a
    # critical not-null failing), as the next validate run of the job would
    other = make_settings("dataset.validate.expectations=[{expectation: "
                          "expect_column_values_to_not_be_null, kwargs: {column: study_name}}]")
    report = _run_quality_checks(
        spark.createDataFrame([("PAL0708",), (None,)], "study_name string"),
        other.dataset.validate_, StepTracker(step="validate", run_id="feedc0de" * 4),
        dataset="penguins", batch_id="b2", data_docs_dir=str(docs))
    assert report.status == "failed" and report.data_docs_index == str(runs)
    assert not [p for p in docs.rglob("*") if "__none__" in str(p.relative_to(docs))]

    # the offline index lists both runs, newest first, each linking its page on disk
    dom = render(runs, tmp_path / "chromium", *OFFLINE, "--dump-dom")
    rows = [[visible_text(c).strip() for c in re.findall(r"<td>(.*?)</td>", row, flags=re.S)]
            for row in re.findall(r"<tr class=[^>]*>(.*?)</tr>", dom, flags=re.S)]
    assert [r[:2] + r[3:] for r in rows] == [
        ["b2", "b2-feedc0de", "penguins_bronze", "failed", "feedc0de" * 4],
        ["b1", f"b1-{result.run_id[:8]}", "penguins_bronze", "passed_with_warnings",
         result.run_id]]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", r[2]) for r in rows)
    hrefs = [unquote(h) for h in re.findall(r'<a href="(validations/[^"]+)"', dom)]
    assert len(hrefs) == 2 and hrefs[1] == links[0]
    assert all((docs / h).is_file() for h in hrefs)
    assert "b2-feedc0de" in hrefs[0].split("/")


def test_without_a_data_docs_dir_the_pages_are_artifacts_of_the_run(spark, make_settings,
                                                                     tmp_path):
    import mlflow

    from sparkmlops.tracking.runs import configure_mlflow
    from sparkmlops.validate.step import DATA_DOCS_ARTIFACT

    settings = make_settings(
        "validate.data_docs_dir=null",
        "dataset.validate.expectations=[{expectation: expect_column_values_to_not_be_null, "
        "kwargs: {column: study_name}}]")
    batch = spark.createDataFrame([("PAL0708",), (None,)], "study_name string")
    configure_mlflow(settings)

    with mlflow.start_run() as run:
        tracker = StepTracker(step="validate", run_id=run.info.run_id)
        report = _run_quality_checks(batch, settings.dataset.validate_, tracker,
                                     dataset="penguins", batch_id="b 9", data_docs_dir=None)

    assert report.status == "failed"
    assert report.data_docs_index == (f"{run.info.artifact_uri}/{DATA_DOCS_ARTIFACT}/"
                                      "index.html")
    local = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id,
                                                     artifact_path=DATA_DOCS_ARTIFACT))
    pages = sorted(str(p.relative_to(local)) for p in local.rglob("*.html"))
    name = f"b_9-{run.info.run_id[:8]}"  # the batch id made safe for a folder name
    assert [p.split("/")[:3] for p in pages] == [
        ["expectations", "penguins_bronze.html"], ["index.html"], [INDEX],
        ["validations", "penguins_bronze", name]]
    assert "'expectation_suite_name': 'penguins_bronze'" in (local / "index.html").read_text()
    # the offline index of the artifact folder lists this validation, linked
    assert re.findall(r'<a href="(validations/[^"]+)">([^<]+)</a>',
                      (local / INDEX).read_text()) == [(pages[-1], name)]
    assert not (tmp_path / "data_docs").exists()  # nothing lasting on the driver's disk
