"""Pages rendered by a real headless Chromium (Debian's), offline: the DOM text a person
would read and a screenshot.

`make test` installs the chromium package; SPARKMLOPS_CHROMIUM (default
/usr/bin/chromium) points at it. A missing browser fails the test: it is not skipped.
Used by tests/integration/test_data_docs.py and tests/e2e/test_ui.py.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
from pathlib import Path

CHROMIUM = os.environ.get("SPARKMLOPS_CHROMIUM", "/usr/bin/chromium")
# without the background-networking flags Chromium keeps dialling out of a closed network
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# no network even where the machine has one: every http(s) request goes to a closed port,
# but for a server the test started on 127.0.0.1 (`<-loopback>`, as this list was, removes
# Chromium's own bypass of loopback: the MLflow UI then failed, ERR_PROXY_CONNECTION_FAILED)
OFFLINE = ["--proxy-server=127.0.0.1:9", "--proxy-bypass-list=127.0.0.1"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def render(page: Path | str, profile: Path, *extra: str) -> str:
    """Chromium's stdout for ``page`` (a file, or a URL) with the ``extra`` flags:
    the DOM with ``--dump-dom``."""
    assert Path(CHROMIUM).exists(), (
        f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium package")
    url = page.as_uri() if isinstance(page, Path) else page
    proc = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, url],
        capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def visible_text(dom: str) -> str:
    """What a DOM shows as text: tags, scripts and styles dropped, spaces collapsed."""
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", dom)))


def is_png(shot: Path, min_bytes: int) -> bool:
    """``shot`` is a PNG file of ``min_bytes`` or more (a blank page compresses to less)."""
    return shot.read_bytes()[:8] == PNG_MAGIC and shot.stat().st_size >= min_bytes
