"""``sparkmlops init``: scaffold a project that uses sparkmlops (conf, CI, README).

Example::

    written = scaffold_project(Path("my-project"), dataset="churn", ci="github",
                               platforms=["emr", "databricks"])
"""

from sparkmlops.init.project import CI_CHOICES, PLATFORM_CHOICES, scaffold_project

__all__ = ["CI_CHOICES", "PLATFORM_CHOICES", "scaffold_project"]
