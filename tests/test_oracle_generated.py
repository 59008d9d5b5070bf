"""The oracle's rules on what generators draw (found by the blind audit, docs/RFSYNTH.md):
each case is drawn by hand, so the expected verdict is known."""
import numpy as np
import pytest
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


def _with(im, box, rgb):
    a = np.asarray(im).copy()
    y0, y1, x0, x1 = box
    a[y0:y1, x0:x1] = rgb
    return Image.fromarray(a)


def test_a_block_in_the_colour_of_the_foot_is_shape_hallucination_and_a_table_is_not():
    # Rule 3c (round 5, audit set E): a black pot on a black block twice its width, wall on both
    # sides of the block, is the pot carried on downward; the same block in a colour the product
    # does not have is a table; a floor of the pot's colour running across the scene is a floor.
    wall, floor, black = (150, 170, 200), (200, 190, 170), (35, 32, 30)
    im, c, pl = scene(wall, wall, floor, surface_y=60, x=24, y=22, w=16, h=18, rgb=black)
    block = (40, 60, 16, 48)  # rows, columns: two foot widths, half the product's height and more
    v = judge(_with(im, block, black), c, pl, "vase", damage=None)
    assert v.label == "Shape Hallucination" and v.measures["reason"] == "block in the foot's colour", v.measures
    assert 1.8 <= v.measures["block_width"] <= 2.0 and v.measures["block_height"] > 1.0, v.measures  # the blur eats a column
    v = judge(_with(im, block, (150, 60, 40)), c, pl, "vase", damage=None)
    assert v.label == "Available" and v.measures["block_width"] == 0.0, v.measures
    im, c, pl = scene(wall, wall, black, surface_y=40, x=24, y=22, w=16, h=18, rgb=black)
    v = judge(im, c, pl, "vase", damage=None)
    assert v.label != "Shape Hallucination" and v.measures.get("block_width", 0.0) == 0.0, v.measures


def test_a_reference_hanging_on_the_wall_is_not_a_measure_and_one_standing_is():
    # Rule 5 (round 5): a magenta cup that makes a 30-px speaker 54 cm tall (Size Mismatch)
    # counts only when it stands on the surface, not as a blob on the wall.
    wall, floor = (150, 170, 200), (200, 190, 170)
    im, c, pl = scene(wall, wall, floor, surface_y=42, x=30, y=12, w=16, h=30, rgb=(40, 40, 160))
    v = judge(_with(im, (37, 42, 8, 13), (255, 0, 255)), c, pl, "speaker", damage=None)  # 5 px: 9 cm
    assert v.label == "Size Mismatch" and v.measures["reference"] == "cup", v.measures
    assert v.measures["implied_height_cm"] == 30 / 5 * 9, v.measures
    v = judge(_with(im, (14, 19, 8, 13), (255, 0, 255)), c, pl, "speaker", damage=None)
    assert v.label == "Available" and "reference" not in v.measures, v.measures


def test_a_blurred_reference_is_measured_with_its_soft_edge():
    # A generator blurs a reference's edges: the core within REFERENCE_DIST is shorter than the
    # blob, and its height alone made a 16-cm lamp 'too tall' next to a book stack.
    from rfsynth import rules
    from rfsynth.oracle import reference_masks

    wall, floor = (150, 170, 200), (200, 190, 170)
    im, c, pl = scene(wall, wall, floor, surface_y=42, x=30, y=22, w=16, h=20, rgb=(40, 40, 160))
    a = np.asarray(im).astype(float)
    for k, f in enumerate((0.6, 1, 1, 1, 1, 1, 1, 1, 1, 0.6)):  # a 10-row blob, soft at both ends
        a[32 + k, 6:20] = f * np.array([0, 255, 255]) + (1 - f) * np.array(wall)
    img = a.astype(np.float32)
    core = reference_masks(img)["book stack"]
    soft = reference_masks(img, soft=True)["book stack"]
    assert np.ptp(np.nonzero(core.any(1))[0]) + 1 == 8 and np.ptp(np.nonzero(soft.any(1))[0]) + 1 == 10
    assert rules.REFERENCE_SOFT_DIST > rules.REFERENCE_DIST
    v = judge(Image.fromarray(a.astype(np.uint8)), c, pl, "speaker", damage=None)
    assert v.measures["reference_px"] == 10, v.measures


