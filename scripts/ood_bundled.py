"""Why does rfnet.ood flag some of the pack's own in-world products? For each bundled product
(the main job's eight and the example workflows' one), placed as the main job places it: its
novelty, the same product recoloured, and the in-world products of its category with nearly its
colour (their median novelty and how many are flagged); then the flag rate per category of the
test set's products.

    python scripts/ood_bundled.py --rfnet rfnet/embedded/rfnet-synth-tiny --test data/rfsynth_s1_128 [--n 3000]

Prints Markdown. Products are placed on a 64 px canvas at their prompt's image_scale, as
``python -m rfft.generate`` does on the embedded generator.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rfft.placement import place  # noqa: E402
from rfnet.dataformat import SkipReport, read_records  # noqa: E402
from rfnet.loading import load_model_and_tokenizer  # noqa: E402
from rfnet.ood import image_features, load  # noqa: E402
from rfsynth.scene import render_sample  # noqa: E402

HUES = {"green": (60, 140, 70), "brown": (120, 80, 50), "grey": (128, 128, 128), "white": (235, 235, 235)}


def mean_colour(im: Image.Image) -> np.ndarray:
    a = np.asarray(im.convert("RGBA")).astype(np.float64)
    return a[..., :3][a[..., 3] >= 128].mean(0)


def recolour(im: Image.Image, rgb) -> Image.Image:
    """The product's shading kept, its mean colour moved to ``rgb``."""
    a = np.asarray(im.convert("RGBA")).astype(np.float64)
    lum = a[..., :3].mean(-1, keepdims=True)
    a[..., :3] = np.clip(lum / max(lum[a[..., 3] >= 128].mean(), 1.0) * np.asarray(rgb), 0, 255)
    return Image.fromarray(a.astype(np.uint8), "RGBA")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rfnet", required=True)
    p.add_argument("--test", required=True, help="in-world products (e.g. RF-Synth seed 1)")
    p.add_argument("--n", type=int, default=3000)
    p.add_argument("--colour_distance", type=float, default=40.0,
                   help="sum of |RGB| differences that counts as 'nearly its colour'")
    a = p.parse_args(argv)
    model, _ = load_model_and_tokenizer(a.rfnet)
    nov = load(a.rfnet)["product"]
    thr = float(nov.threshold)

    def dist(ims):
        return nov.distance(image_features(model, ims)).numpy()

    ex = ROOT / "rfft" / "examples"
    meta = json.loads((ex / "products" / "products.json").read_text(encoding="utf-8"))
    scales = [e["image_scale"] for e in json.loads((ex / "prompts.json").read_text(encoding="utf-8"))]
    bundled = [(name, Image.open(ex / "products" / name).convert("RGBA"), m["category"], scales[i % len(scales)])
               for i, (name, m) in enumerate(sorted(meta.items()))]
    s = render_sample(90210, 128, "Available")
    bundled.append(("workflows: reliable_ad_product.png", s.product.convert("RGBA"), s.category, 0.5))

    base, recs, _ = read_records(a.test, SkipReport())
    recs = recs[:a.n]
    ims = [Image.open(base / r["product"]).convert("RGBA") for r in recs]
    cats = [r.get("source", {}).get("category", "?") for r in recs]
    placed = [place(im, (64, 64), 0.5).cutout for im in ims]
    d_test = dist(placed)
    cols = np.stack([mean_colour(im) for im in ims])

    print(f"Product novelty threshold {thr:.1f}; {len(recs)} test products placed at image_scale 0.5 on 64 px.\n")
    print("| product | category | mean colour | novelty as given (the Inspect node) | placed (the main job) | "
          "placed, recoloured: " + ", ".join(HUES) + " | in-world, same category, nearly its colour, placed: n, "
          "median, flagged |")
    print("|---|---|---|---:|---:|---|---|")
    for name, im, cat, scale in bundled:
        pl = place(im, (64, 64), scale).cutout
        d = dist([pl, *(recolour(pl, rgb) for rgb in HUES.values()), im])
        col = mean_colour(im)
        near = [i for i in range(len(recs)) if cats[i] == cat and np.abs(cols[i] - col).sum() < a.colour_distance]
        dn = d_test[near]
        near_txt = f"{len(near)}, {np.median(dn):.1f}, {int((dn > thr).sum())}" if near else "0"
        def mark(x):
            return f"{x:.1f}{' (flagged)' if x > thr else ''}"

        print(f"| {name} | {cat} | {tuple(int(x) for x in col)} | {mark(d[-1])} | {mark(d[0])} | "
              f"{', '.join(f'{x:.1f}' for x in d[1:-1])} | {near_txt} |")
    print("\n| category | test products | median novelty | 95th percentile | flagged |")
    print("|---|---:|---:|---:|---:|")
    by = defaultdict(list)
    for c, x in zip(cats, d_test):
        by[c].append(x)
    for c in sorted(by):
        v = np.asarray(by[c])
        print(f"| {c} | {len(v)} | {np.median(v):.1f} | {np.percentile(v, 95):.1f} | {(v > thr).mean():.1%} ({int((v > thr).sum())}) |")
    print(f"| all | {len(d_test)} | {np.median(d_test):.1f} | {np.percentile(d_test, 95):.1f} | "
          f"{(d_test > thr).mean():.1%} ({int((d_test > thr).sum())}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
