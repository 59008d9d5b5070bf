"""Product cutouts: RGBA images of the catalogue's categories.

Shapes are drawn at four times the target size and reduced. The matte is soft (a one-pixel
anti-aliased border, no hard edge anywhere: RF-Synth v1's only kind) or, since v2, hard (alpha
cut at one half, 0 or 255, as a matting tool's binary mask or a real photo's cutout has).
Damage (the Unsuitable case) is applied afterwards, a cut or holes with hard edges; the
sample's damage record is what the oracle judges (rules.py, rule 1): see :func:`damage`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from .catalog import CATEGORIES, COLOURS, Category

SS = 4  # supersampling factor


@dataclass
class ProductSpec:
    category: str
    colour: str  # main colour name
    accent: str  # second colour name (cap, base, foliage...)
    aspect: float  # width / height
    texture: str  # plain, stripes, dots
    shading: float  # strength of the cylindrical shading
    extra: dict = field(default_factory=dict)
    matte: str = "soft"  # soft (anti-aliased border) or hard (binary alpha); see the module docstring
    printed: int | None = None  # v2: the seed of a printed label of many colours (None: none)

    @property
    def cat(self) -> Category:
        from .catalog import CATEGORY_BY_NAME

        return CATEGORY_BY_NAME[self.category]


def sample_spec(rng: np.random.Generator, category: str | None = None) -> ProductSpec:
    from .catalog import PRODUCT_COLOURS

    cat = CATEGORIES[rng.integers(len(CATEGORIES))] if category is None else \
        next(c for c in CATEGORIES if c.name == category)
    colour = PRODUCT_COLOURS[rng.integers(len(PRODUCT_COLOURS))]
    accents = [c for c in ("gold", "black", "white", "grey", "brown") if c != colour]
    accent = "green" if cat.shape == "plant" else accents[rng.integers(len(accents))]
    return ProductSpec(
        category=cat.name, colour=colour, accent=accent,
        aspect=float(rng.uniform(*cat.aspect)),
        texture=("plain", "plain", "stripes", "dots")[rng.integers(4)],
        shading=float(rng.uniform(0.05, 0.2)),
    )


def _rgb(name: str, rng=None, jitter: int = 0) -> tuple[int, int, int]:
    c = np.array(COLOURS[name][0], dtype=float)
    if rng is not None and jitter:
        c = c + rng.integers(-jitter, jitter + 1, 3)
    return tuple(int(v) for v in np.clip(c, 0, 255))


def render_product(spec: ProductSpec, height_px: int, rng: np.random.Generator) -> Image.Image:
    """The cutout at ``height_px`` pixels high (width from the spec's aspect), RGBA."""
    h = max(8, int(height_px))
    w = max(4, int(round(h * spec.aspect)))
    W, H = w * SS, h * SS
    main = _rgb(spec.colour, rng, 10)
    acc = _rgb(spec.accent, rng, 10)
    img = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    draw = _SHAPES[spec.cat.shape]
    draw(d, W, H, main + (255,), acc + (255,), rng)
    img = img.resize((w, h), Image.BOX)
    img = _texture(img, spec, main, rng)
    if spec.printed is not None:
        img = _printed_label(img, np.random.default_rng(spec.printed))
    # A transparent margin; then the matte (see the module docstring).
    out = np.zeros((h + 2, w + 2, 4), np.uint8)
    out[1:-1, 1:-1] = np.asarray(img)
    alpha = out[..., 3]
    if spec.matte == "hard":
        alpha[:] = np.where(alpha >= 128, 255, 0)
    elif spec.matte == "soft":
        alpha[hard_edges(alpha)] = 192
    else:
        raise ValueError(f"matte must be 'soft' or 'hard', got {spec.matte!r}")
    return Image.fromarray(out, "RGBA")


def _next_to(mask: np.ndarray, outside: bool = False) -> np.ndarray:
    """Pixels 4-adjacent to a pixel of ``mask`` (beyond the border counts as ``outside``)."""
    m = np.pad(mask, 1, constant_values=outside)
    return m[:-2, 1:-1] | m[2:, 1:-1] | m[1:-1, :-2] | m[1:-1, 2:]


def hard_edges(alpha: np.ndarray) -> np.ndarray:
    """Fully opaque pixels 4-adjacent to fully transparent ones: edges no anti-aliasing made.
    A soft-matted cutout has none until damaged (cuts and holes have them); a hard-matted one
    has them all round."""
    return (alpha == 255) & _next_to(alpha == 0, outside=True)


def _texture(img: Image.Image, spec: ProductSpec, main, rng) -> Image.Image:
    """Cylindrical shading and a light pattern on the main-colour pixels."""
    a = np.asarray(img).astype(np.float32)
    h, w = a.shape[:2]
    x = np.linspace(-1, 1, w)[None, :]
    shade = 1.0 + spec.shading * (0.5 - x ** 2)  # bright middle, darker sides
    rgb = a[..., :3]
    is_main = np.linalg.norm(rgb - np.array(main, dtype=np.float32), axis=-1) < 40
    pattern = np.ones((h, w), np.float32)
    if spec.texture == "stripes":
        period = max(3, h // 6)
        pattern = 1.0 + 0.07 * np.sign(np.sin(np.arange(h)[:, None] * 2 * np.pi / period)) * np.ones((1, w))
    elif spec.texture == "dots":
        yy, xx = np.mgrid[:h, :w]
        step = max(3, min(h, w) // 4)
        pattern = 1.0 - 0.08 * (((yy % step) < step / 3) & ((xx % step) < step / 3))
    factor = np.where(is_main, shade * pattern, 1.0)[..., None]
    a[..., :3] = np.clip(rgb * factor, 0, 255)
    return Image.fromarray(a.astype(np.uint8), "RGBA")


def _printed_label(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A label printed on the product's body, as product photos show (brand panels, pictures,
    small print): a rectangle of 35-70% of the width and 20-45% of the height, filled with a
    field of random colours at three scales (a photo's 1/f look) and rows of dark or light
    marks (text), wherever the product is opaque. Only the product's own pixels change."""
    a = np.asarray(img).astype(np.float32)
    h, w = a.shape[:2]
    lw, lh = max(3, int(w * rng.uniform(0.35, 0.7))), max(3, int(h * rng.uniform(0.2, 0.45)))
    # on the body: of eight places, the one most covered by the product (a lamp's stand is thin)
    places = [(int(rng.integers(0, max(1, w - lw + 1))), int((h - lh) * rng.uniform(0.1, 0.9))) for _ in range(8)]
    x0, y0 = max(places, key=lambda q: int((a[q[1]:q[1] + lh, q[0]:q[0] + lw, 3] > 0).sum()))
    field = np.zeros((lh, lw, 3), np.float32)
    for cells, amp in ((2, 1.0), (5, 0.6), (12, 0.35)):
        small = rng.uniform(0, 255, (cells, cells, 3)).astype(np.uint8)
        field += amp * np.asarray(Image.fromarray(small).resize((lw, lh), Image.BICUBIC), np.float32)
    field /= 1.95
    for _ in range(int(rng.integers(1, 4))):  # rows of marks
        ty = int(rng.uniform(0.1, 0.8) * lh)
        th = max(1, lh // 10)
        ink = 20.0 if rng.uniform() < 0.6 else 235.0
        x = int(rng.integers(0, max(1, lw // 6)))
        while x < lw - 1:
            n = int(rng.integers(1, max(2, lw // 6)))
            field[ty:ty + th, x:x + n] = ink
            x += n + int(rng.integers(1, 3))
    region = a[y0:y0 + lh, x0:x0 + lw]
    opaque = region[..., 3:4] > 0
    region[..., :3] = np.where(opaque, field[:region.shape[0], :region.shape[1]], region[..., :3])
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGBA")


# ---- silhouettes (drawn on a W x H supersampled canvas) --------------------------------------
def _lipstick(d, W, H, main, acc, rng):
    d.rectangle([W * 0.1, H * 0.45, W * 0.9, H], fill=main)  # casing
    d.rectangle([W * 0.05, H * 0.42, W * 0.95, H * 0.5], fill=acc)  # ring
    d.polygon([(W * 0.22, H * 0.45), (W * 0.22, H * 0.12), (W * 0.78, 0), (W * 0.78, H * 0.45)], fill=acc)


def _bottle(d, W, H, main, acc, rng):
    d.rounded_rectangle([0, H * 0.3, W, H], radius=W * 0.18, fill=main)
    d.rectangle([W * 0.38, H * 0.14, W * 0.62, H * 0.32], fill=main)
    d.rounded_rectangle([W * 0.3, 0, W * 0.7, H * 0.16], radius=W * 0.05, fill=acc)


def _mug(d, W, H, main, acc, rng):
    d.rounded_rectangle([0, 0, W * 0.78, H], radius=W * 0.08, fill=main)
    d.ellipse([W * 0.6, H * 0.2, W, H * 0.75], fill=main)  # solid handle
    d.rectangle([0, 0, W * 0.78, H * 0.08], fill=acc)


def _jar(d, W, H, main, acc, rng):
    d.rounded_rectangle([0, H * 0.3, W, H], radius=H * 0.15, fill=main)
    d.rounded_rectangle([W * 0.05, 0, W * 0.95, H * 0.34], radius=H * 0.08, fill=acc)


def _vase(d, W, H, main, acc, rng):
    d.ellipse([0, H * 0.3, W, H], fill=main)
    d.rectangle([W * 0.32, H * 0.08, W * 0.68, H * 0.5], fill=main)
    d.rectangle([W * 0.25, 0, W * 0.75, H * 0.1], fill=acc)


def _speaker(d, W, H, main, acc, rng):
    d.rounded_rectangle([0, 0, W, H], radius=W * 0.12, fill=main)
    r = W * 0.28
    for cy in (H * 0.3, H * 0.7):
        d.ellipse([W / 2 - r, cy - r, W / 2 + r, cy + r], fill=acc)


def _table_lamp(d, W, H, main, acc, rng):
    d.polygon([(W * 0.2, 0), (W * 0.8, 0), (W, H * 0.42), (0, H * 0.42)], fill=main)
    d.rectangle([W * 0.45, H * 0.4, W * 0.55, H * 0.9], fill=acc)
    d.ellipse([W * 0.15, H * 0.85, W * 0.85, H], fill=acc)


def _handbag(d, W, H, main, acc, rng):
    d.polygon([(W * 0.1, H * 0.35), (W * 0.9, H * 0.35), (W, H), (0, H)], fill=main)
    d.arc([W * 0.25, 0, W * 0.75, H * 0.7], 180, 360, fill=acc, width=int(max(4, W * 0.06)))


def _floor_lamp(d, W, H, main, acc, rng):
    d.polygon([(W * 0.15, 0), (W * 0.85, 0), (W, H * 0.2), (0, H * 0.2)], fill=main)
    d.rectangle([W * 0.44, H * 0.2, W * 0.56, H * 0.96], fill=acc)
    d.ellipse([W * 0.1, H * 0.93, W * 0.9, H], fill=acc)


def _massage_chair(d, W, H, main, acc, rng):
    d.rounded_rectangle([W * 0.05, 0, W * 0.6, H * 0.7], radius=W * 0.15, fill=main)  # back
    d.rounded_rectangle([W * 0.05, H * 0.5, W, H * 0.8], radius=W * 0.1, fill=main)  # seat
    d.rounded_rectangle([W * 0.45, H * 0.4, W * 0.95, H * 0.55], radius=W * 0.05, fill=main)  # arm
    d.rectangle([W * 0.2, H * 0.8, W * 0.85, H], fill=acc)  # base


def _cabinet(d, W, H, main, acc, rng):
    d.rectangle([0, 0, W, H * 0.94], fill=main)
    line = max(2, int(W * 0.02))
    for x in (W / 3, 2 * W / 3):
        d.rectangle([x - line / 2, H * 0.05, x + line / 2, H * 0.9], fill=acc)
    for x in (W * 0.05, W * 0.87):
        d.rectangle([x, H * 0.93, x + W * 0.08, H], fill=acc)  # its own short legs


def _plant(d, W, H, main, acc, rng):
    d.polygon([(W * 0.2, H * 0.62), (W * 0.8, H * 0.62), (W * 0.7, H), (W * 0.3, H)], fill=main)
    for _ in range(9):
        cx, cy = rng.uniform(0.25, 0.75) * W, rng.uniform(0.12, 0.5) * H
        rx, ry = rng.uniform(0.15, 0.25) * W, rng.uniform(0.1, 0.16) * H
        d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=acc)
    d.rectangle([W * 0.46, H * 0.4, W * 0.54, H * 0.64], fill=acc)


_SHAPES = {
    "lipstick": _lipstick, "bottle": _bottle, "mug": _mug, "jar": _jar, "vase": _vase,
    "speaker": _speaker, "table_lamp": _table_lamp, "handbag": _handbag,
    "floor_lamp": _floor_lamp, "massage_chair": _massage_chair, "cabinet": _cabinet, "plant": _plant,
}


def tight(cutout: Image.Image, margin: int = 1) -> Image.Image:
    """``cutout`` cropped to its visible pixels plus ``margin`` transparent pixels. v2 crops
    every cutout so: in v1 a cut left transparent rows or columns where the product had been,
    and an inspector learned "a wide transparent margin is damage", then called every
    designer's cutout with a margin Unsuitable; intact cutouts, whose margins follow their
    shape, are cropped too, so that a tight frame does not mean damage either."""
    box = cutout.getchannel("A").getbbox()  # visible pixels (alpha > 0), as rfnet.images.crop_to_alpha
    return cutout if box is None else ImageOps.expand(cutout.crop(box), margin, fill=(0, 0, 0, 0))


# ---- damage: the Unsuitable case --------------------------------------------------------------
def damage(cutout: Image.Image, rng: np.random.Generator, severity: float) -> tuple[Image.Image, dict]:
    """A truncated or holed copy of ``cutout`` with hard edges. ``severity`` in 0..1 sets the
    cut depth (10-45% of the height) or the holes' area (2-12% of the product). The record
    says which, how much, and ``removed_frac``: the share of the product's opaque pixels lost."""
    a = np.asarray(cutout).copy()
    h, w = a.shape[:2]
    alpha = a[..., 3]
    opaque_before = int((alpha >= 128).sum())
    kind = ("cut_top", "cut_side", "holes")[rng.integers(3)]
    info = {"kind": kind, "severity": float(severity)}
    rows = np.nonzero((alpha > 0).any(1))[0]
    cols = np.nonzero((alpha > 0).any(0))[0]
    if kind == "cut_top":
        depth = int(round(len(rows) * (0.1 + 0.35 * severity)))
        edge = rows[0] + depth
        alpha[:edge] = 0
        line = alpha[edge]
        line[line > 0] = 255  # the cut is a hard edge
        info["cut_px"] = depth
    elif kind == "cut_side":
        depth = int(round(len(cols) * (0.1 + 0.35 * severity)))
        if rng.integers(2) == 0:
            edge = cols[0] + depth
            alpha[:, :edge] = 0
        else:
            edge = cols[-1] - depth
            alpha[:, edge + 1:] = 0
        line = alpha[:, edge]
        line[line > 0] = 255
        info["cut_px"] = depth
    else:
        before = alpha.copy()
        target = (before > 128).sum() * (0.02 + 0.1 * severity)
        n = int(rng.integers(1, 4))
        r = max(1, int(round(np.sqrt(target / n) / 2)))
        for _ in range(n):
            ys, xs = np.nonzero(alpha == 255)
            inner = [(y, x) for y, x in zip(ys, xs) if r + 1 <= y < alpha.shape[0] - r - 1
                     and r + 1 <= x < alpha.shape[1] - r - 1]
            if not inner:
                break
            cy, cx = inner[rng.integers(len(inner))]
            alpha[cy - r:cy + r + 1, cx - r:cx + r + 1] = 0
        hole = (alpha == 0) & (before > 0)
        alpha[_next_to(hole) & (alpha > 0)] = 255  # hard rims
        info["hole_px"] = int(hole.sum())
    a[..., 3] = alpha
    info["removed_frac"] = 1.0 - int((alpha >= 128).sum()) / max(opaque_before, 1)
    return Image.fromarray(a, "RGBA"), info
