"""The oracle: labels any image of RF-Synth from the image, the product's placement and its
category, without the parameters that made the image. It is the "human annotator" of this
world, for composed samples and for images a generator draws.

Each rule and threshold is defined in rules.py; this file measures. :func:`judge` returns the
label and every measurement, so a verdict can be explained.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

from . import rules
from .catalog import CATEGORY_BY_NAME, REFERENCES
from .products import hard_edges


@dataclass
class OracleVerdict:
    label: str
    measures: dict = field(default_factory=dict)


def product_palette(cutout: Image.Image, k: int = 4) -> list[tuple[float, float, float]]:
    """The product's own colours: k-means (deterministic, farthest-point start) on its opaque
    pixels; clusters covering at least PALETTE_MIN_SHARE, largest first."""
    a = np.asarray(cutout.convert("RGBA"))
    px = a[..., :3][a[..., 3] > 200].astype(np.float32)
    if len(px) == 0:
        return [(0.0, 0.0, 0.0)]
    centres = [np.median(px, axis=0)]
    for _ in range(1, k):
        d = np.min([np.linalg.norm(px - c, axis=1) for c in centres], axis=0)
        centres.append(px[int(np.argmax(d))])
    c = np.array(centres)
    for _ in range(8):
        lab = np.argmin(((px[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
        c = np.array([px[lab == j].mean(0) if (lab == j).any() else c[j] for j in range(k)])
    share = np.bincount(lab, minlength=k) / len(px)
    order = np.argsort(-share)
    keep = [tuple(map(float, c[j])) for j in order if share[j] >= rules.PALETTE_MIN_SHARE]
    return keep or [tuple(map(float, c[order[0]]))]


def placed_alpha(cutout: Image.Image, placement: dict, size: int) -> np.ndarray:
    """The cutout's alpha on the S x S canvas, at placement (x, y)."""
    a = np.asarray(cutout.convert("RGBA"))[..., 3].astype(np.float32) / 255.0
    out = np.zeros((size, size), np.float32)
    x, y = int(placement["x"]), int(placement["y"])
    h, w = a.shape
    ys, xs = slice(max(0, y), min(size, y + h)), slice(max(0, x), min(size, x + w))
    out[ys, xs] = a[ys.start - y:ys.stop - y, xs.start - x:xs.stop - x]
    return out


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    if r <= 0:
        return mask.copy()
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate(mask.astype(np.uint8), k) > 0


def _open(mask: np.ndarray, k: int) -> np.ndarray:
    """Morphological opening by a k x k square (structures thinner than k go). The anchors are
    set so that an even k does not shift the result, and the border counts as outside."""
    if k <= 1:
        return mask
    ker = np.ones((k, k), np.uint8)
    border = dict(borderType=cv2.BORDER_CONSTANT, borderValue=0)
    core = cv2.erode(mask.astype(np.uint8), ker, anchor=(0, 0), **border)
    return cv2.dilate(core, ker, anchor=(k - 1, k - 1), **border) > 0


def _smooth(img: np.ndarray) -> np.ndarray:
    """The box blur of rules.SCENE_SMOOTH that rules 3b and 4b look through (material textures
    average out; blobs of other colours stay)."""
    k = max(1, int(round(img.shape[0] * rules.SCENE_SMOOTH)))
    return cv2.blur(img, (k, k))


def _objects_only(m: np.ndarray) -> np.ndarray:
    """``m`` without its regions that reach the top band (a wall painted in that colour) or cover
    more than REFERENCE_MAX_AREA of the image: they are not objects standing in the scene."""
    S = m.shape[0]
    if m.any():
        k, lab, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=4)
        wall_rows = max(1, int(rules.WALL_BAND * S))
        for j in range(1, k):
            if stats[j, cv2.CC_STAT_TOP] < wall_rows or stats[j, cv2.CC_STAT_AREA] > rules.REFERENCE_MAX_AREA * S * S:
                m[lab == j] = False
    return m


