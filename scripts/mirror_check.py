"""Is the oracle's label the same in the mirror? The premise of ``rfnet.train --hflip``.

    python scripts/mirror_check.py --data data/rfgen_test [--limit N]

For each RF-Gen record: the generated image, the placed cutout and the supplied cutout are
mirrored left-right, the placement moved to its mirror (x -> S - x - w), and the oracle judges
the mirror again. Prints how often the label stays, and what it moves to where it does not: a
mirror-symmetric world gives 100%; the rest is what the rules' pixel arithmetic makes of a
mirrored image (a blur's rounding, a column counted on one side), i.e. how much label noise
mirroring adds.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from PIL import ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rfnet.dataformat import SkipReport, read_records  # noqa: E402
from rfsynth.make_generated import record_images  # noqa: E402
from rfsynth.oracle import judge  # noqa: E402


def mirrored_label(folder: Path, rec: dict, info: dict) -> str:
    src = rec["source"]
    img, prod, supplied = (ImageOps.mirror(im) for im in record_images(folder, rec, info))
    pl = dict(src["placement"])
    pl["x"] = img.width - pl["x"] - prod.width
    return judge(img, prod, pl, src["category"], supplied=supplied, damage=src.get("damage")).label


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="an RF-Gen folder (rfsynth.make_generated)")
    p.add_argument("--limit", type=int, default=0, help="the first N records (0: all)")
    a = p.parse_args(argv)
    folder, recs, info = read_records(a.data, SkipReport())
    if a.limit:
        recs = recs[:a.limit]
    moved, per_label = Counter(), Counter()
    for rec in recs:
        got = mirrored_label(folder, rec, info)
        per_label[rec["label"]] += 1
        if got != rec["label"]:
            moved[(rec["label"], got)] += 1
    n, m = len(recs), sum(moved.values())
    print(f"{n} images; the mirror keeps the label of {n - m} ({(n - m) / max(n, 1):.1%})")
    for (a_, b), k in moved.most_common():
        print(f"  {a_} -> {b}: {k} (of {per_label[a_]} {a_})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
