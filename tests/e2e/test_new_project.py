"""The tests ``sparkmlops init`` writes into a new project pass, as the project's CI runs them.

Run in this process (pytester's in-process run: its own pytest session on the project's
``tests`` folder, the project as working directory, its modules forgotten afterwards), so
the project's pipeline test runs on the suite's warm SparkSession instead of a JVM of its
own: a cold JVM and a second import of Spark, MLflow and GX cost about 50 s, and what a
fresh JVM adds (Delta from the venv's Spark defaults, the CLI's own session) is proven by
``test_pipeline.py::test_a_bare_spark_submit_of_a_job_gets_delta_from_the_venvs_spark_defaults``
and the EMR stand-in.
"""

from __future__ import annotations

import pytest

from sparkmlops.cli import main

pytestmark = pytest.mark.e2e

pytest_plugins = ["pytester"]


def test_the_new_projects_own_tests_pass(spark, pytester, tmp_path, monkeypatch):
    project = tmp_path / "acme-ml"
    assert main(["init", str(project), "--platform", "emr"]) == 0
    # the project's own conf, as in its CI: not the suite's conf dir
    monkeypatch.delenv("SPARKMLOPS_CONF_DIR")
    monkeypatch.chdir(project)

    result = pytester.runpytest_inprocess("-q", "-rs", "-p", "no:cacheprovider", "tests")

    # local and emr load; deploy writes the emr files; the deploy workflow is up to date;
    # the pipeline runs on the sample (its data and features); a GitHub project has no
    # Azure pipeline to compare
    result.assert_outcomes(passed=5, skipped=1)
    assert [line.split(": ", 1)[1] for line in result.outlines
            if line.startswith("SKIPPED")] == ["no Azure pipeline"]