def reference_masks(img: np.ndarray, soft: bool = False) -> dict[str, np.ndarray]:
    """Pixels of each reference object's reserved colour. A region of that colour that reaches
    the top band (a wall painted in it) or covers more than REFERENCE_MAX_AREA of the image is
    not an object standing in the scene and is left out. ``soft``: also the saturated pixels
    within REFERENCE_SOFT_DIST (rule 5 measures a blob's height with them: a generator blurs a
    reference's edges, and its core alone is shorter than what a person measures)."""
    out = {}
    chroma = img.max(-1) - img.min(-1)
    for n, s in REFERENCES.items():
        d = np.linalg.norm(img - np.array(s["colour"], np.float32), axis=-1)
        m = d < rules.REFERENCE_DIST
        if soft:
            m |= (d < rules.REFERENCE_SOFT_DIST) & (chroma >= rules.REFERENCE_LIKE_CHROMA)
        out[n] = _objects_only(m)
    return out


def wall_colours(img: np.ndarray, product: np.ndarray, refs: np.ndarray, top: int, base: int) -> list[list]:
    """For each column, the colours that count as wall there: the top band's (without the
    product, which a generator's image may lift into it; a column that is all product there
    takes its nearest neighbour's), and the wall beside the product, left and right, at the
    height of its lower part but above any table top (rules.LOCAL_WALL_ROWS): a generated wall
    darkens or lightens from top to bottom, and a floating product's gap shows the wall's
    colour there, not the top band's."""
    S = img.shape[0]
    wall_rows = max(1, int(rules.WALL_BAND * S))
    free = ~_dilate(product, 1)
    top_wall: list = [None] * S
    for c in range(S):
        c0, c1 = max(0, c - 1), min(S, c + 2)
        px = img[:wall_rows, c0:c1][free[:wall_rows, c0:c1]]
        if len(px):
            top_wall[c] = np.median(px, axis=0)
    have = [c for c in range(S) if top_wall[c] is not None]
    for c in range(S):
        if top_wall[c] is None and have:
            top_wall[c] = top_wall[min(have, key=lambda h: abs(h - c))]
    lo, hi = rules.LOCAL_WALL_ROWS
    r0, r1 = max(top, int(base - lo * S)), int(base - hi * S)
    local = []
    cols = np.nonzero(product.any(0))[0]
    band = int(round(rules.CLUTTER_BAND * S))
    for a, b in ((max(0, cols[0] - band), cols[0]), (cols[-1] + 1, min(S, cols[-1] + 1 + band))):
        if r1 > r0 and b > a:
            m = ~_dilate(product, 2)[r0:r1, a:b] & ~refs[r0:r1, a:b]
            if m.sum() >= 4:
                local.append(np.median(img[r0:r1, a:b][m], axis=0))
    return [[w for w in (top_wall[c],) if w is not None] + local for c in range(S)]


def wall_distance(img: np.ndarray, walls: list[list]) -> np.ndarray:
    """Each pixel's distance to the nearest wall colour of its column (:func:`wall_colours`),
    computed once per image for rules 4 and 5, which ask it of many pixels."""
    out = np.empty(img.shape[:2], np.float32)
    for c, wc in enumerate(walls):
        out[:, c] = np.min([np.linalg.norm(img[:, c] - w, axis=-1) for w in wc], axis=0)
    return out


def reference_like(img: np.ndarray) -> np.ndarray:
    """Pixels a person would read as a reference object although a generator painted its
    reserved colour further off than REFERENCE_DIST: saturated (chroma at least
    REFERENCE_LIKE_CHROMA) and nearer a reserved colour than REFERENCE_LIKE_DIST. They are
    objects in the scene, not incoherence (rule 4b)."""
    chroma = img.max(-1) - img.min(-1)
    d = np.min([np.linalg.norm(img - np.array(r["colour"], np.float32), axis=-1) for r in REFERENCES.values()], 0)
    return (chroma >= rules.REFERENCE_LIKE_CHROMA) & (d < rules.REFERENCE_LIKE_DIST)


NO_PEDESTAL = {"pedestal_width": 0.0, "pedestal_height": 0.0}


