"""Product placement against worked examples, and bad product images."""
import numpy as np
import pytest
from conftest import box_cutout
from PIL import Image

from rfft.placement import ProductError, dilate_px, load_product, place


def _box_cutout(w, h, pad=5, colour=(200, 30, 40)):
    return box_cutout(w, h, pad, colour)


def test_fit_box_into_scale_times_canvas_centred():
    # 40 x 20 box, canvas 100, scale 0.5: f = min(50/40, 50/20) = 1.25 -> 50 x 25 at (25, 37).
    pl = place(_box_cutout(40, 20), 100, 0.5, dilate=0)
    assert pl.box == {"x": 25, "y": 37, "w": 50, "h": 25}
    ys, xs = np.nonzero(pl.alpha > 0.5)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (25, 74, 37, 61)
    # a tall box is limited by its height: 10 x 40 at scale 0.8 on 100 -> f = 2 -> 20 x 80
    pl = place(_box_cutout(10, 40), 100, 0.8, dilate=0)
    assert pl.box == {"x": 40, "y": 10, "w": 20, "h": 80}
    # non-square canvas (width, height): box 100 x 50, f = min(100/40, 50/20) = 2.5
    pl = place(_box_cutout(40, 20), (200, 100), 0.5, dilate=0)
    assert pl.box == {"x": 50, "y": 25, "w": 100, "h": 50}


def test_transparent_margin_is_ignored_and_aspect_kept():
    a = place(_box_cutout(30, 30, pad=1), 64, 0.5, dilate=0)
    b = place(_box_cutout(30, 30, pad=40), 64, 0.5, dilate=0)
    assert a.box == b.box == {"x": 16, "y": 16, "w": 32, "h": 32}


def test_keep_location():
    canvas = np.zeros((64, 64, 4), np.uint8)
    canvas[40:50, 5:20] = (10, 200, 10, 255)
    pl = place(Image.fromarray(canvas, "RGBA"), 64, 0.5, keep_location=True, dilate=0)
    assert pl.box == {"x": 5, "y": 40, "w": 15, "h": 10}
    assert np.array_equal(pl.alpha > 0.5, canvas[..., 3] > 0)


def test_inpaint_mask_is_dilated_inverse_alpha():
    pl = place(_box_cutout(40, 40), 100, 0.4, dilate=5)  # product = 40 x 40 at (30, 30)
    keep = pl.inpaint_mask == 0
    ys, xs = np.nonzero(keep)
    # a 5 x 5 rectangle erodes 2 pixels off each side (cv2 anchors at the centre)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (32, 67, 32, 67)
    assert pl.inpaint_mask[pl.alpha == 0].min() == 1.0
    assert dilate_px((512, 512)) == 20 and dilate_px((64, 64)) == 2


def test_canny_control_is_the_product_alone():
    pl = place(_box_cutout(40, 40, colour=(20, 20, 20)), 100, 0.4)
    edges = np.asarray(pl.control)[..., 0] > 0
    assert edges.any()
    # edges lie on the product's outline only: none far from it
    far = np.ones_like(edges)
    far[25:76, 25:76] = False
    assert not edges[far].any()
    assert not edges[35:65, 35:65].any()  # a flat product has no inner edges


def test_paste_back_is_exact():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (30, 20, 4), dtype=np.uint8)
    a[..., 3] = 255
    a[:3, :3, 3] = 128  # a soft corner
    pl = place(Image.fromarray(a, "RGBA"), 64, 0.5)
    bg = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out = np.asarray(pl.paste_back(Image.fromarray(bg)))
    solid = pl.alpha >= 1
    assert np.array_equal(out[solid], pl.product[solid])
    assert np.array_equal(out[pl.alpha == 0], bg[pl.alpha == 0])
    soft = (pl.alpha > 0) & (pl.alpha < 1)
    want = np.round(bg[soft] * (1 - pl.alpha[soft, None]) + pl.product[soft] * pl.alpha[soft, None])
    assert np.abs(out[soft].astype(int) - want).max() <= 1