def test_composed_samples_that_round_5_first_got_wrong():
    # Found by the fresh composed seeds of rule round 5 (docs/RFSYNTH.md): a handbag on a grey
    # plinth 1.13 times its width reaching the image's bottom (rule 3b at a least height of 0.2
    # took it for a pedestal); a stool by a yellow wall (its soft edge grew into the wall, and the
    # massage chair beside it came out of Size Mismatch); a cabinet whose brown legs stand on a
    # brown table (rule 3c without the main-colour test).
    from rfsynth.make import sample_seed
    from rfsynth.scene import render_sample

    for seed, i in ((707070, 460), (707070, 673), (727272, 292)):
        s = render_sample(sample_seed(seed, i), 64)
        v = judge(s.image, s.product, s.placement, s.category, damage=s.damage)
        assert v.label == s.label, (seed, i, s.label, v.measures)


def test_a_mint_blob_is_read_as_the_book_stack_and_a_smudge_is_not_a_reference():
    # Round 6 (sets F, F_2, G): people read a saturated blob by the reserved colour it is nearest
    # to; a mint blob 85 from cyan (beyond REFERENCE_DIST) is a book stack. The world draws no
    # reference under max(5 px, 0.05 S), so a smaller smudge measures nothing.
    wall, floor, mint = (150, 170, 200), (200, 190, 170), (60, 230, 200)
    im, c, pl = scene(wall, wall, floor, surface_y=42, x=30, y=12, w=16, h=30, rgb=(40, 40, 160))
    v = judge(_with(im, (36, 42, 8, 16), mint), c, pl, "speaker", damage=None)  # 6 px: a 16-cm stack
    assert v.label == "Size Mismatch" and v.measures["reference"] == "book stack", v.measures
    assert v.measures["implied_height_cm"] == 30 / 6 * 16, v.measures
    v = judge(_with(im, (38, 42, 8, 16), (255, 0, 255)), c, pl, "speaker", damage=None)  # 4 px
    assert v.label == "Available" and "reference" not in v.measures, v.measures


def test_a_blurred_reference_is_measured_into_its_soft_edge(monkeypatch):
    # Round 7 (sets A-H): people measured a generator's blurred blobs about a third taller than
    # the oracle, which stopped where the colour was still nearly the reserved one. Round 9 (sets
    # A-J; the legend: "measure a blob's full height, its soft edge included"): the rows that are
    # less than REFERENCE_BLEND_STOP wall count, at the top and the bottom.
    from rfsynth import rules

    assert rules.REFERENCE_BLEND_STOP == 0.75

    wall, floor, magenta = np.array((235, 235, 235)), (200, 190, 170), np.array((255, 0, 255))
    im, c, pl = scene(tuple(wall), tuple(wall), floor, surface_y=44, x=30, y=14, w=16, h=30, rgb=(40, 40, 160))
    a = np.asarray(im).astype(float)
    ramp = [1 - (k + 1) / 9 for k in range(8)]  # blob share of each row, outwards from the core
    core_rows = range(30, 40)
    for y in core_rows:
        a[y, 6:16] = magenta
    for k, f in enumerate(ramp):  # the blur above the cup and below it, into the wall
        a[core_rows[0] - 1 - k, 6:16] = f * magenta + (1 - f) * wall
    for k, f in enumerate(ramp[:3]):
        a[core_rows[-1] + 1 + k, 6:16] = f * magenta + (1 - f) * wall
    blurred = Image.fromarray(a.round().astype(np.uint8))

    def rows_within(stop):
        return len(core_rows) + sum(1 - f < stop for f in ramp) + sum(1 - f < stop for f in ramp[:3])

    expected = rows_within(0.75)
    v = judge(blurred, c, pl, "speaker", damage=None)
    assert v.measures["reference"] == "cup" and v.measures["reference_px"] == expected, (expected, v.measures)
    assert v.measures["implied_height_cm"] == pytest.approx(30 / expected * 9), v.measures
    # round 7 and 8 stopped at the blend's middle: shorter
    monkeypatch.setattr(rules, "REFERENCE_BLEND_STOP", 0.5)
    v7 = judge(blurred, c, pl, "speaker", damage=None)
    assert v7.measures["reference_px"] == rows_within(0.5) < expected, v7.measures
    # the core and its soft fringe alone (round 6) are shorter than that
    monkeypatch.setattr(rules, "REFERENCE_BLUR_REACH", 0.0)
    v6 = judge(blurred, c, pl, "speaker", damage=None)
    assert v6.measures["reference_px"] < expected, v6.measures


