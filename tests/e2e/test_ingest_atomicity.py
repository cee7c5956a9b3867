"""Ingestion guarantees under real failures: a SIGKILL mid-write and concurrent writers.

Each test drives ``spark-submit jobs/ingest.py`` in its own process group on
realistic landing CSVs from :func:`benchmarks.datagen.write_landing`, and reads the
Delta tables back with ``delta.tables.DeltaTable`` once the jobs are gone:

- a job killed (SIGKILL, the whole process group) while its bronze data files are
  being written leaves bronze exactly at its previous version; the re-run (in this
  process) lands the batch exactly once and records its rows;
- two jobs appending two batches to the same existing bronze table at the same time
  both succeed (Delta write conflicts are retried by ``tables.replace_where``) and both
  batches land completely, one commit each.

The tables are seeded, and the killed batch re-run, in-process (``ingest_step`` on the
test session) to save a JVM start each; the kill and the concurrent writes are
spark-submit subprocesses.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyspark.sql.functions as F
import pytest
from benchmarks.datagen import COLUMNS, write_landing
from delta.tables import DeltaTable
from mlflow.tracking import MlflowClient
from pyspark.sql import SparkSession

from sparkmlops.config import load_settings
from sparkmlops.ingest.step import IngestOutcome, ingest_step
from sparkmlops.tables import dataset_tables

pytestmark = pytest.mark.e2e

PROJECT = Path(__file__).resolve().parents[2]
KEY = ["study_name", "species", "sample_number"]
SMALL_ROWS = 300
# Big enough that the bronze write of the batch takes several seconds on two busy cores
# (about 6 s here; the whole job about 45 s).
BIG_ROWS = 800_000
BIG_FILES = 4
# Launch option of the big job: with Spark's default split size the 4 landing files are
# packed into 2 read tasks, so bronze's 2 part files are finished within milliseconds of
# each other and of the commit. With 16 MB splits each landing file is a task of its own:
# 4 part files written in 2 waves, and the kill lands when the first ones are complete
# and the others are still being written.
BIG_JOB_CONF = ["--conf", "spark.sql.files.maxPartitionBytes=16m"]
HEADER = ",".join(COLUMNS)
_ROW = ('{study},{sample},Adelie Penguin (Pygoscelis adeliae),Anvers,Torgersen,'
        '"Adult, 1 Egg Stage",N1A1,Yes,2007-11-11,39.1,18.7,181,{mass},MALE,NA,NA,NA')
# Rows the ingest must quarantine: values that do not cast, nulls in a key column.
BAD_ROWS = [
    _ROW.format(study="PAL0708", sample="one", mass=3750),
    _ROW.format(study="PAL0708", sample="2", mass="heavy"),
    _ROW.format(study="PAL0809", sample="3.5", mass=3800),
    _ROW.format(study="NA", sample="4", mass=3900),
    _ROW.format(study="PAL0910", sample="NA", mass=4000),
]
CONCURRENT_ROWS = {"conc_a": 150_000, "conc_b": 120_000}  # different, so a mix-up shows
JOB_TIMEOUT = 600
FIRST_COMMIT = "00000000000000000000.json"
SECOND_COMMIT = "00000000000000000001.json"


def note(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Job:
    """One ``spark-submit jobs/ingest.py`` in its own process group, output in files."""

    batch_id: str
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path
    started: float

    @property
    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def kill_group(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=60)

    def wait(self, timeout: float = JOB_TIMEOUT) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_group()
            pytest.fail(f"ingest {self.batch_id} still running after {timeout} s; "
                        f"stderr tail:\n{self.stderr[-3000:]}")

    def failure(self) -> str:
        return (f"ingest {self.batch_id} exited {self.proc.returncode}\n"
                f"stdout:\n{self.stdout[-2000:]}\nstderr tail:\n{self.stderr[-4000:]}")


@pytest.fixture
def jobs() -> Iterator[list[Job]]:
    """The jobs a test starts; any still running at teardown is killed (its group only)."""
    started: list[Job] = []
    yield started
    for job in started:
        if job.proc.poll() is None:
            job.kill_group()


def submit(jobs: list[Job], state_dir: Path, landing: str, batch_id: str, logs: Path,
           spark_args: tuple[str, ...] | list[str] = ()) -> Job:
    spark_submit = Path(sys.executable).parent / "spark-submit"
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("SPARKMLOPS_STATE_DIR", None)
    logs.mkdir(parents=True, exist_ok=True)
    attempt = len([j for j in jobs if j.batch_id == batch_id]) + 1
    out = logs / f"{batch_id}.{attempt}.out"
    err = logs / f"{batch_id}.{attempt}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [str(spark_submit), "--master", "local[2]", *spark_args, "jobs/ingest.py",
             "--env", "local",
             "--set", f"state_dir={state_dir}", "--set", f"dataset.source.path={landing}",
             "--batch-id", batch_id],
            cwd=PROJECT, env=env, stdout=stdout, stderr=stderr, start_new_session=True,
        )
    job = Job(batch_id, proc, out, err, time.monotonic())
    jobs.append(job)
    return job


def seed_bronze(spark: SparkSession, state_dir: Path, landing: str, batch_id: str) -> int:
    """Ingest a small batch in-process so bronze exists at v0; its bronze rows."""
    settings = load_settings("local", "penguins", overrides=[
        f"state_dir={state_dir}", f"dataset.source.path={landing}"])
    ingest_step(spark, settings, batch_id)
    bronze = DeltaTable.forPath(spark, dataset_tables(settings).bronze.path)
    assert bronze.history().select(F.max("version")).first()[0] == 0
    return bronze.toDF().where(F.col("_batch_id") == batch_id).count()


def lake(state_dir: Path, layer: str) -> Path:
    return state_dir / "lake" / layer / "penguins"


def data_files(table_dir: Path) -> dict[str, int]:
    """Parquet data files in a (non-partitioned) table folder, name -> size."""
    out = {}
    with os.scandir(table_dir) as entries:
        for entry in entries:
            if entry.name.startswith("part-") and entry.name.endswith(".parquet"):
                try:
                    out[entry.name] = entry.stat().st_size
                except FileNotFoundError:
                    pass
    return out


def is_complete_parquet(path: Path) -> bool:
    """The file ends with a whole Parquet footer: ``<footer><length LE32>PAR1``."""
    try:
        with path.open("rb") as f:
            head = f.read(4)
            size = f.seek(0, os.SEEK_END)
            if head != b"PAR1" or size < 12:
                return False
            f.seek(size - 8)
            tail = f.read(8)
    except FileNotFoundError:
        return False
    return tail[4:] == b"PAR1" and int.from_bytes(tail[:4], "little") + 12 <= size


def rows_by_batch(spark: SparkSession, path: Path) -> dict[str, int]:
    df = DeltaTable.forPath(spark, str(path)).toDF()
    return {r["_batch_id"]: r["count"] for r in df.groupBy("_batch_id").count().collect()}


def batch_rows(spark: SparkSession, path: Path, batch_id: str, *extra: str) -> int:
    df = DeltaTable.forPath(spark, str(path)).toDF().where(F.col("_batch_id") == batch_id)
    for condition in extra:
        df = df.where(condition)
    return df.count()


def duplicate_keys(spark: SparkSession, path: Path, batch_id: str) -> int:
    df = DeltaTable.forPath(spark, str(path)).toDF().where(F.col("_batch_id") == batch_id)
    return df.groupBy(*KEY).count().where("count > 1").count()


def history(spark: SparkSession, path: Path) -> list:
    return sorted(DeltaTable.forPath(spark, str(path)).history().collect(),
                  key=lambda h: h["version"])


def ingest_log(spark: SparkSession, state_dir: Path) -> dict[str, tuple[int, int, int, int]]:
    """What each batch's ingest recorded: rows in, bronze rows, quarantined rows and the
    bronze version it committed."""
    df = DeltaTable.forPath(spark, str(lake(state_dir, "ingest_log"))).toDF()
    return {r["_batch_id"]: (r["rows_in"], r["bronze_rows"], r["quarantined_rows"],
                             r["bronze_version"]) for r in df.collect()}


def referenced_files(spark: SparkSession, path: Path) -> set[str]:
    """Names of the data files in the table's current snapshot."""
    return {Path(f).name for f in spark.read.format("delta").load(str(path)).inputFiles()}


