"""The exploration notebook runs top to bottom against a real pipeline run (so it cannot rot)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nbclient
import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "explore_pipeline_run.ipynb"
KERNEL = "python3"
CELL_TIMEOUT = 600

pytestmark = pytest.mark.e2e


@contextmanager
def environ(**values: str | None) -> Iterator[None]:
    """Set (None: unset) environment variables for the block, then restore them.

    The kernel is started inside the block, so it inherits exactly this environment.
    """
    saved = {key: os.environ.get(key) for key in values}
    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _runs_this_python(argv: list[str]) -> bool:
    # jupyter_client replaces a bare python/python3/python3.X with sys.executable.
    bare = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}
    return bool(argv) and (argv[0] in bare or argv[0] == sys.executable)


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Env making "python3" a kernel of this interpreter (the venv), without installing one."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL)
        if _runs_this_python(spec.argv):
            return {}
    except NoSuchKernel:
        pass
    jupyter_path = tmp_path_factory.mktemp("jupyter")
    kernel_dir = jupyter_path / "kernels" / KERNEL
    kernel_dir.mkdir(parents=True)
    (kernel_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (sparkmlops test)",
        "language": "python",
    }))
    previous = os.environ.get("JUPYTER_PATH")
    return {"JUPYTER_PATH": os.pathsep.join(filter(None, [str(jupyter_path), previous]))}


def execute_notebook(
    state_dir: Path, kernel_env: dict[str, str]
) -> tuple[nbformat.NotebookNode, str | None]:
    """Run the notebook against ``state_dir``; (executed notebook, error message or None)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=CELL_TIMEOUT, kernel_name=KERNEL,
        resources={"metadata": {"path": str(REPO)}},
    )
    # The notebook must find the run through the state dir alone, never a leftover
    # MLFLOW_TRACKING_URI (which would override the state dir's MLflow store).
    with environ(SPARKMLOPS_STATE_DIR=str(state_dir), MLFLOW_TRACKING_URI=None, **kernel_env):
        try:
            client.execute()
        except CellExecutionError as exc:
            return nb, str(exc)
    return nb, None


def outputs(nb: nbformat.NotebookNode) -> list[dict]:
    return [out for cell in nb.cells if cell.cell_type == "code"
            for out in cell.get("outputs", [])]


def stdout(nb: nbformat.NotebookNode) -> str:
    return "".join(o["text"] for o in outputs(nb)
                   if o["output_type"] == "stream" and o["name"] == "stdout")


def test_committed_notebook_has_no_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == KERNEL
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, cell.source[:80]


def test_notebook_explores_a_pipeline_run(pipeline_run, kernel_env: dict[str, str]) -> None:
    # The e2e tests may have re-run the pipeline in the same state dir: the notebook must
    # show the latest finished pipeline run and the champion as the registry has it now.
    import mlflow
    from mlflow.tracking import MlflowClient

    from sparkmlops.tracking import configure_mlflow

    settings = pipeline_run.settings
    experiment_id = configure_mlflow(settings)
    latest = mlflow.search_runs(
        experiment_ids=[experiment_id], output_format="list", max_results=1,
        filter_string="tags.`sparkmlops.step` = 'pipeline' AND attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
    )[0]
    champion = MlflowClient().get_model_version_by_alias(settings.dataset.model.name, "champion")

    nb, error = execute_notebook(pipeline_run.state_dir, kernel_env)

    assert error is None, error
    errors = [o for o in outputs(nb) if o["output_type"] == "error"]
    assert not errors, [f"{o['ename']}: {o['evalue']}" for o in errors]
    text = stdout(nb)
    assert f"KERNEL_PREFIX={sys.prefix}\n" in text, "the kernel is not this venv's python"
    assert f"PARENT_RUN_ID={latest.info.run_id}\n" in text
    assert f"CHAMPION_VERSION={champion.version}\n" in text
    images = [o for o in outputs(nb) if "image/png" in o.get("data", {})]
    assert images, "no cell produced a plot"


def test_notebook_without_a_pipeline_run_says_make_run(
    tmp_path: Path, kernel_env: dict[str, str]
) -> None:
    nb, error = execute_notebook(tmp_path, kernel_env)

    assert error is not None
    assert "PipelineRunMissing" in error and "make run" in error, error
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert any(o["output_type"] == "error" for o in first.outputs), "the first cell must fail"
    assert list(tmp_path.iterdir()) == [], "the notebook created files in an empty state dir"
