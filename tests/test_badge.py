"""The verdict badge on previews: readable when ComfyUI tiles the previews (its letters were
about 8 px high on a 256 px preview), and never wider than the image."""
import numpy as np
from PIL import Image

from rfnet.badge import GREEN, RED, badge


def _text_box(im: Image.Image, strip_colour) -> tuple[int, int, int]:
    """(strip height, text height, text right edge) from the pixels: the strip is the bottom rows
    of ``strip_colour``; the text is the white pixels in it."""
    a = np.asarray(im).astype(int)
    is_strip = (np.abs(a - np.array(strip_colour)).sum(-1) < 30)
    rows = np.where(is_strip.mean(1) > 0.3)[0]
    strip = a[rows.min():]
    white = (strip.min(-1) > 200)
    ys, xs = np.where(white)
    return len(a) - rows.min(), ys.max() - ys.min() + 1, xs.max()


def test_badge_letters_are_at_least_a_fifteenth_of_the_preview_high():
    for side in (64, 128, 512):
        im = badge(Image.new("RGB", (side, side), (90, 120, 90)), "Available", 0.96, True)
        strip, text, _ = _text_box(im, GREEN)
        assert im.height >= 256
        assert text >= im.height / 15, (side, text, im.height)  # the bitmap font gave 8 px of 256
        assert strip >= im.height / 8


def test_a_long_defect_name_fits_on_a_narrow_image():
    im = badge(Image.new("RGB", (256, 128), (90, 90, 120)), "Shape Hallucination", 0.12, False)
    _, text, right = _text_box(im, RED)
    assert right < im.width - 1  # the text ends inside the image
    assert text >= 8
