"""The main job end to end on a tiny random generator: outputs, a bad product, resume."""
import json
import math
import shutil

import numpy as np
import pytest
from PIL import Image

from rfft.generate import EXAMPLES, load_prompts, main


def _products(tmp_path):
    d = tmp_path / "products"
    d.mkdir()
    for name in ("00_lipstick.png", "05_perfume.png"):
        shutil.copy(EXAMPLES / "products" / name, d / name)
    meta = json.loads((EXAMPLES / "products" / "products.json").read_text())
    (d / "products.json").write_text(json.dumps({k: meta[k] for k in ("00_lipstick.png", "05_perfume.png")}))
    bad = np.full((30, 30, 3), (90, 140, 90), np.uint8)  # RGB on green: must be refused, not crash
    Image.fromarray(bad).save(d / "01_on_green.png")
    (d / "02_truncated.png").write_bytes((d / "00_lipstick.png").read_bytes()[:80])
    return d


def test_generate_writes_everything_skips_bad_products_and_resumes(tmp_path, tiny_generator):
    prods = _products(tmp_path)
    out = tmp_path / "out"
    argv = ["--products", str(prods), "--out", str(out), "--generator", str(tiny_generator),
            "--attempts", "3", "--candidates", "2", "--steps", "2", "--seed", "7"]
    assert main(argv) == 0
    done = {p.name: json.loads(p.read_text()) for p in (out / "done").glob("*.json")}
    assert set(done) == {"00_lipstick.json", "05_perfume.json", "01_on_green.json", "02_truncated.json"}
    assert done["01_on_green.json"]["status"] == "skipped" and "cutout" in done["01_on_green.json"]["error"]
    assert "truncated" in done["02_truncated.json"]["error"]
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    good = [d for d in done.values() if d["status"] != "skipped"]
    assert len(lines) == sum(len(d["attempts"]) for d in good) > 0
    for rec in lines:
        assert (out / rec["file"]).exists()
        assert rec["oracle"] in ("Available", "Space Mismatch", "Size Mismatch", "Indistinctiveness",
                                 "Shape Hallucination", "Unsuitable")
        assert "{product}" not in rec["prompt"]
    for d in good:  # one chosen image per product, in accepted/ or best/
        chosen = [r for r in d["attempts"] if r["chosen"]]
        assert len(chosen) == 1
        assert chosen[0]["file"].startswith("accepted/" if d["status"] == "accepted" else "best/")
        seeds = [r["seed"] for r in d["attempts"]]
        assert seeds == list(range(seeds[0], seeds[0] + len(seeds)))
    for f in ("contact_sheet.png", "fig6.png", "report.md"):
        assert (out / f).stat().st_size > 0
    report = (out / "report.md").read_text()
    assert "01_on_green.png" in report and "| 3 |" in report
    assert not list(out.rglob("*.tmp*"))  # nothing half-written

    # resume: finished products are not redone; a removed one is
    before = (out / "done" / "05_perfume.json").stat().st_mtime_ns
    (out / "done" / "00_lipstick.json").unlink()
    assert main(argv) == 0
    assert (out / "done" / "05_perfume.json").stat().st_mtime_ns == before
    again = json.loads((out / "done" / "00_lipstick.json").read_text())
    assert [r["seed"] for r in again["attempts"]] == [r["seed"] for r in done["00_lipstick.json"]["attempts"]]
    assert [r["p_available"] for r in again["attempts"]] == [r["p_available"] for r in done["00_lipstick.json"]["attempts"]]


def test_prompt_config_in_release_format(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps([{"prompt": "a {product} on a table", "negative_prompt": "x", "image_scale": 0.78,
                                "matting": False, "flag": 0}]))
    (e,) = load_prompts(cfg)
    assert e.image_scale == 0.78 and e.for_product("vase") == "a vase on a table"
    cfg.write_text(json.dumps([{"prompt": "p", "image_scale": 3}]))
    try:
        load_prompts(cfg)
    except ValueError as err:
        assert "image_scale" in str(err)
    else:
        raise AssertionError("a bad image_scale was accepted")
    with pytest.raises(SystemExit) as exit_:  # a CLI refusal: one line on stderr, exit code 2
        main(["--prompts", str(tmp_path / "missing.json"), "--out", str(tmp_path / "o")])
    assert exit_.value.code == 2


def _fig6_inspectors():
    from conftest import load_script

    return load_script("fig6_inspectors")


def test_fig6_counts_products_by_available_attempts_beside_independent_draws():
    f6 = _fig6_inspectors()
    ok, bad = {"oracle": "Available"}, {"oracle": "Size Mismatch"}
    products = [{"attempts": a} for a in ([ok, ok, ok], [bad, bad, bad], [ok, bad, ok], [bad, bad, ok, ok])]
    counts = f6.available_counts(products, 3)  # the fourth product's fourth attempt is past max_k
    assert [c["products"] for c in counts] == [1, 1, 1, 1]
    p = 6 / 12  # 6 Available of the 12 attempts counted
    want = [4 * math.comb(3, a) * p ** a * (1 - p) ** (3 - a) for a in range(4)]
    assert [c["independent"] for c in counts] == pytest.approx(want)
    assert sum(c["independent"] for c in counts) == pytest.approx(4)


