"""Inspect generated advertising images with a trained RFNet.

    python -m rfnet.inspect --model DIR --product cutout.png --image generated.png --caption "..."

:class:`Inspector` bundles what inspection needs (the model, its tokenizer, the depth and
salience extractors) and turns images into :class:`Verdict` objects. It is what the main job,
Recurrent Generation and the ComfyUI nodes call.

Garbage is never accepted: an image with NaN or inf pixels (a generator run with guidance nan),
a constant one (all black) or one smaller than MIN_SIDE pixels gets ``accepted=False`` and a
``note`` saying why; for non-finite input P(Available) is 0. The other images of the batch are
judged as usual.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from .badge import OUTSIDE
from .errors import InputError, cli_errors
from .extractors import Extractor, make_extractor
from .images import MIN_SIDE, clean, crop_to_alpha, to_batch
from .labels import AVAILABLE
from .ood import NOTE, alphas, edge_softness, features, model_size
from .ood import load as load_novelty

log = logging.getLogger("rfnet.inspect")
PROG = "python -m rfnet.inspect"

@dataclass
class Verdict:
    label: str  # the most probable class (never Available for non-finite input or output)
    p_available: float
    probs: dict[str, float]
    accepted: bool  # Available, or P(Available) >= threshold when one is set; never with a note
    note: str | None = None  # why the image could not be judged fairly: "constant image", ...

    def to_dict(self) -> dict:
        return {"label": self.label, "p_available": self.p_available, "accepted": self.accepted,
                "probs": self.probs, "note": self.note}


def _no_available(p: torch.Tensor) -> torch.Tensor:
    """``p`` (C,) with Available's mass removed and the defects renormalised (uniform when
    they have none): what a verdict on input that cannot be Available reports."""
    rest = torch.nan_to_num(p[1:].float(), nan=0.0, posinf=0.0, neginf=0.0).clamp_min(0)
    rest = rest / rest.sum() if float(rest.sum()) > 0 else torch.full_like(rest, 1 / len(rest))
    return torch.cat([rest.new_zeros(1), rest])


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
                 salience: Extractor | None = None, threshold: float | str | None = None, device="cpu",
                 dtype="auto"):
        if model.config.mask_input:
            raise InputError("this RFNet reads where the product stands (trained with --mask_input), which "
                             "inspection does not pass yet: measure it with rfnet.evaluate on RF datasets with "
                             "placements, or inspect with one trained without it (the embedded one is)")
        self.model = model.to(device).to_inference(resolve_dtype(dtype, device))
        self.tokenizer = tokenizer
        cfg = model.config
        self.depth = (depth or make_extractor("depth", "fallback")).to(device) if cfg.use_depth else None
        self.salience = (salience or make_extractor("salience", "fallback")).to(device) if cfg.use_salience else None
        # The model's calibrated threshold (rfnet.calibrate, in its config.json) unless one is given;
        # TOP_CLASS accepts when Available is the most probable class, whatever the config says.
        self.default_threshold = check_threshold(getattr(cfg, "acceptance_threshold", None))
        if threshold == TOP_CLASS:
            self.threshold = None
        else:
            self.threshold = check_threshold(threshold) if threshold is not None else self.default_threshold
        self.device = device
        self.novelty = None  # rfnet.ood's statistics of the training data, when the folder has them

    @classmethod
    def from_pretrained(cls, folder, depth: str | None = None, salience: str | None = None,
                        threshold: float | None = None, device="cpu", allow_download=False,
                        dtype="auto") -> "Inspector":
        """``depth``/``salience``: extractor specs (see extractors.make_extractor); by default
        the ones the model was trained with (its inspector.json), else the fallbacks."""
        from .loading import load_model_and_tokenizer

        model, tok = load_model_and_tokenizer(folder, allow_download)
        paired = Path(folder) / "inspector.json"
        if paired.exists() and (depth is None or salience is None):
            try:
                info = json.loads(paired.read_text(encoding="utf-8"))
                if not isinstance(info, dict):
                    raise ValueError(f"a JSON {type(info).__name__}, not an object")
            except ValueError as e:
                raise InputError(f"{paired} is not valid JSON ({e}); fix or delete it, or pass "
                                 "the depth and salience models explicitly") from None
            depth = depth or info.get("depth_model")
            salience = salience or info.get("salience_model")
        depth, salience = depth or "fallback", salience or "fallback"
        d = make_extractor("depth", depth, allow_download) if model.config.use_depth else None
        s = make_extractor("salience", salience, allow_download) if model.config.use_salience else None
        insp = cls(model, tok, d, s, threshold, device, dtype)

        insp.novelty = load_novelty(folder)
        return insp

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
        """(B, C) class probabilities; depth and salience are computed when not given. Images
        with non-finite pixels get P(Available) 0 (see :meth:`judge` for why each was refused)."""
        return self.judge(product, generated, captions, depth, salience)[0]

    @torch.no_grad()
    def judge(self, product, generated, captions, depth=None, salience=None):
        """((B, C) probabilities, [note or None per image]): the model's view and what makes
        an image unfit to be accepted whatever the model says."""
        if self.model.config.product_input == "placed":
            _check_placed(product, generated)  # the product where it stands: its margin is the layout
        else:
            product = crop_to_alpha(product)  # a cutout's margin is not the product (images.crop_to_alpha)
        g, notes = to_batch(generated, with_problems=True)
        # products go straight to the model's input size (their alphas are read from the
        # originals): products of several shapes are then each resized once, as one alone is
        p, p_notes = to_batch(product, with_problems=True, size=model_size(self.model))
        b = g.shape[0]
        if p.shape[0] not in (1, b):
            raise InputError(f"{p.shape[0]} product images for {b} generated images: "
                             "pass one product, or one per generated image")
        # A product needs no texture (a solid-colour box is fine) and may be small (a lipstick
        # placed on a 64 px canvas is 9 x 32 px; the model resizes it): only non-finite or empty
        # product pixels make the judgement unfair.
        p_notes = [n if n and ("non-finite" in n or "empty" in n) else None for n in p_notes]
        p_notes = p_notes * b if len(p_notes) == 1 else p_notes
        notes = [n or (f"product image: {pn}" if pn else None) for n, pn in zip(notes, p_notes)]
        if min(g.shape[-2:]) < MIN_SIDE:  # all tiny: the extractors get a workable size
            s = self.model.config.image_size
            g = torch.nn.functional.interpolate(g, size=(s, s), mode="bilinear", align_corners=False)
        g, p = g.to(self.device), p.to(self.device)
        if p.shape[0] == 1 and b > 1:
            p = p.expand(b, -1, -1, -1)
        if captions is None or isinstance(captions, str):
            captions = [captions or ""] * b
        captions = ["" if c is None else str(c) for c in captions]
        if len(captions) != b:
            raise InputError(f"{len(captions)} captions for {b} generated images: pass one caption, "
                             "or one per generated image")
        if self.novelty:  # unlike the training data: say so instead of a confident verdict
            if "edges" in self.novelty:  # hard matting (or a wide feather) reads as damage to it
                lo, hi = self.novelty["edges"].tolist()
                soft = [edge_softness(a) if a is not None else None for a in alphas(product)]
                soft = soft * b if len(soft) == 1 else soft
                notes = [n or (NOTE.format(what="the matting of the product's edges")
                               if e is not None and not lo <= e <= hi else None) for n, e in zip(notes, soft)]
            for kind, x in (("product", p), ("generated", g)):
                if kind in self.novelty:
                    far = self.novelty[kind].outside(features(self.model, x)).tolist()
                    what = "product" if kind == "product" else "image"
                    notes = [n or (NOTE.format(what=what) if f else None) for n, f in zip(notes, far)]
        if depth is None or salience is None:
            d, s = self.maps(g)
            depth = d if depth is None else depth
            salience = s if salience is None else salience
        kw = {"product": p, "generated": g}
        for name, m in (("depth", depth), ("salience", salience)):
            kw[name] = None if m is None else _maps(m, self.device, b, name, notes)
        if self.model.config.use_caption:
            enc = self.tokenizer(captions, padding=True, truncation=True,
                                 max_length=self.model.config.caption_max_length, return_tensors="pt")
            kw.update(input_ids=enc["input_ids"].to(self.device),
                      attention_mask=enc["attention_mask"].to(self.device))
        out = self.model(**kw)
        probs = out.probs.float().cpu()
        finite_out = torch.isfinite(out.logits.float()).all(-1).cpu()
        for i in range(b):
            if not finite_out[i] and notes[i] is None:
                notes[i] = "non-finite model output"
            if notes[i] and "non-finite" in notes[i]:  # the model never saw a real image
                probs[i] = _no_available(probs[i])
        return probs, notes

    def __call__(self, product, generated, captions, depth=None, salience=None) -> list[Verdict]:
        probs, notes = self.judge(product, generated, captions, depth, salience)
        return [self.verdict(p, n) for p, n in zip(probs, notes)]

    def verdict(self, p: torch.Tensor, note: str | None = None) -> Verdict:
        if not bool(torch.isfinite(p).all()):  # probabilities from elsewhere: same rule
            p, note = _no_available(p), note or "non-finite model output"
        label = self.labels[int(p.argmax())]
        if note is not None and label == AVAILABLE and not note.startswith(OUTSIDE):
            # an image that cannot be judged fairly (constant, tiny, non-finite) is never called
            # Available, whatever the model says: its label is the model's most probable defect
            label = self.labels[1 + int(p[1:].argmax())]
        pa = float(p[0])
        accepted = label == AVAILABLE if self.threshold is None else pa >= self.threshold
        return Verdict(label, pa, {n: float(v) for n, v in zip(self.labels, p)},
                       accepted and note is None, note)


def _sizes(images) -> list[tuple[int, int]]:
    """(height, width) of each image: PIL images, a list of them, or a (B, C, H, W) / (C, H, W) tensor."""
    if isinstance(images, torch.Tensor):
        return [tuple(images.shape[-2:])] * (images.shape[0] if images.dim() == 4 else 1)
    items = images if isinstance(images, (list, tuple)) else [images]
    return [s for x in items for s in (_sizes(x) if isinstance(x, torch.Tensor) else [(x.size[1], x.size[0])])]


def _check_placed(product, generated) -> None:
    """An inspector with product_input "placed" reads the product on a canvas of its generated
    image's size, where it stands in it; a bare cutout would be read as a product in the corner.
    Checked before the images are batched (batching resizes them to the first one's size)."""
    want, have = _sizes(generated), _sizes(product)
    if len(have) == 1:
        have = have * len(want)
    for i, (hw, size) in enumerate(zip(have, want)):
        if hw != size:
            raise InputError(
                f"this inspector reads the product where it stands in the image (product_input 'placed'): "
                f"pass product {i} on a canvas of its generated image's size ({size[1]}x{size[0]}), "
                f"transparent or white around it, not a {hw[1]}x{hw[0]} cutout; or judge with an inspector trained "
                "without --product_input placed (the embedded one is)")


TOP_CLASS = "top"  # a threshold that means: accept on the top class, not on P(Available)


def parse_threshold(text: str):
    """A command line's threshold (an argparse type): 'top', or a probability in [0, 1]."""
    if text == TOP_CLASS:
        return TOP_CLASS
    try:
        return check_threshold(text)
    except InputError as e:
        raise argparse.ArgumentTypeError(f"{e}, or 'top'") from None


def check_threshold(threshold):
    """None, or a number in [0, 1] (a NaN threshold would accept nothing, 2 everything)."""
    if threshold is None:
        return None
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise InputError(f"threshold must be a number in [0, 1], not {threshold!r}") from None
    if not math.isfinite(t) or not 0.0 <= t <= 1.0:
        raise InputError(f"threshold must be in [0, 1] (a probability of Available), not {threshold!r}")
    return t


def _maps(m, device, b: int | None = None, name: str = "map", notes: list | None = None) -> torch.Tensor:
    t = m if torch.is_tensor(m) else to_batch(m)
    if t.dim() == 3:
        t = t[:, None] if t.shape[0] != 1 else t[None]
    if t.shape[1] == 3:
        t = t.mean(1, keepdim=True)
    if b is not None and t.shape[0] != b:
        raise InputError(f"{t.shape[0]} {name} maps for {b} generated images: pass one per image")
    if notes is not None:  # a NaN map is as unfit as a NaN image
        for i, ok in enumerate(torch.isfinite(t.float()).flatten(1).all(1).tolist()):
            if not ok and notes[i] is None:
                notes[i] = f"non-finite pixels in the {name} map"
    return clean(t).to(device)


def main(argv=None) -> int:
    with cli_errors(PROG):
        return _main(argv)


def _main(argv) -> int:
    p = argparse.ArgumentParser(prog=PROG,
                                description="Verdicts of RFNet on generated advertising images.")
    p.add_argument("--rfnet", "--model", dest="model", default="embedded",
                   help="RFNet folder (config.json, model.safetensors, tokenizer/); default: the embedded one")
    p.add_argument("--product", required=True, help="product cutout (RGBA PNG, or RGB on white)")
    p.add_argument("--image", required=True, nargs="+", help="generated image(s)")
    p.add_argument("--caption", default="", help="the product's title")
    p.add_argument("--depth_model", default=None,
                   help="default: what the model was trained with (its inspector.json), else fallback")
    p.add_argument("--salience_model", default=None, help="as --depth_model")
    p.add_argument("--threshold", type=float, default=None,
                   help="accept when P(Available) reaches this (default: the model's calibrated threshold "
                        "from its config.json, else when Available is the verdict)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"],
                   help="auto: bfloat16 where the hardware runs it fast")
    p.add_argument("--allow_download", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from .dataformat import IMAGE_MODES, SampleError, open_image
    from .loading import check_model_folder

    # Every argument is checked before the model is loaded (seconds), each in one line.
    check_threshold(args.threshold)
    try:
        product = open_image(Path(args.product), IMAGE_MODES, "product image")
        images = [open_image(Path(i), IMAGE_MODES, "generated image") for i in args.image]
    except SampleError as e:
        raise InputError(str(e)) from None
    from .embedded import rfnet_folder

    model_dir = rfnet_folder(args.model)
    check_model_folder(model_dir, "--model")
    insp = Inspector.from_pretrained(model_dir, args.depth_model, args.salience_model,
                                     args.threshold, allow_download=args.allow_download,
                                     dtype=args.dtype)
    for path, v in zip(args.image, insp(product, images, args.caption)):
        print(json.dumps({"image": path, **v.to_dict()}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
