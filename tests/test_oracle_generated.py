"""The oracle's rules on what generators draw (found by the blind audit, docs/RFSYNTH.md):
each case is drawn by hand, so the expected verdict is known."""
import numpy as np
from PIL import Image

from rfsynth.oracle import judge

S = 64


def cutout(w, h, rgb):
    """A soft-edged rectangle, as natural cutouts are (no hard edges, so not Unsuitable)."""
    a = np.zeros((h, w, 4), np.uint8)
    a[..., :3] = rgb
    a[..., 3] = 255
    a[0, :, 3] = a[-1, :, 3] = a[:, 0, 3] = a[:, -1, 3] = 128
    return Image.fromarray(a, "RGBA")


def scene(wall_top, wall_bottom, surface_rgb, surface_y, x=22, y=20, w=20, h=20, rgb=(200, 40, 40)):
    """A wall shading from wall_top to wall_bottom, a full-width surface from surface_y, and the
    product pasted at (x, y)."""
    t = np.linspace(0, 1, S)[:, None, None]
    img = (np.array(wall_top) * (1 - t) + np.array(wall_bottom) * t) * np.ones((S, S, 3))
    img[surface_y:] = surface_rgb
    c = cutout(w, h, rgb)
    im = Image.fromarray(img.astype(np.uint8))
    im.paste(c, (x, y), c)
    return im, c, {"x": x, "y": y}


def test_standing_product_on_a_shaded_wall_is_available():
    im, c, pl = scene((90, 100, 160), (60, 70, 120), (230, 225, 215), surface_y=40)
    assert judge(im, c, pl, "speaker", damage=None).label == "Available"


def test_floating_over_a_wall_that_darkens_downwards_is_space_mismatch():
    # the wall under the product is 40+ from the top band's colour: the old rule took it for
    # a surface; the wall beside the product says it is wall
    im, c, pl = scene((150, 160, 220), (60, 70, 120), (230, 225, 215), surface_y=52)
    v = judge(im, c, pl, "speaker", damage=None)
    assert v.label == "Space Mismatch", v.measures


def test_a_smear_that_fades_under_a_floating_product_is_not_a_surface():
    im, c, pl = scene((90, 100, 160), (90, 100, 160), (230, 225, 215), surface_y=54)
    a = np.asarray(im).astype(float)
    for k, f in enumerate((0.6, 0.35, 0.15)):  # a halo in a foreign colour fading into the wall
        a[40 + k, 22:42] = f * np.array([200, 200, 60]) + (1 - f) * np.array([90, 100, 160])
    v = judge(Image.fromarray(a.astype(np.uint8)), c, pl, "speaker", damage=None)
    assert v.label == "Space Mismatch", v.measures


def test_a_product_lifted_into_the_top_band_is_judged_on_the_wall_beside_it():
    im, c, pl = scene((90, 100, 160), (90, 100, 160), (230, 225, 215), surface_y=34, y=2, h=32)
    assert judge(im, c, pl, "speaker", damage=None).label == "Available"


def test_a_surface_close_to_the_products_colour_is_its_support_not_a_pedestal():
    # a black cabinet on a dark floor: the floor touches its base in a colour near its own
    im, c, pl = scene((220, 210, 180), (220, 210, 180), (45, 40, 45), surface_y=40, rgb=(30, 30, 32))
    v = judge(im, c, pl, "cabinet", damage=None)
    assert v.label != "Shape Hallucination", v.measures
    # while a pedestal of the product's colour and width under it still is one
    im, c, pl = scene((220, 210, 180), (220, 210, 180), (230, 225, 215), surface_y=50, rgb=(30, 30, 32))
    a = np.asarray(im).copy()
    a[40:50, 20:44] = (30, 30, 32)  # 1.2 times the product's width
    v = judge(Image.fromarray(a), c, pl, "cabinet", damage=None)
    assert v.label == "Shape Hallucination", v.measures


def test_a_wall_in_a_reserved_colour_is_not_a_reference_object():
    im, c, pl = scene((255, 0, 255), (250, 10, 250), (230, 225, 215), surface_y=40, rgb=(30, 30, 32))
    v = judge(im, c, pl, "speaker", damage=None)
    assert v.label == "Available" and "reference" not in v.measures, v.measures