def pedestal(blur: np.ndarray, solid: np.ndarray, product: np.ndarray, walls: list[list]) -> dict:
    """A body the generator drew under the product, continuing it downward (rule 3b): the
    region of one colour that starts just under the middle of the base, is not wall, and is
    about as wide as the product's foot (a surface or a table top is much wider). ``blur``: the
    image through :func:`_smooth`. Returns its width over the foot's and its height over the
    product's (NO_PEDESTAL when there is none)."""
    S = blur.shape[0]
    rows = np.nonzero(solid.any(1))[0]
    top, base = int(rows[0]), int(rows[-1])
    h = base - top + 1
    low = solid[max(top, base - max(1, int(0.2 * h))):base + 1]
    foot = np.nonzero(low.any(0))[0]
    fl, fr = int(foot[0]), int(foot[-1])
    y0 = base + 2  # past the blend seam
    if y0 + 2 >= S:
        return dict(NO_PEDESTAL)
    c0, c1 = fl + (fr - fl) // 4, fr - (fr - fl) // 4 + 1
    seed = np.median(blur[y0:y0 + 3, c0:c1].reshape(-1, 3), axis=0)
    if min(np.linalg.norm(seed - w) for c in range(c0, c1) for w in walls[c]) <= rules.SUPPORT_WALL_DIST:
        return dict(NO_PEDESTAL)  # wall under it: rule 4's business
    # a body in front of the wall: beside the foot, just under the base, there is wall on both
    # sides (where a surface shows beside it, the product stands on that surface)
    surface_beside = 0
    for cs in (range(max(0, fl - 4), max(0, fl - 1)), range(min(S, fr + 2), min(S, fr + 5))):
        side = [min(np.linalg.norm(blur[y, c] - w) for w in walls[c]) for c in cs for y in range(y0, y0 + 3)]
        surface_beside += not side or np.median(side) > rules.SUPPORT_WALL_DIST
    if surface_beside == 2:
        return dict(NO_PEDESTAL)
    near = (np.linalg.norm(blur - seed, axis=-1) < rules.PEDESTAL_DIST) & ~product
    near[:base + 1] = False
    n, lab = cv2.connectedComponents(near.astype(np.uint8), connectivity=4)
    ids = np.unique(lab[y0:y0 + 3, c0:c1])
    ids = ids[ids > 0]
    if not len(ids):
        return dict(NO_PEDESTAL)
    region = np.isin(lab, ids)
    ys = np.nonzero(region.any(1))[0]
    # its width where it meets the product (the first rows), against the foot's
    head = region[base + 1:base + 1 + max(3, int(0.15 * h))]
    spans = [np.ptp(np.nonzero(r)[0]) + 1 for r in head if r.any()]
    width = max(spans) / (fr - fl + 1) if spans else 0.0
    reaches_sides = bool(region[:, 0].any() and region[:, -1].any())
    return {"pedestal_width": float(99.0 if reaches_sides else width),
            "pedestal_height": float((ys[-1] - base) / h)}


NO_BLOCK = {"block_width": 0.0, "block_height": 0.0}


