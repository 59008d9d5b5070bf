"""Paired differences between two inspectors' predictions on the same test images.

Each model's own AP interval (rfnet.evaluate's ap_ci95) is wide; the difference between two
models on the same images is much narrower, because the images both saw cancel out. This
resamples whole groups (by default a RF-Gen job: its four images share a product and a scene,
so they are not independent) and gives the difference in agreement (Available or not) and in
Available AP, with a 95% interval.

    python scripts/paired_compare.py --base runs/eval/v3_test/predictions.jsonl \
        --other D=runs/eval/candD_test/predictions.jsonl --other E=runs/eval/candE_test/predictions.jsonl
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rfnet.metrics import average_precision, bootstrap_interval  # noqa: E402


def read_predictions(path: str | Path) -> dict[str, tuple[bool, bool, float]]:
    """id -> (oracle says Available, top class is Available, P(Available))."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                out[r["id"]] = (r["label"] == "Available", r["predicted"] == "Available", float(r["p_available"]))
    return out


def job_of(sample_id: str) -> str:
    """RF-Gen ids are <set>_<job>_<k> (rfsynth.make_generated.sample_id: rfgen200_000123_2): the group is <set>_<job>.
    Any other id (a composed scene's rfs1_000123) is its own group."""
    parts = sample_id.split("_")
    return "_".join(parts[:-1]) if len(parts) >= 3 and parts[-1].isdigit() else sample_id


def paired_agreement(ref: dict[str, str], old: dict[str, str], new: dict[str, str], n_boot: int = 2000,
                     unsure: str = "unsure") -> dict:
    """Two labellings ``old`` and ``new`` of the same images, each scored against a reference
    ``ref`` (ids where it is ``unsure`` left out): agreement on Available or not and on the six
    classes, in points, with the paired difference new minus old and its 95% interval over
    resampled RF-Gen jobs. The one statistic behind audit_oracle's ``rounds`` (two rule rounds
    against a person), its ``compare`` (one oracle against two people) and relabel_effect (one
    model against two rule rounds)."""
    ids = sorted(i for i in ref if ref[i] != unsure and i in old and i in new)
    if not ids:
        raise ValueError("no image is in the reference and both labellings")
    out = {"n": len(ids), "changed": sum(old[i] != new[i] for i in ids)}
    for name, ok in (("Available or not", lambda o, i: (o[i] == "Available") == (ref[i] == "Available")),
                     ("six classes", lambda o, i: o[i] == ref[i])):
        a = np.array([float(ok(old, i)) for i in ids])
        b = np.array([float(ok(new, i)) for i in ids])
        out[name] = {"old": 100 * a.mean(), "new": 100 * b.mean(),
                     "diff": grouped_bootstrap(ids, lambda r, a=a, b=b: 100 * (b[r] - a[r]).mean(), n_boot=n_boot)}
    return out


def paired_difference(base: dict, other: dict, n_boot: int = 2000, seed: int = 0,
                      group=job_of) -> dict:
    """other minus base, in agreement and AP, with percentile intervals over resampled groups."""
    if set(base) != set(other):
        missing = len(set(base) ^ set(other))
        raise ValueError(f"the two prediction files cover different images ({missing} ids in only one); "
                         "evaluate both models on the same data and split")
    ids = sorted(base)
    y = np.array([base[i][0] for i in ids])
    agree_b = np.array([base[i][1] == base[i][0] for i in ids], float)
    agree_o = np.array([other[i][1] == other[i][0] for i in ids], float)
    p_b = np.array([base[i][2] for i in ids])
    p_o = np.array([other[i][2] for i in ids])
    n_groups = len({group(i) for i in ids})

    def agreement(rows):
        return agree_o[rows].mean() - agree_b[rows].mean()

    def ap(rows):
        return average_precision(y[rows], p_o[rows]) - average_precision(y[rows], p_b[rows])

    return {"n": len(ids), "groups": n_groups,
            "agreement": grouped_bootstrap(ids, agreement, n_boot, seed, group),
            "ap": grouped_bootstrap(ids, ap, n_boot, seed, group)}


def grouped_bootstrap(ids: list[str], stat, n_boot: int = 2000, seed: int = 0, group=job_of) -> list[float]:
    """[stat over every row, low, high]: ``stat(rows)`` (indices into ``ids``) with a 95%
    percentile interval from resampling whole groups of ids (rfnet.metrics.bootstrap_interval
    over group indices; one seed, so two statistics of one call draw the same groups)."""
    groups: dict[str, list[int]] = {}
    for k, i in enumerate(ids):
        groups.setdefault(group(i), []).append(k)
    members = [np.array(v) for v in groups.values()]

    def over(picked_groups):
        return stat(np.concatenate([members[g] for g in picked_groups]))

    every = np.arange(len(members))
    return [float(over(every)), *bootstrap_interval(over, every, n_boot=n_boot, seed=seed)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="predictions.jsonl of the reference model")
    ap.add_argument("--other", action="append", required=True, metavar="NAME=PATH",
                    help="predictions.jsonl of a model to compare (repeatable)")
    ap.add_argument("--by_image", action="store_true",
                    help="resample images even where ids name RF-Gen jobs")
    ap.add_argument("--n_boot", type=int, default=2000)
    args = ap.parse_args(argv)
    base = read_predictions(args.base)
    group = (lambda i: i) if args.by_image else job_of
    print("| model | images (groups) | agreement: difference [95%] | AP: difference [95%] |")
    print("|---|---:|---:|---:|")
    for spec in args.other:
        name, sep, path = spec.partition("=")
        if not sep:
            ap.error(f"--other takes NAME=PATH, got {spec!r}")
        r = paired_difference(base, read_predictions(path), args.n_boot, group=group)
        a, p = [100 * v for v in r["agreement"]], [100 * v for v in r["ap"]]
        print(f"| {name} | {r['n']} ({r['groups']}) | {a[0]:+.2f} [{a[1]:+.2f}, {a[2]:+.2f}] "
              f"| {p[0]:+.2f} [{p[1]:+.2f}, {p[2]:+.2f}] |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
