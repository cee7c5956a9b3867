"""Issue 21: actionlint (with shellcheck on every ``run:`` script) on every workflow we
generate: an initialised project's, and the deploy workflows of each platform with every
option on. actionlint is built by ``make tools`` into ``.tools/bin`` (11 s cold)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from sparkmlops.cli import main
from sparkmlops.config import load_settings
from sparkmlops.deploy import render, write_files
from tests.unit.deploy.test_workflows import DATABRICKS, EMR

REPO = Path(__file__).resolve().parents[3]
ACTIONLINT = Path(os.environ.get("SPARKMLOPS_TOOLS_DIR", REPO / ".tools")) / "bin" / "actionlint"
EVERY_EMR_OPTION = [
    "deploy.emr.serverless={application_id: 00fabcdefg123456, "
    "execution_role_arn: 'arn:aws:iam::123456789012:role/job'}",
    "deploy.emr.schedule_on=serverless",
    "deploy.emr.failure_topic_arn=arn:aws:sns:eu-west-1:123456789012:ml-oncall"]


def _actionlint(folder: Path) -> subprocess.CompletedProcess[str]:
    if not ACTIONLINT.exists():
        pytest.fail(f"no actionlint at {ACTIONLINT}: run `make tools` (make test does)")
    assert shutil.which("shellcheck"), "no shellcheck: actionlint would skip the run: scripts"
    files = sorted(str(p) for p in (folder / ".github/workflows").glob("*.yml"))
    assert files
    return subprocess.run([str(ACTIONLINT), "-no-color", *files], cwd=folder,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("platform", ["init", "emr", "databricks"])
def test_every_generated_workflow_passes_actionlint(tmp_path, platform):
    project = tmp_path / "project"
    if platform == "init":  # what a new project commits
        assert main(["init", str(project)]) == 0
    else:  # `deploy --target <platform>,github` with every option of the platform on
        extra = [*EMR, *EVERY_EMR_OPTION] if platform == "emr" else DATABRICKS
        settings = load_settings(platform, "penguins",
                                 overrides=[f"project_dir={project}", *extra])
        write_files(render(settings, [platform, "github"], out_dir=project))

    result = _actionlint(project)

    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_actionlint_reports_a_broken_workflow(tmp_path):
    assert main(["init", str(tmp_path / "project")]) == 0
    workflow = next((tmp_path / "project/.github/workflows").glob("*deploy-emr.yml"))
    # an unquoted variable in a run: script (shellcheck SC2086) and a misspelt context
    text = workflow.read_text().replace("\n        sparkmlops deploy",
                                        "\n        echo $1; sparkmlops deploy", 1)
    workflow.write_text(text.replace("github.event_name", "github.event_nam", 1))

    result = _actionlint(tmp_path / "project")

    assert result.returncode == 1
    assert "SC2086" in result.stdout and "event_nam" in result.stdout
