"""Landing files as the manifest knows them: identity, the landing plan, the batch records.

Pure: the step hands in what it listed, read and hashed (the listing, the manifest's rows,
``content_hash`` and ``exists`` over the file system) and gets back the plan and the rows
to record; nothing here opens a file, reads a table or calls the tracker.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

import pyspark.sql.functions as F
from pyspark.sql import Column, DataFrame

from sparkmlops.config.ingest import ReadySettings
from sparkmlops.errors import MissingInputError, SparkmlopsError
from sparkmlops.tables import BATCH_COLUMN

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LandingFile:
    """A landing file as the manifest knows it: path, size, mtime and (once hashed) content."""

    path: str
    size: int
    modification_time: int
    # sha256 of the bytes as stored (a .gz file's compressed bytes); None until hashed
    sha256: str | None = None

    @property
    def listed_as(self) -> tuple[str, int, int]:
        return (self.path, self.size, self.modification_time)


class ChangedLandingFileError(SparkmlopsError):
    """A file ingested before holds other bytes now and ``source.on_changed_file`` is ``fail``."""

    exit_code = 3


# a manifest row's status: read into its batch, or seen and not read, and why
INGESTED = "ingested"
DUPLICATE = "duplicate"  # the same bytes are already in `earlier_batch`
CHANGED_SKIPPED = "changed_skipped"  # a known path with new bytes, on_changed_file: skip
MANIFEST_SCHEMA = (
    f"path string, size long, modification_time long, {BATCH_COLUMN} string, "
    "ingested_at timestamp, content_sha256 string, status string, earlier_batch string"
)
# a file is known by the manifest when a row has its path, size and mtime
LISTED_AS = ["path", "size", "modification_time"]

# a listed file (path, size, mtime) → the same file with its content hash
ContentHash = Callable[[LandingFile], LandingFile]
# a manifest row as written: path, size, mtime, batch, ingested_at, sha256, status, earlier
ManifestRow = tuple[str, int, int, str | None, datetime, str | None, str, str | None]


def batch_id_for(files: list[LandingFile]) -> str:
    """A deterministic batch id from the files' paths and content hashes.

    A new modification time alone (a touch, a re-upload of the same bytes) keeps the id.
    """
    unhashed = [f.path for f in files if f.sha256 is None]
    if unhashed:
        raise ValueError(f"batch_id_for needs the files' content hashes; not hashed: {unhashed}")
    lines = sorted(f"{f.path}|{f.sha256}" for f in files)
    return f"b{hashlib.sha256(chr(10).join(lines).encode()).hexdigest()[:12]}"


@dataclass(frozen=True)
class ManifestIndex:
    """What the manifest knows: listings, whose bytes are in which batch, which paths were read."""

    listed: set[tuple[str, int, int]]
    content: dict[str, str]  # sha256 -> the batch holding those bytes
    paths: dict[str, str]  # path -> the batch that read the path's latest bytes


def manifest_index(manifest: DataFrame | None) -> ManifestIndex:
    """Index the manifest (None before the first batch); rows written before content hashes
    count by path, size, mtime only."""
    if manifest is None:
        return ManifestIndex(set(), {}, {})

    def optional(name: str) -> Column:
        return (F.col(name) if name in manifest.columns else F.lit(None).cast("string")).alias(name)

    rows = manifest.select(*LISTED_AS, BATCH_COLUMN, "ingested_at", optional("content_sha256"),
                           optional("status"), optional("earlier_batch")).collect()
    index = ManifestIndex({(r.path, r.size, r.modification_time) for r in rows}, {}, {})
    # later rows win: a path re-ingested names its latest batch
    for r in sorted(rows, key=lambda r: (r.ingested_at or datetime.min, r[BATCH_COLUMN] or "")):
        read_in = r[BATCH_COLUMN] if r.status in (None, INGESTED) else r.earlier_batch
        if read_in is None:
            continue
        if r.size == 0 and r.status in (None, INGESTED):
            # recorded before readiness checks: a zero-byte file read as 0 rows, so the
            # bytes that arrive at its path later add rows and replace none
            continue
        index.paths[r.path] = read_in
        if r.content_sha256 is not None and r.status != CHANGED_SKIPPED:
            index.content[r.content_sha256] = read_in
    return index


@dataclass(frozen=True)
class LandingPlan:
    """What an ingest does with the landing files the manifest does not know yet."""

    read: list[LandingFile]  # read into the batch
    duplicates: dict[LandingFile, str | None]  # bytes already read: in this batch (None)
    changed: dict[LandingFile, str]  # known path, new bytes: the batch that read it before
    # not ready yet (source.ready), and why: neither read nor recorded
    not_ready: dict[LandingFile, str] = field(default_factory=dict)
    # new files a re-run of an ingested batch leaves for the next batch
    pending: list[LandingFile] = field(default_factory=list)

    @property
    def unread(self) -> dict[str, int]:
        """How many files the plan leaves unread, by why: the outcome's fields of those names
        and the run's ``files_<why>`` counts."""
        return {"duplicates": len(self.duplicates),
                "changed_skipped": len([f for f in self.changed if f not in self.read]),
                "not_ready": len(self.not_ready), "pending": len(self.pending)}