# ---------------------------------------------------------------- kill mid-write


def test_kill_mid_bronze_write_leaves_previous_version_and_rerun_lands_batch_once(
    spark, tmp_path, jobs
):
    state_dir = tmp_path / "state"
    t0 = time.monotonic()
    small = write_landing(spark, SMALL_ROWS, str(tmp_path / "landing_small"), seed=3, files=1)
    big = write_landing(spark, BIG_ROWS, str(tmp_path / "landing_big"), seed=7, files=BIG_FILES)
    Path(big, "zz-bad-rows.csv").write_text("\n".join([HEADER, *BAD_ROWS]) + "\n")
    rows_in = BIG_ROWS + len(BAD_ROWS)
    note(f"landing written in {time.monotonic() - t0:.1f} s ({BIG_ROWS} rows in {BIG_FILES} "
         f"files + {len(BAD_ROWS)} bad rows)")
    n0 = seed_bronze(spark, state_dir, small, "small0")
    bronze_dir = lake(state_dir, "bronze")
    quarantine_dir = lake(state_dir, "quarantine")
    log_dir = bronze_dir / "_delta_log"
    seeded_files = set(data_files(bronze_dir))
    assert (log_dir / FIRST_COMMIT).is_file() and not (log_dir / SECOND_COMMIT).exists()
    quarantine_versions_before = len(history(spark, quarantine_dir))
    note(f"bronze seeded at v0 with {n0} rows of small0")

    # --- start the big batch and SIGKILL its process group while bronze's files are written
    job = submit(jobs, state_dir, big, "big1", tmp_path / "logs", BIG_JOB_CONF)
    first_seen: float | None = None
    while True:
        new = {n: s for n, s in data_files(bronze_dir).items() if n not in seeded_files}
        if (log_dir / SECOND_COMMIT).exists():
            job.kill_group()
            pytest.fail("bronze v1 of big1 was committed before the kill: its bronze write is "
                        "too fast to interrupt here; raise BIG_ROWS")
        now = time.monotonic()
        if new and first_seen is None:
            first_seen = now
            note(f"big1's part files appeared in bronze {now - job.started:.1f} s after "
                 f"spark-submit: {sorted(new.values())} bytes")
        # some part files written out (Parquet footer in place) while others are still
        # being written: the bronze write is in full swing
        complete = {n for n in new if is_complete_parquet(bronze_dir / n)}
        if complete and len(new) > len(complete):
            os.killpg(job.proc.pid, signal.SIGKILL)
            killed_at = now - job.started
            break
        if job.proc.poll() is not None:
            pytest.fail(f"ingest big1 ended (exit {job.proc.returncode}) before its bronze "
                        f"write could be killed; new bronze files seen: {sorted(new)}\n"
                        f"{job.stdout[-3000:]}")
        if now - job.started > JOB_TIMEOUT:
            job.kill_group()
            pytest.fail("ingest big1 never started writing bronze")
        time.sleep(0.01)
    job.proc.wait(timeout=60)
    time.sleep(1)  # nothing of the group can write any more; let the file system settle
    orphans = {n: s for n, s in data_files(bronze_dir).items() if n not in seeded_files}
    note(f"SIGKILLed big1's process group {killed_at:.1f} s after spark-submit, "
         f"{killed_at - (first_seen - job.started):.1f} s into its bronze write (exit "
         f"{job.proc.returncode}); its part files in bronze: {sorted(orphans.values())} bytes, "
         f"{len(complete)} complete; bronze _delta_log: "
         f"{sorted(p.name for p in log_dir.glob('*.json'))}")
    assert job.proc.returncode == -signal.SIGKILL

    # the kill really happened mid-write: complete data files of big1 are in bronze's
    # folder (readable Parquet, only big1 rows, part of the batch), others half written...
    assert complete <= set(orphans)
    assert set(orphans) - complete
    written = spark.read.parquet(*[str(bronze_dir / n) for n in sorted(complete)])
    written_rows = written.count()
    assert {r["_batch_id"] for r in written.select("_batch_id").distinct().collect()} == {"big1"}
    assert 0 < written_rows < BIG_ROWS
    note(f"the {len(complete)} complete orphan part file(s) hold {written_rows} rows of big1")
    # ...but never committed: bronze is exactly v0 with exactly the small batch
    assert not (log_dir / SECOND_COMMIT).exists()
    assert [(h["version"], h["operation"]) for h in history(spark, bronze_dir)] == [(0, "WRITE")]
    assert rows_by_batch(spark, bronze_dir) == {"small0": n0}
    assert batch_rows(spark, bronze_dir, "big1") == 0
    assert not set(orphans) & referenced_files(spark, bronze_dir)
    quarantine_big1_after_kill = batch_rows(spark, quarantine_dir, "big1")
    note(f"after the kill: bronze v0 with {n0} rows, {len(orphans)} orphan part files; "
         f"quarantine has {len(history(spark, quarantine_dir))} version(s) "
         f"(was {quarantine_versions_before}), {quarantine_big1_after_kill} big1 rows")
    # quarantine is written (and committed) before bronze, so the kill may leave big1's
    # quarantined rows there: all of them or none, never part (one commit per table)
    assert quarantine_big1_after_kill in (0, len(BAD_ROWS))

    # --- the same batch again, to completion: in this process, as the kill needs a process
    # of its own and the re-run does not (a spark-submit would pay a JVM start; the
    # concurrent test below checks the jobs' exit codes and what they recorded)
    started = time.monotonic()
    rerun = ingest_step(spark, load_settings("local", "penguins", overrides=[
        f"state_dir={state_dir}", f"dataset.source.path={big}"]), "big1")
    note(f"re-run of big1 done in {time.monotonic() - started:.1f} s")

    bronze_big = batch_rows(spark, bronze_dir, "big1")
    quarantine_big = batch_rows(spark, quarantine_dir, "big1", "step = 'ingest'")
    bronze_history = history(spark, bronze_dir)
    versions = [(h["version"], h["operation"]) for h in bronze_history]
    note(f"after the re-run: bronze history {versions}, "
         f"rows by batch {rows_by_batch(spark, bronze_dir)}, quarantine big1 {quarantine_big}, "
         f"outcome {rerun}")
    assert versions == [(0, "WRITE"), (1, "WRITE")]
    assert rows_by_batch(spark, bronze_dir) == {"small0": n0, "big1": bronze_big}
    assert (bronze_big, quarantine_big) == (BIG_ROWS, len(BAD_ROWS))
    assert bronze_big + quarantine_big == rows_in
    assert duplicate_keys(spark, bronze_dir, "big1") == 0
    assert rerun == IngestOutcome(rerun.run_id, rerun.outputs, bronze_version=1,
                                  rows_in=rows_in, bronze_rows=BIG_ROWS,
                                  quarantined=len(BAD_ROWS), files=BIG_FILES + 1)
    # the killed run's files stay orphaned (VACUUM removes them), never part of the table
    assert not set(orphans) & referenced_files(spark, bronze_dir)

    # the rows in recorded in MLflow by the run that finished
    settings = load_settings("local", "penguins", overrides=[f"state_dir={state_dir}"])
    client = MlflowClient(tracking_uri=settings.tracking.tracking_uri)
    experiment = client.get_experiment_by_name(settings.tracking.experiment)
    runs = client.search_runs(
        [experiment.experiment_id],
        "tags.`sparkmlops.step` = 'ingest' and tags.`sparkmlops.batch_id` = 'big1'")
    note(f"MLflow ingest runs of big1: {sorted(r.info.status for r in runs)}")
    finished = [r for r in runs if r.info.status == "FINISHED"]
    assert len(finished) == 1
    assert finished[0].data.metrics["rows_in.landing"] == rows_in
    assert finished[0].data.params["output.bronze.penguins.version"] == "1"


