"""Where the imported sparkmlops code lives, when it comes from a wheel on sys.path."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import sparkmlops

# the package under test, wherever it is imported from (the checkout's lib/ or an install)
PACKAGE = Path(sparkmlops.__file__).resolve().parent

# what `spark-submit --py-files sparkmlops.whl` does: the wheel is a zip on sys.path
SCRIPT = """
import json, sys
from pathlib import Path

import sparkmlops
import sparkmlops
from sparkmlops.tracking.provenance import package_source
with package_source() as folder:
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    feature_code = (folder / "features" / "transforms.py").read_text()
    print(json.dumps({"imported": sparkmlops.__file__, "folder": str(folder),
                      "files": files, "feature_code": feature_code}))
print(json.dumps({"exists_after": Path(folder).exists()}))
"""


def test_a_package_imported_from_a_wheel_is_copied_out_to_a_folder_for_the_block(tmp_path):
    wheel = tmp_path / "sparkmlops-0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path in sorted(PACKAGE.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, f"sparkmlops/{path.relative_to(PACKAGE).as_posix()}")

    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          cwd=tmp_path, env={"PYTHONPATH": str(wheel), "PATH": "/usr/bin"},
                          timeout=120)

    assert proc.returncode == 0, proc.stderr
    inside, after = (json.loads(line) for line in proc.stdout.splitlines())
    assert inside["imported"] == f"{wheel}/sparkmlops/__init__.py"
    assert Path(inside["folder"]).name == "sparkmlops"
    assert not inside["folder"].startswith(str(wheel))
    expected = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*")
                      if p.is_file() and "__pycache__" not in p.parts)
    assert inside["files"] == expected
    assert inside["feature_code"] == (PACKAGE / "features" / "transforms.py").read_text()
    assert after == {"exists_after": False}


def test_a_package_imported_from_a_folder_is_that_folder():
    from sparkmlops.tracking.provenance import package_source

    with package_source() as folder:
        assert folder == PACKAGE.resolve()
    assert folder.is_dir()
