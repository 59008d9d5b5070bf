"""python -m rfft.train_generator: a run stopped and resumed writes the same weights as an
unbroken one, bit for bit (the model card's promise)."""
import pytest
import torch
from safetensors.torch import load_file

from rfft.train_generator import main


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    from rfsynth.make import make

    root = tmp_path_factory.mktemp("gen_scenes")
    make(root, 24, size=64, seed=5, splits="train=1", workers=1, progress=False)
    return root


def _run(data, out, steps):
    assert main(["--data", str(data), "--output_dir", str(out), "--vae_steps", "2", "--vae_batch_size", "4",
                 "--max_train_steps", str(steps), "--train_batch_size", "4", "--lr_warmup_steps", "3",
                 "--checkpointing_steps", "2", "--export_every", "0"]) == 0


def test_a_resumed_run_writes_the_weights_of_an_unbroken_one(scenes, tmp_path):
    _run(scenes, tmp_path / "unbroken", 4)
    _run(scenes, tmp_path / "resumed", 2)  # stopped after the VAE and 2 diffusion steps
    _run(scenes, tmp_path / "resumed", 4)  # the latents now come from the cache file
    a = load_file(str(tmp_path / "unbroken" / "checkpoint-4" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "checkpoint-4" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    first = load_file(str(tmp_path / "resumed" / "checkpoint-2" / "model.safetensors"))
    assert any(not torch.equal(a[k], first[k]) for k in a if k.startswith("model."))  # steps 3-4 trained
