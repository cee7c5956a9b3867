"""Seeded synthetic Palmer penguins in the raw landing format, at any row count.

For tests and benchmarks: the rows look like ``data/sample/penguins/landing/*.csv``
(same header with the raw source names, ``NA`` for nulls, dates ``yyyy-MM-dd``, the
quoted ``"Adult, 1 Egg Stage"``), so the whole pipeline runs on them unchanged::

    python -m benchmarks.datagen --rows 1000000 --out /tmp/penguins-1m
    sparkmlops pipeline --set dataset.source.path=/tmp/penguins-1m

Everything is a Spark column expression on ``spark.range``: no Python loop, no UDF,
no shuffle, so it scales linearly with the cores (1M rows to CSV: about 30 s on two
busy cores). Randomness is ``xxhash64`` of the row id (or the nest), the seed and a
stream number, never ``F.rand``: a row's values depend only on its id, the seed and
the row count (which sets the season boundaries), not on how the range is
partitioned. Note that conf/datasets/penguins.yml caps a batch at 10M rows
(``expect_table_row_count_to_be_between``): a bigger batch fails the quality gate.

How the rows are laid out (what makes them realistic and the key unique):

- Rows come in blocks of 88 birds: 38 Adélie, 18 Chinstrap, 32 Gentoo (the sample's
  152/68/124). ``Sample Number`` counts the birds of a species, so
  (``studyName``, ``Species``, ``Sample Number``) is unique by construction.
- Blocks are split into three seasons (PAL0708, PAL0809, PAL0910) in order, so sample
  numbers grow from season to season as in the sample.
- Birds nest in pairs (``N<nest>A1``/``N<nest>A2``, consecutive sample numbers): one
  male, one female, one island, one egg date and one clutch completion per nest.
- Measurements are normal per species × sex with the sample's means and standard
  deviations, correlated within a bird (r ≈ 0.3 between the four body measurements)
  and rounded as in the field sheet (culmen 0.1 mm, flipper 1 mm, mass 25 g).
- About 3 % of birds have unknown sex, 0.5 % were not sampled at all (every
  measurement ``NA``), about 3.5 % lack isotopes, 10.5 % of nests never had a full
  clutch; each with the field comment the sample uses.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Sequence
from datetime import date

import pyspark.sql.functions as F
from benchmarks.session import env_session, log_to_stderr
from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)

# Raw source column names, in file order (the ``source`` names of conf/datasets/penguins.yml).
COLUMNS = [
    "studyName", "Sample Number", "Species", "Region", "Island", "Stage", "Individual ID",
    "Clutch Completion", "Date Egg", "Culmen Length (mm)", "Culmen Depth (mm)",
    "Flipper Length (mm)", "Body Mass (g)", "Sex", "Delta 15 N (o/oo)", "Delta 13 C (o/oo)",
    "Comments",
]

SPECIES = [
    "Adelie Penguin (Pygoscelis adeliae)",
    "Chinstrap penguin (Pygoscelis antarctica)",
    "Gentoo penguin (Pygoscelis papua)",
]
# Birds per species in one block of 88 (sample: 152/68/124 of 344); even, so nests
# (pairs of consecutive sample numbers) never straddle a block.
BLOCK_COUNTS = [38, 18, 32]
BLOCK_SIZE = sum(BLOCK_COUNTS)

# Seasons: study name and the window of egg dates seen in the sample (first day, days).
SEASONS = [
    ("PAL0708", date(2007, 11, 9), 25),
    ("PAL0809", date(2008, 11, 2), 24),
    ("PAL0910", date(2009, 11, 9), 23),
]

# Adélie nests by island (sample: Biscoe 44, Dream 56, Torgersen 52 of 152 birds);
# Chinstrap nest only on Dream, Gentoo only on Biscoe.
ADELIE_ISLANDS = [("Biscoe", 44 / 152), ("Dream", 56 / 152), ("Torgersen", 52 / 152)]

# Mean and standard deviation per species × sex, in group order
# [Adelie F, Adelie M, Chinstrap F, Chinstrap M, Gentoo F, Gentoo M]. Computed once
# with pandas from the 333 sexed birds of data/sample/penguins/landing/*.csv
# (groupby(["Species", "Sex"]).agg(["mean", "std"]), rounded).
MEASUREMENTS: dict[str, tuple[list[float], list[float]]] = {
    "Culmen Length (mm)": (
        [37.258, 40.390, 46.574, 51.094, 45.564, 49.474],
        [2.029, 2.277, 3.109, 1.565, 2.051, 2.721],
    ),
    "Culmen Depth (mm)": (
        [17.622, 19.073, 17.588, 19.253, 14.238, 15.718],
        [0.943, 1.019, 0.781, 0.761, 0.540, 0.741],
    ),
    "Flipper Length (mm)": (
        [187.795, 192.411, 191.735, 199.912, 212.707, 221.541],
        [5.595, 6.599, 5.754, 5.977, 3.898, 5.673],
    ),
    "Body Mass (g)": (
        [3368.836, 4043.493, 3527.206, 3938.971, 4679.741, 5484.836],
        [269.380, 346.812, 285.334, 362.138, 281.578, 313.159],
    ),
    "Delta 15 N (o/oo)": (
        [8.793, 8.928, 9.251, 9.465, 8.193, 8.303],
        [0.476, 0.363, 0.322, 0.387, 0.279, 0.245],
    ),
    "Delta 13 C (o/oo)": (
        [-25.794, -25.834, -24.565, -24.528, -26.197, -26.171],
        [0.613, 0.562, 0.241, 0.239, 0.534, 0.555],
    ),
}
# Within-bird correlation of the four body measurements (sample: 0.0-0.66, mean ≈ 0.3).
BODY_CORRELATION = 0.3
# Normal draws are cut at ±4 sd, so no negative mass even at 10^9 rows.
Z_LIMIT = 4.0

P_NOT_SAMPLED = 0.005        # "Adult not sampled.": every measurement and sex NA (2/344)
P_UNKNOWN_SEX = 0.025        # of sampled birds; with the not sampled ≈ 3 % (11/344)
P_NO_ISOTOPES = 0.032        # both deltas NA (11/342)
P_NO_DELTA15N = 0.003        # only delta 15 N NA (1/342)
P_INCOMPLETE_CLUTCH = 0.105  # per nest (18/172)

NOT_SAMPLED = "Adult not sampled."
SEXING_FAILED = "Sexing primers did not amplify."
NO_BLOOD_FOR_SEXING = "No blood sample obtained for sexing."
INCOMPLETE_CLUTCH = "Nest never observed with full clutch."
NO_ISOTOPES = "Not enough blood for isotopes."
NO_DELTA15N = "No delta15N data received from lab."

# Stream numbers: one independent random stream per use of the hash.
_S_ISLAND, _S_DATE, _S_CLUTCH, _S_FIRST_SEX = 1, 2, 3, 4
_S_NOT_SAMPLED, _S_UNKNOWN_SEX, _S_SEX_COMMENT, _S_ISOTOPES = 11, 12, 13, 14
_S_NORMALS = 100  # 100..107: four Box-Muller pairs
_S_BAD = 200  # which rows write_landing spoils (bad_fraction)
BAD_MASS = "heavy"  # a body mass that does not cast to int: ingest quarantines the row

_TWO_POW_53 = float(1 << 53)


def uniform(seed: int, stream: int, *keys: Column) -> Column:
    """A uniform double in (0, 1) from the hash of ``keys``, the seed and the stream."""
    h = F.xxhash64(*keys, F.lit(seed), F.lit(stream))
    return (F.shiftrightunsigned(h, 11).cast("double") + F.lit(0.5)) / F.lit(_TWO_POW_53)


def normal_pair(u1: Column, u2: Column) -> tuple[Column, Column]:
    """Two independent standard normals from two uniforms (Box-Muller), cut at ±``Z_LIMIT``."""
    radius = F.sqrt(F.lit(-2.0) * F.log(u1))
    angle = F.lit(2 * math.pi) * u2
    return _clip(radius * F.cos(angle)), _clip(radius * F.sin(angle))


def _clip(z: Column) -> Column:
    return F.least(F.greatest(z, F.lit(-Z_LIMIT)), F.lit(Z_LIMIT))


def _pick(values: Sequence[object], index: Column) -> Column:
    """``values[index]`` for a 0-based integer column."""
    return F.get(F.array(*[F.lit(v) for v in values]), index)


def generate_penguins(
    spark: SparkSession, rows: int, *, seed: int = 7, partitions: int | None = None
) -> DataFrame:
    """``rows`` synthetic penguins with the raw source column names and types.

    The same ``rows`` and ``seed`` always give the same rows, whatever ``partitions``
    (the number of ``spark.range`` partitions, default Spark's parallelism); row ``i``
    is in partition order, so writing the frame gives the same files every time.

    Args:
        spark: the session.
        rows: number of rows (0 or more).
        seed: any integer; a different seed gives different values.
        partitions: partitions of the frame (e.g. the number of files to write).

    Returns:
        A DataFrame with the columns of ``COLUMNS``: strings, an int sample number,
        a date, doubles for culmen and isotopes, ints for flipper and mass.
    """
    if rows < 0:
        raise ValueError(f"rows must be 0 or more, got {rows}")
    if partitions is not None and partitions < 1:
        raise ValueError(f"partitions must be 1 or more, got {partitions}")
    blocks = max(1, math.ceil(rows / BLOCK_SIZE))
    base = spark.range(0, rows, 1, numPartitions=partitions) if partitions else spark.range(rows)

    rid = F.col("id")
    block = F.floor(rid / BLOCK_SIZE)
    pos = F.pmod(rid, F.lit(BLOCK_SIZE))
    first_gentoo = BLOCK_COUNTS[0] + BLOCK_COUNTS[1]
    species_idx = (
        F.when(pos < BLOCK_COUNTS[0], F.lit(0))
        .when(pos < first_gentoo, F.lit(1))
        .otherwise(F.lit(2))
    )
    rank_in_block = pos - _pick([0, BLOCK_COUNTS[0], first_gentoo], species_idx)
    sample_number = block * _pick(BLOCK_COUNTS, species_idx) + rank_in_block + F.lit(1)
    season = F.least(F.floor(block * F.lit(len(SEASONS)) / F.lit(blocks)),
                     F.lit(len(SEASONS) - 1)).cast("int")

    df = base.select(
        rid,
        species_idx.cast("int").alias("_species"),
        sample_number.cast("int").alias("_sample"),
        season.alias("_season"),
    )
    nest = F.floor((F.col("_sample") + F.lit(1)) / F.lit(2)).cast("long")
    df = df.withColumn("_nest", nest).withColumn(
        "_partner", F.when(F.col("_sample") % 2 == 1, F.lit(1)).otherwise(F.lit(2))
    )
    nest_key = (F.col("_species"), F.col("_nest"))

    # Every random number is a column of its own projection, so Spark keeps it apart
    # and hashes it once per row (inlined, e.g. the shared size factor would be hashed
    # once per measurement using it).
    df = df.select(
        "*",
        # nest-level: island, egg date, clutch, which bird of the pair is the male
        *[uniform(seed, stream, *nest_key).alias(name) for stream, name in [
            (_S_ISLAND, "_u_island"), (_S_DATE, "_u_date"), (_S_CLUTCH, "_u_clutch"),
            (_S_FIRST_SEX, "_u_first_sex")]],
        # bird-level: sampling, sexing, isotopes, and four pairs for seven normals
        *[uniform(seed, stream, rid).alias(name) for stream, name in [
            (_S_NOT_SAMPLED, "_u_not_sampled"), (_S_UNKNOWN_SEX, "_u_sex"),
            (_S_SEX_COMMENT, "_u_sex_comment"), (_S_ISOTOPES, "_u_iso")]],
        *[uniform(seed, _S_NORMALS + i, rid).alias(f"_u{i}") for i in range(8)],
    )

    u_island = F.col("_u_island")
    cut1 = ADELIE_ISLANDS[0][1]
    cut2 = cut1 + ADELIE_ISLANDS[1][1]
    adelie_island = (
        F.when(u_island < cut1, F.lit("Biscoe"))
        .when(u_island < cut2, F.lit("Dream"))
        .otherwise(F.lit("Torgersen"))
    )
    island = (
        F.when(F.col("_species") == 0, adelie_island)
        .when(F.col("_species") == 1, F.lit("Dream"))
        .otherwise(F.lit("Biscoe"))
    )
    window_days = _pick([days for _, _, days in SEASONS], F.col("_season"))
    offset = F.floor(F.col("_u_date") * window_days).cast("int")
    date_egg = F.date_add(_pick([start for _, start, _ in SEASONS], F.col("_season")), offset)
    is_male = (F.col("_partner") == 1) == (F.col("_u_first_sex") < 0.5)
    not_sampled = F.col("_u_not_sampled") < P_NOT_SAMPLED
    u_iso = F.col("_u_iso")
    no_isotopes = u_iso < P_NO_ISOTOPES
    no_delta15n = (u_iso >= P_NO_ISOTOPES) & (u_iso < P_NO_ISOTOPES + P_NO_DELTA15N)
    normals = [z for i in range(0, 8, 2) for z in normal_pair(F.col(f"_u{i}"), F.col(f"_u{i + 1}"))]
    names = ["_z_size", "_z_culmen_len", "_z_culmen_dep", "_z_flipper", "_z_mass", "_z_d15n",
             "_z_d13c"]

    df = df.select(
        "*",
        island.alias("_island"),
        date_egg.alias("_date"),
        (F.col("_u_clutch") < P_INCOMPLETE_CLUTCH).alias("_incomplete"),
        is_male.alias("_male"),
        not_sampled.alias("_not_sampled"),
        *[z.alias(name) for name, z in zip(names, normals[: len(names)], strict=True)],
    )
    missing = F.col("_not_sampled")
    df = df.select(
        "*",
        (~missing & (F.col("_u_sex") < P_UNKNOWN_SEX)).alias("_unknown_sex"),
        (~missing & no_isotopes).alias("_no_isotopes"),
        (~missing & no_delta15n).alias("_no_delta15n"),
    )

    # --- measurements: species × sex normals, the body ones sharing a size factor
    z_size, z_culmen_len, z_culmen_dep, z_flipper, z_mass, z_d15n, z_d13c = (
        F.col(name) for name in names)
    group = F.col("_species") * 2 + F.col("_male").cast("int")
    shared, own = math.sqrt(BODY_CORRELATION), math.sqrt(1 - BODY_CORRELATION)

    def measure(name: str, z: Column, correlated: bool) -> Column:
        means, sds = MEASUREMENTS[name]
        if correlated:
            z = F.lit(shared) * z_size + F.lit(own) * z
        return _pick(means, group) + _pick(sds, group) * z

    culmen_len = F.round(measure("Culmen Length (mm)", z_culmen_len, True), 1)
    culmen_dep = F.round(measure("Culmen Depth (mm)", z_culmen_dep, True), 1)
    flipper = F.round(measure("Flipper Length (mm)", z_flipper, True)).cast("int")
    mass = (F.round(measure("Body Mass (g)", z_mass, True) / 25) * 25).cast("int")
    d15n = F.round(measure("Delta 15 N (o/oo)", z_d15n, False), 5)
    d13c = F.round(measure("Delta 13 C (o/oo)", z_d13c, False), 5)
    no_d15n = missing | F.col("_no_isotopes") | F.col("_no_delta15n")
    no_d13c = missing | F.col("_no_isotopes")

    sex = F.when(missing | F.col("_unknown_sex"), F.lit(None).cast("string")).when(
        F.col("_male"), F.lit("MALE")).otherwise(F.lit("FEMALE"))
    sex_comment = F.when(F.col("_u_sex_comment") < 0.7, F.lit(SEXING_FAILED)).otherwise(
        F.lit(NO_BLOOD_FOR_SEXING))
    notes = F.concat_ws(
        " ",
        F.when(missing, F.lit(NOT_SAMPLED)),
        F.when(F.col("_unknown_sex"), sex_comment),
        F.when(F.col("_incomplete"), F.lit(INCOMPLETE_CLUTCH)),
        F.when(F.col("_no_isotopes"), F.lit(NO_ISOTOPES)),
        F.when(F.col("_no_delta15n"), F.lit(NO_DELTA15N)),
    )

    def unless(condition: Column, value: Column, type_name: str) -> Column:
        return F.when(condition, F.lit(None).cast(type_name)).otherwise(value)

    return df.select(
        _pick([name for name, _, _ in SEASONS], F.col("_season")).alias("studyName"),
        F.col("_sample").alias("Sample Number"),
        _pick(SPECIES, F.col("_species")).alias("Species"),
        F.lit("Anvers").alias("Region"),
        F.col("_island").alias("Island"),
        F.lit("Adult, 1 Egg Stage").alias("Stage"),
        F.concat(F.lit("N"), F.col("_nest").cast("string"), F.lit("A"),
                 F.col("_partner").cast("string")).alias("Individual ID"),
        F.when(F.col("_incomplete"), F.lit("No")).otherwise(F.lit("Yes"))
        .alias("Clutch Completion"),
        F.col("_date").alias("Date Egg"),
        unless(missing, culmen_len, "double").alias("Culmen Length (mm)"),
        unless(missing, culmen_dep, "double").alias("Culmen Depth (mm)"),
        unless(missing, flipper, "int").alias("Flipper Length (mm)"),
        unless(missing, mass, "int").alias("Body Mass (g)"),
        sex.alias("Sex"),
        unless(no_d15n, d15n, "double").alias("Delta 15 N (o/oo)"),
        unless(no_d13c, d13c, "double").alias("Delta 13 C (o/oo)"),
        F.when(notes == "", F.lit(None).cast("string")).otherwise(notes).alias("Comments"),
    )


def write_landing(
    spark: SparkSession, rows: int, path: str, *, seed: int = 7, files: int = 4,
    bad_fraction: float = 0.0,
) -> str:
    """Write ``rows`` synthetic penguins as raw landing CSV into ``path`` (overwritten).

    The files have the header and the conventions of the sample (``NA`` for nulls,
    ``yyyy-MM-dd`` dates); ``files`` part files of consecutive rows each, so the same
    arguments give the same file contents. ``bad_fraction`` of the rows (chosen by
    row-id hashing) get the body mass ``heavy``, which does not cast to its type.

    Returns:
        ``path``, ready for ``--set dataset.source.path=<path>``.
    """
    if rows < 1:
        raise ValueError(f"rows must be 1 or more, got {rows}")
    if files < 1:
        raise ValueError(f"files must be 1 or more, got {files}")
    if not 0.0 <= bad_fraction < 1.0:
        raise ValueError(f"bad_fraction must be in [0, 1), got {bad_fraction}")
    df = generate_penguins(spark, rows, seed=seed, partitions=min(files, rows))
    if bad_fraction:
        key = [F.col("studyName"), F.col("Species"), F.col("`Sample Number`")]
        spoiled = uniform(seed, _S_BAD, *key) < bad_fraction
        mass = "Body Mass (g)"
        df = df.withColumn(mass, F.when(spoiled, F.lit(BAD_MASS)).otherwise(
            F.col(f"`{mass}`").cast("string")))
    (
        df.write.mode("overwrite")
        .option("header", "true")
        .option("nullValue", "NA")
        .option("dateFormat", "yyyy-MM-dd")
        .option("encoding", "UTF-8")
        .csv(path)
    )
    log.info("wrote %d synthetic penguins (seed %d) in %d file(s) to %s",
             rows, seed, min(files, rows), path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.datagen",
        description="Write seeded synthetic penguins in the raw landing CSV format.",
    )
    parser.add_argument("--rows", type=int, required=True, help="number of rows")
    parser.add_argument("--out", required=True, help="output folder (overwritten)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default: 7)")
    parser.add_argument("--files", type=int, default=4, help="number of CSV files (default: 4)")
    parser.add_argument("--bad-fraction", type=float, default=0.0,
                        help="fraction of rows with an unparseable body mass (default: 0)")
    parser.add_argument("--env", default="local",
                        help="Spark settings of conf/<env>.yml (default: local)")
    args = parser.parse_args(argv)
    log_to_stderr()

    spark = env_session(args.env)
    try:
        write_landing(spark, args.rows, args.out, seed=args.seed, files=args.files,
                      bad_fraction=args.bad_fraction)
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
