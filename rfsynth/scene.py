"""Composed advertising samples: a product placed as the paper's release places it (its box
fitted into ``scale x S``, centred), a scene drawn around it from a prompt (wall, support
surface and material, lighting, decorations, a reference object of known size), and one of
the six cases built on purpose, with a graded severity, on the right side of the rules in
rules.py. Every sample carries its ground truth: label, product mask and placement, depth and
salience maps, and the parameters that made it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from . import rules
from .catalog import (
    CATEGORY_BY_NAME,
    COLOURS,
    DECORATIONS,
    LIGHTING,
    MATERIALS,
    REFERENCE_FOR_SIZE,
    REFERENCES,
    SURFACES,
    WALL_COLOURS,
)
from .products import ProductSpec, damage, render_product, sample_spec, tight
from .text import caption_for, prompt_for

# The world's version. 1: every natural cutout has a soft matte and flat colours, and keeps the
# canvas it was drawn on. 2: a share have a hard matte (rules.HARD_MATTE_P) and a share a printed
# label of many colours (rules.PRINTED_P), drawn from a stream of their own, and every cutout sits
# in a one-pixel frame, so that neither a hard edge, nor a photo-like look, nor a margin means
# damage (docs/RFSYNTH.md, "v2").
VERSION = 2
VERSIONS = (1, 2)

LABELS = ("Available", "Unsuitable", "Space Mismatch", "Size Mismatch", "Indistinctiveness",
          "Shape Hallucination")
DEFAULT_PRIORS = {"Available": 0.4, "Unsuitable": 0.1, "Space Mismatch": 0.125,
                  "Size Mismatch": 0.125, "Indistinctiveness": 0.125, "Shape Hallucination": 0.125}


@dataclass
class Sample:
    image: Image.Image  # RGB, S x S
    product: Image.Image  # the RGBA cutout as a user would supply it
    placement: dict  # x, y of the cutout's top-left on the canvas; w, h of the cutout
    mask: np.ndarray  # (S, S) float alpha of the placed product
    depth: np.ndarray  # (S, S) float 0..1, near is bright
    salience: np.ndarray  # (S, S) float 0..1
    label: str
    category: str
    caption: str
    prompt: str
    params: dict = field(default_factory=dict)

    @property
    def damage(self) -> dict | None:
        """What was cut from the product or punched in it (None: intact); the oracle's rule 1."""
        return self.params.get("damage")


class _Retry(Exception):
    pass


def appearance_for(seed, version: int = VERSION) -> dict:
    """What v2 adds to a sample's (or a job's) product: its matte, and the seed of a printed
    label (None: none). From a stream of its own of ``seed`` (an int or a sequence), so that v2
    changes nothing else a seed draws."""
    if version not in VERSIONS:
        raise ValueError(f"RF-Synth version must be one of {VERSIONS}, got {version!r}")
    if version < 2:
        return {"matte": "soft", "printed": None}
    key = list(seed) if isinstance(seed, (list, tuple)) else [seed]
    side = np.random.default_rng(key + [2])
    matte = "hard" if side.uniform() < rules.HARD_MATTE_P else "soft"
    printed = int(side.integers(2 ** 31)) if side.uniform() < rules.PRINTED_P else None
    return {"matte": matte, "printed": printed}


def render_sample(seed: int, size: int = 128, label: str | None = None,
                  priors: dict | None = None, version: int = VERSION) -> Sample:
    """One sample, fully determined by ``seed`` (and the label, when given) and the world's
    ``version`` (1 draws v1's samples pixel for pixel)."""
    look = appearance_for(seed, version)
    rng = np.random.default_rng(seed)
    if label is None:
        pri = priors or DEFAULT_PRIORS
        names = list(pri)
        p = np.array([pri[n] for n in names], dtype=float)
        label = names[rng.choice(len(names), p=p / p.sum())]
    if label not in LABELS:
        raise ValueError(f"unknown label {label!r}; one of {', '.join(LABELS)}")
    for attempt in range(200):  # constraints that cannot be met are redrawn, deterministically
        try:
            return _compose(rng, size, label, attempt, look, version)
        except _Retry:
            continue
    raise RuntimeError(f"could not compose a {label} sample from seed {seed}")


