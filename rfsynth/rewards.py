"""RF-Synth's differentiable reward for RFFT (``python -m rfft.train --extra_reward wall_colour``).

- ``wall_colour``: how close the wall (the top band of the image, RF-Synth's rule for 'wall') is
  to the colour the prompt names ("..., navy wall, ..."), as minus the mean absolute difference.
  Prompts without a known wall colour get 0 and no gradient. It is RF-Synth's stand-in for an
  aesthetic or prompt-following reward: the evaluation measures the same thing (wall colour match).

A reward is a callable ``reward(images, prompts) -> (B,)`` (see rfft/rewards.py, which names
this one and imports it only when it is chosen: rfft's core never loads RF-Synth).
"""
from __future__ import annotations

import re
from typing import Sequence

import torch

from . import rules
from .catalog import COLOURS, WALL_COLOURS

_WALL = re.compile(r"\b(" + "|".join(sorted(map(re.escape, WALL_COLOURS), key=len, reverse=True)) + r") wall\b")


def wall_colour_named(prompt: str) -> str | None:
    m = _WALL.search(prompt.lower())
    return m.group(1) if m else None


def wall_colour(images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
    band = images[:, :, : max(1, int(rules.WALL_BAND * images.shape[-2]))]
    out = []
    for img, prompt in zip(band, prompts):
        name = wall_colour_named(prompt)
        if name is None:
            out.append(img.sum() * 0)
            continue
        target = torch.tensor(COLOURS[name][0], dtype=img.dtype, device=img.device) / 255.0
        out.append(-(img - target[:, None, None]).abs().mean())
    return torch.stack(out)
