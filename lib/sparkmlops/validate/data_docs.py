"""Data Docs that open offline: a plain index of every validation page on disk.

GX's ``index.html`` draws its list of runs with bootstrap-table loaded from public
CDNs (the package ships none of those assets), so opened from disk on a machine
without network the list is empty; and built by an ephemeral context it lists only
the run that built it. ``runs.html`` beside it is static HTML without script, rewritten
on each validation from the pages present on disk, so it lists every batch validated
into the folder.

Each validation names its GX run ``<batch id>-<MLflow run id, 8 chars>``
(:func:`run_name`), so its page lives under
``validations/<suite>/<run name>/<run time>/`` instead of GX's ``__none__``, and a
small JSON beside the page (:func:`record_run`) keeps what the path cannot: the batch
id as given, the validate step's MLflow run id and the gate status.
"""

from __future__ import annotations

import html
import json
import logging
import re
import shutil
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger(__name__)

INDEX = "runs.html"
GX_TIME_FORMAT = "%Y%m%dT%H%M%S.%fZ"  # how GX names a run-time folder


@dataclass(frozen=True)
class ValidationPage:
    """One validation page of the folder, and what is known of its run."""

    page: str  # relative to the Data Docs folder, ``/``-separated
    suite: str
    run_name: str
    run_time: str  # GX's run-time folder name
    batch_id: str | None = None  # None: a page written without a record (an older run)
    validation_id: str | None = None  # the validate step's MLflow run id
    status: str | None = None  # passed, passed_with_warnings or failed

    @property
    def validated_at(self) -> str:
        try:
            return datetime.strptime(self.run_time, GX_TIME_FORMAT).strftime(
                "%Y-%m-%d %H:%M:%S UTC")
        except ValueError:
            return self.run_time


def run_name(batch_id: str, validation_id: str) -> str:
    """The GX run name of a validation: the batch and the step's MLflow run (8 chars), with
    any character unsafe in a folder name replaced."""
    return f"{re.sub(r'[^A-Za-z0-9._-]+', '_', batch_id)}-{validation_id[:8]}"


def record_run(
    docs_dir: str | Path, *, suite: str, name: str, batch_id: str, validation_id: str,
    status: str,
) -> list[ValidationPage]:
    """Write the record (``<page>.json``) of the run ``name``'s pages; return them."""
    root = Path(docs_dir)
    pages = []
    for path in sorted((root / "validations" / suite / name).glob("*/*.html")):
        page = ValidationPage(
            page=path.relative_to(root).as_posix(), suite=suite, run_name=name,
            run_time=path.parent.name, batch_id=batch_id, validation_id=validation_id,
            status=status)
        path.with_suffix(".json").write_text(json.dumps(asdict(page), indent=1))
        pages.append(page)
    return pages


def pages_on_disk(docs_dir: str | Path) -> list[ValidationPage]:
    """Every validation page of the folder, newest first; a page without a record (written
    before runs were named) is listed with what its path says."""
    root = Path(docs_dir)
    pages = []
    for path in (root / "validations").glob("*/*/*/*.html"):
        record = path.with_suffix(".json")
        if record.is_file():
            pages.append(ValidationPage(**json.loads(record.read_text())))
            continue
        suite, name, run_time = path.relative_to(root / "validations").parts[:3]
        pages.append(ValidationPage(page=path.relative_to(root).as_posix(), suite=suite,
                                    run_name=name, run_time=run_time))
    return sorted(pages, key=lambda p: (p.run_time, p.page), reverse=True)


def render_index(pages: list[ValidationPage]) -> str:
    """The static index page: one table row per validation page, no script, no remote
    asset (it is read from disk, often on a machine without network)."""
    def cell(value: str | None) -> str:
        return f"<td>{html.escape(value) if value else '&mdash;'}</td>"

    rows = "\n".join(
        f'<tr class="{html.escape(p.status or "unknown")}">{cell(p.batch_id)}'
        f'<td><a href="{html.escape(quote(p.page))}">{html.escape(p.run_name)}</a></td>'
        f"{cell(p.validated_at)}{cell(p.suite)}{cell(p.status)}{cell(p.validation_id)}</tr>"
        for p in pages)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Data Docs: validation runs</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.8em; text-align: left; }}
tr.failed td {{ background: #fde2e2; }}
tr.passed_with_warnings td {{ background: #fff4d6; }}
</style>
</head>
<body>
<h1>Data Docs: validation runs</h1>
<p>{len(pages)} validation page(s), newest first. Each run is named
<code>&lt;batch id&gt;-&lt;MLflow run id&gt;</code>.
GX's own <a href="index.html">index</a> needs network access to draw its list.</p>
<table>
<thead><tr><th>Batch</th><th>Run name</th><th>Validated at</th><th>Suite</th>
<th>Status</th><th>MLflow run</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</body>
</html>
"""


def write_index(docs_dir: str | Path) -> Path:
    """Rewrite ``runs.html`` from the validation pages present in ``docs_dir``."""
    pages = pages_on_disk(docs_dir)
    index = Path(docs_dir) / INDEX
    index.write_text(render_index(pages))
    log.info("Data Docs index %s lists %d validation page(s)", index, len(pages))
    return index


def add_to_folder(built: str | Path, folder: str | Path) -> Path:
    """Copy a site GX built aside (one validation) into the lasting ``folder``, keeping the
    pages of earlier validations there, and rewrite the folder's ``runs.html``."""
    shutil.copytree(built, folder, dirs_exist_ok=True)
    return write_index(folder)
