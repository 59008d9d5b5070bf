"""How much of a generated image's verdict is fixed by its job rather than drawn by the sampler?

A ControlNet fine-tuning (RFFT, filtered or preference fine-tuning) can only change what the
sampler draws for a given product, placement and prompt. Where a job's inputs already decide the
verdict, no fine-tuning that keeps those inputs changes it. This reads a
``scripts/filtered_finetune.py collect`` folder (two images of each job, different seeds) and
reports:

1. jobs with 0, 1 or 2 Available images against what independent draws at the pooled rate give;
2. for each label, how often the job's other image has the same label, against the label's rate;
3. for Size Mismatch, from the oracle's measures (each image re-judged): whether the drawn
   reference object is the one the prompt names, and whether the height it would need (product
   height x reference height / product's real height, rule 5's tolerance) lies inside what the
   generator draws for that reference in this folder (its 5th to 95th percentile).

    python scripts/job_effects.py --data runs/filtered/data [--json runs/filtered/job_effects.json]
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from math import comb
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from filtered_finetune import rows_of  # noqa: E402  (scripts/ is on the path)

LABELS = ("Available", "Space Mismatch", "Size Mismatch", "Indistinctiveness", "Shape Hallucination")


def counts_by_available(groups: list[list[bool]]) -> tuple[Counter, dict[int, float], float]:
    """Groups of m draws each (a job's images, a product's attempts) by how many are Available,
    the counts independent draws at the pooled rate p would give (binomial), and p."""
    n = len(groups)
    m = len(groups[0]) if groups else 0
    if any(len(g) != m for g in groups):
        raise ValueError("every group needs the same number of draws")
    p = sum(sum(g) for g in groups) / max(1, n * m)
    return (Counter(sum(g) for g in groups),
            {a: n * comb(m, a) * p ** a * (1 - p) ** (m - a) for a in range(m + 1)}, p)


def job_counts(rows: list[dict]) -> tuple[Counter, dict[int, float], float]:
    """counts_by_available over the two-image jobs."""
    by = defaultdict(list)
    for r in rows:
        by[r["job"]].append(r["oracle"] == "Available")
    return counts_by_available([v for v in by.values() if len(v) == 2])


def same_label(rows: list[dict]) -> dict[str, tuple[int, int, float]]:
    """For each label: (images with it, of which the job's other image has it too, the label's rate)."""
    by = defaultdict(list)
    for r in rows:
        by[r["job"]].append(r["oracle"])
    n, same, total = Counter(), Counter(), 0
    for v in by.values():
        if len(v) != 2:
            continue
        total += 2
        for a, b in ((v[0], v[1]), (v[1], v[0])):
            n[a] += 1
            same[a] += a == b
    return {lab: (n[lab], same[lab], n[lab] / max(1, total)) for lab in n}


def prompted_reference(prompt: str) -> str | None:
    from rfsynth.catalog import REFERENCES

    for name in REFERENCES:
        if f"a {name} beside it" in prompt:
            return name
    return None


def needed_reference_px(product_px: int, reference: str, category: str) -> tuple[float, float]:
    """The drawn heights of ``reference`` (px) at which rule 5 passes a product ``product_px`` tall."""
    from rfsynth import rules
    from rfsynth.catalog import CATEGORY_BY_NAME, REFERENCES

    lo, hi = CATEGORY_BY_NAME[category].height_cm
    ref_cm = REFERENCES[reference]["height_cm"]
    # implied = product_px * ref_cm / ref_px must lie in [lo / tol, hi * tol]
    return product_px * ref_cm / (hi * rules.SIZE_TOLERANCE), product_px * ref_cm / (lo / rules.SIZE_TOLERANCE)


def size_causes(measured: list[dict]) -> Counter:
    """Why each Size Mismatch image failed: ``measured`` rows carry the oracle's label, the prompted
    and drawn references, the drawn height and the needed range. The drawn-height range of each
    reference is taken over every image of the folder that drew it."""
    drawn = defaultdict(list)
    for m in measured:
        if m.get("reference") is not None:
            drawn[m["reference"]].append(m["reference_px"])
    span = {k: (np.percentile(v, 5), np.percentile(v, 95)) for k, v in drawn.items()}
    out = Counter()
    for m in measured:
        if m["oracle"] != "Size Mismatch":
            continue
        if m["prompted"] is None:
            out["no reference in the prompt"] += 1
        elif m["reference"] != m["prompted"]:
            out["another reference drawn"] += 1
        else:
            lo, hi = m["needed_px"]
            a, b = span[m["reference"]]
            out["needed height outside what is drawn" if hi < a or lo > b else "needed height drawable"] += 1
    return out


def measure(data: Path, rows: list[dict], seed: int) -> list[dict]:
    """Re-judge each image for the oracle's measures (the labels must match the collected ones)."""
    from PIL import Image

    from rfft.evaluate import draw_job
    from rfft.placement import place
    from rfsynth.oracle import judge

    out = []
    for r in rows:
        job = draw_job(seed, r["job"])
        img = Image.open(data / r["image"])
        pl = place(job["cutout"], img.size[0], job["scale"])
        v = judge(img, pl.cutout, pl.box, job["category"], damage=None)
        if v.label != r["oracle"]:
            raise SystemExit(f"{r['image']}: the oracle now says {v.label}, the folder {r['oracle']}: the rules changed "
                             f"since it was collected")
        ys = np.nonzero((np.asarray(pl.cutout.convert("RGBA"))[..., 3] > 127).any(1))[0]
        product_px = int(ys[-1] - ys[0] + 1) if len(ys) else 0
        prompted = prompted_reference(r["prompt"])
        out.append({"job": r["job"], "oracle": v.label, "category": job["category"], "prompted": prompted,
                    "reference": v.measures.get("reference"), "reference_px": v.measures.get("reference_px"),
                    "needed_px": needed_reference_px(product_px, prompted, job["category"]) if prompted else None})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="scripts/job_effects.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="a filtered_finetune.py collect folder")
    p.add_argument("--json", help="also write the figures here")
    a = p.parse_args(argv)
    data = Path(a.data)
    rows = rows_of(data)
    counts, indep, rate = job_counts(rows)
    n = sum(counts.values())
    if not n:
        raise SystemExit(f"{data} holds no job with two images: collect with filtered_finetune.py collect "
                         "--images_per_job 2 (the default)")
    print(f"{n} jobs of two images, {100 * rate:.1f}% Available\n")
    print("| Available images in the job | jobs | if the two draws were independent |")
    print("|---:|---:|---:|")
    for k in (0, 1, 2):
        print(f"| {k} | {counts[k]} ({100 * counts[k] / n:.1f}%) | {indep[k]:.0f} ({100 * indep[k] / n:.1f}%) |")
    same = same_label(rows)
    print("\n| label | images | the other image has it too | the label's rate |")
    print("|---|---:|---:|---:|")
    for lab in LABELS:
        if lab in same:
            k, s, r = same[lab]
            print(f"| {lab} | {k} | {100 * s / k:.1f}% ({s}) | {100 * r:.1f}% |")
    measured = measure(data, rows, json.loads((data / "meta.json").read_text())["seed"])
    causes = size_causes(measured)
    total = sum(causes.values())
    print("\n| Size Mismatch: why | images |")
    print("|---|---:|")
    for c, k in causes.most_common():
        print(f"| {c} | {k} ({100 * k / max(1, total):.1f}%) |")
    if a.json:
        Path(a.json).write_text(json.dumps({"jobs": n, "rate": rate, "counts": dict(counts), "independent": indep,
                                            "same_label": same, "size_causes": dict(causes)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
