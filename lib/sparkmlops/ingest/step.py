"""Ingest's I/O edge: landing files → bronze (+ quarantine), manifest and ingest log."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from pyspark.sql import SparkSession

from sparkmlops.config import Settings
from sparkmlops.ingest.records import (
    LandingFile,
    LandingPlan,
    check_changed_files,
    ingest_batch,
    list_files,
    log_unread_files,
    plan_landing,
    record_batch,
    record_unread_files,
    with_content_hash,
)
from sparkmlops.tables import current_version, read_batch, table_ref
from sparkmlops.tracking import StepOutcome, step_run

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestOutcome(StepOutcome):
    """The landing files read into bronze (or none: ``skipped``) and where the rows went."""

    step: ClassVar[str] = "ingest"
    skipped: bool = False
    rows_in: int = 0
    bronze_rows: int = 0
    quarantined: int = 0
    files: int = 0
    duplicates: int = 0  # files whose bytes an earlier batch already read
    changed_skipped: int = 0  # known paths with new bytes, left unread (on_changed_file: skip)

    @property
    def summary(self) -> dict[str, Any]:
        unread = {k: v for k, v in (("duplicates", self.duplicates),
                                    ("changed_skipped", self.changed_skipped)) if v}
        if self.skipped:
            return {"skipped": True, "bronze_rows": self.bronze_rows, **unread}
        return {"rows_in": self.rows_in, "bronze_rows": self.bronze_rows,
                "quarantined": self.quarantined, "files": self.files, **unread}


def ingest_step(
    spark: SparkSession, settings: Settings, batch_id: str, *, force: bool = False
) -> IngestOutcome:
    """Landing files not ingested yet → bronze (+ quarantine), then manifest and ingest log.

    Files are known by their bytes: one whose bytes were read before (touched, copied)
    is recorded and not read again, so re-running changes nothing; one at a known path
    with new bytes follows ``source.on_changed_file``. ``force`` re-reads every landing
    file into ``batch_id`` (replacing it).
    """
    bronze = table_ref(settings, "bronze")
    path = settings.resolve_path(settings.dataset.source.path)
    with step_run(settings, "ingest", batch_id) as tracker:
        if force:
            plan = LandingPlan([with_content_hash(spark, LandingFile(*f))
                                for f in list_files(spark, path)], {}, {})
        else:
            plan = plan_landing(spark, settings, path)
            check_changed_files(plan, settings.dataset.source.on_changed_file)
            log_unread_files(plan, batch_id)
        files = plan.read
        unread = {"duplicates": len(plan.duplicates),
                  "changed_skipped": len([f for f in plan.changed if f not in files])}
        for name, count in unread.items():
            tracker.count(f"files_{name}", count)
        if not files:
            seen = record_unread_files(spark, settings, plan, batch_id)
            version = current_version(spark, bronze)
            rows = read_batch(spark, bronze, batch_id).count() if version is not None else 0
            tracker.outcome("skipped_nothing_new")
            tracker.read(bronze, version, rows)
            log.info("no new files under %s; batch %s stays at %s v%s", path, batch_id,
                     bronze.fqn, version)
            outputs = {bronze.fqn: version} if version is not None else {}
            if seen is not None:
                tracker.wrote(seen)
                outputs[seen.table.fqn] = seen.version
            return IngestOutcome(tracker.run_id, outputs, skipped=True, bronze_rows=rows,
                                 duplicates=unread["duplicates"],
                                 changed_skipped=unread["changed_skipped"])
        tracker.count("files_in", len(files))
        result = ingest_batch(spark, settings, batch_id, source_path=path, files=files)
        tracker.count("rows_in.landing", result.rows_in)
        tracker.wrote(result.bronze)
        tracker.wrote(result.quarantine, rows=result.rows_quarantined)
        manifest, ingest_log = record_batch(spark, settings, result, files, earlier=plan.changed)
        seen = record_unread_files(spark, settings, plan, batch_id)
        if seen is not None:
            # one entry per table in the run: the last version, all the rows written
            manifest = replace(seen, rows=manifest.rows + seen.rows)
        tracker.wrote(manifest)
        tracker.wrote(ingest_log)
        tracker.outcome("ingested")
        return IngestOutcome(
            tracker.run_id,
            {bronze.fqn: result.bronze.version,
             result.quarantine.table.fqn: result.quarantine.version,
             manifest.table.fqn: manifest.version},
            rows_in=result.rows_in, bronze_rows=result.bronze.rows,
            quarantined=result.rows_quarantined, files=len(files),
            duplicates=unread["duplicates"], changed_skipped=unread["changed_skipped"],
        )


