"""How often an inspector agrees with the people who labelled an audit set, beside the oracle.

The issue's goals measure the inspector against the oracle; the oracle stands in for people.
On a blind audit set (scripts/audit_oracle.py: labels committed before any reveal) both can be
set against the people directly: if the inspector agrees with people about as often as the
oracle does, its distance from the oracle is partly the oracle's distance from people.

    python scripts/inspector_vs_people.py --labels audit/labels_E.csv audit/labels_E_2.csv \
        --oracle audit/oracle_E.csv --predictions v3=runs/eval/v3_auditE/predictions.jsonl ...

Available-or-not uses each judge's top class (the oracle's label; an inspector's predicted
class). Images a person marked unsure are left out of that person's column.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
from paired_compare import grouped_bootstrap  # scripts/ is on the path when run as a script

UNSURE = "unsure"


def read_labels(path: str | Path, column: str = "label") -> dict[str, str]:
    with open(path, encoding="utf-8", newline="") as fh:
        return {r["id"]: r[column] for r in csv.DictReader(fh) if r.get(column)}


def read_predicted(path: str | Path) -> dict[str, str]:
    with open(path, encoding="utf-8") as fh:
        return {r["id"]: r["predicted"] for r in map(json.loads, filter(str.strip, fh))}


def agreement(judge: dict[str, str], person: dict[str, str], ids=None) -> tuple[int, int, int]:
    """(agree on Available-or-not, agree on the class, images) over the ids both judged, the
    person was sure of, and (if given) that are in ``ids``."""
    keys = [i for i in person if person[i] != UNSURE and i in judge and (ids is None or i in ids)]
    avail = sum((judge[i] == "Available") == (person[i] == "Available") for i in keys)
    same = sum(judge[i] == person[i] for i in keys)
    return avail, same, len(keys)


def paired_vs(judge: dict[str, str], base: dict[str, str], person: dict[str, str],
              n_boot: int = 2000, seed: int = 0) -> list[float]:
    """[difference, low, high]: ``judge``'s Available-or-not agreement with ``person`` minus
    ``base``'s, over the images all three judged (the person sure), with a 95% interval from
    resampling whole jobs (an RF-Gen job's images share a product and a scene)."""
    keys = sorted(i for i in person if person[i] != UNSURE and i in judge and i in base)
    if not keys:
        raise ValueError("no image judged by all three")
    sure = {i: person[i] == "Available" for i in keys}
    d = np.array([float((judge[i] == "Available") == sure[i]) - float((base[i] == "Available") == sure[i])
                  for i in keys])
    return grouped_bootstrap(keys, lambda rows: d[rows].mean(), n_boot, seed)


def sides(judge: dict[str, str], base: dict[str, str], person: dict[str, str]) -> tuple[int, int]:
    """Where ``judge`` and ``base`` differ on Available-or-not (the person sure): how many of
    those images the person sides with ``judge``, of how many."""
    keys = [i for i in person if person[i] != UNSURE and i in judge and i in base
            and (judge[i] == "Available") != (base[i] == "Available")]
    return sum((judge[i] == "Available") == (person[i] == "Available") for i in keys), len(keys)


def table(people: dict[str, dict[str, str]], judges: dict[str, dict[str, str]]) -> str:
    names = list(people)
    both = None
    if len(names) == 2:  # the images two people agree on, class for class
        a, b = (people[n] for n in names)
        both = {i for i in a if i in b and a[i] == b[i] and a[i] != UNSURE}
    cols = [f"against {n}" for n in names] + (["where both people agree"] if both is not None else [])
    lines = ["| judge | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for j, pred in judges.items():
        cells = []
        for n in names:
            av, same, k = agreement(pred, people[n])
            cells.append(f"{av / k:.1%} / {same / k:.1%} ({k})" if k else "-")
        if both is not None:
            av, same, k = agreement(pred, people[names[0]], both)
            cells.append(f"{av / k:.1%} / {same / k:.1%} ({k})" if k else "-")
        lines.append(f"| {j} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n(Available or not / six classes (images))"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--labels", nargs="+", required=True, help="committed labels CSVs (id,label,note), one per person")
    ap.add_argument("--oracle", help="the audit's oracle CSV (id,oracle,...)")
    ap.add_argument("--predictions", action="append", default=[], metavar="NAME=PATH",
                    help="rfnet.evaluate's predictions.jsonl on the audit set's images")
    a = ap.parse_args(argv)
    people = {Path(p).stem: read_labels(p) for p in a.labels}
    judges = {}
    if a.oracle:
        judges["oracle"] = read_labels(a.oracle, "oracle")
    for spec in a.predictions:
        name, _, path = spec.partition("=")
        if not path:
            print(f"error: --predictions wants NAME=PATH, not {spec!r}", file=sys.stderr)
            return 2
        judges[name] = read_predicted(path)
    print(table(people, judges))
    if "oracle" in judges and len(judges) > 1:
        print("\n| judge minus the oracle, Available or not [95%, jobs resampled] | "
              + " | ".join(f"against {n}" for n in people) + " |")
        print("|---|" + "---:|" * len(people))
        for j, pred in judges.items():
            if j != "oracle":
                cells = [paired_vs(pred, judges["oracle"], people[n]) for n in people]
                print(f"| {j} | " + " | ".join(f"{100 * v:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
                                                for v, lo, hi in cells) + " |")
        print("\n| where judge and oracle differ (Available or not): the person sides with the judge | "
              + " | ".join(f"{n}" for n in people) + " |")
        print("|---|" + "---:|" * len(people))
        for j, pred in judges.items():
            if j != "oracle":
                print(f"| {j} | " + " | ".join("{} of {}".format(*sides(pred, judges["oracle"], people[n]))
                                                for n in people) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