def foot_block(blur: np.ndarray, img: np.ndarray, alpha: np.ndarray, walls: list[list], palette: np.ndarray) -> dict:
    """A block drawn under the product in the colour of the part it touches (rule 3c): a
    generator carries the product's foot on downward as a plinth wider than the foot, which rule
    3b's width bounds miss and rule 3's surface exception lets pass. Such a block stands in front
    of the wall (it reaches neither side of the image: a floor or a table top running across the
    scene is a surface), starts just under the middle of the base in a colour within
    FOOT_BLOCK_DIST of the foot's, and is not wall. Returns its width over the foot's and its
    height over the product's (NO_BLOCK when there is none). ``blur``: the image through
    :func:`_smooth`; ``img``: the image itself (the foot's colour is read there, on the
    product's opaque pixels: its soft bottom edge is blended with what lies under it);
    ``alpha``: :func:`placed_alpha`; ``palette``:
    :func:`product_palette` (the block's colour must be one of the product's main colours as
    well: legs in a colour the product hardly has, on a table of theirs, are a table)."""
    S = blur.shape[0]
    solid, product = alpha > 0.5, alpha > 0
    rows = np.nonzero(solid.any(1))[0]
    top, base = int(rows[0]), int(rows[-1])
    h = base - top + 1
    y0 = base + 2  # past the blend seam
    if y0 + 2 >= S:
        return dict(NO_BLOCK)
    foot = np.nonzero(solid[base - 1:base + 1].any(0))[0]
    fl, fr = int(foot[0]), int(foot[-1])
    opaque = alpha[base - 3:base + 1] > 0.9
    if not opaque.any():
        return dict(NO_BLOCK)
    foot_colour = np.median(img[base - 3:base + 1][opaque], axis=0)
    c0, c1 = fl + (fr - fl) // 4, fr - (fr - fl) // 4 + 1
    seed = np.median(blur[y0:y0 + 3, c0:c1].reshape(-1, 3), axis=0)
    if (np.linalg.norm(seed - foot_colour) >= rules.FOOT_BLOCK_DIST
            or np.min(np.linalg.norm(palette - seed, axis=-1)) >= rules.FOOT_BLOCK_DIST):
        return dict(NO_BLOCK)  # not the foot's colour, or the foot is a detail (legs) in a colour the product hardly has
    if min(np.linalg.norm(seed - w) for c in range(c0, c1) for w in walls[c]) <= rules.SUPPORT_WALL_DIST:
        return dict(NO_BLOCK)  # wall under it: rule 4's business
    near = (np.linalg.norm(blur - seed, axis=-1) < rules.PEDESTAL_DIST) & ~product
    near[:base + 1] = False
    _, lab = cv2.connectedComponents(near.astype(np.uint8), connectivity=4)
    ids = np.unique(lab[y0:y0 + 3, c0:c1])
    region = np.isin(lab, ids[ids > 0])
    if not region.any() or region[:, 0].any() or region[:, -1].any():
        return dict(NO_BLOCK)  # it runs across the scene: the surface the product stands on
    # a block has wall beside its top on both sides, past its soft edge (within FOOT_BLOCK_EDGE);
    # a surface has more surface there (a floor in shades the colour test splits, a table top
    # running on past the region)
    hc = np.nonzero(region[base + 1:y0 + 3].any(0))[0]
    reach = max(3, int(round(rules.FOOT_BLOCK_EDGE * S)))
    for cs in (range(hc[0] - 1, hc[0] - 1 - reach, -1), range(hc[-1] + 1, hc[-1] + 1 + reach)):
        if not any(0 <= c < S and np.median([min(np.linalg.norm(blur[y, c] - w) for w in walls[c])
                                             for y in range(base + 1, y0 + 3)]) <= rules.SUPPORT_WALL_DIST
                   for c in cs):
            return dict(NO_BLOCK)
    cs = np.nonzero(region.any(0))[0]
    ys = np.nonzero(region.any(1))[0]
    return {"block_width": float((cs[-1] - cs[0] + 1) / (fr - fl + 1)),
            "block_height": float((ys[-1] - base) / h)}


def surface_gap(wall_dist_c: np.ndarray, bottom: int, free: np.ndarray) -> int | None:
    """Rows of wall between ``bottom`` (a body's lowest row in a column) and the surface under
    it, or None where there is none. ``wall_dist_c``: the column of :func:`wall_distance`;
    ``free``: the column's rows that are not the body. The surface is the first pixel further
    than SUPPORT_WALL_DIST from every wall colour of the column that stays so for
    SUPPORT_SOLID_PX pixels: a smear that fades back into the wall within a few pixels (a
    generator's halo under a floating product) is not something to stand on."""
    below = np.nonzero(free & (np.arange(len(wall_dist_c)) > bottom))[0]
    off_wall = list(wall_dist_c[below] > rules.SUPPORT_WALL_DIST)
    k = rules.SUPPORT_SOLID_PX
    for j, r in enumerate(below):
        if all(off_wall[j:j + k]) and len(off_wall[j:j + k]) == min(k, len(off_wall)):
            return int(r - bottom - 1)
    return None


