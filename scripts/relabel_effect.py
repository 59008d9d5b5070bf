"""What a rule change does to an inspector's figures: one model's predictions against two
labellings of the same images (an RF-Gen folder before and after ``rfsynth.make_generated
relabel``), paired.

    python scripts/relabel_effect.py --before data/rfgen_test_s202 --before data/rfgen_test_s203 \
        --after data/rfgen_test_s202_r5 --after data/rfgen_test_s203_r5 \
        --predictions v3=runs/eval/pool/v3_s202_203.jsonl [--predictions NAME=PATH ...]

Prints how many labels moved and which way, the class counts under each labelling, and for
every model its Available-or-not agreement and six-class accuracy under each labelling with the
paired difference (after minus before) and a 95% interval that resamples whole RF-Gen jobs
(paired_compare.paired_agreement).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from inspector_vs_people import read_predicted  # scripts/ is on the path when run as a script
from paired_compare import paired_agreement


def read_manifest_labels(folders: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for f in folders:
        for line in (Path(f) / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                out[r["id"]] = r["label"]
    return out


def compare(before: dict[str, str], after: dict[str, str], predicted: dict[str, str], n_boot: int = 2000) -> dict:
    """Agreement (Available or not) and accuracy of ``predicted`` under each labelling, over the
    ids all three share, with paired differences and their intervals (in points): the model is
    the reference both labellings are scored against (paired_compare.paired_agreement)."""
    try:
        r = paired_agreement(predicted, before, after, n_boot)
    except ValueError:
        raise ValueError("no id is in both labellings and the predictions: are they of the same images?") from None
    return {"n": r["n"], **{mine: {"before": r[theirs]["old"], "after": r[theirs]["new"], "diff": r[theirs]["diff"]}
                            for mine, theirs in (("agreement", "Available or not"), ("accuracy", "six classes"))}}


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
