"""Write the bundled example products of ``python -m rfft.generate``: RF-Synth cutouts of
categories across the size classes, with their e-commerce captions, from seeds never used for
training (the generator's data seed is 7001, RFNet's 0 and 1).

    python scripts/make_example_products.py --out rfft/examples/products --seed 90210
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from rfnet.fileio import save_image, write_json
from rfsynth.catalog import CATEGORIES
from rfsynth.products import render_product, sample_spec
from rfsynth.text import caption_for


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="rfft/examples/products")
    p.add_argument("--seed", type=int, default=90210)
    p.add_argument("--count", type=int, default=8)
    p.add_argument("--height", type=int, default=96, help="cutout height in pixels")
    a = p.parse_args(argv)
    out = Path(a.out)
    meta = {}
    cats = [c.name for c in CATEGORIES]
    for i in range(a.count):
        rng = np.random.default_rng([a.seed, i])
        spec = sample_spec(rng, cats[(i * 5) % len(cats)])  # spread over the catalogue
        cut = render_product(spec, a.height, rng)
        name = f"{i:02d}_{spec.category.replace(' ', '_')}.png"
        save_image(out / name, cut)
        meta[name] = {"caption": caption_for(rng, spec), "category": spec.category}
    write_json(out / "products.json", meta)
    print(f"wrote {a.count} products to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
