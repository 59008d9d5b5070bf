"""Feedback: a designer labels images (Available or a defect), and they are added to an RF
dataset folder with the product, caption and prompt, ready for ``python -m rfnet.train``: the
human feedback loop of the paper's title, inside the tool designers use."""
from __future__ import annotations

import hashlib
import time

import torch

from . import host

host.require("safetensors")

LABELS = ["Available", "Space Mismatch", "Size Mismatch", "Indistinctiveness", "Shape Hallucination", "Unsuitable"]


def feedback_split(sample_id: str) -> str:
    """One labelled image in five goes to validation, by its id (stable across reruns): Train
    RFNet measures and calibrates on it."""
    return "val" if int(hashlib.sha1(sample_id.encode()).hexdigest(), 16) % 5 == 0 else "train"


class Feedback:
    DESCRIPTION = ("Adds the images, labelled by you, to an RF dataset in output/rf_feedback/NAME (depth "
                   "and salience are computed by the trainer). One label for the batch, or one per image "
                   "in 'labels' (comma-separated, in batch order). Retrain with: python -m rfnet.train "
                   "--train_data output/rf_feedback/NAME ...")
    CATEGORY = "Reliable AD"
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("summary",)
    OUTPUT_NODE = True
    FUNCTION = "record"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE",), "product": ("IMAGE",),
            "label": (LABELS, {"default": "Available", "tooltip": "the label of every image, unless 'labels' is filled"}),
            "dataset": ("STRING", {"default": "feedback", "tooltip": "folder name under output/rf_feedback"}),
            "caption": ("STRING", {"default": "", "multiline": True}),
            "prompt": ("STRING", {"default": "", "multiline": True}),
        }, "optional": {
            "product_mask": ("MASK",),
            "labels": ("STRING", {"default": "", "tooltip": "per image, comma-separated, e.g. 'Available, Space Mismatch'"}),
        }}

    def record(self, images, product, label, dataset, caption, prompt, product_mask=None, labels=""):
        from rfnet.dataformat import RFDatasetWriter
        from rfnet.labels import canonical

        for what, t in (("images", images), ("product", product)):
            if not isinstance(t, torch.Tensor) or t.dim() != 4:
                raise ValueError(f"'{what}' must be an IMAGE batch [B, H, W, C], got "
                                 f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
        pils = host.image_to_pils(images)
        if not pils:
            raise ValueError("no images to record: the 'images' batch is empty")
        if product.shape[0] == 0:
            raise ValueError("no product image: the 'product' batch is empty")
        per = [x.strip() for x in (labels or "").split(",") if x.strip()]
        if per and len(per) != len(pils):
            raise ValueError(f"'labels' names {len(per)} labels for {len(pils)} images; give one per image or none")
        # every label is checked before anything is written (no half-recorded batch), and
        # written under its canonical name; one outside this dataset's set (e.g. the coarse
        # 'Unavailable', which names no defect) is refused too
        chosen = []
        for x in per or [label] * len(pils):
            try:
                name = canonical(x)
            except (ValueError, KeyError):
                name = None
            if name not in LABELS:
                raise ValueError(f"unknown label {x!r}; use one of: {', '.join(LABELS)}")
            chosen.append(name)
        # safe_name keeps the folder one plain name under output/rf_feedback: '..', '/', '\\'
        # and the like cannot climb out
        root = host.output_dir() / "rf_feedback" / host.safe_name(dataset)
        writer = RFDatasetWriter(root, label_set="rf1m6", description="designer feedback from ComfyUI")
        prods = host.image_to_pils(product, product_mask)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        written = 0
        for i, (im, lab) in enumerate(zip(pils, chosen)):
            digest = hashlib.sha1(im.tobytes()).hexdigest()[:10]
            sid = f"fb_{stamp}_{i:03d}_{digest}"
            if sid in writer:
                continue
            writer.add(sid, im, prods[min(i, len(prods) - 1)], lab, caption=caption, prompt=prompt,
                       split=feedback_split(sid), source={"generator": "comfyui", "feedback": "designer"})
            written += 1
        return {"ui": {"text": [f"{written} image(s) added to {root}"]},
                "result": (f"{written} image(s) added to {root} ({', '.join(chosen)})",)}


NODE_CLASS_MAPPINGS = {"RFFeedback": Feedback}
NODE_DISPLAY_NAME_MAPPINGS = {"RFFeedback": "Feedback to RF Dataset"}