def marker_path(path: str, marker: str | None) -> str | None:
    """Where the marker of the landing file ``path`` is (``source.ready.marker``)."""
    if marker is None:
        return None
    folder, _, name = path.rpartition("/")
    return f"{folder}/{marker.replace('{file}', name)}"


def is_marker(path: str, marker: str | None) -> bool:
    """``path`` is a marker file (``source.ready.marker``), never data."""
    if marker is None:
        return False
    name = path.rpartition("/")[2]
    if "{file}" not in marker:
        return name == marker
    prefix, _, suffix = marker.partition("{file}")
    return (len(name) > len(prefix) + len(suffix) and name.startswith(prefix)
            and name.endswith(suffix))


def not_ready_reason(
    file: LandingFile, ready: ReadySettings, *, now_ms: int, exists: Callable[[str], bool]
) -> str | None:
    """Why ``file`` is not ready to read yet (``source.ready``), or None when it is."""
    if file.size == 0:
        return "empty (0 bytes): an upload that has not started or finished"
    age = (now_ms - file.modification_time) // 1000
    if ready.min_age_seconds and age < ready.min_age_seconds:
        return (f"modified {max(age, 0)} s ago, under source.ready.min_age_seconds "
                f"({ready.min_age_seconds}): it may still be written")
    marker = marker_path(file.path, ready.marker)
    if marker is not None and not exists(marker):
        return f"no marker {marker} (source.ready.marker: {ready.marker!r})"
    return None


def plan_landing(
    listed: list[tuple[str, int, int]],
    index: ManifestIndex,
    *,
    content_hash: ContentHash,
    exists: Callable[[str], bool],
    now_ms: int,
    reingest: bool = False,
    ready: ReadySettings | None = None,
) -> LandingPlan:
    """Sort the ``listed`` files (path, size, mtime) by identity: new, same bytes as a file
    already read, or a known path with new bytes (read only with ``reingest``).

    A file whose path, size and mtime are in the manifest (``index``) is known and not
    hashed again; any other is identified by the sha256 of its bytes (``content_hash``).
    ``reingest``: a known path with new bytes is read (``source.on_changed_file:
    reingest``). A new file that is not ``ready`` (empty; with ``source.ready``, too young
    at ``now_ms`` or without its marker, asked of ``exists``) is set aside unhashed, so it
    is neither read nor part of the batch's identity.
    """
    ready = ready or ReadySettings()
    plan = LandingPlan([], {}, {})
    in_batch: set[str] = set()
    for listing in listed:
        if is_marker(listing[0], ready.marker) or listing in index.listed:
            continue
        unhashed = LandingFile(*listing)
        why = not_ready_reason(unhashed, ready, now_ms=now_ms, exists=exists)
        if why is not None:
            plan.not_ready[unhashed] = why
            continue
        file = content_hash(unhashed)
        assert file.sha256 is not None
        if file.sha256 in index.content or file.sha256 in in_batch:
            plan.duplicates[file] = index.content.get(file.sha256)
            continue
        if file.path in index.paths:
            # a path read before whose hash is unknown (also: a row written before
            # content hashes with another size or mtime) is treated as changed
            plan.changed[file] = index.paths[file.path]
            if not reingest:
                continue
        plan.read.append(file)
        in_batch.add(file.sha256)
    return plan


def check_changed_files(plan: LandingPlan, policy: str) -> None:
    """Stop before anything is written when a file changed and the policy is ``fail``."""
    if not plan.changed or policy != "fail":
        return
    files = ", ".join(f"{f.path} (ingested in batch {batch})"
                      for f, batch in sorted(plan.changed.items(), key=lambda kv: kv[0].path))
    raise ChangedLandingFileError(
        f"landing file(s) changed since they were ingested: {files}; "
        "source.on_changed_file is 'fail': set it to 'skip' (keep the rows already read, "
        "ignore the new bytes) or 'reingest' (read the new bytes into a new batch); "
        "nothing was written")


def leave_for_next_batch(plan: LandingPlan) -> LandingPlan:
    """The plan of a re-run of an ingested batch: a batch id names its files forever, so
    the new files are not read but left for the next batch.

    What the plan knows of other batches is kept (a touched file's bytes are in an
    earlier batch, a changed file skipped), so the re-run records it as a plain run would;
    a file the plan would have read is pending, and so is a copy of one.
    """
    return LandingPlan(
        read=[],
        duplicates={f: holder for f, holder in plan.duplicates.items() if holder is not None},
        changed={f: earlier for f, earlier in plan.changed.items() if f not in plan.read},
        not_ready=plan.not_ready,
        pending=[*plan.read, *(f for f, holder in plan.duplicates.items() if holder is None)],
    )


