"""scripts/average_inspectors.py: the weighted mean of RFNets, checked against a direct computation."""
import json

import average_inspectors  # scripts/ is on the path (conftest)
import pytest
import torch
from conftest import tiny_config, tiny_inputs

from rfnet.errors import InputError
from rfnet.model import RFNet, load_model


def _save(tmp_path, name, seed, tokenizer_text="vocab", **kw):
    torch.manual_seed(seed)
    model = RFNet(tiny_config(use_caption=False, **kw))
    # Batch-norm statistics that differ between the members, as after training.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.num_batches_tracked.fill_(seed + 10)
    d = tmp_path / name
    model.save_pretrained(d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["acceptance_threshold"] = 0.5 + seed / 100  # each member's own calibration
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "tokenizer").mkdir()
    (d / "tokenizer" / "vocab.txt").write_text(tokenizer_text)
    (d / "MODEL_CARD.md").write_text(f"# m\n\n## Data it saw\n\n- `data/set{seed}`, split `train`\n\n## Training\n\nx\n")
    return d, model.state_dict()


def test_weighted_mean_matches_direct_computation(tmp_path):
    a, sa = _save(tmp_path, "a", 1)
    b, sb = _save(tmp_path, "b", 2)
    out = average_inspectors.average_inspectors([a, b], tmp_path / "avg", weights=[1, 3])
    got = load_model(out).state_dict()
    checked = 0
    for k, t in sa.items():
        if t.is_floating_point():
            torch.testing.assert_close(got[k], 0.25 * t + 0.75 * sb[k], rtol=1e-6, atol=1e-6)
            checked += 1
        else:  # batch counters: the first model's
            assert torch.equal(got[k], t)
    assert checked > 10
    # running statistics are averaged too, not copied from one member
    bn = next(k for k in sa if k.endswith("running_mean"))
    assert not torch.equal(got[bn], sa[bn]) and not torch.equal(got[bn], sb[bn])


def test_uniform_average_is_one_model_that_runs(tmp_path):
    folders = [_save(tmp_path, n, s)[0] for n, s in (("a", 1), ("b", 2), ("c", 3))]
    # a config written before an option existed (no key) is the same configuration
    old = json.loads((folders[0] / "config.json").read_text())
    del old["mask_input"]
    (folders[0] / "config.json").write_text(json.dumps(old))
    out = average_inspectors.average_inspectors(folders, tmp_path / "avg")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["acceptance_threshold"] is None  # the members' thresholds do not carry over
    assert (out / "tokenizer" / "vocab.txt").read_text() == "vocab"
    card = (out / "MODEL_CARD.md").read_text()
    assert all(f"data/set{s}" in card for s in (1, 2, 3)) and "weight 0.3333" in card
    # the same model averaged with itself is that model, output for output
    same = average_inspectors.average_inspectors([folders[1], folders[1]], tmp_path / "same")
    x = tiny_inputs(b=2, size=32)
    x.pop("input_ids"), x.pop("attention_mask")
    torch.testing.assert_close(load_model(same)(**x).logits, load_model(folders[1])(**x).logits)
    assert not torch.allclose(load_model(out)(**x).logits, load_model(folders[1])(**x).logits)


def test_refuses_what_cannot_be_averaged(tmp_path):
    a, _ = _save(tmp_path, "a", 1)
    b, _ = _save(tmp_path, "b", 2, width=64, num_heads=4)
    with pytest.raises(InputError, match="width"):
        average_inspectors.average_inspectors([a, b], tmp_path / "x")
    c, _ = _save(tmp_path, "c", 3, tokenizer_text="other vocab")
    with pytest.raises(InputError, match="tokenizer"):
        average_inspectors.average_inspectors([a, c], tmp_path / "x")
    d, _ = _save(tmp_path, "d", 4)
    for bad in ([1, 0], [float("inf"), 1], [float("nan"), 1]):
        with pytest.raises(InputError, match="positive weight"):
            average_inspectors.average_inspectors([a, d], tmp_path / "x", weights=bad)
    assert not (tmp_path / "x").exists()  # nothing half-written
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not an empty folder"):
        average_inspectors.average_inspectors([a, d], tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    with pytest.raises(InputError, match="not an empty folder"):
        average_inspectors.average_inspectors([a, d], tmp_path / "full" / "keep.txt")


def test_cli_exit_code_and_message(tmp_path, capsys):
    a, _ = _save(tmp_path, "a", 1)
    assert average_inspectors.main(["--rfnet", str(a), "--output_dir", str(tmp_path / "x")]) == 2
    assert "at least two models" in capsys.readouterr().err
