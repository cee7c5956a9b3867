"""Ingest's I/O edge: the dataset's landing files → bronze (+ quarantine), manifest and
ingest log, in the step's run.

What it lands and where is the dataset's :class:`~sparkmlops.ingest.land.Landing`; the
reads and writes themselves are :func:`~sparkmlops.ingest.land.land`'s, shared with the
labels stage (whose judgments land the same way).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from pyspark.sql import SparkSession

from sparkmlops.config import Settings
from sparkmlops.errors import MissingInputError
from sparkmlops.ingest.land import (
    IngestResult,
    Landing,
    default_batch,
    ingest_batch,
    land,
    landing_plan,
)
from sparkmlops.pii import pii_key
from sparkmlops.tables import DatasetTables, dataset_tables
from sparkmlops.tracking.runs import StepOutcome, step_run

__all__ = ["IngestOutcome", "IngestResult", "dataset_landing", "default_batch_id",
           "ingest_batch", "ingest_step", "landing_plan"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestOutcome(StepOutcome):
    """The landing files read into bronze (or none: ``skipped``) and where the rows went."""

    step: ClassVar[str] = "ingest"
    bronze_version: int | None = None  # bronze after the step (None: no bronze yet)
    skipped: bool = False
    rows_in: int = 0
    bronze_rows: int = 0
    quarantined: int = 0
    files: int = 0
    duplicates: int = 0  # files whose bytes an earlier batch already read
    changed_skipped: int = 0  # known paths with new bytes, left unread (on_changed_file: skip)
    not_ready: int = 0  # new files not ready yet (source.ready): neither read nor recorded
    pending: int = 0  # new files a re-run of an ingested batch leaves for the next batch

    @property
    def summary(self) -> dict[str, Any]:
        unread = {k: v for k, v in (("duplicates", self.duplicates),
                                    ("changed_skipped", self.changed_skipped),
                                    ("not_ready", self.not_ready),
                                    ("pending", self.pending)) if v}
        if self.skipped:
            return {"skipped": True, "bronze_rows": self.bronze_rows, **unread}
        return {"rows_in": self.rows_in, "bronze_rows": self.bronze_rows,
                "quarantined": self.quarantined, "files": self.files, **unread}


def ingest_step(
    spark: SparkSession, settings: Settings, batch_id: str, *, force: bool = False
) -> IngestOutcome:
    """The dataset's landing files not read yet → bronze (+ quarantine), then manifest and
    ingest log (:func:`~sparkmlops.ingest.land.land`: files known by their bytes, a batch
    id names its files forever, ``force`` re-reads exactly the batch's recorded files).

    Raises:
        ConfigError: a ``pii: hash`` column and no ``$SPARKMLOPS_PII_KEY``, before the run
            opens or a table is read.
    """
    landing = dataset_landing(settings)
    with step_run(settings, IngestOutcome.step, batch_id) as tracker:
        landed = land(spark, landing, batch_id, tracker, force=force)
        unread = landed.plan.unread
        if landed.result is None:
            return IngestOutcome(tracker.run_id, landed.outputs,
                                 bronze_version=landed.bronze_version, skipped=True,
                                 bronze_rows=landed.bronze_rows, **unread)
        result = landed.result
        return IngestOutcome(
            tracker.run_id, landed.outputs, bronze_version=landed.bronze_version,
            rows_in=result.rows_in, bronze_rows=result.bronze.rows,
            quarantined=result.rows_quarantined, files=len(landed.plan.read), skipped=False,
            **unread,
        )


def dataset_landing(settings: Settings, tables: DatasetTables | None = None, *,
                    reads_rows: bool = True) -> Landing:
    """The dataset's records: ``dataset.source`` read with ``dataset.schema`` into
    ``bronze.<dataset>``, laid out by ``write.partition_by``, ``pii`` columns protected
    with the key from the environment (ConfigError when a hash needs it and it is missing;
    not asked for without ``reads_rows``: a landing only listed needs no key)."""
    tables = tables or dataset_tables(settings)
    dataset = settings.dataset
    key = pii_key(dataset.schema_, dataset.quarantine) if reads_rows else None
    return Landing(bronze=tables.bronze, quarantine=tables.quarantine,
                   manifest=tables.manifest, ingest_log=tables.ingest_log,
                   source=dataset.source, columns=dataset.schema_,
                   path=settings.resolve_path(dataset.source.path), step=IngestOutcome.step,
                   partition_by=dataset.write.partition_by,
                   quarantine_settings=dataset.quarantine, pii_key=key)


def default_batch_id(spark: SparkSession, settings: Settings) -> str:
    """The files an ingest would read make the batch; with none, the latest batch again."""
    landing = dataset_landing(settings, reads_rows=False)
    batch_id = default_batch(spark, landing)
    if batch_id is None:
        raise MissingInputError(f"no input files at {landing.path}")
    return batch_id
