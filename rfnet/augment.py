"""Training-time augmentation of RFNet batches.

Only a left-right mirror: every defect of the label sets (a product floating or sunk, a size
against its reference object, a low-contrast ring, something grown out of the product, a damaged
cutout) is the same defect in the mirror, and RF-Synth's captions name no side. Crops, scales and
colour jitter are left out on purpose: they change what Size Mismatch and Indistinctiveness
measure.
"""

from __future__ import annotations

import torch

# The inputs that show the scene: mirrored together, so that the product, the generated image,
# its depth and salience maps and the product's mask there (mask_input) still agree.
IMAGE_KEYS = ("product", "generated", "depth", "salience", "mask")


def flip_mask(n: int, p: float, seed: int, epoch: int, batch_index: int) -> torch.Tensor:
    """Which of ``n`` samples to mirror, each with probability ``p``. Drawn from its own
    generator keyed by (seed, epoch, batch), not the global one, so that a run resumed mid-epoch
    mirrors the same samples as the run it continues and the model's own random draws (dropout)
    are not shifted."""
    if p <= 0 or n == 0:
        return torch.zeros(n, dtype=torch.bool)
    g = torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 1_000_003 + batch_index)
    return torch.rand(n, generator=g) < p


def hflip_batch(batch: dict, mask: torch.Tensor) -> dict:
    """The batch with the samples in ``mask`` mirrored left-right in every image input; labels,
    captions and other entries are untouched. Returns a new dict; the input is not changed."""
    if not bool(mask.any()):
        return batch
    out = dict(batch)
    for key in IMAGE_KEYS:
        t = batch.get(key)
        if t is None:
            continue
        m = mask.to(t.device).view(-1, *([1] * (t.dim() - 1)))
        out[key] = torch.where(m, t.flip(-1), t)
    return out
