"""scripts/oracle_stability.py: the oracle judged again after changes no person would see."""
import json

import numpy as np
import pytest
from conftest import load_script

from rfsynth import make_generated as mg

st = load_script("oracle_stability")


def _grey(v=128, s=64):
    return np.full((s, s, 3), v, np.uint8)


def test_the_changes_are_small_repeatable_and_what_they_say():
    img = _grey()
    a, b, c = st.noise(img, "x"), st.noise(img, "x"), st.noise(img, "y")
    assert np.array_equal(a, b) and not np.array_equal(a, c)  # seeded by the image's id
    d = a.astype(float) - img
    assert 1.8 < d.std() < 2.2 and abs(d.mean()) < 0.1 and np.abs(d).max() <= 10
    assert np.array_equal(st.bright(img, "x"), _grey(131))  # rint(128 * 1.02) = 131
    assert np.array_equal(st.bright(_grey(255), "x"), _grey(255))  # clipped
    ramp = np.repeat(np.linspace(0, 255, 64)[None, :, None], 64, 0).repeat(3, 2).astype(np.uint8)
    j = st.jpeg(ramp, "x")
    assert j.shape == ramp.shape and 0 < np.abs(j.astype(float) - ramp).mean() < 2


def _row(i, stored, changed, damaged=False):
    labels = {"as stored": stored, **{n: changed.get(n, stored) for n in st.CHANGES}}
    return {"id": f"s{i}", "label": stored, "damaged": damaged, "labels": labels}


def test_summary_counts_moves_fragile_images_and_the_inspector_split():
    rows = [
        _row(0, "Available", {"noise": "Size Mismatch"}),                 # moves Available-or-not
        _row(1, "Available", {"jpeg": "Space Mismatch", "bright": "Shape Hallucination"}),
        _row(2, "Space Mismatch", {"noise": "Size Mismatch"}),           # six classes only
        _row(3, "Size Mismatch", {}),
        _row(4, "Available", {}),
        _row(5, "Unsuitable", {}, damaged=True),
    ]
    pred = {"s0": "Available", "s1": "Size Mismatch", "s2": "Available", "s3": "Size Mismatch",
            "s4": "Available", "s5": "Unsuitable"}
    s = st.summarise(rows, pred)
    assert s["images"] == 6 and s["damaged"] == 1 and s["judged"] == 5
    n = s["changes"]["noise"]
    assert n["available_moved"] == 1 and n["six_class_moved"] == 2
    assert n["share_of_all_images"] == pytest.approx(1 / 6) and n["ceiling"] == pytest.approx(1 - 1 / 12)
    assert n["transitions"] == {"Available -> Size Mismatch": 1, "Space Mismatch -> Size Mismatch": 1}
    assert s["changes"]["jpeg"]["available_moved"] == 1 and s["changes"]["bright"]["available_moved"] == 1
    # majorities of the 4 copies, Available or not: s0 3, s1 2, s2..s5 4 each
    assert s["ceiling_all_copies"] == pytest.approx((3 + 2 + 4 * 4) / 24)
    assert s["fragile"] == 2 and s["fragile_by_label"] == {"Available": 2}
    ins = s["inspector"]
    assert ins["all"] == {"images": 6, "agree": 4, "share": pytest.approx(4 / 6)}  # s1, s2 wrong
    assert ins["fragile"]["agree"] == 1 and ins["fragile"]["images"] == 2
    assert ins["stable, not damaged"]["agree"] == 2 and ins["stable, not damaged"]["images"] == 3
    assert ins["damaged"] == {"images": 1, "agree": 1, "share": 1.0}


@pytest.fixture(scope="module")
def rfgen(tmp_path_factory):
    """A small RF-Gen folder: 2 jobs of 2 images, 2 sampler steps."""
    g = tmp_path_factory.mktemp("stability") / "g"
    mg.make(g, 2, seed=7, splits="test=1", images_per_job=2, recipes=(mg.Recipe("fast", steps=2),), workers=1,
            progress=False)
    return g


