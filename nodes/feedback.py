"""Feedback: a designer labels images (Available or a defect), and they are added to an RF
dataset folder with the product, caption and prompt, ready for ``python -m rfnet.train``: the
human feedback loop of the paper's title, inside the tool designers use."""
from __future__ import annotations

import hashlib
import time

from . import host

host.require("safetensors")

LABELS = ["Available", "Space Mismatch", "Size Mismatch", "Indistinctiveness", "Shape Hallucination", "Unsuitable"]


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
        from rfnet.data import RFDatasetWriter
        from rfnet.labels import canonical

        pils = host.image_to_pils(images)
        per = [x.strip() for x in (labels or "").split(",") if x.strip()]
        if per and len(per) != len(pils):
            raise ValueError(f"'labels' names {len(per)} labels for {len(pils)} images; give one per image or none")
        chosen = per or [label] * len(pils)
        for x in chosen:
            try:
                canonical(x)
            except (ValueError, KeyError):
                raise ValueError(f"unknown label {x!r}; use one of: {', '.join(LABELS)}") from None
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
                       source={"generator": "comfyui", "feedback": "designer"})
            written += 1
        return {"ui": {"text": [f"{written} image(s) added to {root}"]},
                "result": (f"{written} image(s) added to {root} ({', '.join(chosen)})",)}


NODE_CLASS_MAPPINGS = {"RFFeedback": Feedback}
NODE_DISPLAY_NAME_MAPPINGS = {"RFFeedback": "Feedback to RF Dataset"}
