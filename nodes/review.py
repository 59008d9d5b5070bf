"""Review & Label: a designer labels a batch of generated images in the node, one click each.

The node does not pause the graph. It stores the batch for review (output/rf_review/DATASET/
BATCH/: the images, the product and batch.json with RFNet's verdicts) and shows it on the node,
the most uncertain image first, each with RFNet's verdict as the pre-filled label. Every click is
posted at once to the pack's route on ComfyUI's server (POST /reliable_ad/review/label), which
checks it and writes the image, labelled, into the RF feedback dataset
(output/rf_feedback/DATASET, the format the Feedback node writes and rfnet.train reads).

Why no pause (as image-chooser packs do): ComfyUI runs one prompt at a time, so a paused node
holds the whole queue, and the models in memory, while a designer labels fifty images; and a
page reload during the pause loses the pending choice. Saving each click on the server instead
loses nothing on a reload or a cancel: the node keeps only the batch's name in the workflow, and
the labels come back from the server (GET /reliable_ad/review/batch).
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from pathlib import Path

import torch

from . import host

host.require("timm", "transformers", "safetensors", "cv2")

from .feedback import LABELS, feedback_split  # noqa: E402

REVIEW_DIR = "rf_review"
FEEDBACK_DIR = "rf_feedback"
_BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_lock = threading.Lock()  # the server may run two posts at once; the manifest is rewritten whole


class ReviewError(ValueError):
    """A label post the server refuses; the message says what was wrong."""


def uncertainty_order(verdicts: list[dict]) -> list[int]:
    """Indices, the least sure first: by the probability of the top class, then by how close
    P(Available) is to one half."""
    def key(i):
        v = verdicts[i]
        top = max(v.get("probs", {}).values(), default=v.get("p_available", 0.5))
        return (top, abs(v.get("p_available", 0.5) - 0.5), i)

    return sorted(range(len(verdicts)), key=key)


def write_batch(output_root: Path, dataset: str, images, product, verdicts: list[dict], caption: str,
                prompt: str) -> dict:
    """Store a batch for review; returns batch.json's content. ``images`` and ``product`` are PIL
    images (the product an RGBA cutout or the first of a list)."""
    from rfnet.fileio import save_image, write_json

    ds = host.safe_name(dataset)
    digest = hashlib.sha1(b"".join(im.tobytes()[:4096] for im in images)).hexdigest()[:8]
    batch = f"{time.strftime('%Y%m%d-%H%M%S')}_{digest}"
    root = output_root / REVIEW_DIR / ds / batch
    items = []
    for i, (im, v) in enumerate(zip(images, verdicts)):
        name = f"img_{i:03d}.png"
        save_image(root / name, im)
        items.append({"index": i, "file": name, "rfnet": v.get("label"), "p_available": v.get("p_available"),
                      "probs": v.get("probs", {}), "label": None})
    prods = product if isinstance(product, list) else [product]
    for i, p in enumerate(prods):
        save_image(root / f"product_{i:03d}.png", p)
    meta = {"dataset": ds, "batch": batch, "caption": caption, "prompt": prompt, "products": len(prods),
            "order": uncertainty_order(verdicts), "items": items, "labels": LABELS}
    write_json(root / "batch.json", meta)  # last: a batch without it was never offered for review
    return meta


def _batch_dir(output_root: Path, dataset, batch) -> Path:
    """The stored batch a post names, or ReviewError: the names must be ones this server made
    (a dataset name as safe_name leaves it, a batch id of its form), inside output/rf_review."""
    if not isinstance(dataset, str) or not dataset or host.safe_name(dataset, "") != dataset:
        raise ReviewError(f"dataset {dataset!r} is not a dataset name this node writes")
    if not isinstance(batch, str) or not _BATCH_ID.fullmatch(batch):
        raise ReviewError(f"batch {batch!r} is not a review batch id")
    base = (output_root / REVIEW_DIR).resolve()
    d = host.safe_join(base, f"{dataset}/{batch}")
    if d is None or not (d / "batch.json").is_file():
        raise ReviewError(f"no review batch {dataset}/{batch} on this server (output/{REVIEW_DIR})")
    return d


def read_batch(output_root: Path, dataset, batch) -> dict:
    return json.loads((_batch_dir(output_root, dataset, batch) / "batch.json").read_text(encoding="utf-8"))


def _set_manifest_label(root: Path, sid: str, label: str) -> None:
    """Relabel one sample: the manifest is rewritten atomically with that record changed."""
    from rfnet.dataformat import MANIFEST
    from rfnet.fileio import write_text

    lines = (root / MANIFEST).read_text(encoding="utf-8").splitlines()
    out = []
    for ln in lines:
        if ln.strip():
            rec = json.loads(ln)
            if rec.get("id") == sid:
                rec["label"] = label
                ln = json.dumps(rec, ensure_ascii=False)
        out.append(ln)
    write_text(root / MANIFEST, "\n".join(out) + "\n")


def apply_label(output_root: Path, payload) -> dict:
    """What POST /reliable_ad/review/label does: check the post, write the labelled image into
    output/rf_feedback/DATASET (or change its label when it is already there), and keep the label
    in batch.json so that a reloaded page shows it."""
    from PIL import Image

    from rfnet.dataformat import RFDatasetWriter
    from rfnet.fileio import write_json
    from rfnet.labels import canonical

    if not isinstance(payload, dict):
        raise ReviewError("the post must be a JSON object {dataset, batch, index, label}")
    try:
        label = canonical(payload.get("label"))
    except (ValueError, KeyError, TypeError):
        label = None
    if label not in LABELS:
        raise ReviewError(f"unknown label {payload.get('label')!r}; use one of: {', '.join(LABELS)}")
    with _lock:
        d = _batch_dir(output_root, payload.get("dataset"), payload.get("batch"))
        meta = json.loads((d / "batch.json").read_text(encoding="utf-8"))
        index = payload.get("index")
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(meta["items"]):
            raise ReviewError(f"index {index!r} is not an image of batch {meta['batch']} "
                              f"(0 to {len(meta['items']) - 1})")
        item = meta["items"][index]
        root = output_root / FEEDBACK_DIR / meta["dataset"]
        sid = f"rv_{meta['batch']}_{index:03d}"
        writer = RFDatasetWriter(root, label_set="rf1m6", description="designer feedback from ComfyUI")
        if sid in writer:
            _set_manifest_label(root, sid, label)
        else:
            with Image.open(d / item["file"]) as im:
                image = im.convert("RGB")
            with Image.open(d / f"product_{min(index, meta['products'] - 1):03d}.png") as im:
                product = im.copy()
            writer.add(sid, image, product, label, caption=meta["caption"], prompt=meta["prompt"],
                       split=feedback_split(sid), source={"generator": "comfyui", "feedback": "designer review", "rfnet": item["rfnet"],
                               "p_available": item["p_available"]})
        item["label"] = label
        write_json(d / "batch.json", meta)
        done = sum(it["label"] is not None for it in meta["items"])
    return {"ok": True, "index": index, "label": label, "labelled": done, "total": len(meta["items"]),
            "dataset": str(root)}


def register_routes() -> bool:
    """The pack's routes on ComfyUI's server; False outside ComfyUI (tests call apply_label)."""
    try:
        from aiohttp import web
        from server import PromptServer
    except ImportError:
        return False
    routes = getattr(getattr(PromptServer, "instance", None), "routes", None)
    if routes is None:  # ComfyUI imported without its server (a script): the node works, clicks cannot
        host.log.warning("[reliable_ad] no ComfyUI server: Review & Label cannot save clicks in this process")
        return False

    @routes.post("/reliable_ad/review/label")
    async def post_label(request):
        try:
            payload = await request.json()
        except (ValueError, UnicodeDecodeError):
            return web.json_response({"ok": False, "error": "the body is not JSON"}, status=400)
        try:
            return web.json_response(apply_label(host.output_dir(), payload))
        except ReviewError as e:
            return web.json_response({"ok": False, "error": str(e)}, status=400)

    @routes.get("/reliable_ad/review/batch")
    async def get_batch(request):
        try:
            meta = read_batch(host.output_dir(), request.query.get("dataset"), request.query.get("batch"))
        except ReviewError as e:
            return web.json_response({"ok": False, "error": str(e)}, status=404)
        return web.json_response({"ok": True, **ui_batch(meta)})

    return True


def ui_batch(meta: dict) -> dict:
    """What the node's widget draws: the items in review order, with /view addresses' parts."""
    sub = f"{REVIEW_DIR}/{meta['dataset']}/{meta['batch']}"
    items = [{**meta["items"][i], "filename": meta["items"][i]["file"], "subfolder": sub, "type": "output"}
             for i in meta["order"]]
    return {"dataset": meta["dataset"], "batch": meta["batch"], "labels": meta["labels"], "items": items}


class ReviewLabel:
    DESCRIPTION = ("Shows the images on the node, the least certain first, each with RFNet's verdict as its label. "
                   "Click the label you see; each click is saved at once into output/rf_feedback/DATASET "
                   "(the dataset Train RFNet learns from). The graph does not wait: label at your pace, even "
                   "after a reload.")
    CATEGORY = "Reliable AD"
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("batch",)
    OUTPUT_NODE = True
    FUNCTION = "review"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE", {"tooltip": "the generated images to label"}),
            "product": ("IMAGE", {"tooltip": "the product cutout (one, or one per image)"}),
            "rfnet": ("RFNET", {"tooltip": "pre-fills each label with its verdict and orders by uncertainty"}),
            "dataset": ("STRING", {"default": "feedback", "tooltip": "folder name under output/rf_feedback"}),
            "caption": ("STRING", {"default": "", "multiline": True, "tooltip": "the product's title"}),
            "prompt": ("STRING", {"default": "", "multiline": True}),
        }, "optional": {"product_mask": ("MASK",)}}

    def review(self, images, product, rfnet, dataset, caption, prompt, product_mask=None):
        from .inspection import inspect_images

        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[0] == 0:
            raise ValueError("'images' must be a non-empty IMAGE batch [B, H, W, C]")
        prods = host.image_to_pils(product, product_mask)
        if not prods:
            raise ValueError("no product image: the 'product' batch is empty")
        verdicts = [v.to_dict() for v in inspect_images(rfnet, prods, images, caption)]
        meta = write_batch(host.output_dir(), dataset, host.image_to_pils(images), prods, verdicts, caption, prompt)
        return {"ui": {"rf_review": [ui_batch(meta)]}, "result": (f"{meta['dataset']}/{meta['batch']}",)}


register_routes()

NODE_CLASS_MAPPINGS = {"RFReviewLabel": ReviewLabel}
NODE_DISPLAY_NAME_MAPPINGS = {"RFReviewLabel": "Review & Label (RF)"}
