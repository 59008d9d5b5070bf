import os
import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "scripts"))  # dev helpers shared with the scripts (pack_loader)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def load_script(name: str):
    """scripts/NAME.py as a module, loaded from its file: the scripts are not a package, and a
    plain import by name could pick up another module of the same name on sys.path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to reach beyond loopback fails the test: nothing may download."""
    real = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "localhost", "::1") and "/" not in host:
            raise AssertionError(f"test tried to reach the network: {address}")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


TINY_CAPTION = dict(model_type="bert", vocab_size=120, hidden_size=32, num_hidden_layers=1,
                    num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)


def box_cutout(w, h, pad=5, colour=(200, 30, 40), alpha=255):
    """A product cutout for tests: a w x h rectangle of ``colour`` inside a transparent margin
    of ``pad`` pixels (an int, or (left/right, top/bottom))."""
    import numpy as np
    from PIL import Image

    px, py = (pad, pad) if isinstance(pad, int) else pad
    a = np.zeros((h + 2 * py, w + 2 * px, 4), np.uint8)
    a[py:py + h, px:px + w] = (*colour, alpha)
    return Image.fromarray(a, "RGBA")


def tiny_config(**kw):
    from rfnet.model import RFNetConfig

    base = dict(image_backbone="resnet10t", image_size=32, width=32, num_heads=4,
                num_attention_layers=1, caption_config=dict(TINY_CAPTION), dropout=0.0)
    base.update(kw)
    return RFNetConfig(**base)


def tiny_inputs(b=2, size=40, seed=0, vocab=120, length=7):
    import torch

    g = torch.Generator().manual_seed(seed)
    return dict(
        product=torch.rand(b, 3, size, size, generator=g),
        generated=torch.rand(b, 3, size, size, generator=g),
        depth=torch.rand(b, 1, size, size, generator=g),
        salience=torch.rand(b, 1, size, size, generator=g),
        input_ids=torch.randint(5, vocab, (b, length), generator=g),
        attention_mask=torch.ones(b, length, dtype=torch.long),
    )


@pytest.fixture(scope="session")
def toy_dataset(tmp_path_factory):
    """64 RF-Synth samples at 64 px (seed 5), the paper's five cases (no Unsuitable: the default
    label set has no place for it), split 70/15/15."""
    root = tmp_path_factory.mktemp("toy") / "rfsynth"
    write_small_rfsynth(root, 64, seed=5)
    return root


def write_small_rfsynth(root, n: int, seed: int):
    from rfsynth.make import make

    make(root, n, size=64, seed=seed, splits="train=0.7,val=0.15,test=0.15", workers=1, progress=False,
         priors="Available=0.4,Unsuitable=0,Space Mismatch=0.15,Size Mismatch=0.15,Indistinctiveness=0.15,"
                "Shape Hallucination=0.15")


@pytest.fixture(scope="session")
def tiny_generator(tmp_path_factory):
    """A tiny SD1.5-structured generator with random weights, saved as a diffusers folder."""
    from rfft import components as C
    from rfft.pipeline import save_generator
    from rfft.train_generator import build_prompt_tokenizer

    tok = build_prompt_tokenizer(["a vase on a marble table, beige wall, soft daylight, a cup beside it"])
    parts = C.random_generator("tiny", seed=0, tokenizer=tok)
    root = tmp_path_factory.mktemp("gen") / "tiny"
    save_generator(root, **parts)
    return root
