"""Extra differentiable rewards for RFFT (the paper's F_IR, eq. 9's optional term).

A reward is any callable ``reward(images, prompts) -> (B,)`` on decoded images (B, 3, H, W) in
0..1; higher is better. The paper used ImageReward, which needs downloaded weights; these two
run offline, chosen by name (``python -m rfft.train --extra_reward NAME``):

- ``contrast``: the image's standard deviation (here);
- ``wall_colour``: how close the wall is to the colour the prompt names, RF-Synth's reward
  (rfsynth/rewards.py).

:data:`REWARDS` maps each name to its function; a reward that lives outside rfft is imported
only when it is looked up, so that importing rfft (and ``rfft.train``) never loads RF-Synth.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Callable, Iterator, Sequence

import torch


def contrast(images: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
    return images.flatten(1).std(dim=1)


# name -> (module, function), in the order the CLI lists them
_WHERE = {"contrast": (__name__, "contrast"), "wall_colour": ("rfsynth.rewards", "wall_colour")}


class _Rewards(Mapping):
    """{name: reward function}; each function is imported when it is looked up."""

    def __getitem__(self, name: str) -> Callable:
        module, attr = _WHERE[name]
        return getattr(importlib.import_module(module), attr)

    def __iter__(self) -> Iterator[str]:
        return iter(_WHERE)

    def __len__(self) -> int:
        return len(_WHERE)


REWARDS: Mapping[str, Callable] = _Rewards()


def __getattr__(name: str):
    """``from rfft.rewards import wall_colour, wall_colour_named`` as before they moved to rfsynth."""
    if name in ("wall_colour", "wall_colour_named"):
        return getattr(importlib.import_module("rfsynth.rewards"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
