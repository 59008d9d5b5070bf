"""The embedded defaults: small models trained on RF-Synth and shipped with the pack, so that
inspection runs offline on a fresh machine. Each folder has its weights (safetensors), its
config.json and a MODEL_CARD.md with the command that reproduced it and its figures."""
from __future__ import annotations

from pathlib import Path

EMBEDDED_DIR = Path(__file__).resolve().parent / "embedded"
NAMES = {"rfnet": "rfnet-synth-tiny", "depth": "depth-synth-tiny", "salience": "salience-synth-tiny"}


def embedded_path(kind: str) -> Path:
    """The folder of the embedded model of ``kind`` (rfnet, depth or salience)."""
    from .weights import WeightsNotFoundError

    if kind not in NAMES:
        raise ValueError(f"no embedded model of kind {kind!r}; kinds: {', '.join(NAMES)}")
    path = EMBEDDED_DIR / NAMES[kind]
    if not (path / "config.json").exists():
        raise WeightsNotFoundError(
            str(path / "config.json"), [EMBEDDED_DIR],
            "the pack's repository (rfnet/embedded/); its MODEL_CARD.md has the command that trains it")
    return path


def rfnet_folder(spec: str | Path) -> Path:
    """An RFNet given on a command line: 'embedded' is the pack's default inspector, anything
    else a folder."""
    return embedded_path("rfnet") if str(spec) == "embedded" else Path(spec)


def export(src: str | Path, kind: str, dtype: str = "float16") -> Path:
    """Copy a trained model folder into rfnet/embedded/ with its weights in ``dtype``: the
    config, the tokenizer and inspector.json (RFNet) and the safetensors; the model card is
    written by hand and kept."""
    import shutil

    import torch
    from safetensors.torch import load_file

    from .fileio import atomic_dir
    from .weights import save_file_atomic

    src = Path(src)
    dst = EMBEDDED_DIR / NAMES[kind]
    card = (dst / "MODEL_CARD.md").read_text() if (dst / "MODEL_CARD.md").exists() else None
    with atomic_dir(dst) as tmp:
        shutil.copy2(src / "config.json", tmp / "config.json")
        for extra in ("inspector.json", "ood.safetensors"):  # its pairing, its training data's statistics
            if (src / extra).exists():
                shutil.copy2(src / extra, tmp / extra)
        if (src / "tokenizer").exists():
            shutil.copytree(src / "tokenizer", tmp / "tokenizer")
        state = load_file(str(src / "model.safetensors"))
        dt = getattr(torch, dtype)
        state = {k: v.to(dt) if v.is_floating_point() else v for k, v in state.items()}
        save_file_atomic(state, tmp / "model.safetensors", metadata={"format": "pt", "source": src.name})
        if card is not None:
            (tmp / "MODEL_CARD.md").write_text(card)
    return dst


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m rfnet.embedded",
                                description="Copy a trained model into the embedded defaults (fp16).")
    p.add_argument("--kind", choices=sorted(NAMES), required=True)
    p.add_argument("--src", required=True, help="the trained model's folder")
    p.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    a = p.parse_args(argv)
    from .errors import cli_errors

    with cli_errors("python -m rfnet.embedded"):
        print(export(a.src, a.kind, a.dtype))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
