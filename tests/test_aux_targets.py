"""Auxiliary targets: the oracle's measures predicted beside the label (rfsynth.measures,
rfnet.train --aux_targets)."""
import json
import math
import shutil

import pytest
import torch
from safetensors.torch import load_file

from rfnet import train
from rfnet.model import RFNet, RFNetConfig
from rfsynth import rules
from rfsynth.catalog import CATEGORY_BY_NAME
from rfsynth.measures import AUX_TARGETS, annotate, targets

ALL = list(AUX_TARGETS)


def _record(oracle: dict, category="vase", h=20):
    return {"id": "x", "source": {"category": category, "placement": {"x": 0, "y": 0, "w": 10, "h": h},
                                  "oracle": oracle}}


def test_targets_are_measures_over_their_rule_threshold_clipped():
    rec = _record({"low_contrast_frac": 0.25, "clutter_frac": 0.9, "attached_frac": 0.01,
                   "supported_frac": 0.5, "median_gap_px": 1.12, "scene_coherence": 0.65})
    t = dict(zip(ALL, targets(rec, ALL, image_px=64)))
    assert t["low_contrast_frac"] == pytest.approx(0.25 / rules.LOW_CONTRAST_FRAC)
    assert t["clutter_frac"] == 2.0  # 0.9 / 0.2 = 4.5, clipped
    assert t["attached_frac"] == pytest.approx(0.01 / rules.HALLUCINATION_AREA)
    assert t["supported_frac"] == pytest.approx(1.0)  # at the threshold: 1
    assert t["gap"] == pytest.approx(1.12 / (rules.SUPPORT_GAP * 64))
    assert t["scene_coherence"] == pytest.approx(1.0)
    assert math.isnan(t["size_margin"])  # rule 5 measured nothing
    # the gap is in pixels: without the image side it is unknown
    assert math.isnan(targets(rec, ["gap"])[0])


def test_size_margin_is_signed_log_distance_from_the_band():
    lo, hi = CATEGORY_BY_NAME["vase"].height_cm
    tol = rules.SIZE_TOLERANCE
    inside = hi * tol / 1.2  # 1.2 times below the top of the band
    [m] = targets(_record({"implied_height_cm": inside}), ["size_margin"])
    assert m == pytest.approx(min(math.log(inside * tol / lo), math.log(1.2)) / math.log(tol))
    assert m > 0
    [out] = targets(_record({"implied_height_cm": lo / tol / 1.1}), ["size_margin"])
    assert out == pytest.approx(-math.log(1.1) / math.log(tol)) and out < 0
    [far] = targets(_record({"implied_height_cm": hi * 100}), ["size_margin"])
    assert far == -2.0
    [unknown] = targets(_record({"implied_height_cm": 30.0}, category="no such thing"), ["size_margin"])
    assert math.isnan(unknown)


def test_records_without_measures_give_nan_and_unknown_names_are_refused():
    assert all(math.isnan(v) for v in targets({"id": "a", "label": "Available"}, ALL, 64))
    assert all(math.isnan(v) for v in targets(_record({"supported_frac": None, "median_gap_px": "x"}),
                                              ["supported_frac", "gap"], 64))
    with pytest.raises(ValueError, match="unknown auxiliary target 'nope'"):
        targets(_record({}), ["nope"])


def test_masked_mse_skips_nan_targets():
    pred = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    target = torch.tensor([[0.0, float("nan")], [1.0, 5.0]])
    loss = train.masked_mse(pred, target)
    assert loss.item() == pytest.approx((1 + 4 + 1) / 3)
    loss.backward()
    assert pred.grad[0, 1] == 0  # the unmeasured target pulls nothing
    none = train.masked_mse(pred, torch.full((2, 2), float("nan")))
    assert none.item() == 0 and none.requires_grad


def test_config_round_trip_and_output():
    cfg = RFNetConfig(label_set="rf1m6", image_backbone="resnet10t", image_size=32, width=16, num_heads=2,
                      num_attention_layers=1, use_caption=False, aux_targets=("gap", "size_margin"))
    back = RFNetConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and back.aux_targets == ("gap", "size_margin")
    model = RFNet(cfg).eval()
    x = torch.rand(2, 3, 32, 32)
    out = model(product=x, generated=x, depth=x[:, :1], salience=x[:, :1])
    assert out.aux.shape == (2, 2) and torch.isfinite(out.aux).all()
    d = cfg.to_dict()
    del d["aux_targets"]  # a config written before aux targets existed
    assert RFNetConfig.from_dict(d).aux_targets == ()
    with pytest.raises(ValueError, match="rfnet architecture"):
        RFNetConfig(architecture="single_image", use_product=False, use_depth=False, use_salience=False,
                    use_caption=False, aux_targets=("gap",))


def _with_measures(src, dst):
    """toy_dataset's records with oracle measures of their own (RF-Synth's composed scenes have none)."""
    shutil.copytree(src, dst)
    lines = (dst / "manifest.jsonl").read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        r = json.loads(line)
        r["source"]["oracle"] = {"low_contrast_frac": (i % 7) / 10, "supported_frac": (i % 3) / 2,
                                 "median_gap_px": float(i % 5)}
        out.append(json.dumps(r))
    (dst / "manifest.jsonl").write_text("\n".join(out) + "\n")
    assert annotate(dst) == len(lines)
    first = json.loads((dst / "manifest.jsonl").read_text().splitlines()[0])
    assert first["aux_targets"] == {"low_contrast_frac": 0.0, "supported_frac": 0.0, "gap": 0.0}
    return dst


def test_aux_targets_train_the_shared_features(toy_dataset, tmp_path):
    from test_train import FAST

    def run(data, out, weight):
        train.train(train.parse_args(["--train_data", str(data), "--output_dir", str(out), *FAST,
                                      "--max_train_steps", "3", "--validation_split", "none",
                                      "--aux_targets", "low_contrast_frac", "supported_frac", "gap",
                                      "--aux_weight", str(weight)]))
        return load_file(str(out / "model.safetensors"))

    def encoder_change(a, b):
        keys = [k for k in a if k.startswith("image_encoder.") and "num_batches" not in k]
        return max((a[k] - b[k]).abs().max().item() for k in keys)

    # no targets in the records: refused, naming what to run
    with pytest.raises(train.InputError, match="rfsynth.measures"):
        run(toy_dataset, tmp_path / "none", 1.0)
    # with targets (unmeasured ones pull nothing: test_masked_mse_skips_nan_targets), their
    # gradient reaches the features the label head reads
    measured = _with_measures(toy_dataset, tmp_path / "measured")
    assert encoder_change(run(measured, tmp_path / "m0", 0.0), run(measured, tmp_path / "m1", 1.0)) > 1e-3
    model = RFNet.from_pretrained(tmp_path / "m1")
    assert model.config.aux_targets == ("low_contrast_frac", "supported_frac", "gap")
    assert "auxiliary targets" in (tmp_path / "m1" / "MODEL_CARD.md").read_text()