# ---------------------------------------------------------------------------------------------
def _dist(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a, float) - np.asarray(b, float)))


def _far_from(colour, palette, d) -> bool:
    return all(_dist(colour, p) >= d for p in palette)


def _jitter(rgb, rng, j):
    return tuple(int(v) for v in np.clip(np.asarray(rgb, float) + rng.integers(-j, j + 1, 3), 0, 255))


def _compose(rng, S: int, label: str, attempt: int, look: dict | None = None, version: int = VERSION) -> Sample:
    from .oracle import product_palette

    severity = float(rng.uniform())
    spec: ProductSpec = sample_spec(rng)
    spec.matte, spec.printed = (look or {}).get("matte", "soft"), (look or {}).get("printed")
    matte = spec.matte
    cat = CATEGORY_BY_NAME[spec.category]
    scale = float(rng.uniform(0.35, 0.62))
    box = scale * S
    h = box if spec.aspect <= 1 else box / spec.aspect
    cutout = render_product(spec, int(round(h)), rng)
    params: dict = {"label": label, "severity": severity, "size": S, "scale": scale,
                    "product": vars(spec).copy(), "attempt": attempt}
    if label == "Unsuitable":
        from .products import hard_edges

        cutout, params["damage"] = damage(cutout, rng, severity)
        # a cut through a thin part leaves too little to see: on a soft matte, too little hard
        # edge (v1's test, kept so that v1 draws as before); on a hard one, too little removed
        if (hard_edges(np.asarray(cutout)[..., 3]).sum() < rules.HARD_EDGE_MIN_PX + 2 if matte == "soft"
                else params["damage"]["removed_frac"] < rules.DAMAGE_MIN_FRAC):
            raise _Retry
    if version >= 2:  # every cutout in its one-pixel frame: a margin says nothing (products.tight)
        cutout = tight(cutout)
    ca = np.asarray(cutout)
    cw, ch = cutout.size
    x0, y0 = (S - cw) // 2, (S - ch) // 2
    alpha = np.zeros((S, S), np.float32)
    alpha[y0:y0 + ch, x0:x0 + cw] = ca[..., 3] / 255.0
    solid = alpha > 0.5
    rows = np.nonzero(solid.any(1))[0]
    cols = np.nonzero(solid.any(0))[0]
    if len(rows) == 0:
        raise _Retry
    top, base = int(rows[0]), int(rows[-1])
    left, right = int(cols[0]), int(cols[-1])
    h_px = base - top + 1
    contact = [c for c in range(left, right + 1) if solid[:, c].any()
               and np.nonzero(solid[:, c])[0][-1] >= base - 1]
    palette = product_palette(cutout)
    main = palette[0]
    params.update(placement={"x": x0, "y": y0, "w": cw, "h": ch}, base=base, top=top,
                  palette=[list(map(int, p)) for p in palette])
    if top < rules.WALL_BAND * S + 2:
        raise _Retry

    # ---- colours -------------------------------------------------------------------------
    indistinct = label == "Indistinctiveness"
    mode = None
    if indistinct:
        mode = "low_contrast" if rng.uniform() < 0.6 else "clutter"
        params["indistinct"] = mode
    light = LIGHTING[rng.integers(len(LIGHTING))]
    surface = SURFACES[rng.integers(len(SURFACES))]
    material = list(MATERIALS)[rng.integers(len(MATERIALS))]
    wall_name = WALL_COLOURS[rng.integers(len(WALL_COLOURS))]
    if mode == "low_contrast":
        border, share = _outline_colour(ca, palette)
        if share < 0.65:
            raise _Retry  # a two-coloured outline: one background colour cannot hide it
        spread = 4 + 16 * (1 - severity)  # per channel; less severe is nearer the threshold
        wall = _jitter(border, rng, int(spread))
        top_rgb = _jitter(border, rng, int(spread))
        params["contrast_spread"] = spread
    else:
        wall = _jitter(COLOURS[wall_name][0], rng, 10)
        top_rgb = _jitter(MATERIALS[material][0], rng, 15)
        shades = [wall, top_rgb, _shade(top_rgb, 0.78), _shade(top_rgb, 0.72)]
        if not all(_far_from(c, palette, rules.SAFE_COLOUR_DIST) for c in shades):
            raise _Retry
        if _dist(wall, top_rgb) < 70 or _dist(wall, _shade(top_rgb, 0.78)) < 60:
            raise _Retry
    front_rgb = _shade(top_rgb, 0.78)

    # ---- geometry of the support -----------------------------------------------------------
    floor = surface == "floor"
    extra = None
    if label == "Shape Hallucination":
        extra = _hallucination_plan(rng, severity, S, alpha, left, right, top, base, contact)
        params["hallucination"] = {k: v for k, v in extra.items() if k != "rects"}
    lift = extra["lift"] if extra else 0
    space_kind = None
    if label == "Space Mismatch":
        space_kind = "floating" if rng.uniform() < 0.6 else "edge"
        params["space"] = space_kind
    if space_kind == "floating":
        gap = int(round(S * rules.SUPPORT_GAP * (1.5 + 3.0 * severity)))
        y_back = base + gap
        params["gap_px"] = gap
    else:
        y_back = base + lift - int(round(rng.uniform(0.0, 0.06) * S))
        if lift:
            y_back = base + lift
    if floor:
        y_front = S
    else:
        y_front = min(S, max(y_back + 3, base + lift + int(round(rng.uniform(0.03, 0.14) * S))))
    if y_back < rules.WALL_BAND * S + 4 or y_back > S - 3:
        raise _Retry
    x_l, x_r = 0, S
    if space_kind == "edge":
        frac = 0.4 * (1.0 - severity)
        k = int(np.floor(frac * len(contact)))
        cs = sorted(contact)
        if rng.uniform() < 0.5:  # surface ends under the product, to its left or right
            x_r = cs[k - 1] + 1 if k > 0 else max(1, cs[0] - int(rng.integers(1, 4)))
        else:
            cs = cs[::-1]
            x_l = cs[k - 1] if k > 0 else min(S - 1, cs[0] + int(rng.integers(1, 4)))
        params.update(edge_supported_frac=k / len(contact), surface_x=[x_l, x_r])
    elif not floor and rng.uniform() < 0.35:  # a finite podium or shelf that holds the product
        x_l = max(0, left - int(rng.integers(3, max(4, int(0.2 * S)))))
        x_r = min(S, right + int(rng.integers(3, max(4, int(0.2 * S)))))

    # ---- draw -------------------------------------------------------------------------------
    img = np.empty((S, S, 3), np.float32)
    img[:] = wall
    xs = np.linspace(-1, 1, S)[None, :, None]
    light_amp = {"soft daylight": 0.05, "warm light": 0.07, "studio light": 0.03,
                 "evening light": 0.08, "bright sunlight": 0.1}[light]
    direction = 1 if rng.uniform() < 0.5 else -1
    depth = np.full((S, S), 0.15, np.float32)
    sal = np.zeros((S, S), np.float32)
    tex = _material_texture(rng, S, MATERIALS[material][1], mode == "low_contrast")
    top_face = np.zeros((S, S), bool)
    top_face[y_back:y_front, x_l:x_r] = True
    front_face = np.zeros((S, S), bool)
    front_face[y_front:, x_l:x_r] = True
    img[top_face] = np.asarray(top_rgb, np.float32) * tex[top_face][:, None]
    img[front_face] = np.asarray(front_rgb, np.float32) * tex[front_face][:, None]
    rr = np.arange(S, dtype=np.float32)[:, None]
    surf_depth = 0.3 + 0.7 * (rr - y_back) / max(1, S - y_back)
    depth = np.where(top_face, surf_depth, depth)
    depth = np.where(front_face, 0.3 + 0.7 * (y_front - y_back) / max(1, S - y_back), depth)

    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(pil)
    decoration = DECORATIONS[rng.integers(len(DECORATIONS))]
    if mode != "clutter":
        _decorate(d, rng, S, decoration, left, right, y_back, palette)
    # contact shadow of a supported product
    if label != "Space Mismatch" and not lift and mode != "low_contrast":
        sh = np.zeros((S, S), np.float32)
        cx = (left + right) / 2
        yy, xx = np.mgrid[:S, :S]
        e = ((xx - cx) / (0.6 * (right - left + 1))) ** 2 + ((yy - base) / max(1.5, 0.03 * S)) ** 2
        sh[(e < 1) & top_face] = 1
        arr = np.asarray(pil).astype(np.float32)
        arr *= (1 - 0.22 * sh)[..., None]
        pil = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        d = ImageDraw.Draw(pil)

    # reference object
    ref = _reference(rng, label, severity, S, cat, h_px, left, right, y_back, y_front, x_l, x_r, params)
    if ref is not None:
        d.rectangle(ref["box"], fill=ref["colour"])
        x_a, y_a, x_b, y_b = ref["box"]
        depth[y_a:y_b + 1, x_a:x_b + 1] = surf_depth[min(S - 1, y_b)]
        sal[y_a:y_b + 1, x_a:x_b + 1] = 0.3

    if mode == "clutter":
        _clutter(d, rng, S, severity, left, right, top, base, palette)
    if extra:
        for rect in extra["rects"]:
            d.rectangle(rect, fill=tuple(int(v) for v in main))
            x_a, y_a, x_b, y_b = rect
            sal[y_a:y_b + 1, x_a:x_b + 1] = 0.8

    # lighting: a horizontal gradient over the whole scene, as a lamp to one side would give
    arr = np.asarray(pil).astype(np.float32) * (1 + direction * light_amp * xs)
    arr += rng.normal(0, 1.5, arr.shape)  # sensor noise
    # the product, pasted exactly (it is never relit: the paper pastes the product back)
    prod = np.zeros((S, S, 3), np.float32)
    prod[y0:y0 + ch, x0:x0 + cw] = ca[..., :3]
    a3 = alpha[..., None]
    arr = arr * (1 - a3) + prod * a3
    image = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")

    prod_depth = float(surf_depth[min(S - 1, max(base + lift, y_back)), 0]) + 0.02
    depth = np.where(alpha > 0.5, prod_depth, depth)
    sal = np.maximum(sal, alpha * (0.35 if indistinct else 1.0))
    sal = np.asarray(Image.fromarray((sal * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(S / 128)),
                     np.float32) / 255.0
    params.update(wall=list(wall), wall_name=wall_name, surface=surface, material=material,
                  surface_rgb=list(top_rgb), y_back=int(y_back), y_front=int(y_front),
                  lighting=light, decoration=decoration if mode != "clutter" else "clutter",
                  reference={k: v for k, v in ref.items() if k != "colour"} if ref else None)
    ref_name = ref["name"] if ref else None
    caption = caption_for(rng, spec)
    prompt = prompt_for(spec, wall_name if mode != "low_contrast" else spec.colour, material,
                        surface, light, decoration if mode != "clutter" else "many small objects",
                        ref_name)
    return Sample(image=image, product=cutout, placement=params["placement"], mask=alpha,
                  depth=np.clip(depth, 0, 1), salience=np.clip(sal, 0, 1), label=label,
                  category=spec.category, caption=caption, prompt=prompt, params=params)


def _shade(rgb, f):
    return tuple(int(np.clip(v * f, 0, 255)) for v in rgb)


def _outline_colour(ca: np.ndarray, palette):
    """The palette colour most of the cutout's outline has, and its share of the outline."""
    a = ca[..., 3] > 128
    inner = a.copy()
    inner[1:-1, 1:-1] = a[1:-1, 1:-1] & a[:-2, 1:-1] & a[2:, 1:-1] & a[1:-1, :-2] & a[1:-1, 2:]
    px = ca[..., :3][a & ~inner].astype(np.float32)
    pal = np.asarray(palette, np.float32)
    nearest = np.argmin(np.linalg.norm(px[:, None] - pal[None], axis=-1), axis=1)
    counts = np.bincount(nearest, minlength=len(pal))
    j = int(np.argmax(counts))
    return tuple(int(v) for v in pal[j]), float(counts[j] / max(1, len(px)))


def _material_texture(rng, S, kind, flat: bool) -> np.ndarray:
    """A multiplicative texture near 1: wood grain, marble veins, speckle or weave; kept weak
    so that it never reads as clutter."""
    if flat:
        return np.ones((S, S), np.float32)
    yy, xx = np.mgrid[:S, :S].astype(np.float32)
    if kind == "grain":
        t = 1 + 0.05 * np.sin(yy * rng.uniform(0.4, 0.9) + 2 * np.sin(xx * 0.05))
    elif kind == "veins":
        t = 1 - 0.06 * (np.abs(np.sin((xx + 0.7 * yy) * rng.uniform(0.05, 0.1))) > 0.97)
    elif kind == "speckle":
        t = 1 + rng.normal(0, 0.025, (S, S))
    else:
        t = 1 + 0.03 * (((xx.astype(int) // 2) + (yy.astype(int) // 2)) % 2)
    return t.astype(np.float32)


def _decorate(d, rng, S, kind, left, right, y_back, palette):
    """A frame, window or shelf on the wall, kept away from the product."""
    if kind == "none":
        return
    w = int(S * rng.uniform(0.14, 0.22))
    h = int(S * rng.uniform(0.12, 0.2))
    y = int(rules.WALL_BAND * S) + 2 + int(rng.integers(0, max(1, int(0.1 * S))))
    if y + h > y_back - 0.05 * S:
        return
    margin = int(0.2 * S)
    spots = [x for x in (int(0.03 * S), S - w - int(0.03 * S)) if x + w < left - margin or x > right + margin]
    if not spots:
        return
    x = spots[rng.integers(len(spots))]
    if kind == "picture frame":
        d.rectangle([x, y, x + w, y + h], fill=(70, 45, 30))
        inner = (180, 200, 220) if _far_from((180, 200, 220), palette, 40) else (90, 90, 140)
        d.rectangle([x + 2, y + 2, x + w - 2, y + h - 2], fill=inner)
    elif kind == "window":
        d.rectangle([x, y, x + w, y + int(h * 1.3)], fill=(205, 225, 240))
        d.rectangle([x + w // 2 - 1, y, x + w // 2, y + int(h * 1.3)], fill=(240, 240, 240))
    elif kind == "wall shelf":
        d.rectangle([x, y + h, x + w, y + h + max(2, S // 40)], fill=(110, 80, 55))
    elif kind == "potted fern":
        d.ellipse([x, y, x + w, y + h], fill=(60, 120, 60))


def _clutter(d, rng, S, severity, left, right, top, base, palette):
    """Many small objects of many colours all around the product (Indistinctiveness); none in
    a reference object's reserved colour or in the product's own colours."""
    band = int(rules.CLUTTER_BAND * S)
    area = (right - left + 2 * band) * (base - top + 2 * band) - (right - left) * (base - top)
    r_mean = 0.02 * S
    n = int((0.6 + 0.8 * severity) * area / (np.pi * r_mean ** 2))
    reserved = [v["colour"] for v in REFERENCES.values()]
    for _ in range(max(12, n)):
        r = max(1, int(S * rng.uniform(0.012, 0.028)))
        side = rng.integers(4)
        if side == 0:
            cx, cy = rng.integers(left - band, left), rng.integers(top - band, base + band)
        elif side == 1:
            cx, cy = rng.integers(right, right + band), rng.integers(top - band, base + band)
        elif side == 2:
            cx, cy = rng.integers(left - band, right + band), rng.integers(max(int(0.11 * S) + r, top - band), top)
        else:
            cx, cy = rng.integers(left - band, right + band), rng.integers(base, base + band)
        while True:
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            if _far_from(colour, reserved, rules.CLUTTER_RESERVED_DIST) and _far_from(colour, palette, rules.SAFE_COLOUR_DIST):
                break
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)


def _hallucination_plan(rng, severity, S, alpha, left, right, top, base, contact):
    """Extra parts in the product's colour that touch it: legs, a pedestal, or a part on a
    side or on top. Their area is ``ratio`` of the product's."""
    area = float((alpha > 0.5).sum())
    ratio = rules.HALLUCINATION_AREA * (1.25 + 5.0 * severity)
    kind = ("legs", "pedestal", "side", "top")[rng.integers(4)]
    w = right - left + 1
    rects, lift = [], 0
    if kind == "legs":
        lw = max(2, int(round(0.1 * w)))
        L = int(np.ceil(ratio * area / (2 * lw)))
        if base + L > S - 0.06 * S:
            raise _Retry
        solid = alpha > 0.5
        bottoms = {c: int(np.nonzero(solid[:, c])[0][-1]) for c in range(left, right + 1) if solid[:, c].any()}
        low = sorted(c for c, b in bottoms.items() if b >= base - 0.3 * (base - top))
        xs = (low[int(0.15 * (len(low) - 1))], max(low[0], low[int(0.85 * (len(low) - 1))] - lw + 1))
        # each leg starts inside the product, so that it touches it whatever its outline
        rects = [[x, min(bottoms.get(c, base) for c in range(x, x + lw)) - 1, x + lw - 1, base + L]
                 for x in xs]
        lift = L + 1
    elif kind == "pedestal":
        pw = int(round(w * rng.uniform(1.0, 1.4)))
        L = int(np.ceil(ratio * area / pw))
        if base + L > S - 0.06 * S or L < 2:
            raise _Retry
        cx = (left + right) // 2
        rects = [[cx - pw // 2, base - 1, cx - pw // 2 + pw - 1, base + L]]
        lift = L + 1
    elif kind == "side":
        hh = int(round((0.3 + 0.3 * rng.uniform()) * (base - top)))
        ww = int(np.ceil(ratio * area / max(1, hh)))
        y = int((top + base) / 2 - hh / 2)
        rows = alpha[y:y + hh] > 0.5
        if rng.uniform() < 0.5:
            x = int(min(np.nonzero(r)[0].min() for r in rows if r.any()))
            rects = [[x - ww, y, x + 1, y + hh]]
        else:
            x = int(max(np.nonzero(r)[0].max() for r in rows if r.any()))
            rects = [[x - 1, y, x + ww, y + hh]]
        if rects[0][0] < 1 or rects[0][2] > S - 2:
            raise _Retry
    else:  # on top
        ww = max(3, int(round(0.5 * w)))
        hh = int(np.ceil(ratio * area / ww))
        cx = (left + right) // 2
        top_here = int(np.nonzero(alpha[:, cx] > 0.5)[0][0]) if (alpha[:, cx] > 0.5).any() else top
        if top_here - hh < rules.WALL_BAND * S + 3:
            raise _Retry
        rects = [[cx - ww // 2, top_here - hh, cx - ww // 2 + ww - 1, top_here + 1]]
    return {"kind": kind, "ratio": ratio, "rects": rects, "lift": lift}


def _reference(rng, label, severity, S, cat, h_px, left, right, y_back, y_front, x_l, x_r, params):
    """A reference object standing on the surface beside the product, its pixel size set by
    the scene's scale (true for every case but Size Mismatch)."""
    lo, hi = cat.height_cm
    if label == "Size Mismatch":
        factor = 1.2 + 2.3 * severity
        big = rng.uniform() < 0.5
        implied = hi * rules.SIZE_TOLERANCE * factor if big else lo / rules.SIZE_TOLERANCE / factor
        names = list(REFERENCES)
        params["size_factor"] = factor if big else 1 / factor
    else:
        if rng.uniform() < 0.1:
            return None
        implied = float(rng.uniform(lo, hi))
        names = list(REFERENCE_FOR_SIZE[cat.size_class])
    rng.shuffle(names)
    px_per_cm = h_px / implied
    gap = max(3, int(0.08 * S))
    for name in names:
        spec = REFERENCES[name]
        rh = int(round(spec["height_cm"] * px_per_cm))
        rw = max(2, int(round(rh * spec["aspect"])))
        y_base = int(min(S - 1, y_back + rng.uniform(0, 0.5) * max(0, min(y_front, S) - y_back)))
        if rh < max(rules.REFERENCE_MIN_PX, rules.REFERENCE_MIN_HEIGHT * S) or y_base - rh < rules.WALL_BAND * S + 2:
            continue
        spots = []
        if left - gap - rw >= max(1, x_l):
            spots.append(int(rng.integers(max(1, x_l), left - gap - rw + 1)))
        if right + gap + rw <= min(S - 2, x_r - 1):
            spots.append(int(rng.integers(right + gap, min(S - 2, x_r - 1) - rw + 1)))
        if not spots:
            continue
        x = spots[rng.integers(len(spots))]
        params["implied_height_cm"] = implied
        return {"name": name, "box": [x, y_base - rh + 1, x + rw - 1, y_base], "height_px": rh,
                "colour": spec["colour"], "implied_height_cm": implied}
    if label == "Size Mismatch":
        raise _Retry
    return None
