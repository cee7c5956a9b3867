"""``pii`` columns never stored raw: an ingest with a hashed e-mail, a masked name, a
dropped column and a malformed row leaves no raw value in bronze or quarantine (read
with ``deltalake``, not Spark), holds Python's HMAC where the column is kept, and a run
without the key stops before any table exists."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from pathlib import Path

import pytest
import yaml
from deltalake import DeltaTable

from sparkmlops.cli import main
from sparkmlops.errors import ConfigError
from sparkmlops.ingest.step import ingest_step
from sparkmlops.pii import MASK, PII_KEY_ENV
from sparkmlops.validate.step import profile_step

KEY = "integration-test-pii-key-0123456789abcdef"  # pragma: allowlist secret
# penguins' schema: individual_id (6) holds a person's e-mail here, comments (16) a name
# and stage (5) a column to drop
PII = ("dataset.schema.6.pii=hash", "dataset.schema.16.pii=mask", "dataset.schema.5.pii=drop")


def python_hmac(value: str) -> str:
    return hmac.new(KEY.encode(), value.encode(), hashlib.sha256).hexdigest()


def person(landing_csv, n: int, email: str, name: str, mass: str = "3750") -> str:
    """A landing line whose individual id is ``email`` and whose comment is ``name``."""
    return landing_csv.line(n, mass=mass, comment=f'"{name}"').replace(f",N1A{n},",
                                                                       f",{email},", 1)


def delta_rows(table: Path) -> list[dict[str, object]]:
    """Every row of the Delta table at ``table``, read by delta-rs (no Spark)."""
    return DeltaTable(str(table)).to_pyarrow_table().to_pylist()


def raw_values_in_tables(lake: Path, raw: list[str]) -> dict[str, list[str]]:
    """Each Delta table under ``lake`` (a folder with a ``_delta_log``) that holds one of
    ``raw`` in any cell's text, with the values it holds."""
    found: dict[str, list[str]] = {}
    for log in lake.rglob("_delta_log"):
        text = json.dumps(delta_rows(log.parent), default=str)
        held = [value for value in raw if value in text]
        if held:
            found[str(log.parent.relative_to(lake))] = held
    return found


@pytest.fixture
def planted(landing_csv, tmp_path):
    """A landing file of three people (one row malformed: a mass that is no number), the
    raw values each carries, unique to this test."""
    tag = uuid.uuid4().hex[:12]
    people = {n: (f"p{n}.{tag}@example.com", f"Person{n} {tag}") for n in (1, 2, 3)}
    lines = [person(landing_csv, n, email, name, mass="heavy" if n == 3 else "3750")
             for n, (email, name) in people.items()]
    landing = landing_csv.write(tmp_path / "landing", "part1.csv", lines)
    return landing, people


def test_ingest_stores_the_hmac_of_a_hashed_column_masks_drops_and_keeps_no_raw_value(
        spark, make_settings, planted, tmp_path, monkeypatch):
    landing, people = planted
    monkeypatch.setenv(PII_KEY_ENV, KEY)
    settings = make_settings(f"dataset.source.path={landing}", *PII)

    result = ingest_step(spark, settings, "b1")

    assert (result.rows_in, result.bronze_rows, result.quarantined) == (3, 2, 1)
    lake = Path(settings.storage.root)
    bronze = delta_rows(lake / "bronze" / "penguins")
    assert sorted((r["sample_number"], r["individual_id"], r["comments"]) for r in bronze) == [
        (1, python_hmac(people[1][0]), MASK), (2, python_hmac(people[2][0]), MASK)]
    assert "stage" not in bronze[0]
    [quarantined] = delta_rows(lake / "quarantine" / "penguins")
    assert quarantined["reason"] == (
        "unparseable record: malformed line or value not castable to its type")
    assert (quarantined["_source_row"], quarantined["step"]) == (3, "ingest")
    record = json.loads(quarantined["record"])
    assert (record["sample_number"], record["individual_id"], record["comments"]) == (
        3, python_hmac(people[3][0]), MASK)
    assert "stage" not in record
    raw = [value for pair in people.values() for value in pair] + ["Adult, 1 Egg Stage"]
    assert raw_values_in_tables(lake, raw) == {}


@pytest.mark.parametrize(("pii_record", "expected"), [
    ("drop", None),
    ("hash", "hmac"),
])
def test_quarantine_drops_or_hashes_the_raw_record_as_the_dataset_says(
        spark, make_settings, planted, landing_csv, monkeypatch, pii_record, expected):
    landing, people = planted
    monkeypatch.setenv(PII_KEY_ENV, KEY)
    settings = make_settings(f"dataset.source.path={landing}", *PII,
                             f"dataset.quarantine.pii_record={pii_record}")

    ingest_step(spark, settings, "b1")

    lake = Path(settings.storage.root)
    [quarantined] = delta_rows(lake / "quarantine" / "penguins")
    raw_line = (landing / "part1.csv").read_text().splitlines()[3]
    assert quarantined["record"] == (None if expected is None else python_hmac(raw_line))
    assert quarantined["reason"].startswith("unparseable record")
    raw = [value for pair in people.values() for value in pair]
    assert raw_values_in_tables(lake, raw) == {}


def test_a_run_that_needs_the_key_and_lacks_it_stops_before_any_table(
        spark, make_settings, planted, tmp_path, monkeypatch):
    landing, _ = planted
    monkeypatch.delenv(PII_KEY_ENV, raising=False)
    settings = make_settings(f"dataset.source.path={landing}", *PII)

    with pytest.raises(ConfigError, match=f"^{PII_KEY_ENV} is not set: the dataset has pii"):
        ingest_step(spark, settings, "b1")

    lake = Path(settings.storage.root)
    assert not lake.exists() or list(lake.rglob("_delta_log")) == []


def test_the_ingest_command_without_the_key_exits_2_with_one_line(
        spark, planted, tmp_path, monkeypatch, capsys):
    landing, _ = planted
    monkeypatch.delenv(PII_KEY_ENV, raising=False)
    state = tmp_path / "state"
    overrides = [f"state_dir={state}", f"dataset.source.path={landing}", *PII]

    code = main(["ingest", *[a for o in overrides for a in ("--set", o)]])

    lines = [line for line in capsys.readouterr().err.splitlines()
             if line.startswith("sparkmlops ")]
    assert code == 2
    assert lines == [
        "sparkmlops ingest: ConfigError: SPARKMLOPS_PII_KEY is not set: the dataset has pii: "
        "hash columns, whose HMAC key it is (e.g. `openssl rand -hex 32`, kept in the "
        "platform's secret store)"]
    assert list((state / "lake").rglob("_delta_log")) == []


def test_profile_proposes_no_expectation_from_a_pii_column_and_says_so(
        spark, make_settings, planted, monkeypatch):
    landing, people = planted
    monkeypatch.setenv(PII_KEY_ENV, KEY)
    settings = make_settings(f"dataset.source.path={landing}", *PII)
    ingest_step(spark, settings, "b1")

    proposal = profile_step(spark, settings)

    header = proposal.text.splitlines()[0]
    assert header.endswith("; pii columns not profiled: stage, individual_id, comments")
    suite = yaml.safe_load(proposal.text)["validate"]["expectations"]
    columns = {e["kwargs"].get("column") for e in suite}
    assert {"species", "island", "body_mass_g"} <= columns
    assert not columns & {"individual_id", "comments", "stage"}
    assert python_hmac(people[1][0]) not in proposal.text
