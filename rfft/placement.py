"""Product placement, as the paper's release does it.

A product comes as an RGBA cutout, or as an RGB photo on white (its alpha is derived from the
white background). Its alpha box is fitted into ``scale x canvas`` keeping its aspect ratio and
centred (or, with ``keep_location``, a canvas-sized cutout stays where it is). From the placed
product come the inpaint mask (the inverse alpha, dilated, so that the generator also repaints
the product's rim and blends it in), the canny control image of the product alone, and, after
generation, the final image with the product's own pixels pasted back exactly.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

# The release dilates with a 20 x 20 kernel at 512 px; other canvases scale it.
DILATE_AT_512 = 20
WHITE_LEVEL = 240  # an RGB product's background: every channel at or above this
MIN_WHITE_BORDER = 0.9  # share of the photo's border that must be white to derive an alpha
MAX_SIDE = 4096  # larger inputs are refused: they are far above any canvas and cost memory
# The product's box is where the cutout is at least half opaque, as the release's
# golden_ratio_center_zoom takes it (alpha >= 0.5): a matting tool's faint halo around the product
# must not make the box larger (the product would land smaller and lower). Faint pixels stay in
# the cutout; they only do not count for the box.
BOX_ALPHA = 128


class ProductError(ValueError):
    """A product image that cannot be placed; the message says what to do."""


@dataclass
class Placement:
    size: tuple[int, int]  # canvas (width, height)
    cutout: Image.Image  # the product, resized, RGBA, cropped to its alpha box
    box: dict  # x, y (top-left on the canvas), w, h of ``cutout``
    alpha: np.ndarray  # (H, W) float32 0..1, the product on the canvas
    product: np.ndarray  # (H, W, 3) uint8, the product's pixels on black
    inpaint_mask: np.ndarray  # (H, W) float32, 1 = to generate
    control: Image.Image  # RGB canny edges of the product alone

    def paste_back(self, image: Image.Image | np.ndarray) -> Image.Image:
        """``image`` with the product's own pixels over it: exact wherever alpha is 1."""
        arr = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
        if arr.shape[:2] != self.alpha.shape:
            raise ValueError(f"image is {arr.shape[1]}x{arr.shape[0]}, the placement is for "
                             f"{self.size[0]}x{self.size[1]}")
        a = self.alpha[..., None]
        out = arr.astype(np.float32) * (1 - a) + self.product.astype(np.float32) * a
        out = np.clip(np.round(out), 0, 255).astype(np.uint8)
        solid = self.alpha >= 1.0
        out[solid] = self.product[solid]  # no float round trip where the product is opaque
        return Image.fromarray(out, "RGB")

    def product_image(self, background: int = 127) -> Image.Image:
        """The product on a flat canvas: the image whose latent eq. 2 keeps."""
        a = self.alpha[..., None]
        arr = self.product.astype(np.float32) * a + background * (1 - a)
        return Image.fromarray(np.clip(np.round(arr), 0, 255).astype(np.uint8), "RGB")


def load_product(src, white_level: int = WHITE_LEVEL) -> Image.Image:
    """An RGBA cutout from a file or PIL image. RGB (or grey) photos must be on white; their
    alpha is the white region connected to the border, so white parts inside the product stay."""
    im = _open(src)
    name = str(src) if isinstance(src, (str, Path)) else "product image"
    _check_size(im.size, name)  # a file is checked before decoding (_open); a PIL image here
    if min(im.size) < 2:
        raise ProductError(f"{name}: {im.size[0]}x{im.size[1]} is too small to be a product image")
    has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    if has_alpha:
        rgba = im.convert("RGBA")
        a = np.asarray(rgba)[..., 3]
        if a.max() == 0:
            raise ProductError(f"{name}: the alpha channel is empty (fully transparent); "
                               "export the cutout again with the product opaque")
        if a.max() < BOX_ALPHA:
            raise ProductError(f"{name}: no pixel is at least half opaque (alpha >= {BOX_ALPHA}), so the "
                               "product has no box; export the cutout again with the product opaque")
        if a.min() == 255:
            # A fully opaque "cutout" is a photo: treat it as one, so a product on white works.
            return _alpha_from_white(rgba.convert("RGB"), name, white_level)
        return rgba
    return _alpha_from_white(im.convert("RGB"), name, white_level)


def _check_size(size: tuple[int, int], name: str) -> None:
    if max(size) > MAX_SIDE:
        raise ProductError(f"{name}: {size[0]}x{size[1]} is larger than {MAX_SIDE} px on a side; "
                           "downscale it first (the product is resized to the canvas anyway)")