# ---------------------------------------------------------------- concurrent appends


def test_concurrent_ingests_of_two_batches_both_land_completely(spark, tmp_path, jobs):
    state_dir = tmp_path / "state"
    t0 = time.monotonic()
    small = write_landing(spark, SMALL_ROWS, str(tmp_path / "landing_small"), seed=3, files=1)
    landings = {
        batch: write_landing(spark, rows, str(tmp_path / f"landing_{batch}"), seed=20 + i,
                             files=2)
        for i, (batch, rows) in enumerate(CONCURRENT_ROWS.items())
    }
    n0 = seed_bronze(spark, state_dir, small, "small0")
    bronze_dir = lake(state_dir, "bronze")
    quarantine_dir = lake(state_dir, "quarantine")
    note(f"landing written and bronze seeded (v0, {n0} rows) in {time.monotonic() - t0:.1f} s")

    # both jobs overwrite (replaceWhere) their batch of the existing table at the same time
    started = {batch: submit(jobs, state_dir, landing, batch, tmp_path / "logs")
               for batch, landing in landings.items()}
    codes = {batch: job.wait() for batch, job in started.items()}
    note(f"both jobs done in {time.monotonic() - min(j.started for j in started.values()):.1f} s"
         f", exit codes {codes}")
    # the driver's Python log goes to spark-submit's stdout (PythonRunner merges stderr)
    conflicts = {batch: re.findall(r"write conflict on \S+ \(attempt \d+/\d+\)[^\n]*",
                                   job.stdout + job.stderr)
                 for batch, job in started.items()}
    for batch, lines in conflicts.items():
        note(f"{batch}: {len(lines)} write conflict(s) retried" +
             "".join(f"\n    {line}" for line in lines))
    for batch, job in started.items():
        assert codes[batch] == 0, job.failure()

    bronze_history = history(spark, bronze_dir)
    note("bronze history: " + "; ".join(
        f"v{h['version']} {h['operation']} {h['operationParameters'].get('predicate', '')} "
        f"rows={(h['operationMetrics'] or {}).get('numOutputRows')}" for h in bronze_history))
    counts = rows_by_batch(spark, bronze_dir)
    note(f"bronze rows by batch: {counts}")

    expected = {"small0": n0}
    for batch, rows in CONCURRENT_ROWS.items():
        bronze_rows = batch_rows(spark, bronze_dir, batch)
        quarantined = batch_rows(spark, quarantine_dir, batch, "step = 'ingest'")
        assert bronze_rows + quarantined == rows, batch
        assert duplicate_keys(spark, bronze_dir, batch) == 0, batch
        expected[batch] = bronze_rows
    assert counts == expected
    total = DeltaTable.forPath(spark, str(bronze_dir)).toDF().count()
    assert total == sum(expected.values())

    # one commit per batch on top of v0 (a retried conflict commits nothing), and each
    # job records the version that holds its own batch
    assert [h["version"] for h in bronze_history] == [0, 1, 2]
    assert all(h["operation"] == "WRITE" for h in bronze_history)
    commit_of = {}
    for h in bronze_history[1:]:
        predicate = (h["operationParameters"] or {}).get("predicate", "")
        owners = [batch for batch in CONCURRENT_ROWS if f"'{batch}'" in predicate]
        assert len(owners) == 1, f"v{h['version']} predicate {predicate!r}"
        commit_of[owners[0]] = h["version"]
        assert int(h["operationMetrics"]["numOutputRows"]) == expected[owners[0]]
    assert sorted(commit_of) == sorted(CONCURRENT_ROWS)
    recorded = ingest_log(spark, state_dir)
    note(f"ingest log: {recorded}")
    assert sorted(recorded) == sorted(["small0", *CONCURRENT_ROWS])
    assert {batch: recorded[batch] for batch in CONCURRENT_ROWS} == {
        batch: (rows, expected[batch], rows - expected[batch], commit_of[batch])
        for batch, rows in CONCURRENT_ROWS.items()}
