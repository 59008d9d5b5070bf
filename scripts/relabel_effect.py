"""What a rule change does to an inspector's figures: one model's predictions against two
labellings of the same images (an RF-Gen folder before and after ``rfsynth.make_generated
relabel``), paired.

    python scripts/relabel_effect.py --before data/rfgen_test_s202 --before data/rfgen_test_s203 \
        --after data/rfgen_test_s202_r5 --after data/rfgen_test_s203_r5 \
        --predictions v3=runs/eval/pool/v3_s202_203.jsonl [--predictions NAME=PATH ...]

Prints how many labels moved and which way, the class counts under each labelling, and for
every model its Available-or-not agreement and six-class accuracy under each labelling with the
paired difference (after minus before) and a 95% interval that resamples whole RF-Gen jobs
(paired_compare.grouped_bootstrap).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from paired_compare import grouped_bootstrap  # scripts/ is on the path when run as a script


def read_manifest_labels(folders: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for f in folders:
        for line in (Path(f) / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                out[r["id"]] = r["label"]
    return out


def read_predicted(path: str) -> dict[str, str]:
    out = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            out[r["id"]] = r["predicted"]
    return out


def compare(before: dict[str, str], after: dict[str, str], predicted: dict[str, str], n_boot: int = 2000) -> dict:
    """Agreement (Available or not) and accuracy of ``predicted`` under each labelling, over the
    ids all three share, with paired differences and their intervals (in points)."""
    ids = sorted(set(before) & set(after) & set(predicted))
    if not ids:
        raise ValueError("no id is in both labellings and the predictions: are they of the same images?")
    b, a, p = (np.array([d[i] for i in ids]) for d in (before, after, predicted))
    agree_b = ((p == "Available") == (b == "Available")).astype(float)
    agree_a = ((p == "Available") == (a == "Available")).astype(float)
    acc_b, acc_a = (p == b).astype(float), (p == a).astype(float)
    res = {"n": len(ids)}
    for name, x, y in (("agreement", agree_b, agree_a), ("accuracy", acc_b, acc_a)):
        res[name] = {"before": 100 * x.mean(), "after": 100 * y.mean(),
                     "diff": grouped_bootstrap(ids, lambda r, x=x, y=y: 100 * (y[r] - x[r]).mean(), n_boot=n_boot)}
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", action="append", required=True, help="an RF-Gen folder with the old labels")
    ap.add_argument("--after", action="append", required=True, help="the same folder relabelled")
    ap.add_argument("--predictions", action="append", required=True, metavar="NAME=PATH")
    ap.add_argument("--n_boot", type=int, default=2000)
    a = ap.parse_args(argv)
    before, after = read_manifest_labels(a.before), read_manifest_labels(a.after)
    common = sorted(set(before) & set(after))
    moved = Counter(f"{before[i]} -> {after[i]}" for i in common if before[i] != after[i])
    print(f"{len(common)} images; {sum(moved.values())} labels moved:")
    for k, n in moved.most_common():
        print(f"  {k}: {n}")
    cb, ca = Counter(before[i] for i in common), Counter(after[i] for i in common)
    print("| class | before | after |\n|---|---:|---:|")
    for c in sorted(set(cb) | set(ca), key=lambda c: -cb[c]):
        print(f"| {c} | {cb[c]} | {ca[c]} |")
    print("\n| model | measure | before | after | after - before [95%] |\n|---|---|---:|---:|---:|")
    for spec in a.predictions:
        name, _, path = spec.partition("=")
        try:
            r = compare(before, after, read_predicted(path), a.n_boot)
        except ValueError as e:
            print(f"relabel_effect: {name}: {e}", file=sys.stderr)
            return 2
        for m in ("agreement", "accuracy"):
            d = r[m]["diff"]
            print(f"| {name} | {m} (n {r['n']}) | {r[m]['before']:.2f}% | {r[m]['after']:.2f}% | "
                  f"{d[0]:+.2f} [{d[1]:+.2f}, {d[2]:+.2f}] |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
