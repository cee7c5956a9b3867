"""Each stage folder's README.md names exactly the modules of its folder, and links its manual."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "lib" / "sparkmlops"

# folder → its page in docs/
MANUALS = {
    "ingest": "ingest.md",
    "validate": "validate.md",
    "features": "features.md",
    "train": "train.md",
    "promote": "promote.md",
    "predict": "predict.md",
    "monitor": "monitor.md",
    "config": "configuration.md",
    "deploy": "deploy.md",
}

MODULE = re.compile(r"`([A-Za-z0-9_]+\.py)`")
MANUAL = re.compile(r"^Manual: \[[^\]]+\]\(([^)]+)\)", re.MULTILINE)


@pytest.mark.parametrize("stage", sorted(MANUALS))
def test_each_stage_readme_names_exactly_the_modules_of_its_folder(stage: str) -> None:
    folder = PACKAGE / stage
    readme = (folder / "README.md").read_text(encoding="utf-8")

    named = sorted(set(MODULE.findall(readme)))
    present = sorted(p.name for p in folder.glob("*.py") if p.name != "__init__.py")
    assert named == present

    links = MANUAL.findall(readme)
    assert len(links) == 1, f"{stage}/README.md needs one 'Manual: [...](...)' line"
    target = (folder / links[0]).resolve()
    assert target == (REPO / "docs" / MANUALS[stage]).resolve()
    assert target.is_file()
