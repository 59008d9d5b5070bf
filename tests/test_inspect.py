import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_CAPTION, tiny_config
from PIL import Image

from rfnet.inspect import Inspector
from rfnet.model import RFNet
from rfnet.text import build_tokenizer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def model_dir(tmp_path):
    tok = build_tokenizer(["red lamp 台灯", "blue box"], 100)
    torch.manual_seed(0)
    m = RFNet(tiny_config(caption_config=dict(TINY_CAPTION, vocab_size=len(tok))))
    m.save_pretrained(tmp_path / "m")
    tok.save_pretrained(str(tmp_path / "m" / "tokenizer"))
    return tmp_path / "m"


def _room(wall, size=40):
    """A wall over a grey floor: not a constant image (those are never accepted)."""
    im = Image.new("RGB", (size, size), wall)
    im.paste((90, 90, 90), (0, size * 2 // 3, size, size))
    return im


def test_inspector_matches_the_model(model_dir):
    insp = Inspector.from_pretrained(model_dir, dtype="float32")
    prod = Image.new("RGBA", (30, 30), (0, 0, 0, 0))
    prod.paste((255, 0, 0, 255), (10, 10, 20, 20))
    gen = [_room((0, 90, 200)), _room((200, 200, 0))]
    verdicts = insp(prod, gen, "red lamp")
    assert len(verdicts) == 2
    # by hand: product cropped to its visible pixels and composited on white, fallback maps,
    # tokenized caption
    from rfnet.data import to_rgb_tensor
    g = torch.stack([to_rgb_tensor(i) for i in gen])
    p = to_rgb_tensor(prod.crop((10, 10, 20, 20)))[None].expand(2, -1, -1, -1)
    d, s = insp.depth(g), insp.salience(g)
    enc = insp.tokenizer(["red lamp"] * 2, padding=True, return_tensors="pt")
    with torch.no_grad():
        want = insp.model(product=p, generated=g, depth=d, salience=s, input_ids=enc["input_ids"],
                          attention_mask=enc["attention_mask"]).probs
    for v, w in zip(verdicts, want):
        assert v.p_available == pytest.approx(float(w[0]), abs=1e-6)
        assert v.label == insp.labels[int(w.argmax())]
        assert v.accepted == (v.label == "Available")
        assert sum(v.probs.values()) == pytest.approx(1.0, abs=1e-5)


def test_threshold_decides_acceptance(model_dir):
    gen = _room((0, 90, 200))
    prod = Image.new("RGB", (20, 20), (255, 0, 0))
    pa = Inspector.from_pretrained(model_dir, dtype="float32")(prod, gen, "x")[0].p_available
    assert Inspector.from_pretrained(model_dir, threshold=pa - 1e-4, dtype="float32")(prod, gen, "x")[0].accepted
    assert not Inspector.from_pretrained(model_dir, threshold=pa + 1e-4, dtype="float32")(prod, gen, "x")[0].accepted


def test_rgba_tensor_product_is_composited_on_white(model_dir):
    insp = Inspector.from_pretrained(model_dir)
    gen = torch.rand(1, 3, 32, 32)
    rgba = torch.zeros(1, 4, 32, 32)  # fully transparent: white
    white = torch.ones(1, 3, 32, 32)
    assert torch.allclose(insp.probabilities(rgba, gen, "x"), insp.probabilities(white, gen, "x"))


def test_bfloat16_inspection_agrees_with_float32(model_dir):
    gen = [Image.new("RGB", (40, 40), (30 * i, 90, 200 - 20 * i)) for i in range(4)]
    prod = Image.new("RGB", (20, 20), (255, 0, 0))
    p32 = Inspector.from_pretrained(model_dir, dtype="float32").probabilities(prod, gen, "red lamp")
    p16 = Inspector.from_pretrained(model_dir, dtype="bfloat16").probabilities(prod, gen, "red lamp")
    assert (p32 - p16).abs().max() < 0.02
    from rfnet.inspect import resolve_dtype
    assert resolve_dtype("auto", "cpu") in (torch.float32, torch.bfloat16)
    with pytest.raises(ValueError, match="dtype"):
        resolve_dtype("float8", "cpu")


def test_inspect_cli(model_dir, tmp_path):
    Image.new("RGBA", (20, 20), (255, 0, 0, 255)).save(tmp_path / "p.png")
    Image.new("RGB", (40, 40), (0, 0, 255)).save(tmp_path / "g.png")
    Image.new("CMYK", (40, 40)).save(tmp_path / "c.jpg")
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    r = subprocess.run([sys.executable, "-m", "rfnet.inspect", "--model", str(model_dir), "--product",
                        str(tmp_path / "p.png"), "--image", str(tmp_path / "g.png"), "--caption", "red lamp"],
                       capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["label"] in RFNet.from_pretrained(model_dir).config.labels and 0 <= out["p_available"] <= 1
    r = subprocess.run([sys.executable, "-m", "rfnet.inspect", "--model", str(model_dir), "--product",
                        str(tmp_path / "p.png"), "--image", str(tmp_path / "c.jpg")],
                       capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 2 and "CMYK" in r.stderr and "c.jpg" in r.stderr


def test_demo_training_path_runs_end_to_end(tmp_path):
    """The main job's training path, at a small size: RF-Synth data, a tiny RFNet, evaluation."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    r = subprocess.run([sys.executable, "-m", "rfsynth.demo", "--train", "--out", str(tmp_path / "demo"),
                        "--samples", "40", "--epochs", "1"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Available precision" in r.stdout
    metrics = json.loads((tmp_path / "demo" / "eval" / "metrics.json").read_text())
    assert metrics["labels"][1] == "Unsuitable" and metrics["n"] > 0


def test_inspector_pairs_the_model_with_its_training_extractors(model_dir, tmp_path):
    from rfnet.estimators import LearnedMapExtractor, MapEstimatorConfig

    LearnedMapExtractor(MapEstimatorConfig(kind="depth", base_channels=4)).save_pretrained(tmp_path / "d")
    (model_dir / "inspector.json").write_text(json.dumps({"depth_model": str(tmp_path / "d"),
                                                          "salience_model": "fallback"}))
    insp = Inspector.from_pretrained(model_dir, dtype="float32")
    assert insp.depth.name.startswith("learned-depth:d@") and insp.salience.is_fallback
    # an explicit choice wins
    assert Inspector.from_pretrained(model_dir, depth="fallback", dtype="float32").depth.is_fallback


def test_an_image_that_cannot_be_judged_is_never_called_available():
    """A constant, tiny or non-finite image gets its note, is not accepted, and its label is the
    model's most probable defect even where the model says Available (a 1x1 image is not an ad)."""
    import torch

    from rfnet.embedded import embedded_path
    from rfnet.inspect import Inspector

    insp = Inspector.from_pretrained(embedded_path("rfnet"), threshold=0.0)  # accept anything judgeable
    p = torch.tensor([0.90, 0.01, 0.02, 0.04, 0.01, 0.02])
    v = insp.verdict(p, note="image is 1x1, smaller than 16 px")
    assert v.label == "Size Mismatch" and not v.accepted and v.p_available == pytest.approx(0.9)
    assert insp.verdict(p).label == "Available" and insp.verdict(p).accepted  # a judgeable image
    prod = torch.rand(1, 3, 64, 64)
    for img in (torch.zeros(1, 3, 64, 64), torch.rand(1, 3, 1, 1), torch.full((1, 3, 64, 64), float("nan"))):
        (v,) = insp(prod, img, "Lumi red vase")
        assert v.label != "Available" and not v.accepted and v.note


def test_a_small_product_is_judged_like_any_other():
    """The placed cutout of a lipstick on a 64 px canvas is 9 x 32 px: that is no reason to
    reject the image (it made the main job reject every lipstick); a NaN product still is."""
    import torch

    from rfnet.embedded import embedded_path
    from rfnet.inspect import Inspector

    insp = Inspector.from_pretrained(embedded_path("rfnet"))
    insp.novelty = None  # noise is outside the training data; here only the product's size is on trial
    gen = torch.rand(1, 3, 64, 64)
    small = torch.rand(1, 3, 32, 9)
    (v,) = insp(small, gen, "Lumi red lipstick")
    assert v.note is None
    (big,) = insp(torch.nn.functional.interpolate(small, size=(64, 64)), gen, "Lumi red lipstick")
    assert big.note is None
    (nan,) = insp(torch.full((1, 3, 32, 9), float("nan")), gen, "Lumi red lipstick")
    assert nan.note and "product image" in nan.note and not nan.accepted


def test_a_cutouts_margin_does_not_change_the_verdict():
    """A designer's cutout usually keeps a transparent margin. The embedded inspector read a
    wide one as a cut (RF-Synth v1's damaged cutouts kept the cut part as transparent rows) and
    called every padded product Unsuitable; the inspector now judges the visible pixels."""
    from PIL import Image

    from rfnet.embedded import embedded_path
    from rfnet.images import crop_to_alpha
    from rfnet.inspect import Inspector
    from rfsynth.scene import render_sample

    insp = Inspector.from_pretrained(embedded_path("rfnet"))
    s = render_sample(101, 128, label="Available", version=1)
    tight = crop_to_alpha(s.product)
    assert tight.size == (s.product.width - 2, s.product.height - 2)  # RF-Synth's 1-px frame
    padded = Image.new("RGBA", (tight.width + 40, tight.height + 20))
    padded.paste(tight, (20, 20))
    (a,), (b,) = insp(tight, s.image, s.caption), insp(padded, s.image, s.caption)
    assert a.label == b.label == "Available" and a.probs == b.probs
    assert crop_to_alpha(s.image) is s.image and crop_to_alpha([tight])[0].size == tight.size  # no alpha, or tight: as given


def test_crop_to_alpha_reads_palette_exports_and_leaves_the_rest():
    from PIL import Image

    from rfnet.images import crop_to_alpha

    rgba = Image.new("RGBA", (20, 10))
    rgba.paste((200, 0, 0, 255), (5, 2, 9, 8))
    pal = Image.new("P", (20, 10), 0)  # a palette PNG with a transparent index, as exports are
    pal.putpalette([0, 0, 0, 200, 0, 0] + [0] * 762)
    pal.paste(1, (5, 2, 9, 8))
    pal.info["transparency"] = 0
    assert crop_to_alpha(pal).size == (4, 6) and crop_to_alpha(rgba).size == (4, 6)
    assert crop_to_alpha(rgba.convert("LA")).size == (4, 6)
    empty = Image.new("RGBA", (8, 8))
    assert crop_to_alpha(empty) is empty  # nothing visible: as given (judged, and refused, later)
    opaque_p = Image.new("P", (8, 8))
    assert crop_to_alpha(opaque_p) is opaque_p
