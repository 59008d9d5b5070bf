"""Recurrent Generate: the user's own MODEL, conditioning (ControlNet applied by core nodes) and
VAE, sampled by ComfyUI's sampler with the product kept by the latent noise mask (eq. 2), each
candidate inspected by RFNet, repeated with new noise until one is accepted."""
from __future__ import annotations

import json

import torch

from . import host

host.require("timm", "transformers", "safetensors", "cv2")  # before the import: a missing one disables this module
from .inspection import badge, inspect_images, save_previews  # noqa: E402


def comfy_sample(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent):
    """ComfyUI's KSampler, with live previews; the noise mask makes it inpaint: at every step the
    latent outside the mask is the product's, noised to the step's level (eq. 2)."""
    import comfy.sample
    import comfy.utils
    import latent_preview

    samples = latent["samples"]
    noise = comfy.sample.prepare_noise(samples, seed, latent.get("batch_index"))
    callback = latent_preview.prepare_callback(model, steps)
    return comfy.sample.sample(model, noise, steps, cfg, sampler_name, scheduler, positive, negative, samples,
                               denoise=1.0, noise_mask=latent.get("noise_mask"), callback=callback,
                               disable_pbar=not comfy.utils.PROGRESS_BAR_ENABLED, seed=seed)


def _sampler_choices():
    try:
        import comfy.samplers

        return comfy.samplers.KSampler.SAMPLERS, comfy.samplers.KSampler.SCHEDULERS
    except ImportError:  # outside ComfyUI (unit tests)
        return ["ddim", "euler", "euler_ancestral", "dpmpp_2m"], ["ddim_uniform", "normal", "karras"]


class RecurrentGenerate:
    DESCRIPTION = ("Generates with your MODEL and conditioning (apply the canny ControlNet with core nodes), "
                   "inspects every candidate with RFNet and regenerates with new noise until one is accepted "
                   "or the attempts run out; then returns the most probably Available attempt and says so. "
                   "Attempt i uses the seed with batch index i, so any attempt can be redone alone.")
    CATEGORY = "Reliable AD"
    RETURN_TYPES = ("IMAGE", "IMAGE", "BOOLEAN", "STRING", "STRING")
    RETURN_NAMES = ("image", "attempts", "accepted", "verdicts", "report")
    OUTPUT_NODE = True
    FUNCTION = "generate"
    sample = staticmethod(comfy_sample)  # tests put a scripted sampler here

    @classmethod
    def INPUT_TYPES(cls):
        samplers, schedulers = _sampler_choices()
        return {"required": {
            "model": ("MODEL",), "positive": ("CONDITIONING",), "negative": ("CONDITIONING",), "vae": ("VAE",),
            "placement": ("RF_PLACEMENT", {"tooltip": "from Product Placement"}),
            "rfnet": ("RFNET",),
            "caption": ("STRING", {"default": "", "multiline": True, "tooltip": "the product's title"}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xffffffffffffffff, "control_after_generate": True}),
            "steps": ("INT", {"default": 40, "min": 1, "max": 1000}),
            "cfg": ("FLOAT", {"default": 7.5, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}),
            "sampler_name": (samplers, {"default": "ddim"}),
            "scheduler": (schedulers, {"default": "ddim_uniform"}),
            "max_attempts": ("INT", {"default": 5, "min": 1, "max": 100, "tooltip": "at most this many images"}),
            "candidates": ("INT", {"default": 1, "min": 1, "max": 16, "tooltip": "images generated together per round"}),
            "threshold": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                    "tooltip": "0: the RFNet's calibrated threshold (from its config.json), or, without one, accept when Available is the most probable class; else P(Available) >= this"}),
        }, "hidden": {"unique_id": "UNIQUE_ID"}}

    def generate(self, model, positive, negative, vae, placement, rfnet, caption, seed, steps, cfg, sampler_name,
                 scheduler, max_attempts, candidates, threshold, unique_id=None):
        from rfft.recurrent import recurrent_generate

        pl = placement[0]
        init = host.pils_to_image([pl.product_image()])
        latent = vae.encode(init[..., :3])
        mask = torch.from_numpy(pl.inpaint_mask)[None].float()
        bar = host.Progress(max_attempts, unique_id)

        def generate(seeds):
            lat = {"samples": latent.repeat(len(seeds), 1, 1, 1), "noise_mask": mask,
                   "batch_index": [s - seed for s in seeds]}
            out = self.sample(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, lat)
            decoded = vae.decode(out)
            return [pl.paste_back(im) for im in host.image_to_pils(decoded.reshape(-1, *decoded.shape[-3:]))]

        def inspect(images):
            return inspect_images(rfnet, [pl.cutout], host.pils_to_image(images), caption, threshold=threshold)

        def on_attempt(a, n):
            host.progress_text(f"attempt {a.index + 1}/{n}: {a.label} ({a.p_available:.2f})", unique_id)
            bar.update(1)

        def should_stop():
            host.check_cancel()  # raises ComfyUI's interruption itself
            return False

        res = recurrent_generate(generate, inspect, max_attempts, candidates, seed, on_attempt, should_stop)
        rows = []
        for a in res.attempts:
            r = a.record()
            r["batch_index"] = r.pop("seed") - seed
            r["seed"] = seed
            r["chosen"] = a is res.chosen
            rows.append(r)
        if res.accepted:
            report = f"accepted attempt {res.chosen.index + 1} of {len(res.attempts)} (P(Available) {res.chosen.p_available:.2f})"
        else:
            report = (f"no attempt accepted in {len(res.attempts)}: returning the most probably Available one "
                      f"(attempt {res.chosen.index + 1}, {res.chosen.label}, P(Available) {res.chosen.p_available:.2f})")
        host.progress_text(report, unique_id)
        shown = [badge(a.image, a.label, a.p_available, a.accepted) for a in res.attempts]
        dev = host.intermediate_device()
        return {"ui": {"images": save_previews(shown, "rf_recurrent"), "rf_verdicts": rows, "text": [report]},
                "result": (host.pils_to_image([res.chosen.image]).to(dev),
                           host.pils_to_image([a.image for a in res.attempts]).to(dev),
                           res.accepted, "\n".join(json.dumps(r) for r in rows), report)}


NODE_CLASS_MAPPINGS = {"RFRecurrentGenerate": RecurrentGenerate}
NODE_DISPLAY_NAME_MAPPINGS = {"RFRecurrentGenerate": "Recurrent Generate (RFNet)"}