def recorded_files(batch_rows: DataFrame) -> dict[LandingFile, str | None]:
    """The files read into a batch, from its rows of the manifest (``batch_rows``), each with
    the batch that read its path before (``earlier_batch``); rows of files seen and not read
    are left out. A manifest written before content hashes or statuses has no such columns."""
    rows = batch_rows.collect()
    fields = set(rows[0].asDict()) if rows else set()
    return {
        LandingFile(r.path, r.size, r.modification_time,
                    r.content_sha256 if "content_sha256" in fields else None):
            (r.earlier_batch if "earlier_batch" in fields else None)
        for r in rows if ("status" not in fields or r.status in (None, INGESTED))
    }


def replan_batch(
    listed: list[tuple[str, int, int]],
    recorded: dict[LandingFile, str | None],
    *,
    path: str,
    batch_id: str,
    content_hash: ContentHash,
) -> LandingPlan:
    """The plan of ``--force`` on an ingested batch: exactly its ``recorded`` files, read again.

    Each must still be ``listed`` under ``path`` with the bytes it was ingested with (a
    touch is fine); a file gone or changed stops the ingest before anything is written.
    """
    now_listed = {p: LandingFile(p, size, mtime) for p, size, mtime in listed}
    told = f"batch {batch_id}: --force re-reads the {len(recorded)} file(s) the manifest records"
    gone = sorted(f.path for f in recorded if f.path not in now_listed)
    if gone:
        raise MissingInputError(
            f"{told}, and {len(gone)} of them are gone from {path}: {', '.join(gone)}; "
            "nothing was written")
    read: list[LandingFile] = []
    changed: list[str] = []
    for old in sorted(recorded, key=lambda f: f.path):
        now = now_listed[old.path]
        if now.listed_as == old.listed_as:
            read.append(content_hash(replace(now, sha256=old.sha256)))
            continue
        now = content_hash(now)
        if now.sha256 != old.sha256:  # a row without a hash: a new listing counts as changed
            changed.append(old.path)
        read.append(now)
    if changed:
        raise ChangedLandingFileError(
            f"{told}, and {len(changed)} of them hold other bytes now: {', '.join(changed)}; "
            "nothing was written (a plain ingest follows source.on_changed_file for them)")
    return LandingPlan(read, {}, {})


def earlier_batches(
    plan: LandingPlan, recorded: dict[LandingFile, str | None]
) -> dict[LandingFile, str]:
    """The batch that read each path of ``plan.read`` before: the changed files' for a plain
    run; a forced re-read (``recorded``: the batch's own files) keeps the batch's record."""
    if not recorded:
        return plan.changed
    before = {old.path: e for old, e in recorded.items() if e is not None}
    return {f: before[f.path] for f in plan.read if f.path in before}


def log_unread_files(plan: LandingPlan, batch_id: str) -> None:
    """Say which files are not read, and why."""
    for file, why in sorted(plan.not_ready.items(), key=lambda kv: kv[0].path):
        log.warning("%s is not ready: %s; not read and not recorded: it is read once ready",
                    file.path, why)
    if plan.pending:
        log.warning("batch %s is already ingested: a re-run reads nothing new, and %d new "
                    "file(s) are left for the next batch: %s", batch_id, len(plan.pending),
                    ", ".join(sorted(f.path for f in plan.pending)))
    for file, holder in sorted(plan.duplicates.items(), key=lambda kv: kv[0].path):
        log.info("%s holds the same bytes as a file of batch %s: not read again",
                 file.path, holder or batch_id)
    for file, earlier in sorted(plan.changed.items(), key=lambda kv: kv[0].path):
        if file in plan.read:
            log.warning("%s changed since batch %s: its new bytes are read into batch %s "
                        "(source.on_changed_file: reingest)", file.path, earlier, batch_id)
        else:
            log.warning("%s changed since batch %s: the new bytes are NOT read "
                        "(source.on_changed_file: skip)", file.path, earlier)


def ingested_rows(
    files: list[LandingFile], batch_id: str, at: datetime,
    earlier: dict[LandingFile, str] | None = None,
) -> list[ManifestRow]:
    """The manifest rows of the files read into ``batch_id``; ``earlier`` names the batch
    that read a re-ingested path before."""
    earlier = earlier or {}
    return [(f.path, f.size, f.modification_time, batch_id, at, f.sha256, INGESTED,
             earlier.get(f)) for f in files]


def unread_rows(plan: LandingPlan, batch_id: str, at: datetime) -> list[ManifestRow]:
    """The manifest rows of the files the plan does not read, sorted.

    They belong to no batch (``_batch_id`` null, so replacing a batch never drops them);
    ``earlier_batch`` names the batch holding their bytes (duplicate: ``batch_id`` when
    it is a copy of a file of this batch) or the path's earlier bytes (changed_skipped).
    """
    rows: list[ManifestRow] = [
        (f.path, f.size, f.modification_time, None, at, f.sha256, DUPLICATE, holder or batch_id)
        for f, holder in plan.duplicates.items()]
    rows += [(f.path, f.size, f.modification_time, None, at, f.sha256, CHANGED_SKIPPED, earlier)
             for f, earlier in plan.changed.items() if f not in plan.read]
    return sorted(rows)