def test_all_attempts_measures_and_other_inspectors_rejudge_the_same_inputs(tmp_path, tiny_generator):
    from rfnet.embedded import embedded_path

    prods = _products(tmp_path)
    out = tmp_path / "measure"
    # the tiny generator draws noise, which the embedded inspector's out-of-distribution check
    # never accepts; without its statistics, threshold 0 accepts every judgeable attempt
    rfnet = tmp_path / "rfnet_no_ood"
    shutil.copytree(embedded_path("rfnet"), rfnet, ignore=shutil.ignore_patterns("ood.safetensors"))
    argv = ["--products", str(prods), "--out", str(out), "--generator", str(tiny_generator), "--attempts", "3",
            "--steps", "2", "--seed", "7", "--threshold", "0.0", "--all_attempts", "--rfnet", str(rfnet)]
    assert main(argv) == 0  # threshold 0 accepts every attempt, so only the option keeps it going
    good = [json.loads(p.read_text()) for p in (out / "done").glob("*.json")]
    good = [d for d in good if d["status"] != "skipped"]
    assert len(good) == 2
    for d in good:
        assert [r["attempt"] for r in d["attempts"]] == [0, 1, 2] and d["status"] == "accepted"
        assert [r["chosen"] for r in d["attempts"]] == [True, False, False]  # the loop's own choice
    assert len(list((out / "inspected").glob("*.png"))) == 2

    f6 = _fig6_inspectors()
    products = f6.read_run(out)
    again = f6.judge_all(products, "embedded", 0.0)  # the run's inspector, from the stored files
    for d, vs in zip(products, again):
        assert [v["p_available"] for v in vs] == pytest.approx([r["p_available"] for r in d["attempts"]], abs=2e-6)
    curve = f6.curve_for(products, again, 3)
    assert [r["available_rate"] for r in curve] == [r["available_rate"] for r in f6.curve_for(products, None, 3, "first")]
    perfect = f6.curve_for(products, None, 3, "perfect")
    want = [sum(any(r["oracle"] == "Available" for r in d["attempts"][:k]) for d in products) for k in (1, 2, 3)]
    assert [r["available"] for r in perfect] == want  # a perfect inspector delivers whenever one of k is good

    # a run split in parts reads as one; parts run with other settings are refused
    part = tmp_path / "part 2"
    shutil.copytree(out, part)
    assert f6.main(["--run", str(out), "--run", str(part), "--out", str(tmp_path / "cmp")]) == 0
    both = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert both["products"] == 4
    assert [r["available"] for r in both["perfect"]] == [2 * x for x in want]
    assert sum(c["products"] for c in both["available_counts"]) == 4
    assert both["available_counts"][0]["products"] == 4 - both["perfect"][-1]["available"]  # none usable: none delivered
    settings = json.loads((part / "settings.json").read_text())
    (part / "settings.json").write_text(json.dumps({**settings, "seed": 7007}))  # another seed: a part
    assert f6.main(["--run", str(out), "--run", str(part), "--out", str(tmp_path / "cmp")]) == 0
    (part / "settings.json").write_text(json.dumps({**settings, "steps": 3}))
    with pytest.raises(SystemExit, match="other settings.*steps"):
        f6.main(["--run", str(out), "--run", str(part), "--out", str(tmp_path / "cmp")])


def test_report_points_to_the_labelling_loop_for_products_outside_the_inspectors_data(tmp_path):
    from rfft.generate import report

    def att(i, note=None):
        r = {"attempt": i, "round": i, "seed": i, "label": "Unsuitable", "p_available": 0.1, "accepted": False,
             "probs": {}, "seconds": 0.1, "chosen": i == 1}
        return {**r, "note": note} if note else r

    outside = "outside the inspector's training data (the matting of the product's edges unlike any it was trained on)"
    done = [{"product": "红色 口红.png", "status": "rejected", "attempts": [att(0, outside), att(1, outside)]},
            {"product": "b.png", "status": "rejected", "attempts": [att(0), att(1)]}]
    report(done, tmp_path, 2, {"attempts": 2})
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    section = text.split("## Outside the inspector's training data", 1)[1]
    assert "红色 口红.png" in section and "b.png" not in section and "Review & Label" in section


def test_the_report_states_the_acceptance_rule_in_use(tmp_path):
    from rfft.generate import shown_threshold
    from rfnet.embedded import embedded_path

    emb = json.loads((embedded_path("rfnet") / "config.json").read_text())["acceptance_threshold"]
    assert shown_threshold(None, embedded_path("rfnet")) == f"{emb:.2f} (the inspector's calibrated one)"
    assert shown_threshold(0.5, embedded_path("rfnet")) == "0.5"  # an explicit value wins
    (tmp_path / "config.json").write_text(json.dumps({"acceptance_threshold": None}))
    assert shown_threshold(None, tmp_path) == "none (top class Available)"


def test_a_generator_that_gives_nan_pixels_skips_the_product_saying_why(tmp_path, tiny_generator, monkeypatch):
    """A NaN image would be shown black, then inspected and perhaps delivered as if it were one."""
    from rfft.pipeline import AdInpaintPipeline

    d = tmp_path / "products"
    d.mkdir()
    shutil.copy(EXAMPLES / "products" / "00_lipstick.png", d / "口红 1.png")
    real = AdInpaintPipeline.decode
    monkeypatch.setattr(AdInpaintPipeline, "decode", lambda self, z: real(self, z) * float("nan"))
    out = tmp_path / "out"
    assert main(["--products", str(d), "--out", str(out), "--generator", str(tiny_generator), "--attempts", "2",
                 "--steps", "1", "--no_oracle"]) == 0
    rec = json.loads((out / "done" / "口红 1.json").read_text(encoding="utf-8"))
    assert rec["status"] == "skipped" and "NaN pixels" in rec["error"] and rec["attempts"] == []
    assert "口红 1.png" in (out / "report.md").read_text(encoding="utf-8")
    assert not list(out.glob("accepted/*")) and not list(out.glob("best/*"))
