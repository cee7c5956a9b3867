"""sparkmlops: a Spark-centric batch ML platform (Delta Lake, Great Expectations, MLlib, MLflow)."""

from __future__ import annotations

__version__ = "0.1.0"
