"""Finding and reading weight files, safely and offline.

Our own files are safetensors. Third-party checkpoints (``.pth``, ``.pt``, ``.bin``, ``.ckpt``)
are read only with ``torch.load(weights_only=True)``, which refuses pickled code. Nothing here
touches the network; hub downloads happen only where a caller passes ``allow_download=True``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import torch

PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
SAFE_SUFFIXES = (".safetensors",)

# Where users may put weights by hand, besides an explicit path. RF_MODELS_DIR may hold several
# folders separated by os.pathsep.
ENV_DIRS = "RF_MODELS_DIR"


class WeightsNotFoundError(FileNotFoundError):
    """A weight file is missing. The message names the file, every folder searched and where
    the file can be obtained."""

    def __init__(self, name: str, searched: Iterable[str | Path], where_to_get: str = "", advice: str = ""):
        self.name = name
        self.searched = [str(s) for s in searched]
        lines = [f"weights not found: {name}", "searched:"]
        lines += [f"  - {s}" for s in self.searched] or ["  (no folders)"]
        if where_to_get:
            lines.append(f"get it from: {where_to_get}")
        # ``advice`` speaks to whoever sees the message: a designer in ComfyUI needs a folder
        # under models/, not an environment variable
        lines.append(advice or f"put the file in one of these folders, pass its full path, or set {ENV_DIRS}.")
        super().__init__("\n".join(lines))


def search_dirs(extra: Iterable[str | Path] = ()) -> list[Path]:
    dirs = [Path(p) for p in extra]
    for p in os.environ.get(ENV_DIRS, "").split(os.pathsep):
        if p:
            dirs.append(Path(p))
    dirs.append(Path.cwd() / "models")
    seen, out = set(), []
    for d in dirs:
        key = str(d.resolve()) if d.exists() else str(d)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def find_file(name: str | Path, dirs: Iterable[str | Path] = (), where_to_get: str = "") -> Path:
    """``name`` as given if it exists, else the first ``dir/name`` that does."""
    p = Path(name).expanduser()
    if p.exists():
        return p
    tried = [p.resolve()]
    if not p.is_absolute():
        for d in search_dirs(dirs):
            cand = d / p
            if cand.exists():
                return cand
            tried.append(cand)
    raise WeightsNotFoundError(str(name), tried, where_to_get)


def file_digest(path: str | Path, n: int = 8) -> str:
    """The first ``n`` hex digits of a file's SHA-256: names caches after the weights' content,
    so that replacing a file never reuses maps computed with the old one."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:n]


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a weight file: safetensors directly, pickle-based files with weights_only."""
    path = Path(path)
    if not path.exists():
        raise WeightsNotFoundError(str(path), [path.parent])
    if path.suffix in SAFE_SUFFIXES:
        from safetensors.torch import load_file

        return load_file(str(path))
    if path.suffix in PICKLE_SUFFIXES:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
        # Training checkpoints often wrap the weights.
        for key in ("state_dict", "model", "module"):
            if isinstance(obj, dict) and isinstance(obj.get(key), dict):
                obj = obj[key]
        if not isinstance(obj, dict):
            raise ValueError(f"{path} holds a {type(obj).__name__}, not a state dict")
        return {k.removeprefix("module."): v for k, v in obj.items() if torch.is_tensor(v)}
    raise ValueError(
        f"{path}: unsupported weight file type {path.suffix!r}; "
        f"use one of {', '.join(SAFE_SUFFIXES + PICKLE_SUFFIXES)}"
    )


def save_file_atomic(tensors: dict[str, torch.Tensor], path: str | Path, metadata=None) -> None:
    """safetensors written to a temporary name beside the target, then renamed into place."""
    from safetensors.torch import save_file

    from .fileio import atomic_path

    with atomic_path(path) as tmp:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
