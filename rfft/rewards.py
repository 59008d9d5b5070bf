"""Extra differentiable rewards for RFFT (the paper's F_IR, eq. 9's optional term).

A reward is any callable ``reward(images, prompts) -> (B,)`` on decoded images (B, 3, H, W) in
0..1; higher is better. The paper used ImageReward, which needs downloaded weights; these two
run offline:

- ``contrast``: the image's standard deviation;
- ``wall_colour``: how close the wall (the top band of the image, RF-Synth's rule for 'wall') is
  to the colour the prompt names ("..., navy wall, ..."), as minus the mean absolute difference.
  Prompts without a known wall colour get 0 and no gradient. It is RF-Synth's stand-in for an
  aesthetic or prompt-following reward: the evaluation measures the same thing (wall colour match).
"""
from __future__ import annotations

import re
from typing import Callable, Sequence

import torch

from rfsynth import rules
from rfsynth.catalog import COLOURS, WALL_COLOURS

_WALL = re.compile(r"\b(" + "|".join(sorted(map(re.escape, WALL_COLOURS), key=len, reverse=True)) + r") wall\b")


def contrast(images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
    return images.flatten(1).std(dim=1)


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


REWARDS: dict[str, Callable] = {"contrast": contrast, "wall_colour": wall_colour}
