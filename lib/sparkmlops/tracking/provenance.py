"""Which sparkmlops code a run used: the package version and the sha256 of its wheel.

On a cluster there is no git checkout, so the commit alone cannot say which code
ran. Every run and registered model version also records:

- ``sparkmlops.version``: the installed distribution's version (importlib.metadata);
- ``sparkmlops.wheel_sha256``: the sha256 of the wheel the code came from, found as
  follows. Imported from a wheel file on ``sys.path`` (``spark-submit --py-files
  sparkmlops.whl``): that file is hashed. Installed by pip from a wheel file or URL:
  the hash pip recorded in ``direct_url.json``. Installed from a package index (pip
  keeps no hash of the wheel then): ``unknown``. An editable install or a source tree
  on ``PYTHONPATH``: ``editable`` (there is no wheel; the git commit says which code),
  with the version from ``sparkmlops.__version__``;
- ``sparkmlops.install``: how the code was found, in words (for a person reading the run).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata, resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import sparkmlops

log = logging.getLogger(__name__)

DIST_NAME = "sparkmlops"
TAG_VERSION = "sparkmlops.version"
TAG_WHEEL_SHA256 = "sparkmlops.wheel_sha256"
TAG_INSTALL = "sparkmlops.install"


@dataclass(frozen=True)
class CodeIdentity:
    version: str
    wheel_sha256: str
    install: str

    def tags(self) -> dict[str, str]:
        """The run tags."""
        return {TAG_VERSION: self.version, TAG_WHEEL_SHA256: self.wheel_sha256,
                TAG_INSTALL: self.install}


@functools.cache
def code_identity() -> CodeIdentity:
    """The identity of the sparkmlops code imported in this process (computed once)."""
    package_init = Path(sparkmlops.__file__ or "").resolve()
    wheel = _enclosing_archive(package_init)
    if wheel is not None:
        return CodeIdentity(_version_in_archive(wheel), file_sha256(wheel),
                            f"wheel on sys.path: {wheel}")
    for dist in metadata.distributions(name=DIST_NAME):
        if _holds(dist, package_init) and not _source_tree_metadata(dist, package_init):
            return _installed_identity(dist)
    editable = _editable_url()
    where = package_init.parent.parent
    install = (f"editable install of {editable}" if editable and _under(where, editable)
               else f"source tree {where}")
    # not a built distribution: the imported module's own version (setup.cfg reads it too)
    return CodeIdentity(sparkmlops.__version__, "editable", install)


@contextmanager
def package_source() -> Iterator[Path]:
    """A folder holding the imported ``sparkmlops`` package's files, for the ``with`` block.

    The package's own folder when it was imported from one (site-packages, a source tree).
    Imported from a wheel on ``sys.path`` (``spark-submit --py-files sparkmlops.whl``)
    there is no such folder: the package is copied out of the archive into a temporary
    one, removed after the block.
    """
    package_init = Path(sparkmlops.__file__ or "").resolve()
    if package_init.parent.is_dir():
        yield package_init.parent
        return
    with tempfile.TemporaryDirectory(prefix="sparkmlops-package-") as tmp:
        target = Path(tmp) / "sparkmlops"
        _copy_tree(resources.files("sparkmlops"), target)
        log.info("copied sparkmlops out of %s into %s", _enclosing_archive(package_init), target)
        yield target


def _copy_tree(source: Traversable, target: Path) -> None:
    target.mkdir(parents=True)
    for entry in source.iterdir():
        if entry.name == "__pycache__":
            continue
        if entry.is_dir():
            _copy_tree(entry, target / entry.name)
        else:
            (target / entry.name).write_bytes(entry.read_bytes())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _enclosing_archive(path: Path) -> Path | None:
    """The wheel (zip) file that ``path`` is inside of, for code imported by zipimport."""
    for candidate in path.parents:
        if candidate.is_file():
            return candidate
    return None


def _version_in_archive(wheel: Path) -> str:
    for dist in metadata.distributions(name=DIST_NAME, path=[str(wheel)]):
        return str(dist.version)
    return "unknown"


def _holds(dist: Any, package_init: Path) -> bool:
    """Whether ``dist`` installed the very file that was imported."""
    try:
        return Path(dist.locate_file("sparkmlops/__init__.py")).resolve() == package_init
    except (OSError, TypeError, ValueError):
        return False


def _source_tree_metadata(dist: Any, package_init: Path) -> bool:
    """An ``<name>.egg-info`` beside the package: what ``pip install -e`` (setuptools)
    leaves in a source tree, not an installed distribution."""
    where = Path(str(getattr(dist, "_path", "")))
    return where.suffix == ".egg-info" and where.parent == package_init.parent.parent


def _installed_identity(dist: Any) -> CodeIdentity:
    direct = _direct_url(dist)
    archive = direct.get("archive_info") or {}
    sha = (archive.get("hashes") or {}).get("sha256")
    if not sha and str(archive.get("hash", "")).startswith("sha256="):
        sha = str(archive["hash"]).split("=", 1)[1]
    if direct.get("url"):
        install = f"pip install {direct['url']}"
    else:
        install = "pip install from a package index (pip keeps no wheel hash)"
    return CodeIdentity(str(dist.version), str(sha or "unknown"), install)


def _direct_url(dist: Any) -> dict[str, Any]:
    text = dist.read_text("direct_url.json")
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _editable_url() -> str | None:
    for dist in metadata.distributions(name=DIST_NAME):
        direct = _direct_url(dist)
        if (direct.get("dir_info") or {}).get("editable"):
            return str(direct.get("url"))
    return None


def _under(folder: Path, url: str) -> bool:
    root = Path(url.removeprefix("file://")).resolve()
    return folder == root or root in folder.parents