def test_each_change_is_judged_on_the_changed_pixels(rfgen, monkeypatch):
    rec = json.loads((rfgen / "manifest.jsonl").read_text(encoding="utf-8").splitlines()[0])
    info = json.loads((rfgen / "dataset.json").read_text(encoding="utf-8"))
    seen = []
    real = st.judge

    def spy(img, *a, **k):
        seen.append(np.asarray(img).copy())
        return real(img, *a, **k)

    monkeypatch.setattr(st, "judge", spy)
    labels = st.judge_changed(rfgen, rec, info)
    assert list(labels) == ["as stored", *st.CHANGES] and labels["as stored"] == rec["label"]
    from PIL import Image
    stored = np.asarray(Image.open(rfgen / rec["image"]).convert("RGB"))
    assert np.array_equal(seen[0], stored)
    for got, (name, change) in zip(seen[1:], st.CHANGES.items()):
        assert np.array_equal(got, change(stored, rec["id"])), name


def test_command_line_end_to_end_and_bad_folders(rfgen, tmp_path, capsys):
    assert st.main(["--data", str(rfgen), "--json", str(tmp_path / "s.json")]) == 0
    s = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))
    assert s["images"] == 4 and s["as_stored_matches_manifest"] == 4 and len(s["rows"]) == 4
    assert st.main(["--data", str(tmp_path / "nothing")]) == 2
    assert "no manifest.jsonl" in capsys.readouterr().err
    assert st.main(["--data", str(rfgen), "--predictions", str(tmp_path / "p.jsonl")]) == 2
    assert "rfnet.evaluate" in capsys.readouterr().err


def test_size_margin_is_the_reference_height_change_that_reaches_the_band_edge():
    from rfsynth import rules
    from rfsynth.catalog import CATEGORY_BY_NAME

    cat = next(iter(CATEGORY_BY_NAME))
    lo, hi = CATEGORY_BY_NAME[cat].height_cm
    edges = (lo / rules.SIZE_TOLERANCE, hi * rules.SIZE_TOLERANCE)
    rng = np.random.default_rng(0)
    signs = set()
    for _ in range(200):
        ref_px = float(rng.integers(3, 30))
        implied = float(rng.uniform(edges[0] / 3, edges[1] * 3))
        m = st.size_margin_px({"implied_height_cm": implied, "reference_px": ref_px}, cat)
        inside = edges[0] <= implied <= edges[1]
        assert (m >= 0) == inside
        signs.add(m >= 0)
        k = implied * ref_px  # product px x reference cm: fixed by the image, whatever ref_px is
        hits = [k / (ref_px + d) for d in (abs(m), -abs(m)) if ref_px + d > 0]
        assert any(abs(h - e) < 1e-6 * edges[1] for h in hits for e in edges)
        # and no smaller change reaches an edge
        for d in (0.999 * abs(m), -0.999 * abs(m)):
            assert (edges[0] <= k / (ref_px + d) <= edges[1]) == inside
    assert signs == {True, False}
    assert st.size_margin_px({"median_gap_px": 0.0}, cat) is None


def test_size_margins_bins_and_agreement():
    rows = [{"id": "a", "label": "Available", "size_margin_px": 0.5},
            {"id": "b", "label": "Size Mismatch", "size_margin_px": -0.2},
            {"id": "c", "label": "Size Mismatch", "size_margin_px": -3.0},
            {"id": "d", "label": "Available", "size_margin_px": None}]
    out = st.size_margins(rows, {"a": "Size Mismatch", "b": "Size Mismatch", "c": "Size Mismatch", "d": "Available"})
    assert [b["images"] for b in out] == [2, 0, 1, 0]
    assert out[0]["Available"] == 1 and out[0]["Size Mismatch"] == 1
    assert out[0]["inspector_agrees"] == 1 and out[2]["inspector_agrees"] == 1
