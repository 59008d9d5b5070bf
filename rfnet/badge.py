"""A verdict badge on an image: green "Available", or red with the defect. Used by the ComfyUI
nodes' previews, the main job's contact sheet and RFFT's validation grids."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

GREEN, RED, ORANGE = (30, 150, 60), (200, 40, 40), (230, 140, 20)
# How rfnet.ood's note starts: such an image keeps the model's label (it is not known to be
# damaged, only unfamiliar) but is not accepted without a person's look.
OUTSIDE = "outside the inspector's training data"
SHOWN_OUTSIDE = "Outside training data"


def shown_label(label: str, note: str | None) -> str:
    """What a badge says: the model's label, or, for an image or product unlike the inspector's
    training data, that it cannot vouch for it (the label stays in the records): a designer's
    product photo should not read as a confident defect."""
    return SHOWN_OUTSIDE if str(note or "").startswith(OUTSIDE) else label


# Fonts with Chinese glyphs where the systems our users have keep them (Pillow's own has none:
# a product named 红色口红 would show as boxes)
CJK_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",  # Debian/Ubuntu fonts-noto-cjk
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",  # Arch, Fedora
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "C:/Windows/Fonts/msyh.ttc", "C:/Windows/Fonts/simhei.ttf",  # Microsoft YaHei, SimHei
    "/System/Library/Fonts/PingFang.ttc", "/System/Library/Fonts/STHeiti Medium.ttc",
)


@lru_cache(maxsize=1)
def cjk_font_path() -> str | None:
    return next((f for f in CJK_FONTS if Path(f).is_file()), None)


@lru_cache(maxsize=64)
def _truetype(path: str, size: int):
    """A CJK font file is tens of megabytes: read once per size, not once per caption."""
    return ImageFont.truetype(path, size)


def font(size: int, text: str = ""):
    """Pillow's own scalable font (10.1+): the bitmap default is about 8 px high whatever the image,
    unreadable when ComfyUI tiles the previews. Older Pillow keeps the bitmap font. Text beyond
    Latin (Chinese product names) gets a system CJK font where one is installed."""
    if any(ord(c) > 0x2E7F for c in text) and cjk_font_path():
        try:
            return _truetype(cjk_font_path(), size)
        except OSError:
            pass
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def fit_font(draw: ImageDraw.ImageDraw, text: str, width: float, size: int):
    """The scalable font at ``size``, or smaller until ``text`` fits in ``width`` pixels."""
    def length(f):  # the longest line (a file name may hold a newline)
        return max((draw.textlength(line, font=f) for line in text.splitlines()), default=0)

    chosen = font(size, text)
    while size > 8 and length(chosen) > width:
        size -= 1
        chosen = font(size, text)
    return chosen


def badge(image: Image.Image, label: str, p_available: float, accepted: bool, min_side: int = 256,
          colour: tuple[int, int, int] | None = None) -> Image.Image:
    """``image`` (enlarged to at least ``min_side`` by whole pixels) with a strip at the bottom
    saying the verdict and P(Available) in letters a ninth of the image high; green when
    ``accepted``, else red, unless ``colour`` says otherwise."""
    im = image.convert("RGB")
    scale = max(1, min_side // max(im.size))
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    d = ImageDraw.Draw(im)
    h = max(16, im.height // 7)
    text = f"{label}  {p_available:.2f}"
    font = fit_font(d, text, im.width - 8, int(h * 0.7))  # long defect names on narrow images
    d.rectangle([0, im.height - h, im.width, im.height], fill=colour or (GREEN if accepted else RED))
    d.text((4, im.height - h / 2), text, fill="white", font=font, anchor="lm")
    return im


def grid(images: list[Image.Image], cols: int = 4, pad: int = 4, captions: list[str] | None = None) -> Image.Image:
    """Images of one size in rows of ``cols``, each with its caption line under it if given."""
    cols = max(1, min(cols, len(images)))
    rows = (len(images) + cols - 1) // cols
    w, h = images[0].size
    cap_h = max(12, w // 10) if captions else 0
    out = Image.new("RGB", (cols * w + (cols - 1) * pad, rows * (h + cap_h) + (rows - 1) * pad), "white")
    d = ImageDraw.Draw(out)
    for i, im in enumerate(images):
        x, y = (i % cols) * (w + pad), (i // cols) * (h + cap_h + pad)
        out.paste(im, (x, y))
        if captions:
            font = fit_font(d, captions[i], w - 4, int(cap_h * 0.8))
            d.text((x + 2, y + h + cap_h / 2), captions[i], fill="black", font=font, anchor="lm")
    return out
