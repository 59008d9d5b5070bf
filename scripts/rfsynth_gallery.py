"""A gallery of RF-Synth's six cases (three samples each), for docs/RFSYNTH.md.

    python scripts/rfsynth_gallery.py --out docs/img/rfsynth_cases.jpg
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image, ImageDraw  # noqa: E402

from rfsynth.scene import LABELS, render_sample  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="docs/img/rfsynth_cases.jpg")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--seed", type=int, default=500)
    a = p.parse_args()
    cell = a.size
    sheet = Image.new("RGB", (cell * len(LABELS), (cell + 14) * 3), "white")
    d = ImageDraw.Draw(sheet)
    for r in range(3):
        for c, label in enumerate(LABELS):
            s = render_sample(a.seed + r * 10 + c, a.size, label=label)
            sheet.paste(s.image, (c * cell, r * (cell + 14)))
            d.text((c * cell + 2, r * (cell + 14) + cell + 1), label, fill="black")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(a.out, quality=88)
    print(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
