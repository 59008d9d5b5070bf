"""Left-right mirroring of training batches (rfnet.train --hflip)."""

import math

import pytest
import torch
from safetensors.torch import load_file

from rfnet import train
from rfnet.augment import flip_mask, hflip_batch
from rfnet.errors import InputError

FAST = ["--preset", "tiny", "--image_size", "32", "--width", "32", "--train_batch_size", "8",
        "--learning_rate", "1e-3", "--no_progress", "--report_to", "none", "--validation_split", "none"]


def _batch(n=4):
    g = torch.Generator().manual_seed(0)
    return {"product": torch.rand(n, 3, 5, 7, generator=g), "generated": torch.rand(n, 3, 5, 7, generator=g),
            "depth": torch.rand(n, 1, 5, 7, generator=g), "salience": torch.rand(n, 1, 5, 7, generator=g),
            "label": torch.arange(n), "caption": [f"c{i}" for i in range(n)], "input_ids": torch.ones(n, 3)}


def test_hflip_batch_mirrors_exactly_the_chosen_samples_in_every_image_input():
    b = _batch()
    mask = torch.tensor([True, False, True, False])
    out = hflip_batch(b, mask)
    for key in ("product", "generated", "depth", "salience"):
        for i in range(4):
            want = torch.flip(b[key][i], dims=[-1])
            want = want if mask[i] else b[key][i]
            assert torch.equal(out[key][i], want), (key, i)
        # column j of a mirrored sample is column W-1-j of the original
        assert torch.equal(out[key][0, :, :, 0], b[key][0, :, :, -1])
    assert out["label"] is b["label"] and out["caption"] is b["caption"] and out["input_ids"] is b["input_ids"]
    assert not torch.equal(out["generated"], b["generated"])  # the input batch is not changed in place
    assert hflip_batch(b, torch.zeros(4, dtype=torch.bool)) is b


def test_hflip_batch_skips_inputs_the_model_does_not_take():
    b = _batch()
    del b["depth"], b["product"]
    out = hflip_batch(b, torch.ones(4, dtype=torch.bool))
    assert "depth" not in out and "product" not in out
    assert torch.equal(out["salience"], b["salience"].flip(-1))


def test_flip_mask_is_a_function_of_seed_epoch_and_batch():
    a = flip_mask(64, 0.5, seed=0, epoch=1, batch_index=3)
    assert torch.equal(a, flip_mask(64, 0.5, seed=0, epoch=1, batch_index=3))
    others = [flip_mask(64, 0.5, 0, 1, 4), flip_mask(64, 0.5, 0, 2, 3), flip_mask(64, 0.5, 1, 1, 3)]
    assert all(not torch.equal(a, o) for o in others)
    assert not flip_mask(8, 0.0, 0, 0, 0).any() and flip_mask(8, 1.0, 0, 0, 0).all()
    share = torch.cat([flip_mask(256, 0.3, 0, 0, b) for b in range(40)]).float().mean().item()
    assert abs(share - 0.3) < 0.02
    # it does not draw from (and so does not shift) the global generator
    torch.manual_seed(5)
    x = torch.rand(1)
    torch.manual_seed(5)
    flip_mask(8, 0.5, 0, 0, 0)
    assert torch.equal(torch.rand(1), x)


def _train(data, out, *extra):
    train.train(train.parse_args(["--train_data", str(data), "--output_dir", str(out), *FAST, *extra]))
    return load_file(str(out / "model.safetensors"))


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


def test_hflip_training_resumes_exactly_and_changes_the_model(toy_dataset, tmp_path):
    common = ["--checkpointing_steps", "4", "--lr_decay_epoch", "1", "--hflip", "0.5"]
    a = _train(toy_dataset, tmp_path / "a", "--max_train_steps", "10", *common)
    _train(toy_dataset, tmp_path / "b", "--max_train_steps", "4", *common)
    (tmp_path / "b" / "model.safetensors").unlink()
    b = _train(toy_dataset, tmp_path / "b", "--max_train_steps", "10", "--resume_from_checkpoint", "latest", *common)
    assert _same(a, b)
    plain = _train(toy_dataset, tmp_path / "plain", "--max_train_steps", "10", *common[:-2])
    assert not _same(a, plain)  # the option is applied
    assert "mirrored left-right with probability 0.5" in (tmp_path / "a" / "MODEL_CARD.md").read_text()


@pytest.mark.parametrize("p", [-0.1, 1.5, math.nan])
def test_bad_hflip_is_refused_in_one_line(toy_dataset, tmp_path, p):
    with pytest.raises(InputError, match="--hflip is a probability"):
        train.check_args(train.parse_args(["--train_data", str(toy_dataset), "--output_dir", str(tmp_path),
                                           "--hflip", str(p)]))


# --- mirror_average: inspection averages each sample with its mirror ---------------------------

def _mirror_model(**kw):
    from conftest import tiny_config

    from rfnet.model import RFNet

    torch.manual_seed(0)
    return RFNet(tiny_config(**kw)).eval()


def test_mirror_average_is_the_mean_of_the_two_softmaxes_computed_directly():
    from conftest import tiny_inputs

    m = _mirror_model()
    x = tiny_inputs(3)
    plain = m(**x).probs
    mirrored = m(**hflip_batch(x, torch.ones(3, dtype=torch.bool))).probs
    assert not torch.allclose(plain, mirrored, atol=1e-4)  # a random model is not symmetric: the test can fail
    m.config.mirror_average = True
    out = m(**x)
    assert torch.allclose(out.probs, (plain + mirrored) / 2, atol=1e-6)
    assert torch.allclose(out.logits.softmax(-1), out.probs, atol=1e-6)  # softmax of the logits gives them back
    assert torch.equal(out.p_available, out.probs[:, 0])
    # a sample and its mirror now get the same verdict
    again = m(**hflip_batch(x, torch.ones(3, dtype=torch.bool))).probs
    assert torch.allclose(again, out.probs, atol=1e-6)


def test_mirror_average_is_off_while_training_and_refused_for_single_image():
    from conftest import tiny_config, tiny_inputs

    from rfnet.model import RFNetConfig

    m = _mirror_model()
    m.config.mirror_average = True
    m.train()
    torch.manual_seed(1)
    a = m(**tiny_inputs(2)).logits
    m.config.mirror_average = False
    torch.manual_seed(1)
    b = m(**tiny_inputs(2)).logits
    assert torch.equal(a, b)
    assert RFNetConfig.from_dict(tiny_config(mirror_average=True).to_dict()).mirror_average is True
    with pytest.raises(ValueError, match="mirror_average is for the rfnet architecture"):
        RFNetConfig(architecture="single_image", use_product=False, use_depth=False, use_salience=False,
                    use_caption=False, mirror_average=True)
