"""Write the sample crowd of data/sample/penguins_crowd/: simulated labelers sexing the
Palmer penguins of data/sample/penguins/landing (the birds' recorded sex is the planted
truth). Run once; the files are checked in, and this script says how they were made:

    .venv/bin/python scripts/sample_crowd.py data/sample/penguins_crowd/annotations

30 labelers: 20 careful (accuracy 0.85-0.97), 5 hurried (0.62-0.72), 3 spammers (answer
MALE 60 % of the time whatever the bird) and 2 adversarial (right 20 % of the time).
Each bird of known sex gets 9 labelers, except about one in eight that got only 5 (their
task expired): those can never reach the 7-of-9 bar. Two files, one per labelling round.
The second file also holds, on purpose, one judgment with a label outside the classes,
one with no worker and one repeated judgment, which the labels stage quarantines.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LANDING = REPO / "data" / "sample" / "penguins" / "landing"
SEED = 20261206


def birds() -> list[tuple[str, str, str, str]]:
    """(studyName, Species, Sample Number, Sex) of every bird of known sex."""
    rows = []
    for path in sorted(LANDING.glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row["Sex"] in ("MALE", "FEMALE"):
                    rows.append((row["studyName"], row["Species"], row["Sample Number"],
                                 row["Sex"]))
    return rows


def main(out: Path) -> None:
    rng = np.random.default_rng(SEED)
    workers = ([(f"w{i:02d}", "careful", rng.uniform(0.85, 0.97)) for i in range(1, 21)]
               + [(f"w{i:02d}", "hurried", rng.uniform(0.62, 0.72)) for i in range(21, 26)]
               + [(f"w{i:02d}", "spammer", 0.0) for i in range(26, 29)]
               + [(f"w{i:02d}", "adversarial", 0.2) for i in range(29, 31)])
    rounds: list[list[list[str]]] = [[], []]
    for study, species, sample, sex in birds():
        n = 5 if rng.random() < 0.125 else 9
        chosen = rng.choice(len(workers), size=n, replace=False)
        for j, w in enumerate(sorted(chosen)):
            worker, kind, accuracy = workers[w]
            if kind == "spammer":
                label = "MALE" if rng.random() < 0.6 else "FEMALE"
            else:
                right = rng.random() < accuracy
                label = sex if right else ("FEMALE" if sex == "MALE" else "MALE")
            # the first judgments of a bird come in round one, the rest in round two
            rounds[0 if j < 5 else 1].append([study, species, sample, worker, label])
    rounds[1] += [
        ["PAL0708", "Adelie Penguin (Pygoscelis adeliae)", "1", "w03", "UNSURE"],
        ["PAL0708", "Adelie Penguin (Pygoscelis adeliae)", "2", "", "MALE"],
        rounds[0][0][:3] + [rounds[0][0][3], rounds[0][0][4]],
    ]
    out.mkdir(parents=True, exist_ok=True)
    for i, rows in enumerate(rounds, start=1):
        with (out / f"judgments_round{i}.csv").open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["study_name", "species", "sample_number", "worker_id", "label"])
            writer.writerows(rows)
    print({f"round{i}": len(rows) for i, rows in enumerate(rounds, start=1)})


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else
         REPO / "data" / "sample" / "penguins_crowd" / "annotations")
