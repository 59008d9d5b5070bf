"""Images as RFNet takes them: PIL images, lists of them or tensors in 0..1, turned into one
(B, 3, H, W) batch, with what makes an image impossible to judge fairly (empty, non-finite,
constant, tiny). Shared by rfnet.inspect and rfnet.ood."""
from __future__ import annotations

import torch

from .errors import InputError

# An image with a shorter side than this has no room for a product in a scene; the extractors
# and the encoder would only see interpolation. Judged (the batch is resized), never accepted.
MIN_SIDE = 16


def image_problem(x: torch.Tensor) -> str | None:
    """Why a (C, H, W) image in 0..1 cannot be judged fairly, or None."""
    h, w = x.shape[-2:]
    if h == 0 or w == 0:
        return f"image is {w}x{h}: empty"
    if not bool(torch.isfinite(x).all()):
        return "non-finite pixels (NaN or inf)"
    if min(h, w) < MIN_SIDE:
        return f"image is {w}x{h}, smaller than {MIN_SIDE} px"
    if float((x.amax(dim=(-2, -1)) - x.amin(dim=(-2, -1))).max()) < 0.5 / 255:  # per channel
        return "constant image (every pixel the same colour)"
    return None


def clean(x: torch.Tensor) -> torch.Tensor:
    """NaN and -inf to 0, +inf to 1: what the model sees of a non-finite image (its verdict is
    rejected anyway); keeps one bad image from touching the batch's others."""
    return torch.nan_to_num(x.float(), nan=0.0, posinf=1.0, neginf=0.0)


def resize_rgb(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, C, H, W) images in 0..1 resized as the training data was (rfnet.data: Pillow's
    BICUBIC, which antialiases when shrinking): torch's antialiased bicubic is the same filter.
    A bilinear resize here made the inspector see products slightly unlike its training data
    (4% of RF-Gen test verdicts changed class)."""
    y = torch.nn.functional.interpolate(x.float(), size=tuple(size), mode="bicubic", align_corners=False,
                                        antialias=True)
    # bicubic overshoots at hard edges, and Pillow's 8 bits clip the same way; the clip passes
    # gradients straight through (RFFT's reward), so an overshooting pixel still learns
    return y + (y.clamp(0, 1) - y).detach() if y.requires_grad else y.clamp(0, 1)


def crop_to_alpha(product):
    """Products given as PIL images with alpha (or a list of them), each cropped to its visible
    pixels, as rfft.placement crops the main job's products. A cutout's transparent margin says
    nothing about the product, but an inspector trained on RF-Synth v1 read a wide one as a cut
    (v1's damaged cutouts kept the cut part as transparent rows) and called a designer's padded
    cutout Unsuitable whatever it showed (docs/RFSYNTH.md, v2). Visible is alpha > 0, as
    placement counts it. Other inputs are returned as given."""
    if isinstance(product, (list, tuple)):
        return [crop_to_alpha(p) for p in product]
    mode = getattr(product, "mode", "")
    if mode in ("P", "PA") and (mode == "PA" or "transparency" in product.info):
        product = product.convert("RGBA")  # a palette PNG with transparency, as many exports are
    elif mode not in ("RGBA", "LA"):
        return product
    box = product.getchannel("A").getbbox()  # visible pixels (alpha > 0)
    return product if box is None or box == (0, 0, *product.size) else product.crop(box)


def to_batch(x, rgb: bool = True, with_problems: bool = False, size: tuple[int, int] | None = None):
    """PIL images, a list of them, or a (B, C, H, W) / (C, H, W) tensor in 0..1, as one
    (B, 3, H, W) batch (images of other sizes resized to the first good one's). With ``size``,
    every image is resized straight to it with :func:`resize_rgb`, as a model's input is:
    products of different shapes in one batch are then not resized twice, through the first
    one's shape. With ``with_problems``: also each image's :func:`image_problem`, found before
    any resizing."""
    from .data import to_rgb_tensor

    if torch.is_tensor(x):
        if x.dim() not in (3, 4):
            raise InputError(f"images must be (B, C, H, W) or (C, H, W) tensors, not {tuple(x.shape)}")
        x = (x if x.dim() == 4 else x[None]).float()
        if x.shape[1] not in (1, 3, 4):
            raise InputError(f"images must have 1, 3 or 4 channels (B, C, H, W), not {tuple(x.shape)}")
        if rgb and x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if rgb and x.shape[1] == 4:  # RGBA: composite on white, as products are shown
            a = x[:, 3:4]
            x = x[:, :3] * a + (1 - a)
        problems = [image_problem(t) for t in x]
        if 0 in x.shape[-2:]:
            x = x.new_zeros(*x.shape[:2], MIN_SIDE, MIN_SIDE)
        if size is not None and tuple(x.shape[-2:]) != tuple(size):
            x = resize_rgb(x, tuple(size))
        out = clean(x)
    else:
        items = x if isinstance(x, (list, tuple)) else [x]
        if not items:
            raise InputError("no images given")
        ts = [to_rgb_tensor(im) for im in items]
        problems = [image_problem(t) for t in ts]
        ok = [t for t, pr in zip(ts, problems) if pr is None] or [t for t in ts if t.numel()] or [None]
        exact = size is not None
        if size is None:
            size = ok[0].shape[-2:] if ok[0] is not None else (MIN_SIDE, MIN_SIDE)
        size = tuple(size)
        ts = [t if tuple(t.shape[-2:]) == size else
              torch.zeros(3, *size) if not t.numel() else
              resize_rgb(t[None], size)[0] if exact else
              torch.nn.functional.interpolate(t[None], size=size, mode="bilinear",
                                              align_corners=False, antialias=True)[0] for t in ts]
        out = clean(torch.stack(ts))
    return (out, problems) if with_problems else out
