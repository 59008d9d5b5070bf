"""Product folders for asking whether an inspector calls hard-matted products damaged.

    python scripts/hard_matte_products.py --out runs/matte_products
    python -m rfft.generate --products runs/matte_products/bundled_hard --rfnet DIR --attempts 3 --out ...
    python scripts/hard_matte_products.py --count runs/.../manifest.jsonl    # verdicts per product

Writes two folders of intact products: ``bundled_hard``, the bundled example products
(rfft/examples/products) with their alpha cut at one half, as a matting tool's binary mask
has; and ``photos_hard``, ellipse cutouts of scikit-image's bundled photos (the coffee cup, the
rocket...), which stand in for a designer's real product photos where none can be downloaded
(needs ``pip install scikit-image``; the folder is skipped without it). Each folder gets a
products.json with captions and categories, as the bundled one has. ``--count`` prints, from a
run's manifest, how many attempts and products the inspector called Unsuitable.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = {"coffee": ("咖啡杯 coffee cup 白色陶瓷 ceramic", "mug"), "rocket": ("火箭模型 rocket model toy", "vase"),
          "astronaut": ("宇航员手办 astronaut figure", "vase"), "chelsea": ("猫咪摆件 cat figure", "vase")}


def hard(img: Image.Image) -> Image.Image:
    a = np.asarray(img.convert("RGBA")).copy()
    a[..., 3] = np.where(a[..., 3] >= 128, 255, 0)
    return Image.fromarray(a, "RGBA")


def write_bundled(out: Path) -> int:
    src = ROOT / "rfft" / "examples" / "products"
    out.mkdir(parents=True, exist_ok=True)
    meta = json.loads((src / "products.json").read_text(encoding="utf-8"))
    for name in meta:
        hard(Image.open(src / name)).save(out / name)
    (out / "products.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
    return len(meta)


def write_photos(out: Path) -> int:
    try:
        import skimage.data as d
    except ImportError:
        print("scikit-image is not installed: photos_hard skipped (pip install scikit-image)", file=sys.stderr)
        return 0
    out.mkdir(parents=True, exist_ok=True)
    meta = {}
    for name, (caption, category) in PHOTOS.items():
        a = getattr(d, name)()[..., :3]
        h, w = a.shape[:2]
        s = min(h, w)
        crop = Image.fromarray(a[(h - s) // 2:(h + s) // 2, (w - s) // 2:(w + s) // 2]).resize((128, 128), Image.BICUBIC)
        yy, xx = np.mgrid[:128, :128]
        mask = ((((yy - 64) / 62) ** 2 + ((xx - 64) / 44) ** 2) <= 1).astype(np.uint8) * 255
        fname = f"photo_{name}.png"
        Image.fromarray(np.dstack([np.asarray(crop), mask]), "RGBA").save(out / fname)
        meta[fname] = {"caption": caption, "category": category}
    (out / "products.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
    return len(meta)


def count(manifest: Path) -> dict:
    recs = [json.loads(x) for x in manifest.read_text(encoding="utf-8").splitlines() if x.strip()]
    labels = Counter(r["label"] for r in recs)
    per_product = Counter()
    for r in recs:
        per_product[r["product"]] += r["label"] == "Unsuitable"
    always = sorted(p for p, k in per_product.items() if k == sum(1 for r in recs if r["product"] == p))
    return {"attempts": len(recs), "labels": dict(labels), "products": len(per_product),
            "products_called_unsuitable_every_attempt": always}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python scripts/hard_matte_products.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", help="folder to write bundled_hard/ and photos_hard/ into")
    p.add_argument("--count", help="a run's manifest.jsonl: its verdicts per product")
    a = p.parse_args(argv)
    if a.count:
        print(json.dumps(count(Path(a.count)), ensure_ascii=False))
    if a.out:
        n = write_bundled(Path(a.out) / "bundled_hard")
        m = write_photos(Path(a.out) / "photos_hard")
        print(f"wrote {n} bundled products and {m} photos, hard-matted, to {a.out}")
    if not (a.count or a.out):
        p.error("give --out or --count")
    return 0


if __name__ == "__main__":
    sys.exit(main())
