"""Depth and salience extractors behind one small interface.

An extractor is called on images (B, 3, H, W) in 0..1 and returns maps (B, 1, H, W) in 0..1
at the same size. It has a ``name`` (used in logs and cache folders) and ``is_fallback``.
Conventions: depth is relative, near is bright (as DPT and Depth Anything predict inverse
depth); salience is 1 on the salient object.

- :class:`TransformersDepth`: any transformers depth-estimation model (DPT as in the paper,
  Depth Anything), from a local folder, or a hub id when downloads are allowed.
- :class:`U2NetSalience`: U^2-Net (architecture in u2net.py) with weights from a local file.
- :class:`GroundPlaneDepth` and :class:`SpectralResidualSalience`: fallbacks that need no
  weights. They are named ``fallback:...`` everywhere they appear, because they are weak: the
  depth fallback knows nothing of the image.

:func:`make_extractor` turns the strings of the command line and the nodes into extractors.
The interface (:class:`Extractor`) is in extractor_base.py, shared with estimators.py.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .extractor_base import Extractor, check_images
from .weights import WeightsNotFoundError, find_file, load_state_dict


def _minmax(x: torch.Tensor) -> torch.Tensor:
    """Per-image normalisation of (B, 1, H, W) maps to 0..1."""
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    return (x - lo) / (hi - lo).clamp_min(1e-8)


class TransformersDepth(Extractor):
    """A transformers depth-estimation model; preprocessing in torch, so gradients can flow."""

    kind = "depth"

    def __init__(self, model: nn.Module, input_size: int = 384, mean=(0.5, 0.5, 0.5),
                 std=(0.5, 0.5, 0.5), name: str = "depth"):
        super().__init__()
        # Frozen: gradients may flow through to the image (RFFT), never into these weights.
        self.model = model.eval().requires_grad_(False)
        self.input_size = input_size
        self.name = name
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_pretrained(cls, name_or_path: str, allow_download: bool = False) -> "TransformersDepth":
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        local = Path(name_or_path).expanduser()
        if not local.exists() and not allow_download:
            raise WeightsNotFoundError(
                name_or_path, [local.resolve()],
                f"https://huggingface.co/{name_or_path} (download the folder, e.g. with "
                "`huggingface-cli download`), or allow downloads",
            )
        src = str(local) if local.exists() else name_or_path
        model = AutoModelForDepthEstimation.from_pretrained(src, local_files_only=not allow_download)
        size, mean, std = 384, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
        try:
            proc = AutoImageProcessor.from_pretrained(src, local_files_only=not allow_download)
            s = getattr(proc, "size", None) or {}
            size = int(s.get("height") or s.get("shortest_edge") or size) if isinstance(s, dict) else int(s)
            mean, std = tuple(proc.image_mean), tuple(proc.image_std)
        except (OSError, ValueError, AttributeError, TypeError):
            pass  # a folder without preprocessor_config.json: DPT's defaults
        # Depth Anything and DPT want sides that are multiples of the patch size (14 or 16).
        patch = getattr(getattr(model.config, "backbone_config", None), "patch_size", None) or 16
        size = max(patch, round(size / patch) * patch)
        return cls(model, size, mean, std, name=f"{model.config.model_type}:{name_or_path}")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images)
        h, w = images.shape[-2:]
        x = F.interpolate(images, size=(self.input_size, self.input_size), mode="bilinear",
                          align_corners=False, antialias=True)
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        d = self.model(pixel_values=x).predicted_depth
        if d.dim() == 3:
            d = d[:, None]
        d = F.interpolate(d, size=(h, w), mode="bilinear", align_corners=False)
        return _minmax(d)


class U2NetSalience(Extractor):
    """U^2-Net salience at 320x320 with ImageNet normalisation, as the authors' test script."""

    kind = "salience"

    def __init__(self, model: nn.Module, input_size: int = 320, name: str = "u2net"):
        super().__init__()
        self.model = model.eval().requires_grad_(False)  # frozen, as above
        self.input_size = input_size
        self.name = name
        self.register_buffer("mean", torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_file(cls, path: str | Path, variant: str | None = None) -> "U2NetSalience":
        from .u2net import U2Net

        path = find_file(
            path, where_to_get="https://github.com/xuebinqin/U-2-Net (u2net.pth or u2netp.pth; "
            "the README links the files)",
        )
        if variant is None:
            variant = "u2netp" if "u2netp" in path.name.lower() else "u2net"
        model = U2Net(variant)
        state = load_state_dict(path)
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise ValueError(f"{path} is not a {variant} checkpoint: {str(e)[:300]}") from None
        from .weights import file_digest

        return cls(model, name=f"{variant}:{path.name}@{file_digest(path)}")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images)
        h, w = images.shape[-2:]
        x = F.interpolate(images, size=(self.input_size, self.input_size), mode="bilinear",
                          align_corners=False, antialias=True)
        s = self.model((x - self.mean.to(x.dtype)) / self.std.to(x.dtype))
        s = F.interpolate(s, size=(h, w), mode="bilinear", align_corners=False)
        return _minmax(s)


