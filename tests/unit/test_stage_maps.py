"""The folder READMEs are the code map: one per package folder, found on disk, not listed here.

Each names exactly the modules of its folder and links its page of the manual; the top-level
README and docs/development.md link every folder's README; and the docs link only what
exists and name only Python files that exist, so a move that forgets a map fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LIB = REPO / "lib"
PACKAGE = LIB / "sparkmlops"
# every package folder: a folder under lib/sparkmlops (itself included) that holds a module
FOLDERS = sorted({p.parent for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts})
FOLDER_IDS = [str(f.relative_to(LIB)) for f in FOLDERS]
# the pages people read: the manual, the README, the folder READMEs, the benchmarks' page
PAGES = [REPO / "README.md", REPO / "benchmarks" / "README.md",
         *sorted((REPO / "docs").glob("*.md")), *(f / "README.md" for f in FOLDERS)]
PAGE_IDS = [str(p.relative_to(REPO)) for p in PAGES]
# the folders of the repo that hold its Python files
SOURCES = ("lib", "jobs", "tests", "benchmarks", "scripts", "notebooks")
# files of the project `sparkmlops init` writes, which the deploy manual describes: they
# exist in a user's project, not in this repo
PROJECT_FILES = {"tests/test_config.py", "tests/test_pipeline.py"}

MODULE = re.compile(r"`([A-Za-z0-9_]+\.py)`")
MODULE_PATH = re.compile(r"`([A-Za-z0-9_./-]+/[A-Za-z0-9_]+\.py)`")
ANY_PY = re.compile(r"`([A-Za-z0-9_./-]*[A-Za-z0-9_]+\.py)`")
MANUAL = re.compile(r"^Manual: \[[^\]]+\]\(([^)]+)\)", re.MULTILINE)
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def _readme(folder: Path) -> str:
    readme = folder / "README.md"
    assert readme.is_file(), f"{folder.relative_to(LIB)}/ needs a README.md that maps its modules"
    return readme.read_text(encoding="utf-8")


def _anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings (lower case, punctuation dropped)."""
    headings = re.findall(r"^#{1,6} (.+)$", FENCE.sub("", page.read_text(encoding="utf-8")),
                          re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def _local_links(page: Path) -> list[str]:
    """The page's links to files of the repo (not URLs, not anchors within the page)."""
    return [t for t in LINK.findall(FENCE.sub("", page.read_text(encoding="utf-8")))
            if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


def _readmes_linked_from(page: Path) -> set[Path]:
    return {(page.parent / t.partition("#")[0]).resolve() for t in _local_links(page)
            if t.partition("#")[0].endswith("README.md")}


def test_the_package_folders_are_found_on_disk():
    names = {str(f.relative_to(PACKAGE)) for f in FOLDERS}

    assert {".", "config", "tracking", "ingest", "validate", "features", "train", "promote",
            "predict", "monitor", "maintain", "pipeline", "deploy", "init"} <= names


@pytest.mark.parametrize("folder", FOLDERS, ids=FOLDER_IDS)
def test_each_package_folder_readme_names_exactly_the_modules_of_its_folder(folder: Path):
    named = sorted(set(MODULE.findall(_readme(folder))))
    present = sorted(p.name for p in folder.glob("*.py") if p.name != "__init__.py")

    assert named == present


@pytest.mark.parametrize("folder", FOLDERS, ids=FOLDER_IDS)
def test_each_package_folder_readme_links_one_page_of_the_manual(folder: Path):
    # every folder, stage or not: a reader who lands in tracking/ or at the top level
    # needs the page that explains what the code keeps as much as one in train/ does
    links = MANUAL.findall(_readme(folder))

    assert len(links) == 1, f"{folder.relative_to(LIB)}/README.md needs one 'Manual: [...](...)'"
    path, _, anchor = links[0].partition("#")
    target = (folder / path).resolve()
    assert target.parent == REPO / "docs" or target == REPO / "README.md"
    assert target.is_file()
    assert not anchor or anchor in _anchors(target)


@pytest.mark.parametrize("folder", FOLDERS, ids=FOLDER_IDS)
def test_the_modules_a_folder_readme_names_in_other_folders_exist(folder: Path):
    # `train/reference.py` in monitor/README.md: relative to the package
    named = MODULE_PATH.findall(_readme(folder))

    assert [m for m in named if not (PACKAGE / m).is_file()] == []


def test_the_top_level_readme_links_the_readme_of_every_other_package_folder():
    linked = _readmes_linked_from(PACKAGE / "README.md")

    assert linked == {f / "README.md" for f in FOLDERS if f != PACKAGE}


def test_the_development_guide_maps_the_code_by_linking_every_folder_readme():
    linked = _readmes_linked_from(REPO / "docs" / "development.md")

    assert {f / "README.md" for f in FOLDERS} <= linked


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_link_of_a_page_reaches_a_file_and_heading_that_exist(page: Path):
    broken = []
    for target in _local_links(page):
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve()
        if not linked.exists() or (anchor and linked.suffix == ".md"
                                   and anchor not in _anchors(linked)):
            broken.append(target)

    assert broken == []


@pytest.mark.parametrize("page", PAGES, ids=PAGE_IDS)
def test_every_python_file_a_page_names_exists(page: Path):
    # a path is read from the repo's root, the package or the page's folder; a bare name
    # must be some file of the repo (`tracking.py` after tracking became a folder is not)
    names = {p.name for top in SOURCES for p in (REPO / top).rglob("*.py")}
    missing = []
    for named in ANY_PY.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        if "/" in named:
            found = named in PROJECT_FILES or any(
                (base / named).is_file() for base in (REPO, PACKAGE, page.parent))
        else:
            found = named in names
        if not found:
            missing.append(named)

    assert missing == []