def horizon(wall_dist: np.ndarray, taken: np.ndarray) -> int | None:
    """The row where the wall ends and the surface begins: the median over the columns free of
    ``taken`` (the product and any reference blob, which would stand out from the wall) of the
    first row below the top band that is a surface by :func:`surface_gap`'s test. None when no
    column is free."""
    S = wall_dist.shape[0]
    wall_rows = max(1, int(rules.WALL_BAND * S))
    rows = []
    for c in np.nonzero(~taken.any(0))[0]:
        gap = surface_gap(wall_dist[:, c], wall_rows - 1, np.ones(S, bool))
        if gap is not None:
            rows.append(wall_rows + gap)
    return int(np.median(rows)) if rows else None


def reference_hues(img: np.ndarray, wall_dist: np.ndarray) -> dict[str, np.ndarray]:
    """Saturated pixels read as the reserved colour they are nearest to (a person reads a mint or
    teal blob as the book stack, a lime one as the stool): chroma at least REFERENCE_LIKE_CHROMA,
    within REFERENCE_HUE_DIST of their nearest reserved colour, and not the wall's colour of
    their column; regions reaching the top band or larger than REFERENCE_MAX_AREA left out, as
    in :func:`reference_masks`."""
    names = list(REFERENCES)
    d = np.stack([np.linalg.norm(img - np.array(REFERENCES[n]["colour"], np.float32), axis=-1) for n in names])
    near = np.argmin(d, 0)
    chroma = img.max(-1) - img.min(-1)
    ok = ((chroma >= rules.REFERENCE_LIKE_CHROMA) & (np.min(d, 0) < rules.REFERENCE_HUE_DIST)
          & (wall_dist >= rules.WALL_DIST))
    return {n: _objects_only(ok & (near == k)) for k, n in enumerate(names)}


def blob_rows(img: np.ndarray, blob: np.ndarray, core: np.ndarray, product: np.ndarray, reach: int) -> np.ndarray:
    """The rows a person sees a blurred blob cover (rule 5, rounds 7 and 9): in each of its
    columns, from its top and its bottom outwards, the pixels that blend the blob's own colour
    (the mean of its ``core``) with the background ``reach`` pixels further out in that column
    and lie less than REFERENCE_BLEND_STOP of the way to the background (round 7: the middle;
    round 9: 0.75, as the legend's "soft edge included" is read). A pixel
    further than REFERENCE_BLEND_DIST from the line between the two colours (a shelf, another
    object) or of the product ends the edge."""
    S = img.shape[0]
    colour = img[core].mean(0)
    top, bottom = S, -1
    for c in np.nonzero(blob.any(0))[0]:
        rows = np.nonzero(blob[:, c])[0]
        t, b = int(rows[0]), int(rows[-1])
        for step, start in ((-1, t), (1, b)):
            far = min(max(start + step * reach, 0), S - 1)
            bg = img[far, c]
            y = start + step
            ab = bg - colour
            while 0 <= y < S and (y - far) * step < 0 and not product[y, c]:
                px = img[y, c] - colour
                # a blend of the two: nearer the blob's colour, and near the line between them
                # (a pixel of a third colour, a shelf or another object, ends the edge)
                t_ = float(np.clip(np.dot(px, ab) / max(float(np.dot(ab, ab)), 1e-6), 0.0, 1.0))
                if t_ >= rules.REFERENCE_BLEND_STOP or np.linalg.norm(px - t_ * ab) > rules.REFERENCE_BLEND_DIST:
                    break
                y += step
            if step < 0:
                t = y + 1
            else:
                b = y - 1
        top, bottom = min(top, t), max(bottom, b)
    return np.arange(top, bottom + 1)