class GroundPlaneDepth(Extractor):
    """Fallback depth with no weights: the prior of a product photo's ground plane, near at the
    bottom of the frame and far at the top. It ignores the image's content."""

    kind = "depth"
    is_fallback = True
    name = "fallback:ground-plane"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images)
        b, _, h, w = images.shape
        ramp = torch.linspace(0.0, 1.0, h, device=images.device, dtype=images.dtype)
        return ramp.view(1, 1, h, 1).expand(b, 1, h, w).contiguous()


class SpectralResidualSalience(Extractor):
    """Fallback salience with no weights: the spectral residual of Hou and Zhang (CVPR 2007).
    The log amplitude spectrum minus its local mean, back to the image domain with the
    original phase, squared and blurred. Differentiable."""

    kind = "salience"
    is_fallback = True
    name = "fallback:spectral-residual"

    def __init__(self, work_size: int = 64):
        super().__init__()
        self.work_size = work_size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images)
        h, w = images.shape[-2:]
        n = self.work_size
        g = images.float().mean(1, keepdim=True)
        g = F.interpolate(g, size=(n, n), mode="bilinear", align_corners=False, antialias=True)
        spec = torch.fft.fft2(g)
        log_amp = torch.log(spec.abs() + 1e-8)
        phase = torch.angle(spec)
        residual = log_amp - F.avg_pool2d(log_amp, 3, stride=1, padding=1, count_include_pad=False)
        sal = torch.fft.ifft2(torch.exp(torch.complex(residual, phase))).abs() ** 2
        sal = _gaussian_blur(sal, sigma=n / 32)
        sal = F.interpolate(sal, size=(h, w), mode="bilinear", align_corners=False)
        return _minmax(sal).to(images.dtype)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, int(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t ** 2) / (2 * sigma ** 2))
    k = k / k.sum()
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))


def make_extractor(kind: str, spec: str | None, allow_download: bool = False) -> Extractor:
    """An extractor from a string.

    depth:    "fallback" | "embedded" | "<estimator folder>" | "<transformers folder or hub id>"
              (DPT, Depth Anything, ...)
    salience: "fallback" | "embedded" | "<estimator folder>" | "<u2net.pth or u2netp.pth file>"
              | "u2net:<file>" | "u2netp:<file>"
    ("embedded" and estimator folders: the small learned estimators of estimators.py)
    """
    if kind not in ("depth", "salience"):
        raise ValueError(f"kind must be depth or salience, not {kind!r}")
    if spec is None or spec == "fallback":
        return GroundPlaneDepth() if kind == "depth" else SpectralResidualSalience()
    from .estimators import LearnedMapExtractor, is_estimator_folder

    if spec == "embedded":
        from .embedded import embedded_path

        spec = str(embedded_path(kind))
    if is_estimator_folder(spec):
        ex = LearnedMapExtractor.from_pretrained(spec)
        if ex.kind != kind:
            raise ValueError(f"{spec} is a {ex.kind} estimator, not a {kind} one")
        return ex
    if kind == "depth":
        return TransformersDepth.from_pretrained(spec, allow_download=allow_download)
    variant = None
    if spec.split(":", 1)[0] in ("u2net", "u2netp") and ":" in spec:
        variant, spec = spec.split(":", 1)
    return U2NetSalience.from_file(spec, variant)
