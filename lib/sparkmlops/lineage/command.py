"""``sparkmlops lineage --key <column>=<value> ...``: one prediction row walked back to its
model version, training run and data, validation, landing files and code."""

from __future__ import annotations

import argparse
import json
from typing import Any

from sparkmlops.command import Command
from sparkmlops.config import Settings


def _lineage_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key", dest="keys", action="append", default=[],
                        metavar="COLUMN=VALUE", required=True,
                        help="a key column of the dataset and its value; one --key per key "
                             "column (dataset.keys)")
    parser.add_argument("--json", action="store_true",
                        help="print the lineage as one JSON document (and nothing else on "
                             "stdout)")


def _lineage(spark: Any, settings: Settings, batch_id: str, args: argparse.Namespace) -> str:
    from sparkmlops.lineage.step import lineage_step
    from sparkmlops.lineage.walk import parse_keys
    from sparkmlops.pii import pii_key

    dataset = settings.dataset
    # a hashed key column is looked up by the HMAC of the value given: the key is needed
    # only then (ConfigError, one line, when it is missing)
    hmac_key = pii_key([c for c in dataset.schema_ if c.name in dataset.keys])
    key = parse_keys(args.keys, keys=dataset.keys, schema=dataset.schema_, dataset=dataset.name,
                     pii_key=hmac_key)
    lineage = lineage_step(spark, settings, key,
                           batch_id=None if batch_id == "all" else batch_id)
    if args.json:
        return json.dumps(lineage.to_dict(), indent=2, sort_keys=True)
    return lineage.report()


LINEAGE = Command("lineage", "walk one prediction row back to its model, data and code",
                  _lineage, add_arguments=_lineage_arguments, scope="tables")