def test_a_shelf_above_a_reference_does_not_stretch_it():
    # Round 7's blur edge runs only through blends of the blob and the background: a brown shelf
    # above a yellow stool on a cream wall (composed seed 707070, sample 702) is a third colour.
    from rfsynth.make import sample_seed
    from rfsynth.scene import render_sample

    s = render_sample(sample_seed(707070, 702), 64)
    v = judge(s.image, s.product, s.placement, s.category, damage=s.damage)
    assert v.label == s.label == "Available", v.measures
    assert v.measures["reference_px"] == s.params["reference"]["height_px"], (s.params["reference"], v.measures)


def test_a_soft_edge_does_not_run_into_the_floor_behind_a_stool():
    # Round 9 stops at 0.75 of the way to the background: at 0.8 the edge of this composed stool
    # (seed 707070, sample 975, a floor lamp) ran on into the floor, 15 px for a 9-px stool.
    from rfsynth.make import sample_seed
    from rfsynth.scene import render_sample

    s = render_sample(sample_seed(707070, 975), 64)
    v = judge(s.image, s.product, s.placement, s.category, damage=s.damage)
    assert v.label == s.label == "Available", v.measures
    assert v.measures["reference_px"] == s.params["reference"]["height_px"] == 9, v.measures


def test_a_block_a_shade_off_the_foot_colour_is_shape_hallucination():
    # Round 7 (sets A-H): a generator paints the block under a product a shade darker than its
    # foot (55 away here); people still read it as the foot carried on downward. A block in a
    # colour the product does not have is still a table.
    wall, floor, red = (150, 170, 200), (200, 190, 170), (200, 40, 40)
    im, c, pl = scene(wall, wall, floor, surface_y=60, x=24, y=22, w=16, h=18, rgb=red)
    block = (40, 60, 16, 48)
    shade = (150, 20, 25)
    assert 40 < np.linalg.norm(np.subtract(shade, red)) < 70
    v = judge(_with(im, block, shade), c, pl, "vase", damage=None)
    assert v.label == "Shape Hallucination" and v.measures["reason"] == "block in the foot's colour", v.measures
    v = judge(_with(im, block, (60, 120, 90)), c, pl, "vase", damage=None)
    assert v.label == "Available" and v.measures["block_width"] == 0.0, v.measures


def test_a_smudge_hanging_in_the_wall_under_the_product_holds_nothing_up(monkeypatch):
    # Round 8 (sets F, G, I): a generator leaves a smudge under a floating product; five rows of
    # it made rule 4 call the product supported. A support must reach the floor or a side of the
    # image; the same smudge running down to the floor (a post) still holds the product.
    wall, floor, brown = (150, 170, 200), (200, 190, 170), (120, 60, 40)
    im, c, pl = scene(wall, wall, floor, surface_y=58, x=22, y=20, w=20, h=20, rgb=(40, 40, 160))
    smudge = _with(im, (40, 48, 26, 38), brown)  # under 12 of the product's 20 columns, wall below it
    v = judge(smudge, c, pl, "speaker", damage=None)
    assert v.label == "Space Mismatch" and v.measures["supported_frac"] == 0.0, v.measures
    post = _with(im, (40, 58, 26, 38), brown)
    v = judge(post, c, pl, "speaker", damage=None)
    assert v.label == "Available" and v.measures["supported_frac"] == 0.6, v.measures
