import math

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_config, tiny_inputs

from rfnet.model import FeatureFilter, RFNet, RFNetConfig, sincos_2d


def direct_ffm(ffm: FeatureFilter, e_o, e_c, pad):
    """Eq. 3 computed from the definitions: multi-head scaled dot-product attention written
    out, and the 1x1 convolutions applied with conv2d on the product's feature map."""
    attn = ffm.cross_attn
    w = e_o.shape[-1]
    heads = attn.num_heads
    wq, wk, wv = attn.in_proj_weight.split(w)
    bq, bk, bv = attn.in_proj_bias.split(w)
    q = (e_o @ wq.T + bq).view(e_o.shape[0], -1, heads, w // heads).transpose(1, 2)
    k = (e_c @ wk.T + bk).view(e_c.shape[0], -1, heads, w // heads).transpose(1, 2)
    v = (e_c @ wv.T + bv).view(e_c.shape[0], -1, heads, w // heads).transpose(1, 2)
    scores = q @ k.transpose(-1, -2) / math.sqrt(w // heads)
    scores = scores.masked_fill(pad[:, None, None, :], float("-inf"))
    ca = (scores.softmax(-1) @ v).transpose(1, 2).reshape(e_o.shape)
    ca = ca @ attn.out_proj.weight.T + attn.out_proj.bias

    side = int(math.isqrt(e_o.shape[1]))

    def conv1x1(lin, tokens):  # tokens (B, h*w, C) -> map (B, C, h, w) -> conv -> tokens
        m = tokens.transpose(1, 2).reshape(tokens.shape[0], w, side, side)
        out = F.conv2d(m, lin.weight[:, :, None, None], lin.bias)
        return out.flatten(2).transpose(1, 2)

    return conv1x1(ffm.conv_out, conv1x1(ffm.conv_attn, ca) * conv1x1(ffm.conv_product, e_o)) + e_o


def test_feature_filter_matches_equation_3():
    torch.manual_seed(0)
    ffm = FeatureFilter(width=16, num_heads=4).eval()
    for p in ffm.parameters():  # non-trivial biases too
        torch.nn.init.normal_(p, std=0.3)
    e_o = torch.randn(2, 9, 16)  # a 3x3 product map
    e_c = torch.randn(2, 5, 16)
    pad = torch.tensor([[False] * 5, [False, False, False, True, True]])
    got = ffm(e_o, e_c, pad)
    want = direct_ffm(ffm, e_o, e_c, pad)
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
    # the padding mask matters: without it the second sample changes
    assert not torch.allclose(ffm(e_o, e_c, None)[1], got[1], atol=1e-4)


def test_probabilities_sum_to_one_and_available_first():
    torch.manual_seed(0)
    m = RFNet(tiny_config()).eval()
    out = m(**tiny_inputs(3))
    assert out.probs.shape == (3, 5)
    assert torch.allclose(out.probs.sum(-1), torch.ones(3), atol=1e-6)
    assert torch.equal(out.p_available, out.probs[:, 0])
    assert torch.allclose(out.probs, out.logits.softmax(-1), atol=1e-6)


@pytest.mark.parametrize("label_set,n", [("paper5", 5), ("rf1m6", 6), ("coarse", 2)])
def test_label_sets(label_set, n):
    m = RFNet(tiny_config(label_set=label_set)).eval()
    assert m(**tiny_inputs(2)).probs.shape == (2, n)
    assert m.config.labels[0] == "Available"


@pytest.mark.parametrize("drop", ["product", "generated", "depth", "salience", "caption"])
def test_each_ablation_switch_removes_its_input(drop):
    torch.manual_seed(0)
    x = tiny_inputs(2, seed=1)
    y = tiny_inputs(2, seed=2)  # different values for every input
    changed = dict(x)
    if drop == "caption":
        changed["input_ids"] = y["input_ids"]
    else:
        changed[drop] = y[drop]

    full = RFNet(tiny_config()).eval()
    with torch.no_grad():
        # with the input in, changing it changes the output (so this test can fail)...
        assert not torch.allclose(full(**x).logits, full(**changed).logits, atol=1e-5)
        torch.manual_seed(0)
        ablated = RFNet(tiny_config(**{f"use_{drop}": False})).eval()
        # ...and with it out, the output no longer depends on it
        assert torch.allclose(ablated(**x).logits, ablated(**changed).logits, atol=1e-6)
        # and it is not needed at all
        without = dict(x)
        if drop == "caption":
            without.pop("input_ids"), without.pop("attention_mask")
        else:
            without.pop(drop)
        assert torch.allclose(ablated(**without).logits, ablated(**x).logits, atol=1e-6)


def test_missing_input_is_a_clear_error():
    m = RFNet(tiny_config()).eval()
    x = tiny_inputs(1)
    x.pop("depth")
    with pytest.raises(ValueError, match="depth"):
        m(**x)


def test_one_batched_encoder_pass():
    m = RFNet(tiny_config()).eval()
    calls = []
    orig = m.image_encoder.forward_features

    def spy(t):
        calls.append(t.shape[0])
        return orig(t)

    m.image_encoder.forward_features = spy
    m(**tiny_inputs(3))
    assert calls == [12]  # I_o, I_g, I_d, I_s of 3 samples in one pass


def test_single_channel_maps_are_grey_images():
    m = RFNet(tiny_config()).eval()
    d = torch.rand(2, 1, 32, 32)
    prepared = m._prepare(d)
    assert prepared.shape == (2, 3, 32, 32)
    # each channel is the same map under that channel's normalisation
    for c in range(3):
        want = (d[:, 0] - m.config.image_mean[c]) / m.config.image_std[c]
        assert torch.allclose(prepared[:, c], want, atol=1e-6)


def test_empty_caption_gives_finite_output():
    m = RFNet(tiny_config()).eval()
    x = tiny_inputs(2)
    x["attention_mask"] = torch.zeros_like(x["attention_mask"])
    assert torch.isfinite(m(**x).probs).all()


def test_save_and_rebuild_from_json_and_safetensors(tmp_path):
    torch.manual_seed(3)
    m = RFNet(tiny_config(label_set="rf1m6", use_depth=False, num_filter_layers=2)).eval()
    m.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    m2 = RFNet.from_pretrained(tmp_path)
    assert m2.config == m.config
    x = tiny_inputs(2)
    assert torch.equal(m(**x).logits, m2(**x).logits)


def test_config_rejects_unknown_keys_and_empty_models():
    with pytest.raises(ValueError, match="unknown RFNet config keys"):
        RFNetConfig.from_dict({"widht": 3})
    with pytest.raises(ValueError, match="at least one input"):
        RFNetConfig(use_product=False, use_generated=False, use_depth=False, use_salience=False,
                    use_caption=False)


def test_sincos_position_code_distinguishes_positions():
    p = sincos_2d(3, 4, 16)
    assert p.shape == (12, 16)
    assert torch.cdist(p, p).add(torch.eye(12) * 10).min() > 0.1


@pytest.mark.parametrize("h, w, dim", [(1, 1, 4), (3, 4, 16), (8, 8, 64), (5, 11, 128)])
def test_sincos_is_bit_equal_to_the_formula_the_trained_models_learned_with(h, w, dim):
    # MAE's code written out: columns sin(y w), cos(y w), sin(x w), cos(x w), w = 1e4^(-i/(dim/4))
    q = dim // 4
    omega = 1.0 / (10000 ** (torch.arange(q, dtype=torch.float32) / q))
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    oy, ox = ys.reshape(-1, 1) * omega, xs.reshape(-1, 1) * omega
    assert torch.equal(sincos_2d(h, w, dim), torch.cat([oy.sin(), oy.cos(), ox.sin(), ox.cos()], dim=1))


def test_bf16_inference_agrees_with_fp32():
    torch.manual_seed(0)
    m32 = RFNet(tiny_config()).eval()
    torch.manual_seed(0)
    m16 = RFNet(tiny_config()).to_inference(torch.bfloat16)
    x = tiny_inputs(4)
    with torch.no_grad():
        p32, p16 = m32(**x).probs, m16(**x).probs
    assert p16.dtype == torch.float32
    assert (p32 - p16).abs().max() < 0.05


def test_paper_config_without_downloads(tmp_path):
    """ResNet50 at 384, a Chinese-RoBERTa-shaped caption encoder, width 384, 8 heads, N1=1,
    N2=3: built from config with random weights, rebuilt from its files."""
    torch.manual_seed(0)
    cfg = RFNetConfig()
    assert (cfg.image_backbone, cfg.image_size, cfg.width, cfg.num_heads,
            cfg.num_filter_layers, cfg.num_attention_layers) == ("resnet50", 384, 384, 8, 1, 3)
    m = RFNet(cfg).eval()
    g = torch.Generator().manual_seed(0)
    x = dict(product=torch.rand(2, 3, 384, 384, generator=g), generated=torch.rand(2, 3, 384, 384, generator=g),
             depth=torch.rand(2, 1, 384, 384, generator=g), salience=torch.rand(2, 1, 384, 384, generator=g),
             input_ids=torch.randint(100, 21128, (2, 16), generator=g))
    with torch.no_grad():
        out = m(**x)
    assert out.probs.shape == (2, 5)
    assert torch.allclose(out.probs.sum(-1), torch.ones(2), atol=1e-5)
    m.save_pretrained(tmp_path)
    m2 = RFNet.from_pretrained(tmp_path)
    with torch.no_grad():
        assert torch.equal(m2(**x).probs, out.probs)
