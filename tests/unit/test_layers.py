"""The package's import layers and acyclicity, as declared in setup.cfg ([importlinter])."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_no_module_imports_a_higher_layer_and_no_package_has_a_cycle():
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports is not None, "import-linter is a dev dependency (setup.cfg)"

    proc = subprocess.run([lint_imports, "--config", str(REPO / "setup.cfg"), "--no-cache"],
                          cwd=REPO / "lib", capture_output=True, text=True, timeout=300)

    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "Contracts: 13 kept, 0 broken." in proc.stdout
    # a stage imports no other stage's step (only pipeline composes steps)
    for stage in ("ingest", "validate", "labels", "features", "train", "promote", "predict",
                  "monitor", "maintain"):
        assert f"No other stage imports {stage}/step.py KEPT" in proc.stdout
