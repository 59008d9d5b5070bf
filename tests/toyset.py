"""A toy RF dataset: enough world to exercise training, evaluation and inspection end to end
without downloaded data. Not a benchmark (RF-Synth is the world with an oracle judge).

A product (a coloured box or bottle cut out as RGBA) stands in a room: a wall above, a floor
below. Four of the paper's cases, each drawn so it is visible at 64x64:

- Available: the product rests on the floor, its colour distinct from the room;
- Space Mismatch: it floats, a gap of wall between its base and the floor;
- Indistinctiveness: the room has the product's own colour;
- Shape Hallucination: legs in the product's colour grow from its base down to the floor.

Captions mix the product's colour and kind with brand names and model numbers, in English and
Chinese, as e-commerce titles do.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from rfnet.labels import AVAILABLE, INDISTINCT, SHAPE, SPACE

COLOURS = {
    "red": ((200, 40, 40), "红色"), "blue": ((40, 70, 200), "蓝色"),
    "green": ((40, 160, 60), "绿色"), "yellow": ((220, 200, 40), "黄色"),
    "purple": ((130, 50, 170), "紫色"),
}
KINDS = {"box": "收纳盒", "bottle": "香水瓶"}
BRANDS = ["Lumi", "Artisan", "NOVA", "云朵", "Kairo"]
CASES = (AVAILABLE, SPACE, INDISTINCT, SHAPE)


def _product(rng, size: int):
    """An RGBA cutout, its colour name and kind."""
    colour = list(COLOURS)[rng.integers(len(COLOURS))]
    kind = list(KINDS)[rng.integers(len(KINDS))]
    rgb = np.array(COLOURS[colour][0]) + rng.integers(-20, 21, 3)
    rgb = tuple(int(c) for c in np.clip(rgb, 0, 255))
    w = int(size * rng.uniform(0.25, 0.4))
    h = int(size * rng.uniform(0.3, 0.45))
    im = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    if kind == "box":
        d.rectangle([0, 0, w - 1, h - 1], fill=rgb + (255,))
    else:
        neck = max(2, w // 3)
        d.rectangle([(w - neck) // 2, 0, (w + neck) // 2, h // 4], fill=rgb + (255,))
        d.ellipse([0, h // 5, w - 1, h - 1], fill=rgb + (255,))
    return im, colour, kind, rgb


def _caption(rng, colour: str, kind: str) -> str:
    brand = BRANDS[rng.integers(len(BRANDS))]
    model = f"{chr(65 + rng.integers(26))}{rng.integers(100, 999)}"
    zh = COLOURS[colour][1] + KINDS[kind]
    return f"{brand} {colour} {kind} {zh} {model} {rng.integers(1, 9)}件装"


def render_sample(seed: int, case: str, size: int = 64):
    """(generated RGB image, product RGBA, caption, prompt) of one sample of ``case``."""
    rng = np.random.default_rng(seed)
    prod, colour, kind, rgb = _product(rng, size)
    distinct = [c for c in COLOURS if c != colour]
    wall = COLOURS[distinct[rng.integers(len(distinct))]][0]
    floor = tuple(int(c * 0.6) for c in COLOURS[distinct[rng.integers(len(distinct))]][0])
    if case == INDISTINCT:
        wall = tuple(int(np.clip(c + rng.integers(-12, 13), 0, 255)) for c in rgb)
        floor = tuple(int(np.clip(c + rng.integers(-12, 13), 0, 255)) for c in rgb)
    horizon = int(size * rng.uniform(0.62, 0.72))
    img = Image.new("RGB", (size, size), wall)
    d = ImageDraw.Draw(img)
    d.rectangle([0, horizon, size, size], fill=floor)
    w, h = prod.size
    x = int(rng.integers(2, size - w - 2))
    base = horizon + int(rng.integers(2, max(3, size - horizon - 4)))
    if case in (SPACE, SHAPE):
        base = horizon - int(size * rng.uniform(0.12, 0.2))  # product raised above the floor
    top = max(0, base - h)
    if case == SHAPE:  # legs in the product's colour, from its base to the floor
        leg = max(2, w // 6)
        floor_y = horizon + int(rng.integers(2, 6))
        d.rectangle([x + 1, base - 1, x + leg, floor_y], fill=rgb)
        d.rectangle([x + w - 1 - leg, base - 1, x + w - 2, floor_y], fill=rgb)
    img.paste(prod, (x, top), prod)
    caption = _caption(rng, colour, kind)
    prompt = f"a product on a {('wooden', 'marble')[rng.integers(2)]} floor, plain wall"
    return img, prod, caption, prompt


def write_toy_dataset(root, n: int = 200, seed: int = 0, size: int = 64,
                      splits=(("train", 0.7), ("val", 0.15), ("test", 0.15))) -> int:
    """Write ``n`` toy samples (cases in turn, splits by fraction) as an RF dataset; returns n.
    Depth and salience are left out, so the reader computes them."""
    from rfnet.data import RFDatasetWriter

    writer = RFDatasetWriter(root, description=f"rfnet toy set, seed {seed}, {size}px")
    bounds, acc = [], 0.0
    for name, frac in splits:
        acc += frac
        bounds.append((name, int(round(acc * n))))
    for i in range(n):
        case = CASES[i % len(CASES)]
        img, prod, caption, prompt = render_sample(seed * 1_000_003 + i, case, size)
        split = next(name for name, b in bounds if i < b)
        writer.add(f"toy{seed}_{i:05d}", img, prod, case, caption, prompt, split,
                   source={"generator": "tests.toyset", "seed": seed, "index": i})
    return n