def test_faint_halo_does_not_shrink_or_lower_the_product():
    """The box is where alpha >= 128 (the release's alpha >= 0.5): a faint fringe, larger below
    the product as matting tools leave shadows, changes neither its size nor its place."""
    halo = np.zeros((80, 60, 4), np.uint8)
    halo[..., :3] = 200
    halo[..., 3] = 20
    halo[10:30, 10:50] = (200, 40, 60, 255)  # the product: 40 x 20, fringe 10 px above, 50 below
    pl = place(Image.fromarray(halo, "RGBA"), 100, 0.5, dilate=0)
    ref = place(_box_cutout(40, 20), 100, 0.5, dilate=0)  # the same product without the fringe
    ys, xs = np.nonzero(pl.alpha >= 0.5)
    ry, rx = np.nonzero(ref.alpha >= 0.5)  # 50 x 25 at (25, 37)
    for got, want in zip((xs.min(), xs.max(), ys.min(), ys.max()), (rx.min(), rx.max(), ry.min(), ry.max())):
        assert abs(int(got) - int(want)) <= 1  # the fringe's half-pixel offset after resizing
    faint = (pl.alpha > 0) & (pl.alpha < 0.5)
    assert faint.any() and np.nonzero(faint)[0].max() > ys.max() + 20  # the fringe is kept, below


# ---- RGB products on white and bad inputs ---------------------------------------------------
def test_rgb_on_white_gets_alpha_with_inner_white_kept():
    a = np.full((50, 50, 3), 255, np.uint8)
    a[10:40, 10:40] = (30, 60, 200)
    a[20:30, 20:30] = 255  # a white window inside the product is product, not background
    cut = load_product(Image.fromarray(a, "RGB"))
    al = np.asarray(cut)[..., 3]
    assert al[0, 0] == 0 and al[15, 15] == 255 and al[25, 25] == 255
    assert (al > 0).sum() == 30 * 30


def test_rgb_on_colour_background_is_refused_with_what_to_do():
    a = np.full((50, 50, 3), (90, 140, 90), np.uint8)
    a[10:40, 10:40] = (200, 30, 30)
    with pytest.raises(ProductError, match="white background.*RGBA cutout.*matting"):
        load_product(Image.fromarray(a, "RGB"))


def test_bad_files(tmp_path):
    empty = np.zeros((20, 20, 4), np.uint8)
    with pytest.raises(ProductError, match="alpha channel is empty"):
        load_product(Image.fromarray(empty, "RGBA"))
    with pytest.raises(ProductError, match="too small"):
        load_product(Image.new("RGB", (1, 1), "red"))
    with pytest.raises(ProductError, match="larger than"):
        load_product(Image.new("L", (8000, 8000), 255))
    with pytest.raises(ProductError, match="all white"):
        load_product(Image.new("RGB", (30, 30), "white"))
    # truncated PNG
    src = tmp_path / "ok.png"
    _box_cutout(20, 20).save(src)
    bad = tmp_path / "truncated.png"
    bad.write_bytes(src.read_bytes()[:60])
    with pytest.raises(ProductError, match="truncated"):
        load_product(bad)
    with pytest.raises(ProductError, match="no such file"):
        load_product(tmp_path / "missing.png")


def test_16bit_cmyk_and_opaque_rgba_are_handled(tmp_path):
    g = np.full((40, 40), 65535, np.uint16)
    g[10:30, 10:30] = 8000
    p16 = tmp_path / "p16.png"
    Image.fromarray(g).save(p16)
    cut = load_product(p16)
    assert (np.asarray(cut)[..., 3] > 0).sum() == 400
    cmyk = Image.new("CMYK", (40, 40), (0, 0, 0, 0))  # CMYK white
    cmyk.paste((0, 200, 200, 0), (10, 10, 30, 30))
    assert (np.asarray(load_product(cmyk))[..., 3] > 0).sum() == 400
    opaque = np.full((40, 40, 4), 255, np.uint8)  # an "RGBA" photo with no transparency
    opaque[10:30, 10:30, :3] = (10, 10, 150)
    assert (np.asarray(load_product(Image.fromarray(opaque, "RGBA")))[..., 3] > 0).sum() == 400
