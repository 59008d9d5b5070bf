"""Inspect generated advertising images with a trained RFNet.

    python -m rfnet.inspect --model DIR --product cutout.png --image generated.png --caption "..."

:class:`Inspector` bundles what inspection needs (the model, its tokenizer, the depth and
salience extractors) and turns images into :class:`Verdict` objects. It is what the main job,
Recurrent Generation and the ComfyUI nodes call.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from .extractors import Extractor, make_extractor
from .labels import AVAILABLE

log = logging.getLogger("rfnet.inspect")


@dataclass
class Verdict:
    label: str  # the most probable class
    p_available: float
    probs: dict[str, float]
    accepted: bool  # Available, or P(Available) >= threshold when one is set

    @property
    def reason(self) -> str:
        return AVAILABLE if self.label == AVAILABLE else self.label

    def to_dict(self) -> dict:
        return {"label": self.label, "p_available": self.p_available, "accepted": self.accepted,
                "probs": self.probs}


def _to_batch(x, rgb: bool = True) -> torch.Tensor:
    """PIL images, a list of them, or a (B, C, H, W) / (C, H, W) tensor in 0..1."""
    from .data import to_rgb_tensor

    if torch.is_tensor(x):
        x = x if x.dim() == 4 else x[None]
        if rgb and x.shape[1] == 4:  # RGBA: composite on white, as products are shown
            a = x[:, 3:4]
            x = x[:, :3] * a + (1 - a)
        return x.float()
    items = x if isinstance(x, (list, tuple)) else [x]
    ts = [to_rgb_tensor(im) for im in items]
    if len({t.shape for t in ts}) > 1:
        size = ts[0].shape[-2:]
        ts = [torch.nn.functional.interpolate(t[None], size=size, mode="bilinear",
                                              align_corners=False, antialias=True)[0] for t in ts]
    return torch.stack(ts)


def resolve_dtype(dtype, device) -> torch.dtype:
    """'auto': bfloat16 where the hardware runs it fast (CUDA with bf16, CPUs with AMX or
    AVX512-BF16), else float32. Verdicts agree with float32 (docs/BENCHMARKS.md)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in ("float32", "fp32"):
        return torch.float32
    if dtype in ("bfloat16", "bf16"):
        return torch.bfloat16
    if dtype != "auto":
        raise ValueError(f"dtype must be auto, float32 or bfloat16, not {dtype!r}")
    if str(device).startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    fast = any(getattr(torch.cpu, f, lambda: False)() for f in
               ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))
    return torch.bfloat16 if fast else torch.float32


