"""No raw ``pii`` value anywhere after a whole pipeline run: the sample's first study with
its study name hashed (a key: validate's repeated-key check, the gold and predictions
joins and ``lineage --key`` run on the HMAC), individual ids hashed, comments masked, the
stage dropped, two birds carrying a planted e-mail and name and one malformed line that
lands in quarantine. Every Delta table under the lake is read with ``deltalake`` (not
Spark), and every other file under the state dir (the MLflow store and artifacts, Data
Docs, Delta logs) is searched byte by byte."""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import uuid
from pathlib import Path

import pytest
from deltalake import DeltaTable

from sparkmlops.cli import main
from sparkmlops.config import load_settings
from sparkmlops.ingest.step import default_batch_id
from sparkmlops.pii import MASK, PII_KEY_ENV
from sparkmlops.pipeline.step import run_pipeline
from sparkmlops.predict.step import PredictOutcome

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample" / "penguins" / "landing" / "penguins_raw_PAL0708.csv"
KEY = "e2e-pii-key-for-tests-0123456789abcdef-0123"  # pragma: allowlist secret
PII = ("dataset.schema.0.pii=hash", "dataset.schema.6.pii=hash",
       "dataset.schema.16.pii=mask", "dataset.schema.5.pii=drop",
       # the suite's regex on study_name now sees the 64 hex digits of the HMAC
       "dataset.validate.expectations.2.kwargs.regex='^[0-9a-f]{64}$'")
ADELIE = "Adelie Penguin (Pygoscelis adeliae)"


def python_hmac(value: str) -> str:
    return hmac.new(KEY.encode(), value.encode(), hashlib.sha256).hexdigest()


def delta_tables(lake: Path) -> dict[str, list[dict[str, object]]]:
    """Every Delta table under ``lake`` by its folder, read by delta-rs."""
    return {str(log.parent.relative_to(lake)):
            DeltaTable(str(log.parent)).to_pyarrow_table().to_pylist()
            for log in sorted(lake.rglob("_delta_log"))}


def cells(rows: list[dict[str, object]]) -> set[str]:
    """Every text a table holds: each cell, and each string inside a JSON record."""
    found: set[str] = set()
    for row in rows:
        for value in row.values():
            found.add(str(value))
            if isinstance(value, str) and value.startswith("{"):
                found.update(str(v) for v in json.loads(value).values())
    return found


@pytest.fixture(scope="module")
def run(spark, tmp_path_factory):
    """The pipeline once over the planted landing file, with the key set."""
    tmp = tmp_path_factory.mktemp("pii_pipeline")
    tag = uuid.uuid4().hex[:12]
    planted = {1: (f"ana.{tag}@example.com", f"Ana Lima {tag}"),
               2: (f"bo.{tag}@example.org", f"Bo Silva {tag}"),
               3: (f"cy.{tag}@example.net", f"Cy Moreau {tag}")}
    header, *records = list(csv.reader(SAMPLE.read_text().splitlines()))
    for n, (email, name) in planted.items():
        records[n - 1][6], records[n - 1][16] = email, name
    records[2][12] = "heavy"  # bird 3's body mass is no number: unparseable, quarantined
    landing = tmp / "landing"
    landing.mkdir()
    with (landing / "part1.csv").open("w", newline="") as out:
        csv.writer(out).writerows([header, *records])
    state = tmp / "state"
    overrides = [f"state_dir={state}", f"dataset.source.path={landing}", *PII]
    mp = pytest.MonkeyPatch()
    mp.setenv(PII_KEY_ENV, KEY)
    settings = load_settings("local", "penguins", overrides=overrides)
    result = run_pipeline(spark, settings, default_batch_id(spark, settings))
    yield state, settings, overrides, planted, records, result
    mp.undo()


def test_no_table_holds_a_raw_value_and_the_kept_columns_hold_pythons_hmac(run):
    state, settings, _, planted, records, _ = run
    tables = delta_tables(Path(settings.storage.root))

    raw = ({r[0] for r in records} | {r[6] for r in records}
           | {r[16] for r in records if r[16] != "NA"} | {r[5] for r in records})
    holding = {name: sorted(raw & cells(rows)) for name, rows in tables.items()}
    assert {name: held for name, held in holding.items() if held} == {}
    # the hashes are where the columns are kept
    assert len(tables["bronze/penguins"]) == len(records) - 1
    bronze = {(r["species"], r["sample_number"]): r for r in tables["bronze/penguins"]}
    for n, (email, _) in planted.items():
        if n != 3:
            row = bronze[(ADELIE, n)]
            assert (row["study_name"], row["individual_id"], row["comments"]) == (
                python_hmac("PAL0708"), python_hmac(email), MASK)
    assert "stage" not in bronze[(ADELIE, 1)]
    [quarantined] = [r for r in tables["quarantine/penguins"] if r["step"] == "ingest"]
    record = json.loads(quarantined["record"])
    assert (record["sample_number"], record["individual_id"], record["comments"]) == (
        3, python_hmac(planted[3][0]), MASK)
    # validate's quarantined rows (a failed expectation) keep their record, protected
    refused = [json.loads(r["record"]) for r in tables["quarantine/penguins"]
               if r["step"] == "validate"]
    assert all(r["study_name"] == python_hmac("PAL0708") and "stage" not in r
               for r in refused)
    for layer in ("silver/penguins", "gold/penguins_features", "predictions/penguins"):
        assert {r["study_name"] for r in tables[layer]} == {python_hmac("PAL0708")}, layer
    assert len(tables["predictions/penguins"]) > 0


def test_no_file_under_the_state_dir_holds_a_raw_value_or_the_key(run):
    state, _, _, planted, records, _ = run
    searched = [v for pair in planted.values() for v in pair] + [
        "PAL0708", "Adult, 1 Egg Stage", KEY,
        *{r[16] for r in records if len(r[16]) > 12}]
    files = [p for p in state.rglob("*") if p.is_file()]

    holding = {str(p.relative_to(state)): held for p in files
               if (held := [s for s in searched if s.encode() in p.read_bytes()])}

    assert holding == {}
    # the search covered the MLflow store, its artifacts and the Data Docs
    names = {p.relative_to(state).parts[0] for p in files}
    assert {"mlflow.db", "mlartifacts", "data_docs", "lake"} <= names
    assert any(p.suffix == ".html" for p in files)
    assert any(p.name == "reference_profile.json" for p in files)


def test_the_reference_profile_leaves_the_pii_columns_out(run):
    state = run[0]
    [profile] = list(state.rglob("reference_profile.json"))

    columns = {c for part in json.loads(profile.read_text()).values() for c in part}

    assert not columns & {"study_name", "individual_id", "comments", "stage"}
    assert {"species", "island"} <= columns


def test_lineage_finds_a_row_by_the_raw_value_of_a_hashed_key(run, capsys):
    _, _, overrides, _, _, result = run
    args = ["--key", "study_name=PAL0708", "--key", f"species={ADELIE}",
            "--key", "sample_number=1"]

    code = main(["lineage", *args, "--json", *[a for o in overrides for a in ("--set", o)]])

    out = capsys.readouterr().out
    assert code == 0
    walked = json.loads(out)
    assert walked["key"]["study_name"] == python_hmac("PAL0708")
    assert walked["batch_id"] == result.batch_id
    assert result.step(PredictOutcome).rows > 0
    assert "PAL0708" not in out
