"""Small learned depth and salience estimators: the embedded, offline stand-ins for DPT and
U2-Net. A tiny U-Net maps an image to a single-channel map; it is trained on RF-Synth's
ground-truth maps with ``python -m rfnet.train_maps`` and used through the same extractor
interface as the real models (extractor_base.py; made from strings by extractors.make_extractor).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .extractor_base import Extractor, check_images


@dataclass
class MapEstimatorConfig:
    kind: str = "depth"  # depth or salience
    input_size: int = 64
    base_channels: int = 16
    levels: int = 3


def _block(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class TinyUNet(nn.Module):
    """A U-Net: ``levels`` downsamplings, channels doubling from ``base_channels``; one output
    channel of logits."""

    def __init__(self, base_channels: int = 16, levels: int = 3):
        super().__init__()
        chans = [base_channels * 2 ** i for i in range(levels + 1)]
        self.down = nn.ModuleList([_block(3, chans[0])] + [_block(chans[i], chans[i + 1]) for i in range(levels)])
        self.up = nn.ModuleList(_block(chans[i + 1] + chans[i], chans[i]) for i in reversed(range(levels)))
        self.head = nn.Conv2d(chans[0], 1, 1)

    def forward(self, x):
        skips = []
        for i, blk in enumerate(self.down):
            x = blk(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for blk in self.up:
            s = skips.pop()
            x = blk(torch.cat([F.interpolate(x, size=s.shape[-2:], mode="bilinear", align_corners=False), s], 1))
        return self.head(x)


class LearnedMapExtractor(Extractor):
    """A trained TinyUNet behind the extractor interface: images (B,3,H,W) in 0..1 to maps
    (B,1,H,W) in 0..1. Differentiable with respect to the image; its weights are frozen."""

    def __init__(self, config: MapEstimatorConfig, name: str = "learned"):
        super().__init__()
        self.config = config
        self.kind = config.kind
        self.name = name
        self.net = TinyUNet(config.base_channels, config.levels)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images)
        h, w = images.shape[-2:]
        s = self.config.input_size
        x = F.interpolate(images, size=(s, s), mode="bilinear", align_corners=False, antialias=True)
        y = torch.sigmoid(self.net((x - 0.5) / 0.25))
        return F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)

    def save_pretrained(self, directory, dtype=torch.float32) -> None:
        from .fileio import write_json
        from .weights import save_file_atomic

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().to(dtype) if v.is_floating_point() else v.detach().cpu()
                 for k, v in self.net.state_dict().items()}
        save_file_atomic(state, d / "model.safetensors", metadata={"model": "TinyUNet", "kind": self.kind})
        write_json(d / "config.json", {"_class_name": "LearnedMapExtractor", **dataclasses.asdict(self.config)})

    @classmethod
    def from_pretrained(cls, directory) -> "LearnedMapExtractor":
        from safetensors.torch import load_file

        from .weights import WeightsNotFoundError

        d = Path(directory)
        if not (d / "config.json").exists() or not (d / "model.safetensors").exists():
            raise WeightsNotFoundError(str(d / "model.safetensors"), [d],
                                       "train one with `python -m rfnet.train_maps`")
        cfg = json.loads((d / "config.json").read_text())
        cfg.pop("_class_name", None)
        from .weights import file_digest

        name = f"learned-{cfg['kind']}:{d.name}@{file_digest(d / 'model.safetensors')}"
        ex = cls(MapEstimatorConfig(**cfg), name=name)
        state = load_file(str(d / "model.safetensors"))
        ex.net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        return ex.eval().requires_grad_(False)


def is_estimator_folder(path) -> bool:
    p = Path(path) / "config.json"
    if not p.exists():
        return False
    try:
        return json.loads(p.read_text()).get("_class_name") == "LearnedMapExtractor"
    except (OSError, ValueError):
        return False
