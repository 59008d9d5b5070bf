"""What every depth and salience extractor is: the interface that extractors.py (the real
models and the fallbacks) and estimators.py (the small learned ones) both build on.

An extractor is called on images (B, 3, H, W) in 0..1 and returns maps (B, 1, H, W) in 0..1
at the same size. It has a ``name`` (used in logs and cache folders), a ``kind`` ("depth" or
"salience") and ``is_fallback``.
"""
from __future__ import annotations

import torch
from torch import nn


def check_images(images: torch.Tensor) -> None:
    """Refuse anything but a (B, 3, H, W) batch, naming the shape it got."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"extractors take (B, 3, H, W) images in 0..1, got {tuple(images.shape)}")


class Extractor(nn.Module):
    name: str = "extractor"
    kind: str = ""  # "depth" or "salience"
    is_fallback: bool = False

    def extra_repr(self) -> str:
        return self.name