class Inspector:
    def __init__(self, model, tokenizer=None, depth: Extractor | None = None,
                 salience: Extractor | None = None, threshold: float | None = None, device="cpu",
                 dtype="auto"):
        self.model = model.to(device).to_inference(resolve_dtype(dtype, device))
        self.tokenizer = tokenizer
        cfg = model.config
        self.depth = (depth or make_extractor("depth", "fallback")).to(device) if cfg.use_depth else None
        self.salience = (salience or make_extractor("salience", "fallback")).to(device) if cfg.use_salience else None
        self.threshold = threshold
        self.device = device

    @classmethod
    def from_pretrained(cls, folder, depth: str | None = None, salience: str | None = None,
                        threshold: float | None = None, device="cpu", allow_download=False,
                        dtype="auto") -> "Inspector":
        """``depth``/``salience``: extractor specs (see extractors.make_extractor); by default
        the ones the model was trained with (its inspector.json), else the fallbacks."""
        from .evaluate import load_model_and_tokenizer

        model, tok = load_model_and_tokenizer(folder, allow_download)
        paired = Path(folder) / "inspector.json"
        if paired.exists() and (depth is None or salience is None):
            info = json.loads(paired.read_text())
            depth = depth or info.get("depth_model")
            salience = salience or info.get("salience_model")
        depth, salience = depth or "fallback", salience or "fallback"
        d = make_extractor("depth", depth, allow_download) if model.config.use_depth else None
        s = make_extractor("salience", salience, allow_download) if model.config.use_salience else None
        return cls(model, tok, d, s, threshold, device, dtype)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.model.config.labels

    @torch.no_grad()
    def maps(self, generated: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        g = generated.to(self.device)
        return (self.depth(g) if self.depth is not None else None,
                self.salience(g) if self.salience is not None else None)

    @torch.no_grad()
    def probabilities(self, product, generated, captions, depth=None, salience=None) -> torch.Tensor:
        """(B, C) class probabilities; depth and salience are computed when not given."""
        g = _to_batch(generated).to(self.device)
        p = _to_batch(product).to(self.device)
        if p.shape[0] == 1 and g.shape[0] > 1:
            p = p.expand(g.shape[0], -1, -1, -1)
        if isinstance(captions, str):
            captions = [captions] * g.shape[0]
        if depth is None or salience is None:
            d, s = self.maps(g)
            depth = d if depth is None else depth
            salience = s if salience is None else salience
        kw = dict(product=p, generated=g,
                  depth=None if depth is None else _maps(depth, self.device),
                  salience=None if salience is None else _maps(salience, self.device))
        if self.model.config.use_caption:
            enc = self.tokenizer(list(captions), padding=True, truncation=True,
                                 max_length=self.model.config.caption_max_length, return_tensors="pt")
            kw.update(input_ids=enc["input_ids"].to(self.device),
                      attention_mask=enc["attention_mask"].to(self.device))
        return self.model(**kw).probs.float().cpu()

    def __call__(self, product, generated, captions, depth=None, salience=None) -> list[Verdict]:
        probs = self.probabilities(product, generated, captions, depth, salience)
        return [self.verdict(p) for p in probs]

    def verdict(self, p: torch.Tensor) -> Verdict:
        label = self.labels[int(p.argmax())]
        pa = float(p[0])
        accepted = label == AVAILABLE if self.threshold is None else pa >= self.threshold
        return Verdict(label, pa, {n: float(v) for n, v in zip(self.labels, p)}, accepted)


def _maps(m, device) -> torch.Tensor:
    t = m if torch.is_tensor(m) else _to_batch(m)
    if t.dim() == 3:
        t = t[:, None] if t.shape[0] != 1 else t[None]
    if t.shape[1] == 3:
        t = t.mean(1, keepdim=True)
    return t.float().to(device)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m rfnet.inspect",
                                description="Verdicts of RFNet on generated advertising images.")
    p.add_argument("--model", default="embedded",
                   help="RFNet folder (config.json, model.safetensors, tokenizer/); default: the embedded one")
    p.add_argument("--product", required=True, help="product cutout (RGBA PNG, or RGB on white)")
    p.add_argument("--image", required=True, nargs="+", help="generated image(s)")
    p.add_argument("--caption", default="", help="the product's title")
    p.add_argument("--depth_model", default=None,
                   help="default: what the model was trained with (its inspector.json), else fallback")
    p.add_argument("--salience_model", default=None, help="as --depth_model")
    p.add_argument("--threshold", type=float, default=None,
                   help="accept when P(Available) reaches this (default: when Available is the verdict)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"],
                   help="auto: bfloat16 where the hardware runs it fast")
    p.add_argument("--allow_download", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from .data import IMAGE_MODES, SampleError, open_image

    try:
        product = open_image(Path(args.product), IMAGE_MODES, "product image")
        images = [open_image(Path(i), IMAGE_MODES, "generated image") for i in args.image]
    except SampleError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    model_dir = args.model
    if model_dir == "embedded":
        from .embedded import embedded_path

        model_dir = embedded_path("rfnet")
    insp = Inspector.from_pretrained(model_dir, args.depth_model, args.salience_model,
                                     args.threshold, allow_download=args.allow_download,
                                     dtype=args.dtype)
    for path, v in zip(args.image, insp(product, images, args.caption)):
        print(json.dumps({"image": path, **v.to_dict()}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