def standing_references(img: np.ndarray, product: np.ndarray, wall_dist: np.ndarray,
                        refs: dict[str, np.ndarray] | None = None) -> list[tuple[str, int, int]]:
    """Rule 5's reference objects: (name, area, height) of each blob of a reserved colour
    (:func:`reference_masks`) of at least 6 pixels that stands on the surface: its lowest row is
    not above the :func:`horizon` (less SUPPORT_GAP); a blob hanging on the wall is a decoration
    to a person, not a measure. A generator blurs a blob's edges, so its height is measured
    with the saturated fringe within REFERENCE_FRINGE S of it (REFERENCE_SOFT_DIST): the core
    alone is shorter than what a person measures. ``wall_dist``: :func:`wall_distance`;
    ``refs``: :func:`reference_masks` of ``img`` where the caller has it already."""
    S = img.shape[0]
    core, soft = refs if refs is not None else reference_masks(img), reference_masks(img, soft=True)
    hue = reference_hues(img, wall_dist)
    core = {n: core[n] | hue[n] for n in core}
    soft = {n: soft[n] | hue[n] for n in soft}
    taken = _dilate(product, 2)
    for m in soft.values():
        taken |= _dilate(m, 2)
    # where no column shows the surface's edge (a floor close to the wall's colour), the product's
    # base stands in for it: the product rests on the surface here (rule 4 passed), and a table
    # top rises at most LOCAL_WALL_ROWS[1] above it
    base = int(np.nonzero(product.any(1))[0][-1])
    line = min(horizon(wall_dist, taken) or S, base - rules.LOCAL_WALL_ROWS[1] * S)
    r = max(1, int(round(rules.REFERENCE_FRINGE * S)))
    out = []
    for name, mask in core.items():
        mask = mask & ~product
        n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=4)
        for j in range(1, n):
            if stats[j, cv2.CC_STAT_AREA] < 6:
                continue
            # a saturated wall of a near colour (a yellow wall by a yellow stool) is wall, not fringe
            fringe = soft[name] & _dilate(lab == j, r) & ~product & ~(lab == j) & (wall_dist >= rules.WALL_DIST)
            blob = (lab == j) | fringe
            ys = np.nonzero(blob.any(1))[0]
            if ys[-1] < line - rules.SUPPORT_GAP * S:
                continue
            if ys[-1] - ys[0] + 1 < max(rules.REFERENCE_MIN_PX, rules.REFERENCE_MIN_HEIGHT * S):
                continue  # a smudge: the world draws no reference object this small
            if rules.REFERENCE_BLUR_REACH:
                ys = blob_rows(img, blob, lab == j, product, max(1, int(round(rules.REFERENCE_BLUR_REACH * S))))
            out.append((name, int(stats[j, cv2.CC_STAT_AREA]), int(ys[-1] - ys[0] + 1)))
    return out


