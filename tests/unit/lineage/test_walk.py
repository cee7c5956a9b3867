"""The pure parts of ``sparkmlops lineage``: the key asked for, which run wrote a table
version, and the report's JSON form."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import date, datetime

import pytest

from sparkmlops.config import ColumnSpec
from sparkmlops.errors import ConfigError
from sparkmlops.lineage.walk import (
    BatchLanding,
    LandingFileRecord,
    Lineage,
    RunCode,
    TableVersion,
    parse_keys,
    scoring_run,
    writer_of,
)
from sparkmlops.tracking.recorded import RecordedRun

KEYS = ["study_name", "species", "sample_number"]
SCHEMA = [ColumnSpec(name="study_name", type="string"), ColumnSpec(name="species", type="string"),
          ColumnSpec(name="sample_number", type="int"), ColumnSpec(name="laid", type="date")]


def _parse(*pairs: str, keys: list[str] = KEYS) -> dict[str, object]:
    return parse_keys(list(pairs), keys=keys, schema=SCHEMA, dataset="penguins")


def test_keys_are_typed_by_the_schema_and_ordered_like_the_dataset_keys():
    key = _parse("sample_number=7", "study_name=PAL0708", "species=Adelie = Pygoscelis")

    assert list(key.items()) == [("study_name", "PAL0708"), ("species", "Adelie = Pygoscelis"),
                                 ("sample_number", 7)]


def test_a_date_key_is_a_date():
    assert _parse("laid=2008-11-10", keys=["laid"]) == {"laid": date(2008, 11, 10)}


def test_a_hashed_key_is_looked_up_by_the_hmac_of_the_raw_value():
    hashed = [ColumnSpec(name="study_name", type="string", pii="hash"), *SCHEMA[1:]]
    key = b"lineage-test-key-0123456789abcdef-0123"  # pragma: allowlist secret

    parsed = parse_keys(["study_name=PAL0708", "species=Adelie", "sample_number=7"],
                        keys=KEYS, schema=hashed, dataset="penguins", pii_key=key)

    assert parsed == {"study_name": hmac.new(key, b"PAL0708", hashlib.sha256).hexdigest(),
                      "species": "Adelie", "sample_number": 7}
    with pytest.raises(ConfigError, match="study_name is pii: hash: looking it up needs"):
        parse_keys(["study_name=PAL0708", "species=Adelie", "sample_number=7"],
                   keys=KEYS, schema=hashed, dataset="penguins")


@pytest.mark.parametrize(("pairs", "message"), [
    (["colour=red", "study_name=A", "species=B", "sample_number=1"],
     "--key colour: not a key column of dataset penguins; its key columns: study_name, "
     "species, sample_number"),
    (["study_name=A", "sample_number=1"],
     "missing --key for species: a prediction row of dataset penguins is named by all of "
     "study_name, species, sample_number"),
    (["study_name=A", "study_name=B", "species=B", "sample_number=1"],
     "--key study_name given twice"),
    (["study_name", "species=B", "sample_number=1"],
     "--key 'study_name': expected <key column>=<value>"),
    (["study_name=A", "species=B", "sample_number=one"],
     "--key sample_number=one: not a int (the type of key column sample_number)"),
])
def test_a_key_that_names_no_row_is_refused_with_one_line(pairs, message):
    with pytest.raises(ConfigError) as refused:
        _parse(*pairs)

    assert str(refused.value) == message
    assert refused.value.exit_code == 2


def _run(run_id: str, start: int, *, outputs: dict[str, int], step: str = "features",
         params: dict[str, str] | None = None) -> RecordedRun:
    return RecordedRun(run_id=run_id, step=step, status="FINISHED", start_time=start,
                       outputs=outputs, params=params or {})


def test_the_writer_of_a_version_is_the_latest_write_at_or_before_it():
    runs = [_run("b1", 1, outputs={"gold.p": 0}), _run("b2", 2, outputs={"gold.p": 1}),
            _run("b3", 3, outputs={"gold.p": 3}), _run("other", 4, outputs={"silver.p": 2})]

    assert writer_of(runs, "gold.p", 0).run_id == "b1"
    assert writer_of(runs, "gold.p", 1).run_id == "b2"
    # v2 was written by another stage (the labels MERGE): the features write before it
    assert writer_of(runs, "gold.p", 2).run_id == "b2"
    assert writer_of(runs, "gold.p", 9).run_id == "b3"
    assert writer_of(runs, "silver.p", 1) is None
    assert writer_of(runs, "gold.p", None) is None


def test_of_runs_recording_the_same_version_the_earliest_made_the_commit():
    # a re-run that changed nothing records the table's current version as its output
    runs = [_run("rerun", 5, outputs={"gold.p": 1}), _run("wrote", 2, outputs={"gold.p": 1})]

    assert writer_of(runs, "gold.p", 1).run_id == "wrote"


def test_the_scoring_run_is_the_latest_of_the_batch_with_the_rows_model_version():
    runs = [_run("v1-old", 1, step="predict", outputs={"predictions.p": 0},
                 params={"model_version": "1"}),
            _run("v1-new", 3, step="predict", outputs={"predictions.p": 2},
                 params={"model_version": "1"}),
            _run("v2", 4, step="predict", outputs={"predictions.p": 3},
                 params={"model_version": "2"}),
            _run("failed-before-writing", 5, step="predict", outputs={},
                 params={"model_version": "1"})]

    assert scoring_run(runs, "predictions.p", "1").run_id == "v1-new"
    assert scoring_run(runs, "predictions.p", "3") is None


PREDICTIONS_AT = "s3a://u:pw@lake/predictions/p"  # pragma: allowlist secret
LANDED_AT = "s3a://u:pw@in/a.csv"  # pragma: allowlist secret


def test_the_json_form_has_iso_dates_and_redacted_paths():
    code = RunCode("r1", "b1", "abc123", "0.9.0", "editable", "c0ffee")
    lineage = Lineage(
        dataset="p", key={"sample_number": 7, "laid": date(2008, 11, 10)},
        predictions=TableVersion("predictions.p", 2, PREDICTIONS_AT),
        batch_id="b1", batches=["b1"],
        prediction={"prediction": 1.0, "scored_at": datetime(2026, 12, 6, 12, 0, 1)},
        model_name="m", model_version="3", model_aliases=["champion"], training=code,
        training_inputs={"gold.p": 4}, gold=TableVersion("gold.p", 4, "/lake/gold/p", "f1",
                                                         "features"),
        silver=None, bronze=None, validation=None,
        landing=BatchLanding("b1", [LandingFileRecord(LANDED_AT, "ab12", 10)], 0,
                             "i1", datetime(2026, 12, 6, 11, 0)),
        scoring=None, scored_from=None)

    document = json.loads(json.dumps(lineage.to_dict()))

    assert document["key"] == {"sample_number": 7, "laid": "2008-11-10"}
    assert document["prediction"]["scored_at"] == "2026-12-06T12:00:01"
    assert document["predictions"]["address"] == "s3a://u:***REDACTED***@lake/predictions/p"
    assert document["landing"]["files"] == [
        {"path": "s3a://u:***REDACTED***@in/a.csv", "content_sha256": "ab12", "size": 10}]
    assert document["gold"] == {"table": "gold.p", "version": 4, "address": "/lake/gold/p",
                                "written_by": "f1", "step": "features"}
    assert document["training"]["config_hash"] == "c0ffee"
    assert "pw" not in json.dumps(document) and "pw" not in lineage.report()
