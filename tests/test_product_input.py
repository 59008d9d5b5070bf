"""The product input "placed": the product on white where it stands in the generated image
(RFNetConfig.product_input, rfnet.train --product_input)."""
import json
import shutil

import numpy as np
import pytest
import torch
from conftest import box_cutout, tiny_config
from PIL import Image

from rfnet import train
from rfnet.data import RFDataset, placed_on_canvas, placement_problem, to_rgb_tensor
from rfnet.errors import InputError
from rfnet.inspect import Inspector
from rfnet.model import RFNet, RFNetConfig


def test_placed_on_canvas_matches_a_direct_composite():
    rng = np.random.default_rng(0)
    prod = rng.integers(0, 256, (10, 7, 4), dtype=np.uint8)
    prod[..., 3] = rng.choice([0, 128, 255], (10, 7))
    x, y = 60, 3  # the right part falls off a 64-px canvas
    out = np.asarray(placed_on_canvas(Image.fromarray(prod, "RGBA"), {"x": x, "y": y, "w": 7, "h": 10}, (64, 48)))
    assert out.shape == (48, 64, 3)
    want = np.full((48, 64, 3), 255.0)
    a = prod[:, :4, 3:4] / 255.0
    want[y:y + 10, x:x + 4] = prod[:, :4, :3] * a + 255.0 * (1 - a)
    assert np.abs(out.astype(float) - want).max() <= 1  # Pillow rounds its composite
    assert (out[:y] == 255).all() and (out[:, :x] == 255).all()


def test_config_validates_and_old_configs_read_cutout():
    cfg = tiny_config(product_input="placed")
    back = RFNetConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back.product_input == "placed"
    d = cfg.to_dict()
    del d["product_input"]  # a config written before the option existed
    assert RFNetConfig.from_dict(d).product_input == "cutout"
    with pytest.raises(ValueError, match="product_input must be one of cutout, placed"):
        tiny_config(product_input="mask")


def test_dataset_places_the_product_and_skips_records_without_a_placement(toy_dataset, tmp_path):
    data = tmp_path / "d"
    shutil.copytree(toy_dataset, data)
    lines = (data / "manifest.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    del recs[0]["source"]["placement"]
    (data / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))

    cut = RFDataset(data, label_set="rf1m6", image_size=32, maps=())
    placed = RFDataset(data, label_set="rf1m6", image_size=32, maps=(), product_input="placed")
    assert len(cut) == len(recs) and len(placed) == len(recs) - 1
    assert placed.skips.counts == {"no placement": 1}
    for bad, why in (("a string", "no placement"), ({"x": float("nan"), "y": 1}, "x must be a number"),
                     ({"x": "10", "y": 1}, "x must be a number"), ({"x": True, "y": 1}, "x must be a number")):
        rec = dict(recs[1], source=bad if isinstance(bad, str) else dict(recs[1]["source"], placement=bad))
        assert why in (placement_problem(rec) or "")
    assert placement_problem(recs[1]) is None
    s = placed.samples[0]
    item = placed[0]
    gen = Image.open(placed.base / s["image"])
    want = to_rgb_tensor(placed_on_canvas(Image.open(placed.base / s["product"]), s["source"]["placement"],
                                          gen.size), 32)
    assert torch.equal(item["product"], want)
    # it differs from the cutout input: the product is no longer stretched over the whole input
    assert not torch.allclose(item["product"], cut[1]["product"], atol=0.05)
    # where the product is not, the placed input is white
    full = to_rgb_tensor(placed_on_canvas(Image.open(placed.base / s["product"]), s["source"]["placement"], gen.size))
    p = s["source"]["placement"]
    assert (full[:, :, :p["x"]] == 1).all()


def test_train_takes_product_input_with_init_from(toy_dataset, tmp_path):
    from test_train import FAST

    base = tmp_path / "base"
    train.train(train.parse_args(["--train_data", str(toy_dataset), "--output_dir", str(base), *FAST,
                                  "--max_train_steps", "1", "--validation_split", "none"]))
    assert RFNet.from_pretrained(base).config.product_input == "cutout"
    out = tmp_path / "placed"
    train.train(train.parse_args(["--train_data", str(toy_dataset), "--output_dir", str(out), "--init_from",
                                  str(base), "--product_input", "placed", "--max_train_steps", "1",
                                  "--validation_split", "none", "--no_progress", "--report_to", "none",
                                  "--train_batch_size", "8"]))
    assert RFNet.from_pretrained(out).config.product_input == "placed"
    assert "product input: placed" in (out / "MODEL_CARD.md").read_text()


def test_inspector_with_placed_product_needs_the_canvas():
    torch.manual_seed(0)
    model = RFNet(tiny_config(product_input="placed", use_caption=False, use_depth=False, use_salience=False))
    insp = Inspector(model)
    image = Image.new("RGB", (48, 48), (90, 120, 150))
    with pytest.raises(InputError, match="product 0 on a canvas of its generated image's size"):
        insp([box_cutout(10, 20)], [image], None)
    canvas = Image.new("RGBA", (48, 48), (0, 0, 0, 0))
    canvas.paste(box_cutout(10, 20), (10, 10))
    # a batch of images of different sizes: each product against its own image (batching resizes)
    other = Image.new("RGB", (64, 40), (90, 120, 150))
    canvas2 = Image.new("RGBA", (64, 40), (0, 0, 0, 0))
    canvas2.paste(box_cutout(10, 20), (5, 5))
    assert len(insp([canvas, canvas2], [image, other], None)) == 2
    with pytest.raises(InputError, match="product 1 on a canvas of its generated image's size \\(64x40\\)"):
        insp([canvas, canvas], [image, other], None)
    [v] = insp([canvas], [image], None)
    assert 0.0 <= v.p_available <= 1.0
    # its margin is the layout, so it is not cropped away: moving the product changes the view
    moved = Image.new("RGBA", (48, 48), (0, 0, 0, 0))
    moved.paste(box_cutout(10, 20), (30, 20))
    [w] = insp([moved], [image], None)
    assert w.p_available != pytest.approx(v.p_available, abs=1e-7)


def test_rfft_judge_refuses_a_placed_inspector():
    from rfft.trainer import DifferentiableJudge

    with pytest.raises(ValueError, match="trained with product_input 'placed'"):
        DifferentiableJudge(RFNet(tiny_config(product_input="placed", use_caption=False)), None)
    DifferentiableJudge(RFNet(tiny_config(use_caption=False)), None)  # a cutout judge is taken


def test_ood_statistics_read_placed_products_as_the_inspector_does(toy_dataset):
    from rfnet import ood
    from rfnet.dataformat import SkipReport, read_records

    torch.manual_seed(0)
    model = RFNet(tiny_config(product_input="placed", use_caption=False)).eval()
    feats, edges = ood.dataset_features(model, [str(toy_dataset)], [3], "train")
    base, recs, _ = read_records(toy_dataset, SkipReport())
    recs = [r for r in recs if r.get("split") == "train"][:3]
    canvases = [placed_on_canvas(Image.open(base / r["product"]), r["source"]["placement"],
                                 Image.open(base / r["image"]).size) for r in recs]
    assert torch.allclose(feats["product"], ood.image_features(model, canvases), atol=1e-5)
    assert len(edges) == 3
