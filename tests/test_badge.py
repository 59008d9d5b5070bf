"""The verdict badge on previews: readable when ComfyUI tiles the previews (its letters were
about 8 px high on a 256 px preview), and never wider than the image."""
import numpy as np
import pytest
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


def test_chinese_product_names_are_drawn_not_boxes():
    """Pillow's own font has no Chinese glyphs: every character would be the same box."""
    from PIL import Image, ImageDraw

    from rfnet.badge import cjk_font_path, fit_font

    if cjk_font_path() is None:
        pytest.skip("no CJK font installed (apt-get install fonts-noto-cjk)")

    def ink(ch):
        im = Image.new("L", (40, 40), 0)
        ImageDraw.Draw(im).text((4, 4), ch, fill=255, font=fit_font(ImageDraw.Draw(im), ch, 36, 28))
        return np.asarray(im)

    red, mouth = ink("红"), ink("口")
    assert red.any() and mouth.any() and not np.array_equal(red, mouth)


def test_captions_fit_their_cell():
    from PIL import Image, ImageDraw

    from rfnet.badge import fit_font

    d = ImageDraw.Draw(Image.new("RGB", (10, 10)))
    text = "oracle: Shape Hallucination"
    assert d.textlength(text, font=fit_font(d, text, 124, 18)) <= 124 < d.textlength(text, font=fit_font(d, text, 1000, 18))


def test_a_verdict_outside_the_training_data_is_not_shown_as_a_defect():
    """A designer's product photo that the inspector has never seen anything like keeps the
    model's label in the records, but the badge says the inspector cannot vouch for it."""
    from rfnet.badge import SHOWN_OUTSIDE, shown_label
    from rfnet.ood import NOTE

    note = NOTE.format(what="product")
    assert shown_label("Unsuitable", note) == SHOWN_OUTSIDE
    assert shown_label("Unsuitable", None) == "Unsuitable"
    assert shown_label("Available", "constant image (every pixel the same colour)") == "Available"
