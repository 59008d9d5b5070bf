"""How often rfnet.ood flags images like the training data, and images unlike it.

    python scripts/ood_check.py --rfnet runs/rfnet --test data/rfsynth_s1_128 [--generated data/rfgen_test] --n 500

Rows: the test set's products and images (like the training data: the flag rate should be near
1 - quantile); the same products with hard matting (alpha cut at one half, as real matted
cutouts have); real photos from scikit-image's bundled samples (astronaut, coffee, cat, ...), as
generated images and, cut out on white, as products (needs `pip install scikit-image`, used
only here); and optionally generated images (RF-Gen). Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rfnet.dataformat import SkipReport, read_records  # noqa: E402
from rfnet.loading import load_model_and_tokenizer  # noqa: E402
from rfnet.ood import alphas, edge_softness, image_features, load  # noqa: E402


def _records(root: str, n: int):
    base, recs, _ = read_records(root, SkipReport())
    return base, recs[:n]


def _rate(model, stats, kind, ims) -> tuple[int, int, int]:
    """(flagged by features, flagged by features or by edge softness, n)."""
    feat = both = 0
    lo, hi = stats["edges"].tolist() if "edges" in stats else (-1.0, float("inf"))
    for i in range(0, len(ims), 64):
        chunk = ims[i:i + 64]
        out = stats[kind].outside(image_features(model, chunk)).tolist()
        if kind == "product":
            soft = [edge_softness(a) if a is not None else None for a in alphas(chunk)]
            edge = [e is not None and not lo <= e <= hi for e in soft]
        else:
            edge = [False] * len(chunk)
        feat += sum(out)
        both += sum(o or e for o, e in zip(out, edge))
    return feat, both, len(ims)


def hard_matte(im: Image.Image) -> Image.Image:
    a = np.asarray(im.convert("RGBA")).copy()
    a[..., 3] = np.where(a[..., 3] >= 128, 255, 0)
    return Image.fromarray(a, "RGBA")


def photos() -> list[tuple[str, np.ndarray]]:
    try:
        import skimage.data as d
    except ImportError:
        return []
    out = []
    for name in ("astronaut", "coffee", "chelsea", "rocket", "cat", "immunohistochemistry", "colorwheel"):
        try:
            a = getattr(d, name)()
        except Exception:  # noqa: BLE001 - a sample that needs a download is skipped
            continue
        if a.ndim == 2:
            a = np.stack([a] * 3, -1)
        out.append((name, a[..., :3]))
    return out


def photo_crops(rng, k: int = 12) -> tuple[list[Image.Image], list[Image.Image]]:
    """Square crops of the photos (as generated images), and ellipse cutouts of them on white (as products)."""
    gens, prods = [], []
    for _, a in photos():
        h, w = a.shape[:2]
        for _ in range(k):
            s = int(rng.integers(min(h, w) // 3, min(h, w)))
            y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
            crop = Image.fromarray(a[y:y + s, x:x + s]).resize((128, 128), Image.BILINEAR)
            gens.append(crop)
            yy, xx = np.mgrid[:128, :128]
            mask = (((yy - 64) / 60) ** 2 + ((xx - 64) / 40) ** 2 <= 1).astype(np.uint8) * 255
            prods.append(Image.fromarray(np.dstack([np.asarray(crop), mask]), "RGBA"))
    return gens, prods


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rfnet", required=True)
    p.add_argument("--test", required=True, help="a dataset like the training data (e.g. RF-Synth seed 1)")
    p.add_argument("--generated", default=None, help="a dataset of generated images (e.g. RF-Gen test)")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    model, _ = load_model_and_tokenizer(a.rfnet)
    model.eval()
    nov = load(a.rfnet)
    if not nov:
        raise SystemExit(f"{a.rfnet} has no ood.safetensors: run python -m rfnet.ood first")
    rng = np.random.default_rng(a.seed)
    base, recs = _records(a.test, a.n)
    prods = [Image.open(base / r["product"]).convert("RGBA") for r in recs]
    ims = [Image.open(base / r["image"]).convert("RGB") for r in recs]
    rows = [("test products", "product", prods), ("test images", "generated", ims),
            ("test products, hard matting", "product", [hard_matte(x) for x in prods])]
    if a.generated:
        gbase, grecs = _records(a.generated, a.n)
        rows.append(("generated images", "generated", [Image.open(gbase / r["image"]).convert("RGB") for r in grecs]))
    gens, pcuts = photo_crops(rng)
    if gens:
        rows += [("photo crops as images", "generated", gens), ("photo cutouts as products", "product", pcuts)]
    print("| images | as | flagged by features | flagged in all (features, or product edges) |\n|---|---|---:|---:|")
    for name, kind, items in rows:
        f, b, n = _rate(model, nov, kind, items)
        print(f"| {name} | {kind} | {f / n:.1%} ({f}/{n}) | {b / n:.1%} ({b}/{n}) |")
    return 0


if __name__ == "__main__":
    with torch.no_grad():
        sys.exit(main())
