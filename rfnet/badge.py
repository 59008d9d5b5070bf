"""A verdict badge on an image: green "Available", or red with the defect. Used by the ComfyUI
nodes' previews, the main job's contact sheet and RFFT's validation grids."""
from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

GREEN, RED, ORANGE = (30, 150, 60), (200, 40, 40), (230, 140, 20)


def _font(size: int):
    """Pillow's own scalable font (10.1+): the bitmap default is about 8 px high whatever the image,
    unreadable when ComfyUI tiles the previews. Older Pillow keeps the bitmap font."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def badge(image: Image.Image, label: str, p_available: float, accepted: bool, min_side: int = 256) -> Image.Image:
    """``image`` (enlarged to at least ``min_side`` by whole pixels) with a strip at the bottom
    saying the verdict and P(Available) in letters a ninth of the image high."""
    im = image.convert("RGB")
    scale = max(1, min_side // max(im.size))
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    d = ImageDraw.Draw(im)
    h = max(16, im.height // 7)
    text = f"{label}  {p_available:.2f}"
    size = int(h * 0.7)
    font = _font(size)
    while size > 8 and d.textlength(text, font=font) > im.width - 8:  # long defect names on narrow images
        size -= 1
        font = _font(size)
    d.rectangle([0, im.height - h, im.width, im.height], fill=GREEN if accepted else RED)
    d.text((4, im.height - h / 2), text, fill="white", font=font, anchor="lm")
    return im


def grid(images: list[Image.Image], cols: int = 4, pad: int = 4) -> Image.Image:
    cols = max(1, min(cols, len(images)))
    rows = (len(images) + cols - 1) // cols
    w, h = images[0].size
    out = Image.new("RGB", (cols * w + (cols - 1) * pad, rows * h + (rows - 1) * pad), "white")
    for i, im in enumerate(images):
        out.paste(im, ((i % cols) * (w + pad), (i // cols) * (h + pad)))
    return out
