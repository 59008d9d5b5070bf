"""What in a product's look makes an inspector call it Unsuitable? In-world products changed one
way at a time, pasted back into their own Available scene.

    python scripts/product_look_probe.py --rfnet rfnet/embedded/rfnet-synth-tiny [--n 40] [--seed 200]

Each of ``--n`` RF-Synth v1 Available samples (seeds from ``--seed``) is judged as drawn and
with its product changed: a transparent margin of 20 px at the sides or on top (the frame a
designer's export has; judged as given, and cropped to the visible pixels as the inspector now
does), a printed label of many colours (RF-Synth v2's), a photo's texture inside the
silhouette (scikit-image's coffee cup, when installed), and pixel noise of +-60. The changed
product is pasted over the old one, so the image still shows the product it is judged with.
Prints, per change, the share called Unsuitable (top class) and the mean P(Unsuitable) and
P(Available). The inspector's novelty check is off: this asks what the model itself says.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rfnet import inspect as rfinspect  # noqa: E402
from rfsynth.products import _printed_label  # noqa: E402
from rfsynth.scene import render_sample  # noqa: E402


def pad(p: Image.Image, left: int, top: int, right: int, bottom: int) -> Image.Image:
    out = Image.new("RGBA", (p.width + left + right, p.height + top + bottom))
    out.paste(p, (left, top))
    return out


def with_rgb(p: Image.Image, rgb: np.ndarray) -> Image.Image:
    a = np.asarray(p).copy()
    a[..., :3] = np.clip(rgb, 0, 255).astype(np.uint8)
    return Image.fromarray(a, "RGBA")


def coffee() -> np.ndarray | None:
    try:
        import skimage.data as d
    except ImportError:
        return None
    return d.coffee()[..., :3]


def variants(s, rng, photo) -> dict[str, tuple[Image.Image, bool]]:
    """{name: (product, crop?)}; crop False judges the product exactly as given."""
    p = s.product
    a = np.asarray(p).astype(np.float32)
    h, w = a.shape[:2]
    out = {"as drawn": (p, True),
           "margin 20 px at the sides, as given": (pad(p, 20, 0, 20, 0), False),
           "margin 20 px on top, as given": (pad(p, 0, 20, 0, 0), False),
           "margin 20 px at the sides, cropped": (pad(p, 20, 0, 20, 0), True),
           "printed label (v2)": (_printed_label(p, rng), True),
           "pixel noise +-60": (with_rgb(p, a[..., :3] + rng.integers(-60, 61, (h, w, 3))), True)}
    if photo is not None:
        out["photo texture (coffee)"] = (with_rgb(p, np.asarray(Image.fromarray(photo).resize((w, h)), np.float32)),
                                         True)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python scripts/product_look_probe.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--rfnet", required=True)
    p.add_argument("--n", type=int, default=40)
    p.add_argument("--seed", type=int, default=200)
    a = p.parse_args(argv)
    insp = rfinspect.Inspector.from_pretrained(a.rfnet)
    insp.novelty = None
    rng = np.random.default_rng(a.seed)
    photo = coffee()
    rows: dict[str, list] = {}
    keep_crop = rfinspect.crop_to_alpha
    for i in range(a.n):
        s = render_sample(a.seed + i, 128, label="Available", version=1)
        bx, by = s.product.getchannel("A").getbbox()[:2]  # where the visible pixels start in the cutout
        for name, (prod, crop) in variants(s, rng, photo).items():
            img = s.image.copy()
            # the changed product exactly over the old one (margins are transparent: the scene is unchanged)
            tight = keep_crop(prod)
            img.paste(tight, (s.placement["x"] + bx, s.placement["y"] + by), tight)
            rfinspect.crop_to_alpha = keep_crop if crop else (lambda x: x)
            try:
                (v,) = insp(prod, img, s.caption)
            finally:
                rfinspect.crop_to_alpha = keep_crop
            rows.setdefault(name, []).append((v.label == "Unsuitable", v.probs["Unsuitable"], v.p_available))
    print(f"{a.n} RF-Synth v1 Available samples (seeds {a.seed}..{a.seed + a.n - 1}, 128 px), inspector {a.rfnet}\n")
    print("| product | called Unsuitable | mean P(Unsuitable) | mean P(Available) |")
    print("|---|---:|---:|---:|")
    for name, r in rows.items():
        u = np.array(r, dtype=float)
        print(f"| {name} | {u[:, 0].mean():.0%} | {u[:, 1].mean():.3f} | {u[:, 2].mean():.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