def _open(src) -> Image.Image:
    if isinstance(src, Image.Image):
        im = src
    else:
        try:
            # Image.open reads only the header: the size is refused before any pixel is decoded,
            # so a decompression bomb (a small file that decodes to gigabytes) costs nothing.
            # PIL's own bomb check fires in open() above its limit; below it, only a warning.
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(src) as f:
                    _check_size(f.size, str(src))
                    f.load()
                    im = f.copy()
        except ProductError:
            raise
        except FileNotFoundError:
            raise ProductError(f"{src}: no such file") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ProductError(f"{src}: refused before decoding: {e}; downscale it first "
                               f"(at most {MAX_SIDE} px on a side)") from None
        except Exception as e:  # noqa: BLE001 - PIL's decoders raise many kinds on a bad file
            raise ProductError(f"{src}: not a readable image ({type(e).__name__}: {e}); is it truncated "
                               "or not an image?") from None
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grey: scale to 8 bits rather than clip, so a 16-bit PNG is not all white.
        arr = np.asarray(im, dtype=np.float64)
        arr = arr / max(1.0, 65535.0 if arr.max() > 255 else 255.0) * 255.0
        im = Image.fromarray(arr.round().astype(np.uint8), "L")
    elif im.mode == "CMYK":
        im = im.convert("RGB")
    return im


def _alpha_from_white(rgb: Image.Image, name: str, white_level: int) -> Image.Image:
    arr = np.asarray(rgb)
    white = (arr >= white_level).all(-1)
    border = np.concatenate([white[0], white[-1], white[:, 0], white[:, -1]])
    if border.mean() < MIN_WHITE_BORDER:
        raise ProductError(
            f"{name}: an RGB product photo must be on a white background ({border.mean():.0%} of "
            f"its border is white, {MIN_WHITE_BORDER:.0%} needed). Supply an RGBA cutout, or wire a "
            "salience or matting step (e.g. a background-removal node) before placement.")
    # The background is the white region reachable from the border.
    n, lab = cv2.connectedComponents(white.astype(np.uint8), connectivity=4)
    edge_labels = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    bg = np.isin(lab, edge_labels[edge_labels > 0]) & white
    alpha = np.where(bg, 0, 255).astype(np.uint8)
    if alpha.max() == 0:
        raise ProductError(f"{name}: the image is all white; there is no product in it")
    return Image.fromarray(np.dstack([arr, alpha]), "RGBA")


def dilate_px(size: tuple[int, int]) -> int:
    return max(1, int(round(DILATE_AT_512 * min(size) / 512)))


def place(cutout: Image.Image, size: int | tuple[int, int] = 512, scale: float = 0.5,
          keep_location: bool = False, dilate: int | None = None,
          canny: tuple[int, int] = (100, 200)) -> Placement:
    """Place an RGBA ``cutout`` on a canvas of ``size`` (an int for a square)."""
    W, H = (size, size) if isinstance(size, int) else size
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    cutout = cutout.convert("RGBA")
    a = np.asarray(cutout)[..., 3]
    ys, xs = np.nonzero(a)  # every visible pixel, faint ones too: all of them are placed
    if len(ys) == 0:
        raise ProductError("the cutout's alpha is empty: nothing to place")
    sy, sx = np.nonzero(a >= BOX_ALPHA)  # the product's box (see BOX_ALPHA)
    if len(sy) == 0:
        raise ProductError(f"no pixel of the cutout is at least half opaque (alpha >= {BOX_ALPHA}); "
                           "export the cutout again with the product opaque")
    if keep_location:
        # The cutout is the canvas, product where it should stay; a different size is scaled.
        canvas = cutout if cutout.size == (W, H) else cutout.resize((W, H), Image.LANCZOS)
        ca = np.asarray(canvas)[..., 3]
        ys, xs = np.nonzero(ca)
        if len(ys) == 0:
            raise ProductError("the cutout's alpha vanishes at this canvas size")
        x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
        placed = canvas.crop((x0, y0, x1, y1))
        box = {"x": x0, "y": y0, "w": x1 - x0, "h": y1 - y0}
    else:
        # The half-opaque box is fitted into scale x canvas and centred; the crop around every
        # visible pixel is resized by the same factor, its faint rim falling around the box.
        bx0, by0, bx1, by1 = int(sx.min()), int(sy.min()), int(sx.max()) + 1, int(sy.max()) + 1
        x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
        crop = cutout.crop((x0, y0, x1, y1))
        f = min(scale * W / (bx1 - bx0), scale * H / (by1 - by0))
        bw, bh = max(1, int(round((bx1 - bx0) * f))), max(1, int(round((by1 - by0) * f)))
        w, h = max(1, int(round(crop.size[0] * f))), max(1, int(round(crop.size[1] * f)))
        placed = crop if (w, h) == crop.size else _resize_rgba(crop, (w, h))
        x = (W - bw) // 2 - int(round((bx0 - x0) * f))
        y = (H - bh) // 2 - int(round((by0 - y0) * f))
        # a rim reaching past the canvas is cut at its edge (box stays on the canvas)
        cx0, cy0 = max(0, -x), max(0, -y)
        cx1, cy1 = min(w, W - x), min(h, H - y)
        if (cx0, cy0, cx1, cy1) != (0, 0, w, h):
            placed = placed.crop((cx0, cy0, cx1, cy1))
        box = {"x": x + cx0, "y": y + cy0, "w": cx1 - cx0, "h": cy1 - cy0}
    return _finish(placed, box, (W, H), dilate, canny)


