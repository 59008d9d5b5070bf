"""The mask input: the image encoder reads where the product stands as a fourth channel
(RFNetConfig.mask_input, rfnet.train --mask_input)."""
import json
import shutil

import numpy as np
import pytest
import torch
from conftest import tiny_config, tiny_inputs
from PIL import Image

from rfnet import train
from rfnet.augment import hflip_batch
from rfnet.data import RFDataset, placed_mask, to_map_tensor
from rfnet.errors import InputError
from rfnet.inspect import Inspector
from rfnet.model import RFNet, RFNetConfig, with_mask_input


def _model(**kw):
    torch.manual_seed(0)
    return RFNet(tiny_config(use_caption=False, **kw)).eval()


def _inputs(seed=0):
    x = tiny_inputs(b=3, size=32, seed=seed)
    del x["input_ids"], x["attention_mask"]
    g = torch.Generator().manual_seed(seed + 1)
    x["mask"] = (torch.rand(3, 1, 32, 32, generator=g) > 0.7).float()
    return x


def _first_conv(model):
    return next(m for m in model.image_encoder.modules() if isinstance(m, torch.nn.Conv2d))


def test_placed_mask_matches_a_direct_paste():
    rng = np.random.default_rng(0)
    prod = rng.integers(0, 256, (10, 7, 4), dtype=np.uint8)
    x, y = 60, 3  # the right part falls off a 64-px canvas
    out = np.asarray(placed_mask(Image.fromarray(prod, "RGBA"), {"x": x, "y": y}, (64, 48)))
    want = np.zeros((48, 64), np.uint8)
    want[y:y + 10, x:x + 4] = prod[:, :4, 3]
    assert out.shape == (48, 64) and np.array_equal(out, want)


def test_added_channel_starts_at_zero_so_outputs_do_not_move():
    base = _model()
    wide = with_mask_input(base).eval()
    assert wide.config.mask_input and not base.config.mask_input
    assert _first_conv(wide).in_channels == 4 and _first_conv(base).in_channels == 3
    x = _inputs()
    plain = {k: v for k, v in x.items() if k != "mask"}
    torch.testing.assert_close(wide(**x).logits, base(**plain).logits, rtol=1e-5, atol=1e-5)
    # the copied weights are the base's; the new channel's are zero
    w = _first_conv(wide).weight
    assert torch.equal(w[:, :3], _first_conv(base).weight) and not w[:, 3].any()


def test_mask_reaches_the_scene_images_and_not_the_cutout():
    model = with_mask_input(_model()).eval()
    with torch.no_grad():
        _first_conv(model).weight[:, 3].normal_()
    x = _inputs()
    other = dict(x, mask=torch.flip(x["mask"], dims=[-2]))
    assert not torch.allclose(model(**x).logits, model(**other).logits)
    imgs = [x["product"], x["generated"], x["depth"], x["salience"]]
    with torch.no_grad():
        a = model.encode_images(imgs, [None, x["mask"], x["mask"], x["mask"]])
        b = model.encode_images(imgs, [None, other["mask"], other["mask"], other["mask"]])
    assert torch.equal(a[0], b[0])  # the cutout's channel is empty whatever the mask
    assert all(not torch.allclose(p, q) for p, q in zip(a[1:], b[1:]))
    with pytest.raises(ValueError, match="pass mask="):
        model(**{k: v for k, v in x.items() if k != "mask"})


def test_mirror_average_mirrors_the_mask_with_the_images():
    model = with_mask_input(_model()).eval()
    with torch.no_grad():
        _first_conv(model).weight[:, 3].normal_()
    x = _inputs(seed=3)
    flipped = hflip_batch(x, torch.ones(3, dtype=torch.bool))
    assert torch.equal(flipped["mask"], x["mask"].flip(-1))
    want = (model(**x).probs + model(**flipped).probs) / 2
    model.config.mirror_average = True
    torch.testing.assert_close(model(**x).probs, want, rtol=1e-5, atol=1e-6)


def test_config_round_trip_and_validation():
    cfg = tiny_config(mask_input=True)
    assert RFNetConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))).mask_input
    d = tiny_config().to_dict()
    del d["mask_input"]  # a config written before the option existed
    assert RFNetConfig.from_dict(d).mask_input is False
    with pytest.raises(ValueError, match="mask_input is for the rfnet architecture"):
        tiny_config(mask_input=True, use_generated=False)


def test_dataset_gives_the_placed_mask_and_skips_records_without_a_placement(toy_dataset, tmp_path):
    data = tmp_path / "d"
    shutil.copytree(toy_dataset, data)
    recs = [json.loads(x) for x in (data / "manifest.jsonl").read_text().splitlines()]
    del recs[0]["source"]["placement"]
    (data / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    plain = RFDataset(data, label_set="rf1m6", image_size=32, maps=())
    masked = RFDataset(data, label_set="rf1m6", image_size=32, maps=(), mask_input=True)
    assert len(plain) == len(recs) and len(masked) == len(recs) - 1
    assert masked.skips.counts == {"no placement": 1}
    assert "mask" not in plain[0]
    s, item = masked.samples[0], masked[0]
    gen = Image.open(masked.base / s["image"])
    want = to_map_tensor(placed_mask(Image.open(masked.base / s["product"]), s["source"]["placement"], gen.size), 32)
    assert torch.equal(item["mask"], want)
    assert 0 < float(item["mask"].mean()) < 0.9  # the product covers part of the image, not all


def test_train_adds_the_mask_to_a_model_it_fine_tunes(toy_dataset, tmp_path):
    from test_train import FAST

    base = tmp_path / "base"
    train.train(train.parse_args(["--train_data", str(toy_dataset), "--output_dir", str(base), *FAST,
                                  "--max_train_steps", "1", "--validation_split", "none"]))
    out = tmp_path / "masked"
    train.train(train.parse_args(["--train_data", str(toy_dataset), "--output_dir", str(out), "--init_from",
                                  str(base), "--mask_input", "--max_train_steps", "1", "--hflip", "0.5",
                                  "--validation_split", "none", "--no_progress", "--report_to", "none",
                                  "--train_batch_size", "8"]))
    model = RFNet.from_pretrained(out)
    assert model.config.mask_input and _first_conv(model).in_channels == 4
    assert _first_conv(model).weight[:, 3].abs().sum() > 0  # the new channel learned
    assert "mask input" in (out / "MODEL_CARD.md").read_text()


def test_inspection_and_rfft_refuse_a_masked_inspector():
    from rfft.trainer import DifferentiableJudge

    model = with_mask_input(_model())
    with pytest.raises(InputError, match="--mask_input"):
        Inspector(model)
    with pytest.raises(ValueError, match="--mask_input"):
        DifferentiableJudge(model, None)


def test_rgb_backbone_weights_load_into_a_masked_encoder(tmp_path):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(1)
    ref = timm.create_model("resnet10t", pretrained=False, num_classes=0)
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(tmp_path / "rgb.safetensors"))
    model = _model(mask_input=True)
    model.load_pretrained_backbones(image_weights=tmp_path / "rgb.safetensors")
    w = _first_conv(model).weight
    want = next(m for m in ref.modules() if isinstance(m, torch.nn.Conv2d)).weight
    assert torch.equal(w[:, :3], want) and not w[:, 3].any()
