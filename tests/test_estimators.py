import pytest
import torch
from safetensors.torch import load_file

from rfnet import train_maps
from rfnet.errors import InputError
from rfnet.estimators import LearnedMapExtractor, MapEstimatorConfig, TinyUNet
from rfnet.extractors import make_extractor


@pytest.fixture(scope="module")
def synth_dataset(tmp_path_factory):
    from rfsynth.make import make

    root = tmp_path_factory.mktemp("synth")
    make(root, num_samples=40, size=64, seed=9, splits="train=0.8,val=0.2", workers=1, progress=False)
    return root


def test_tiny_unet_keeps_the_size():
    net = TinyUNet(8, 3)
    assert net(torch.rand(2, 3, 40, 56)).shape == (2, 1, 40, 56)


def test_save_load_roundtrip_and_make_extractor(tmp_path):
    torch.manual_seed(0)
    ex = LearnedMapExtractor(MapEstimatorConfig(kind="salience", input_size=32, base_channels=8)).eval()
    x = torch.rand(2, 3, 50, 50)
    ex.save_pretrained(tmp_path / "s")
    loaded = make_extractor("salience", str(tmp_path / "s"))
    assert isinstance(loaded, LearnedMapExtractor) and not loaded.is_fallback
    with torch.no_grad():
        assert torch.allclose(ex(x), loaded(x), atol=1e-6)
    out = loaded(x)
    assert out.shape == (2, 1, 50, 50) and 0 <= float(out.min()) and float(out.max()) <= 1
    with pytest.raises(ValueError, match="salience estimator, not a depth"):
        make_extractor("depth", str(tmp_path / "s"))
    # gradients reach the image, not the frozen weights
    xi = x.clone().requires_grad_(True)
    loaded(xi).sum().backward()
    assert xi.grad is not None and all(p.grad is None for p in loaded.parameters())


def test_half_precision_files_are_half_the_size(tmp_path):
    ex = LearnedMapExtractor(MapEstimatorConfig(base_channels=8))
    ex.save_pretrained(tmp_path / "a")
    ex.save_pretrained(tmp_path / "b", dtype=torch.float16)
    a = (tmp_path / "a" / "model.safetensors").stat().st_size
    b = (tmp_path / "b" / "model.safetensors").stat().st_size
    assert b < 0.6 * a
    assert all(v.dtype == torch.float16 for k, v in load_file(str(tmp_path / "b" / "model.safetensors")).items()
               if "num_batches" not in k)


def test_train_maps_learns_and_resumes_exactly(synth_dataset, tmp_path):
    common = ["--kind", "depth", "--train_data", str(synth_dataset), "--input_size", "32",
              "--base_channels", "8", "--batch_size", "8", "--epochs", "3"]
    train_maps.train_maps(train_maps.parse_args([*common, "--output_dir", str(tmp_path / "a")]))
    hist = __import__("json").loads((tmp_path / "a" / "train_history.json").read_text())["history"]
    assert hist[-1]["loss"] < hist[0]["loss"]
    # the same run, stopped after one epoch and resumed, ends with the same weights
    train_maps.train_maps(train_maps.parse_args([*common, "--output_dir", str(tmp_path / "b"),
                                                 "--epochs_this_run", "1"]))
    assert not (tmp_path / "b" / "model.safetensors").exists()
    train_maps.train_maps(train_maps.parse_args([*common, "--output_dir", str(tmp_path / "b"), "--resume"]))
    a, b = (load_file(str(tmp_path / d / "model.safetensors")) for d in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a resume with other arguments is refused
    with pytest.raises(InputError, match="--epochs 3"):
        train_maps.train_maps(train_maps.parse_args([*common[:-1], "5", "--output_dir", str(tmp_path / "b"), "--resume"]))
    assert make_extractor("depth", str(tmp_path / "a")).kind == "depth"


def test_train_maps_resumes_from_the_newest_intact_epoch(synth_dataset, tmp_path, caplog):
    """A damaged last checkpoint costs one epoch, not the run: the resume takes the one before
    and ends with the weights of an unbroken run. A fresh run in the same folder does not
    inherit the earlier run's checkpoints."""
    common = ["--kind", "salience", "--train_data", str(synth_dataset), "--input_size", "32", "--base_channels", "8",
              "--batch_size", "8", "--epochs", "3", "--max_samples", "40"]
    train_maps.train_maps(train_maps.parse_args([*common, "--output_dir", str(tmp_path / "a")]))
    train_maps.train_maps(train_maps.parse_args([*common, "--output_dir", str(tmp_path / "b"), "--epochs_this_run", "2"]))
    assert sorted(p.name for p in (tmp_path / "b").glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    with open(tmp_path / "b" / "checkpoint-2" / train_maps.STATE, "r+b") as f:
        f.truncate(1000)
    with caplog.at_level("INFO"):
        train_maps.train_maps(train_maps.parse_args([*common, "--output_dir", str(tmp_path / "b"), "--resume"]))
    assert "checkpoint-2: training_state.pt is truncated" in caplog.text and "resumed after epoch 1" in caplog.text
    a, b = (load_file(str(tmp_path / d / "model.safetensors")) for d in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a fresh run (no --resume) where a finished one left checkpoint-2 and -3: its own epochs count
    train_maps.train_maps(train_maps.parse_args([*common, "--output_dir", str(tmp_path / "a"), "--seed", "5",
                                                 "--epochs_this_run", "1"]))
    assert sorted(p.name for p in (tmp_path / "a").glob("checkpoint-*")) == ["checkpoint-1"]
