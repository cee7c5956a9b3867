"""Where config comes from: the defaults packaged in the wheel, and the project's conf dir.

The wheel carries ``sparkmlops/conf/base.yml`` and one overlay per built-in env
(``local.yml``, ``emr.yml``, ``databricks.yml``). A project keeps its own conf dir
with ``datasets/<name>.yml`` and, optionally, ``base.yml`` / ``<env>.yml`` that
overlay the packaged ones. The conf dir is ``--conf-dir``, else
``$SPARKMLOPS_CONF_DIR``, else ``./conf`` under the working directory; it is a
local folder or any Hadoop URI (``s3a://``, ``abfss://``, ``dbfs:/``, ``file:``),
read through the Spark session's Hadoop FileSystem. A local folder never starts
Spark.

Example::

    conf = open_conf_dir(find_conf_dir(None), spark=None)
    conf.read("datasets/penguins.yml")  # the text, or None when there is no such file
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sparkmlops.errors import ConfigError
from sparkmlops.redact import redact_text

log = logging.getLogger(__name__)

CONF_DIR_ENV = "SPARKMLOPS_CONF_DIR"
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# env and dataset names become file names: no separators, no "..", no leading dot
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def is_uri(location: str) -> bool:
    """True for ``scheme:...`` (``s3a://b/x``, ``dbfs:/x``, ``file:/x``), False for a path."""
    return bool(_URI.match(location))


def join(base: str, relative: str) -> str:
    """``relative`` resolved against the folder ``base`` (a local path or a URI)."""
    if not is_uri(base):
        return str((Path(base) / relative).resolve())
    parts = urlsplit(base)
    path = posixpath.normpath(posixpath.join(parts.path or "/", relative))
    return _rebuild(base, parts.scheme, parts.netloc, path)


def parent(location: str) -> str:
    """The folder holding ``location``: ``s3a://b/proj/conf`` -> ``s3a://b/proj``."""
    if not is_uri(location):
        return str(Path(location).resolve().parent)
    parts = urlsplit(location)
    path = posixpath.dirname(posixpath.normpath(parts.path or "/")) or "/"
    return _rebuild(location, parts.scheme, parts.netloc, path)


def _rebuild(original: str, scheme: str, netloc: str, path: str) -> str:
    # keep the authority form the user wrote: file:///x and dbfs:/x both round-trip
    if netloc or original.startswith(f"{scheme}://"):
        return f"{scheme}://{netloc}{path}"
    return f"{scheme}:{path}"


def check_name(option: str, name: str) -> None:
    """An env or dataset name is a file name in the conf dir, never a path."""
    if not _NAME.match(name) or ".." in name:
        raise ConfigError(f"{option} {name!r}: expected letters, digits, '_', '-' or '.' "
                          "(it names a file in the conf dir)")


def find_conf_dir(explicit: str | Path | None) -> str:
    """The project's conf dir: ``explicit``, else ``$SPARKMLOPS_CONF_DIR``, else ``./conf``.

    Never the package's own location: an installed wheel has no project beside it.
    """
    chosen = str(explicit) if explicit else os.environ.get(CONF_DIR_ENV)
    if not chosen:
        local = Path.cwd() / "conf"
        if not local.is_dir():
            raise ConfigError(f"no project conf dir: pass --conf-dir or set {CONF_DIR_ENV} "
                              f"(there is no ./conf under {Path.cwd()})")
        chosen = str(local)
    if is_uri(chosen):
        return chosen.rstrip("/") if not chosen.endswith(":/") else chosen
    return str(Path(chosen).expanduser().resolve())


def packaged_location() -> str:
    """Where the packaged defaults are (a folder, or a folder inside a wheel on sys.path)."""
    return str(resources.files("sparkmlops") / "conf")


def packaged_text(name: str) -> str | None:
    """The packaged ``conf/<name>``, or None. Read through importlib.resources, so it also
    works when the package is imported from the wheel itself (``spark-submit --py-files``)."""
    item = resources.files("sparkmlops") / "conf" / name
    return item.read_text(encoding="utf-8") if item.is_file() else None


@dataclass(frozen=True)
class ConfDir:
    """A project conf dir: where it is, and how to read a file in it."""

    location: str
    reader: Callable[[str], str | None]

    def path(self, name: str) -> str:
        return join(self.location, name)

    def read(self, name: str) -> str | None:
        """The text of ``name`` in the conf dir, or None when there is no such file."""
        return self.reader(self.path(name))


def open_conf_dir(location: str, *, spark: Callable[[], Any] | None) -> ConfDir:
    """Open ``location`` for reading; ``spark`` gives the session a URI is read with
    (called only for a URI). A conf dir that does not exist is a ConfigError."""
    if not is_uri(location):
        if not Path(location).is_dir():
            raise ConfigError(f"conf dir not found: {location}")
        return ConfDir(location, _read_local)
    if spark is None:
        raise ConfigError(f"conf dir {location}: a URI is read through Spark's Hadoop "
                          "FileSystem, and no Spark session was given")
    return ConfDir(location, _hadoop_reader(location, spark()))


def _read_local(path: str) -> str | None:
    file = Path(path)
    return file.read_text(encoding="utf-8") if file.is_file() else None


def _hadoop_reader(location: str, session: Any) -> Callable[[str], str | None]:
    jvm = session.sparkContext._jvm
    hadoop_conf = session.sparkContext._jsc.hadoopConfiguration()
    fs_path = jvm.org.apache.hadoop.fs.Path
    with _java_errors(location):
        root = fs_path(location)
        fs = root.getFileSystem(hadoop_conf)
        if not fs.exists(root) or not fs.getFileStatus(root).isDirectory():
            raise ConfigError(f"conf dir not found: {location}")

    def read(path: str) -> str | None:
        with _java_errors(path):
            target = fs_path(path)
            if not fs.exists(target) or not fs.getFileStatus(target).isFile():
                return None
            stream = fs.open(target)
            try:
                buffer = jvm.java.io.ByteArrayOutputStream()
                jvm.org.apache.hadoop.io.IOUtils.copyBytes(stream, buffer, 65536, False)
                return str(buffer.toString("UTF-8"))
            finally:
                stream.close()

    log.info("reading config from %s through %s", redact_text(location),
             fs.getClass().getName())
    return read


@contextmanager
def _java_errors(where: str) -> Iterator[None]:
    """Turn a JVM exception (no credentials, unknown scheme, ...) into one ConfigError line."""
    try:
        yield
    except Exception as exc:
        # py4j's Py4JJavaError, known by what it carries: config imports no Spark code
        java = getattr(exc, "java_exception", None)
        if java is None:
            raise
        message = str(java.getMessage() or "")
        first = message.splitlines()[0][:300] if message else ""
        raise ConfigError(f"cannot read {where}: {java.getClass().getName()}: {first}") \
            from None
