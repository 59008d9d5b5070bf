"""Product nodes: place a product on the canvas as the paper's release does, and walk a folder
(a catalogue) of product cutouts."""
from __future__ import annotations

import numpy as np
import torch

from . import host

host.require("cv2")


class ProductPlacement:
    DESCRIPTION = ("Places a product cutout on the canvas as the paper's release does: its alpha box "
                   "fitted into scale x canvas, centred (or kept where it is). Outputs the init image "
                   "for VAE encoding, the inpaint mask (inverse alpha, dilated) for Set Latent Noise "
                   "Mask, the canny image of the product alone for Apply ControlNet, and the placement "
                   "that Recurrent Generate and Paste Product use to paste the product back exactly.")
    CATEGORY = "Reliable AD"
    RETURN_TYPES = ("IMAGE", "MASK", "IMAGE", "RF_PLACEMENT")
    RETURN_NAMES = ("image", "inpaint_mask", "canny", "placement")
    FUNCTION = "place"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "product": ("IMAGE", {"tooltip": "the product: a cutout (wire Load Image's MASK too) or a photo on white"}),
            "width": ("INT", {"default": 512, "min": 64, "max": 4096, "step": 8}),
            "height": ("INT", {"default": 512, "min": 64, "max": 4096, "step": 8}),
            "image_scale": ("FLOAT", {"default": 0.7, "min": 0.05, "max": 1.0, "step": 0.01,
                                      "tooltip": "the product's box is fitted into this share of the canvas"}),
            "keep_location": ("BOOLEAN", {"default": False, "tooltip": "the cutout is canvas-sized: leave it where it is"}),
            "dilate": ("INT", {"default": -1, "min": -1, "max": 256,
                               "tooltip": "mask dilation in pixels; -1: 20 px at 512, scaled with the canvas"}),
            "low_threshold": ("INT", {"default": 100, "min": 0, "max": 255}),
            "high_threshold": ("INT", {"default": 200, "min": 0, "max": 255}),
        }, "optional": {
            "mask": ("MASK", {"tooltip": "Load Image's MASK (1 where transparent): the product's alpha"}),
        }}

    def place(self, product, width, height, image_scale, keep_location, dilate, low_threshold, high_threshold,
              mask=None):
        from rfft.placement import load_product, place

        images, masks, controls, placements = [], [], [], []
        for pil in host.image_to_pils(product, mask):
            if mask is not None and pil.getchannel("A").getextrema() == (255, 255):
                pil = pil.convert("RGB")  # an all-opaque mask says nothing: treat as a photo on white
            pl = place(load_product(pil), (width, height), image_scale, keep_location,
                       None if dilate < 0 else dilate, (low_threshold, high_threshold))
            images.append(pl.product_image())
            masks.append(pl.inpaint_mask)
            controls.append(pl.control)
            placements.append(pl)
        dev = host.intermediate_device()
        return (host.pils_to_image(images).to(dev), host.array_mask(masks).to(dev),
                host.pils_to_image(controls).to(dev), placements)


class PasteProduct:
    DESCRIPTION = "Pastes the product's own pixels back over generated images, exactly, as the paper does."
    CATEGORY = "Reliable AD"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "paste"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "placement": ("RF_PLACEMENT",)}}

    def paste(self, images, placement):
        pils = host.image_to_pils(images)
        out = [placement[min(i, len(placement) - 1)].paste_back(im) for i, im in enumerate(pils)]
        return (host.pils_to_image(out).to(host.intermediate_device()),)


class LoadProductFolder:
    DESCRIPTION = ("Loads one product of a folder of cutouts (under ComfyUI's input folder) by index; "
                   "with 'increment' after generate, each queued run takes the next product. Captions "
                   "come from products.json or NAME.txt beside the images.")
    CATEGORY = "Reliable AD"
    RETURN_TYPES = ("IMAGE", "MASK", "STRING", "STRING", "INT")
    RETURN_NAMES = ("product", "mask", "caption", "name", "count")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "folder": ("STRING", {"default": "products", "tooltip": "a folder inside ComfyUI's input folder"}),
            "index": ("INT", {"default": 0, "min": 0, "max": 1_000_000, "control_after_generate": True,
                              "rf_control_default": "increment",  # each queued run takes the next product
                              "tooltip": "which product (wraps around the folder)"}),
        }}

    @classmethod
    def IS_CHANGED(cls, folder, index):
        return f"{folder}:{index}"

    def load(self, folder, index):
        """One product by index. A bad product (unreadable or huge image, a file name that is
        not UTF-8, a bad products.json entry) fails this run only, with its name: the others
        still load, and bad metadata (products.json that is not an object, a caption file that is
        not UTF-8) is a warning in the log, not an error."""
        import logging

        from rfft.placement import ProductError, load_product
        from rfft.products import display_name, find_products, name_problem

        base = host.input_dir()
        root = host.safe_join(base, folder)
        if root is None or not root.is_dir():
            raise ValueError(f"product folder {folder!r} not found inside ComfyUI's input folder ({base})")
        warnings: list[str] = []
        files, meta = find_products(root, warnings)
        if not files:
            raise ValueError(f"{root} holds no product images (.png, .jpg, .webp)")
        f = files[index % len(files)]
        m = meta.get(f.name, {})
        log = logging.getLogger("reliable_ad")
        for w in warnings + m.get("warnings", []):
            log.warning("Load Product Folder: %s: %s", root.name, w)
        try:
            problem = name_problem(f) or m.get("error")
            if problem:
                raise ProductError(problem)
            cut = load_product(f)
        except ProductError as e:
            raise ValueError(f"product {display_name(f.name)} (index {index % len(files)} of {len(files)}) "
                             f"cannot be used: {display_name(str(e))}. Fix or remove it; the other products "
                             "load") from None
        caption = m.get("caption") or m.get("category") or f.stem
        rgba = torch.from_numpy(np.asarray(cut, dtype=np.float32) / 255.0)[None]
        return (rgba[..., :3], host.alpha_to_mask([cut]), caption, f.name, len(files))


NODE_CLASS_MAPPINGS = {"RFProductPlacement": ProductPlacement, "RFPasteProduct": PasteProduct,
                       "RFLoadProductFolder": LoadProductFolder}
NODE_DISPLAY_NAME_MAPPINGS = {"RFProductPlacement": "Product Placement", "RFPasteProduct": "Paste Product Back",
                              "RFLoadProductFolder": "Load Product Folder"}