def scene_coherence(img: np.ndarray, solid: np.ndarray, product: np.ndarray, refs: np.ndarray,
                    palette_dist: np.ndarray) -> float:
    """Share of the surrounding band explained by the wall (its colour in each column, from the
    top band) or the surface under the product (and its shades); see rules 4b. ``img``: the
    image through :func:`_smooth`."""
    S = img.shape[0]
    wall_rows = max(1, int(rules.WALL_BAND * S))
    wall = np.stack([np.median(img[:wall_rows, max(0, c - 1):c + 2].reshape(-1, 3), axis=0) for c in range(S)])
    rows = np.nonzero(solid.any(1))[0]
    cols = np.nonzero(solid.any(0))[0]
    base = int(rows[-1])
    under = img[min(S - 1, base + 1):min(S, base + 1 + max(3, S // 20)), cols.min():cols.max() + 1].reshape(-1, 3)
    surf = np.median(under, axis=0)
    # a generator paints reference objects with soft edges: their blend with the wall is theirs
    # too, not a colour the scene cannot contain
    objects = _dilate(refs | reference_like(img), max(1, int(round(rules.REFERENCE_EDGE * S))))
    band = (_dilate(solid, int(round(rules.CLUTTER_BAND * S))) & ~_dilate(product, 1) & ~objects
            & (palette_dist >= rules.PALETTE_DIST))
    if not band.any():
        return 1.0
    d = np.linalg.norm(img - wall[None], axis=-1)
    for f in rules.SURFACE_SHADES:
        d = np.minimum(d, np.linalg.norm(img - surf * f, axis=-1))
    return float((d[band] < rules.SCENE_COHERENCE_DIST).mean())


def judge(image, cutout: Image.Image, placement: dict, category: str,
          supplied: Image.Image | None = None, *, damage: dict | None) -> OracleVerdict:
    """The label of ``image`` (PIL or HxWx3 uint8) with the product ``cutout`` placed at
    ``placement`` ({"x", "y"}: the cutout's top-left on the canvas). ``damage``: the world's
    record of what it cut from the product (``Sample.damage``, RF-Gen's ``source.damage``; None
    for an intact product), rule 1; required, so that no caller forgets it and gets a label
    that can never be Unsuitable. ``supplied``: the cutout as the seller supplied it, when
    placement resized it; its hard-edge count is measured on it (a resize softens edges)."""
    img = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image).astype(np.float32)
    S = img.shape[0]
    m: dict = {}
    cut_alpha = np.asarray((supplied if supplied is not None else cutout).convert("RGBA"))[..., 3]
    alpha = placed_alpha(cutout, placement, S)
    solid = alpha > 0.5
    product = alpha > 0
    if not solid.any():
        return OracleVerdict("Unsuitable", {"reason": "empty cutout"})

    # 1. Unsuitable: the world cut the product (its record). Hard edges are measured, not
    # judged: a hard matte has them all round (rules.py).
    m["hard_edge_px"] = int(hard_edges(cut_alpha).sum())
    if damage:
        m["damage"] = damage
        return OracleVerdict("Unsuitable", m)

    refs = reference_masks(img)
    ref_any = np.zeros_like(solid)
    for r in refs.values():
        ref_any |= r
    ref_any &= ~product

    # 2. Indistinctiveness: low contrast just outside the product, or clutter around it
    palette = np.array(product_palette(cutout), np.float32)
    pd = np.min(np.linalg.norm(img[:, :, None, :] - palette[None, None], axis=-1), axis=-1)
    ring = _dilate(product, rules.CONTRAST_RING) & ~product & ~ref_any
    m["low_contrast_frac"] = float((pd[ring] < rules.LOW_CONTRAST_DIST).mean()) if ring.any() else 0.0
    band = _dilate(solid, int(round(rules.CLUTTER_BAND * S))) & ~_dilate(product, 2) & ~ref_any
    gy, gx = np.gradient(img, axis=(0, 1))
    grad = np.sqrt((gx ** 2 + gy ** 2).max(-1))
    m["clutter_frac"] = float((grad[band] > rules.CLUTTER_GRAD).mean()) if band.any() else 0.0
    if m["low_contrast_frac"] >= rules.LOW_CONTRAST_FRAC or m["clutter_frac"] >= rules.CLUTTER_FRAC:
        return OracleVerdict("Indistinctiveness", m)

    # 3. Shape Hallucination: product-coloured regions touching the product from outside
    cand = (pd < rules.PALETTE_DIST) & ~product & ~ref_any
    # A grown part is a body; slivers of SLIVER_PX px are the inpainting's blend seam along the
    # product's outline, which a person does not see as a part. Not scaled with S: the world's
    # thinnest grown part (a leg) is 2 px wide at every size.
    cand = _open(cand, rules.SLIVER_PX + 1)
    n, lab = cv2.connectedComponents(cand.astype(np.uint8), connectivity=4)
    touch = _dilate(product, 1) & cand
    touching = np.unique(lab[touch])
    touching = touching[touching > 0]
    attached = 0
    cols_s = np.nonzero(solid.any(0))[0]
    width = int(cols_s[-1] - cols_s[0] + 1)
    wall_rows = max(1, int(rules.WALL_BAND * S))
    for j in touching:
        part = lab == j
        if part[:wall_rows].any():
            continue  # it reaches the top band: the wall, in a colour close to the product's (rule 2's business)
        # A surface close to the product's colour touches its base, but it is the support, not
        # a part grown out of the product: below the base it spans far wider than the product
        # (a hallucinated pedestal is at most about 1.4 times as wide; rules.SURFACE_WIDTH).
        c = np.nonzero(part.any(0))[0]
        if c[-1] - c[0] + 1 > rules.SURFACE_WIDTH * width + rules.SURFACE_MARGIN * S:
            continue  # far wider than the product: a surface or the wall behind it, not a grown part
        attached += int(part.sum())
    m["attached_frac"] = float(attached / solid.sum())
    if m["attached_frac"] >= rules.HALLUCINATION_AREA:
        return OracleVerdict("Shape Hallucination", m)
    rows = np.nonzero(solid.any(1))[0]
    top, base = int(rows[0]), int(rows[-1])
    walls = wall_colours(img, product, ref_any, top, base)
    wall_dist = wall_distance(img, walls)
    smooth = _smooth(img)
    m.update(pedestal(smooth, solid, product, walls))
    if (rules.PEDESTAL_MIN_WIDTH <= m["pedestal_width"] <= rules.PEDESTAL_MAX_WIDTH
            and m["pedestal_height"] >= rules.PEDESTAL_MIN_HEIGHT):
        return OracleVerdict("Shape Hallucination", dict(m, reason="pedestal"))
    m.update(foot_block(smooth, img, alpha, walls, palette))
    if m["block_width"] and m["block_height"] >= rules.FOOT_BLOCK_MIN_HEIGHT:
        return OracleVerdict("Shape Hallucination", dict(m, reason="block in the foot's colour"))

    # 4. Space Mismatch: does the product rest on the surface?
    cols = [c for c in range(S) if solid[:, c].any() and np.nonzero(solid[:, c])[0][-1] >= base - 1]
    max_gap = rules.SUPPORT_GAP * S
    supported = 0
    gaps = []
    # round 8: what a column rests on must be grounded, a region of non-wall pixels that reaches
    # the bottom or a side of the image; an island in the wall (a smudge or a blob under a
    # floating product) holds nothing up
    _, lab_nw = cv2.connectedComponents(((wall_dist > rules.SUPPORT_WALL_DIST) & ~product).astype(np.uint8),
                                        connectivity=4)
    grounded = set(np.unique(np.concatenate([lab_nw[-1], lab_nw[:, 0], lab_nw[:, -1]])).tolist()) - {0}
    for c in cols:
        gap = surface_gap(wall_dist[:, c], base, ~product[:, c])
        gaps.append(gap)
        if gap is not None and gap <= max_gap and int(lab_nw[base + 1 + gap, c]) in grounded:
            supported += 1
    m["supported_frac"] = supported / max(1, len(cols))
    m["median_gap_px"] = float(np.median([g for g in gaps if g is not None])) if any(g is not None for g in gaps) else None
    if m["supported_frac"] < rules.SUPPORT_MIN_FRAC:
        return OracleVerdict("Space Mismatch", m)

    # 4b. Indistinctiveness: surroundings that are neither wall nor surface
    m["scene_coherence"] = scene_coherence(smooth, solid, product, ref_any, pd)
    if m["scene_coherence"] < rules.SCENE_COHERENCE_MIN:
        return OracleVerdict("Indistinctiveness", dict(m, reason="incoherent surroundings"))

    # 5. Size Mismatch: the real height the reference object implies
    standing = standing_references(img, product, wall_dist, refs)
    best = max(standing, key=lambda t: t[1]) if standing else None
    if best is not None:
        name, _, ref_px = best
        h_px = base - top + 1
        implied = h_px / (ref_px / REFERENCES[name]["height_cm"])
        lo, hi = CATEGORY_BY_NAME[category].height_cm
        m.update(reference=name, reference_px=ref_px, implied_height_cm=float(implied))
        if not (lo / rules.SIZE_TOLERANCE <= implied <= hi * rules.SIZE_TOLERANCE):
            return OracleVerdict("Size Mismatch", m)
    return OracleVerdict("Available", m)
