"""Inspection nodes: depth and salience maps, and RFNet's verdict with a badge on a preview and
on the node itself (web/reliable_ad.js draws it)."""
from __future__ import annotations

import json
import uuid

import torch
from PIL import Image

from . import host

host.require("timm", "transformers", "safetensors", "cv2")

from rfnet.badge import badge, shown_label  # noqa: E402  (after the check; host put the engine on the path)


def save_previews(images: list[Image.Image], prefix: str = "rf_inspect") -> list[dict]:
    """Into ComfyUI's temp folder, as its PreviewImage does: the UI shows them on the node."""
    from rfnet.fileio import save_image

    tmp = host.temp_dir()
    out = []
    for im in images:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}.png"
        save_image(tmp / name, im)
        out.append({"filename": name, "subfolder": "", "type": "temp"})
    return out


class DepthMap:
    DESCRIPTION = "Depth of an image (near is bright), with a depth model from Load Depth Model (RF)."
    CATEGORY = "Reliable AD/maps"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("depth",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "depth_model": ("RF_DEPTH_MODEL",)}}

    @torch.no_grad()
    def run(self, image, depth_model):
        dev = host.torch_device()
        m = depth_model.to(dev)(image.movedim(-1, 1).to(dev).float())
        return (m.float().repeat(1, 3, 1, 1).movedim(1, -1).to(host.intermediate_device()),)


class SalienceMap:
    DESCRIPTION = "Salience of an image (what draws the eye is bright), as an IMAGE and a MASK."
    CATEGORY = "Reliable AD/maps"
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("salience", "mask")
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "salience_model": ("RF_SALIENCE_MODEL",)}}

    @torch.no_grad()
    def run(self, image, salience_model):
        dev = host.torch_device()
        m = salience_model.to(dev)(image.movedim(-1, 1).to(dev).float()).float().to(host.intermediate_device())
        return (m.repeat(1, 3, 1, 1).movedim(1, -1), m[:, 0])


def inspect_images(rfnet, product: list[Image.Image], images: torch.Tensor, caption: str,
                   depth: torch.Tensor | None = None, salience: torch.Tensor | None = None, threshold: float = 0.0):
    """Verdicts for an IMAGE batch; RFNet and its estimators go to ComfyUI's device for the call.
    Bad input is an InputError (ComfyUI shows it on the node); a NaN, black or tiny image in the
    batch is not: it gets a rejected verdict with a note, the others their usual ones."""
    from rfnet.errors import InputError
    from rfnet.inspect import check_threshold

    threshold = check_threshold(threshold)  # a prompt sent by API can carry any number
    if images.dim() != 4 or images.shape[0] == 0:
        raise InputError(f"RFNet Inspect needs a batch of images [B, H, W, C], got shape {tuple(images.shape)}")
    if not product:
        raise InputError("RFNet Inspect needs a product image")
    for name, m in (("depth", depth), ("salience", salience)):
        if m is not None and (m.dim() != 4 or m.shape[0] != images.shape[0]):
            raise InputError(f"{name} has shape {tuple(m.shape)}; wire one {name} map per image "
                             f"of the batch ({images.shape[0]}), or leave it unwired")
    managed = getattr(rfnet, "_rf_managed", None)
    if managed is None:
        mods = torch.nn.ModuleList([m for m in (rfnet.model, rfnet.depth, rfnet.salience) if m is not None])
        managed = rfnet._rf_managed = host.ManagedModule(mods)
    dev = managed.load()
    rfnet.device = dev
    # 0 (or None): the model's calibrated threshold, else Available must win
    rfnet.threshold = threshold if threshold else getattr(rfnet, "default_threshold", None)
    g = images.movedim(-1, 1).float().to(dev)
    prod = product if len(product) in (1, g.shape[0]) else product[:1]

    def to_map(t):
        return None if t is None else t.movedim(-1, 1).float().mean(1, keepdim=True).to(dev)

    return rfnet(prod, g, [caption] * g.shape[0], depth=to_map(depth), salience=to_map(salience))


class RFNetInspect:
    DESCRIPTION = ("Inspects generated images with RFNet: Available, or which defect (Space Mismatch, Size "
                   "Mismatch, Indistinctiveness, Shape Hallucination, Unsuitable). Depth and salience are "
                   "computed when not wired. Shows each image with a green or red badge.")
    CATEGORY = "Reliable AD"
    RETURN_TYPES = ("STRING", "FLOAT", "BOOLEAN", "STRING")
    RETURN_NAMES = ("verdict", "p_available", "accepted", "probabilities")
    OUTPUT_IS_LIST = (False, False, False, False)
    OUTPUT_NODE = True
    FUNCTION = "inspect"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "rfnet": ("RFNET",),
            "product": ("IMAGE", {"tooltip": "the product cutout (or photo on white)"}),
            "images": ("IMAGE", {"tooltip": "generated advertising images (a batch is fine)"}),
            "caption": ("STRING", {"default": "", "multiline": True, "tooltip": "the product's title, as on the shop page"}),
            "threshold": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                    "tooltip": "0: the RFNet's calibrated threshold (from its config.json), or, without one, accept when Available is the most probable class; else accept when P(Available) >= this"}),
        }, "optional": {
            "product_mask": ("MASK", {"tooltip": "Load Image's MASK for the product cutout"}),
            "depth": ("IMAGE",), "salience": ("IMAGE",),
        }}

    def inspect(self, rfnet, product, images, caption, threshold, product_mask=None, depth=None, salience=None):
        prods = host.image_to_pils(product, product_mask)
        verdicts = inspect_images(rfnet, prods, images, caption, depth, salience, threshold)
        shown_images = host.image_to_pils(torch.nan_to_num(images, nan=0.0))  # a NaN image shows black
        shown = [badge(im, shown_label(v.label, v.note), v.p_available, v.accepted) for im, v in zip(shown_images, verdicts)]
        rows = [v.to_dict() for v in verdicts]
        text = "; ".join(f"{v.label} ({v.p_available:.2f}{'; ' + v.note if v.note else ''})" for v in verdicts)
        first = verdicts[0]
        return {"ui": {"images": save_previews(shown), "rf_verdicts": rows},
                "result": (text, first.p_available, all(v.accepted for v in verdicts), json.dumps(rows))}


NODE_CLASS_MAPPINGS = {"RFDepthMap": DepthMap, "RFSalienceMap": SalienceMap, "RFNetInspect": RFNetInspect}
NODE_DISPLAY_NAME_MAPPINGS = {"RFDepthMap": "Depth Map (RF)", "RFSalienceMap": "Salience Map (RF)",
                              "RFNetInspect": "RFNet Inspect"}
