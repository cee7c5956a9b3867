"""Upsert mode through the whole pipeline: a later batch corrects records of an earlier one.

Batch 1 is two seasons of the sample; batch 2 is the third season plus corrected
records of five birds from batch 1 (a later Date Egg, the write.order_by column).
Every keyed table downstream of bronze must end with one row per bird, the
corrected ones under batch 2, and the predictions must follow.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from sparkmlops.pipeline.step import run_pipeline
from sparkmlops.predict.step import PredictOutcome
from sparkmlops.tables import dataset_tables, read_table
from sparkmlops.validate.step import ValidateOutcome

pytestmark = pytest.mark.e2e

KEY = ("study_name", "species", "sample_number")


def _write_corrections(source: Path, target: Path, n: int) -> list[tuple]:
    with source.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header, rows = reader.fieldnames, list(reader)
    measured = [r for r in rows if r["Body Mass (g)"] != "NA" and r["Sex"] in {"MALE", "FEMALE"}]
    corrected = []
    for row in measured[:n]:
        row = dict(row, **{"Date Egg": "2009-12-31",
                           "Body Mass (g)": str(float(row["Body Mass (g)"]) + 100)})
        corrected.append(row)
    with target.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(corrected)
    return [(r["studyName"], r["Species"], int(r["Sample Number"]), float(r["Body Mass (g)"]))
            for r in corrected]


def test_a_later_batch_corrects_earlier_records_in_every_keyed_table(
        spark, tmp_path, sample_landing):
    from sparkmlops.config import load_settings

    landing = tmp_path / "landing"
    landing.mkdir()
    for name in ("penguins_raw_PAL0708.csv", "penguins_raw_PAL0809.csv"):
        shutil.copy(sample_landing / name, landing / name)
    settings = load_settings("local", "penguins", overrides=[
        f"state_dir={tmp_path / 'state'}", f"dataset.source.path={landing}",
        "dataset.write.mode=upsert", "dataset.write.order_by=date_egg"])

    run_pipeline(spark, settings, "b1")
    shutil.copy(sample_landing / "penguins_raw_PAL0910.csv", landing)
    corrected = _write_corrections(sample_landing / "penguins_raw_PAL0708.csv",
                                   landing / "corrections_PAL0708.csv", 5)
    second = run_pipeline(spark, settings, "b2")

    bronze = read_table(spark, dataset_tables(settings).bronze)
    silver = read_table(spark, dataset_tables(settings).silver)
    gold = read_table(spark, dataset_tables(settings).gold)
    predictions = read_table(spark, dataset_tables(settings).predictions)
    raw_rows = 344 + len(corrected)
    assert bronze.count() == raw_rows  # bronze keeps every raw record
    assert silver.count() == 342  # one row per bird: the two unmeasured ones are quarantined
    for table in (silver, gold, predictions):
        assert table.select(*KEY).distinct().count() == table.count()
    assert gold.count() == predictions.count() == 342

    keys = [k[:3] for k in corrected]
    in_silver = sorted((r.study_name, r.species, r.sample_number, r.body_mass_g, r._batch_id)
                       for r in silver.collect() if (r.study_name, r.species, r.sample_number)
                       in keys)
    assert in_silver == sorted((*k, "b2") for k in corrected)
    scored = {(r.study_name, r.species, r.sample_number): (r._batch_id, r.model_version)
              for r in predictions.collect()}
    champion = second.step(PredictOutcome).model_version
    assert {scored[k] for k in keys} == {("b2", champion)}
    # batch 2's own counts reconcile: bronze batch = silver + quarantined + superseded + stale
    validated = second.step(ValidateOutcome)
    assert validated.silver_rows + validated.quarantined + validated.superseded \
        + validated.stale == bronze.where("_batch_id = 'b2'").count()
    assert validated.stale == 0 and validated.superseded == 0
