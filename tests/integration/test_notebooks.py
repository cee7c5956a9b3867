"""The exploration notebook runs top to bottom against a real pipeline run (so it cannot rot)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from sparkmlops.spark import environ

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "explore_pipeline_run.ipynb"
KERNEL = "python3"
CELL_TIMEOUT = 600

pytestmark = pytest.mark.e2e


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


def inject_parameters(nb: nbformat.NotebookNode, **parameters: object) -> None:
    """Do what ``papermill -p name value`` does: a cell after the ``parameters`` cell.

    papermill inserts a cell tagged ``injected-parameters`` right after the cell tagged
    ``parameters``, assigning each value as a Python literal (papermill itself is not a
    dependency of this project).
    """
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    source = "# Parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in parameters.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(at + 1, cell)


def execute_notebook(
    state_dir: Path | None, kernel_env: dict[str, str], *,
    parameters: dict[str, object] | None = None, before: str | None = None,
    after: str | None = None, env: dict[str, str | None] | None = None,
) -> tuple[nbformat.NotebookNode, str | None]:
    """Run the notebook against ``state_dir``; (executed notebook, error message or None).

    ``parameters`` are injected as papermill does; ``before`` / ``after`` are code run in
    the same kernel before the first and after the last cell.
    """
    nb = nbformat.read(NOTEBOOK, as_version=4)
    if parameters:
        inject_parameters(nb, **parameters)
    if before:
        nb.cells.insert(0, nbformat.v4.new_code_cell(before))
    if after:
        nb.cells.append(nbformat.v4.new_code_cell(after))
    client = nbclient.NotebookClient(
        nb, timeout=CELL_TIMEOUT, kernel_name=KERNEL,
        resources={"metadata": {"path": str(REPO)}},
    )
    # The notebook must find the run through the state dir alone, never a leftover
    # MLFLOW_TRACKING_URI (which would override the state dir's MLflow store).
    variables: dict[str, str | None] = {
        "SPARKMLOPS_STATE_DIR": None if state_dir is None else str(state_dir),
        "SPARKMLOPS_ENV": None, "SPARKMLOPS_DATASET": None, "MLFLOW_TRACKING_URI": None,
        **kernel_env, **(env or {})}
    with environ(**variables):
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


# run in the kernel before the notebook: a session someone else started (as Databricks does)
OUTER_SESSION = """
from sparkmlops.config import SparkSettings
from sparkmlops.spark import get_spark
outer = get_spark(SparkSettings(master="local[2]", app_name="started-before-the-notebook",
                                conf={"spark.ui.enabled": "false",
                                      "spark.sql.shuffle.partitions": "2",
                                      "spark.databricks.delta.snapshotPartitions": "2"}))
"""
# run after it: is that session still the active one, and does it still run jobs?
OUTER_ALIVE = """
from pyspark.sql import SparkSession
print(f"OUTER_ACTIVE={SparkSession.getActiveSession() is outer} "
      f"OUTER_APP={outer.sparkContext.appName} OUTER_COUNT={outer.range(7).count()}")
outer.stop()
"""


def test_notebook_explores_a_pipeline_run(
    pipeline_run, kernel_env: dict[str, str], tmp_path: Path
) -> None:
    # The e2e tests may have re-run the pipeline in the same state dir: the notebook must
    # show the latest finished pipeline run and the champion as the registry has it now.
    import mlflow
    from mlflow.tracking import MlflowClient

    from sparkmlops.tracking.runs import configure_mlflow

    settings = pipeline_run.settings
    experiment_id = configure_mlflow(settings)
    latest = mlflow.search_runs(
        experiment_ids=[experiment_id], output_format="list", max_results=1,
        filter_string="tags.`sparkmlops.step` = 'pipeline' AND attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
    )[0]
    champion = MlflowClient().get_model_version_by_alias(settings.dataset.model.name, "champion")

    # papermill's parameters win over $SPARKMLOPS_STATE_DIR (here an empty dir); a Spark
    # session started before the notebook is used and must outlive it
    nb, error = execute_notebook(
        tmp_path, kernel_env, before=OUTER_SESSION, after=OUTER_ALIVE,
        parameters={"env": "local", "dataset": "penguins",
                    "state_dir": str(pipeline_run.state_dir)})

    assert error is None, error
    errors = [o for o in outputs(nb) if o["output_type"] == "error"]
    assert not errors, [f"{o['ename']}: {o['evalue']}" for o in errors]
    text = stdout(nb)
    assert f"KERNEL_PREFIX={sys.prefix}\n" in text, "the kernel is not this venv's python"
    assert f"PARAMETERS env=local dataset=penguins state_dir={pipeline_run.state_dir}\n" in text
    assert f"PARENT_RUN_ID={latest.info.run_id}\n" in text
    assert f"CHAMPION_VERSION={champion.version}\n" in text
    images = [o for o in outputs(nb) if "image/png" in o.get("data", {})]
    assert images, "no cell produced a plot"
    assert "Spark session left running (this notebook did not start it)\n" in text
    assert "Spark session stopped" not in text
    assert text.endswith("OUTER_ACTIVE=True OUTER_APP=started-before-the-notebook "
                         "OUTER_COUNT=7\n")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("parameters", "env", "expected"), [
    # papermill's env parameter: emr is a cluster env and needs a tracking server
    ({"env": "emr"}, {}, "tracking.require_server: true"),
    # $SPARKMLOPS_ENV when no parameter is given
    ({}, {"SPARKMLOPS_ENV": "emr"}, "tracking.require_server: true"),
    # the dataset parameter wins over $SPARKMLOPS_DATASET
    ({"dataset": "no_such_dataset"}, {"SPARKMLOPS_DATASET": "penguins"},
     "config file not found: "),
    # $SPARKMLOPS_DATASET when no parameter is given
    ({}, {"SPARKMLOPS_DATASET": "no_such_dataset"}, "config file not found: "),
])
def test_notebook_loads_the_env_and_dataset_it_is_given(
    tmp_path: Path, kernel_env: dict[str, str], parameters, env, expected
) -> None:
    nb, error = execute_notebook(tmp_path, kernel_env, parameters=parameters, env=env)

    assert error is not None
    assert "ConfigError" in error
    assert expected in error, error
    if "config file" in expected:
        assert "datasets/no_such_dataset.yml" in error, error
    assert list(tmp_path.iterdir()) == []


def test_notebook_without_a_pipeline_run_says_make_run(
    tmp_path: Path, kernel_env: dict[str, str]
) -> None:
    nb, error = execute_notebook(tmp_path, kernel_env)

    assert error is not None
    assert "PipelineRunMissing" in error and "make run" in error, error
    # $SPARKMLOPS_STATE_DIR is the state dir when no parameter is given
    assert f"No pipeline run found in the state dir {tmp_path}: " in error, error
    first = next(c for c in nb.cells
                 if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", []))
    assert any(o["output_type"] == "error" for o in first.outputs), "the first cell must fail"
    assert list(tmp_path.iterdir()) == [], "the notebook created files in an empty state dir"