def from_box(cutout: Image.Image, box: dict, size: int | tuple[int, int], dilate: int | None = None,
             canny: tuple[int, int] = (100, 200)) -> Placement:
    """A placement already decided (a dataset's record, the oracle's input): ``cutout`` at
    ``box``'s top-left, unresized."""
    W, H = (size, size) if isinstance(size, int) else size
    c = cutout.convert("RGBA")
    return _finish(c, {"x": int(box["x"]), "y": int(box["y"]), "w": c.size[0], "h": c.size[1]},
                   (W, H), dilate, canny)


def _resize_rgba(im: Image.Image, size: tuple[int, int]) -> Image.Image:
    # Resize premultiplied, so transparent pixels' colours do not bleed into the rim.
    arr = np.asarray(im).astype(np.float32)
    a = arr[..., 3:] / 255.0
    pm = Image.fromarray(np.clip(arr[..., :3] * a, 0, 255).astype(np.uint8), "RGB").resize(size, Image.LANCZOS)
    al = im.getchannel("A").resize(size, Image.LANCZOS)
    rgb = np.asarray(pm).astype(np.float32)
    aa = np.asarray(al).astype(np.float32)[..., None] / 255.0
    rgb = np.where(aa > 0, rgb / np.maximum(aa, 1e-6), 0)
    return Image.fromarray(np.dstack([np.clip(rgb, 0, 255).astype(np.uint8), np.asarray(al)]), "RGBA")


def _finish(placed: Image.Image, box: dict, size: tuple[int, int], dilate: int | None,
            canny: tuple[int, int]) -> Placement:
    W, H = size
    canvas = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    canvas.paste(placed, (box["x"], box["y"]))
    arr = np.asarray(canvas)
    alpha = arr[..., 3].astype(np.float32) / 255.0
    product = np.where(arr[..., 3:] > 0, arr[..., :3], 0).astype(np.uint8)
    r = dilate_px(size) if dilate is None else int(dilate)
    keep = (alpha >= 0.5).astype(np.uint8)  # the product as the mask sees it
    if r > 0:
        # Dilating the inverse alpha = eroding the product: the rim is generated, then the
        # product's own pixels are pasted back over it.
        k = cv2.getStructuringElement(cv2.MORPH_RECT, (r, r))
        keep = cv2.erode(keep, k, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    inpaint = 1.0 - keep.astype(np.float32)
    return Placement(size=(W, H), cutout=placed, box=box, alpha=alpha, product=product,
                     inpaint_mask=inpaint, control=control_image(product, alpha, canny))


def control_image(product: np.ndarray, alpha: np.ndarray, canny: tuple[int, int] = (100, 200)) -> Image.Image:
    """Canny edges of the product alone, as RGB: its inner edges, and its silhouette taken from
    the alpha (so a dark product, which has no edge against black, still has an outline)."""
    on_black = (product.astype(np.float32) * alpha[..., None]).round().astype(np.uint8)
    lo, hi = int(canny[0]), int(canny[1])
    edges = cv2.Canny(cv2.cvtColor(on_black, cv2.COLOR_RGB2GRAY), lo, hi)
    edges |= cv2.Canny((alpha * 255).round().astype(np.uint8), lo, hi)
    return Image.fromarray(np.stack([edges] * 3, -1), "RGB")
