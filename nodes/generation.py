"""Recurrent Generate: the user's own MODEL, conditioning (ControlNet applied by core nodes) and
VAE, sampled by ComfyUI's sampler with the product kept by the latent noise mask (eq. 2), each
candidate inspected by RFNet, repeated with new noise until one is accepted."""
from __future__ import annotations

import json

import torch

from . import host

host.require("timm", "transformers", "safetensors", "cv2")  # before the import: a missing one disables this module
from .inspection import badge, inspect_images, save_previews, shown_label  # noqa: E402


def comfy_sample(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent, callback=None):
    """ComfyUI's KSampler, with live previews; the noise mask makes it inpaint: at every step the
    latent outside the mask is the product's, noised to the step's level (eq. 2). ``callback``
    replaces ComfyUI's per-call progress (see :class:`AttemptProgress`)."""
    import comfy.sample
    import comfy.utils
    import latent_preview

    samples = latent["samples"]
    noise = comfy.sample.prepare_noise(samples, seed, latent.get("batch_index"))
    if callback is None:
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


class AttemptProgress:
    """One progress bar over all the node's rounds: ComfyUI's sampler callback starts its own
    bar at every call, so progress restarted at every attempt. Live previews go through the same
    bar, and the last preview is the badged attempts themselves, so that a latent preview is
    never what the node is left showing."""

    def __init__(self, rounds: int, steps: int, node_id=None):
        self.steps, self.round = steps, 0
        self.bar = host.Progress(rounds * steps, node_id)

    def sampler_callback(self, model):
        previewer = None
        try:
            import latent_preview

            previewer = latent_preview.get_previewer(model.load_device, model.model.latent_format)
        except (ImportError, AttributeError):  # outside ComfyUI, or a model without a latent format
            pass
        offset = self.round * self.steps

        def callback(step, x0, x, total_steps):
            preview = previewer.decode_latent_to_preview_image("JPEG", x0) if previewer is not None else None
            self.bar.set(offset + min(step + 1, self.steps), preview)

        return callback

    def end_round(self) -> None:
        self.round += 1
        self.bar.set(self.round * self.steps)

    def finish(self, image) -> None:
        self.bar.set(self.bar.total, ("PNG", image, max(image.size)))


def attempt_strip(images: list, height: int = 256):
    """The badged attempts side by side, for the node's last preview."""
    from PIL import Image

    ims = [im.convert("RGB").resize((max(1, round(im.width * height / im.height)), height)) for im in images]
    strip = Image.new("RGB", (sum(im.width for im in ims) + 4 * (len(ims) - 1), height), (30, 30, 30))
    x = 0
    for im in ims:
        strip.paste(im, (x, 0))
        x += im.width + 4
    return strip


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
        progress = AttemptProgress(-(-max_attempts // candidates), steps, unique_id)

        def generate(seeds):
            lat = {"samples": latent.repeat(len(seeds), 1, 1, 1), "noise_mask": mask,
                   "batch_index": [s - seed for s in seeds]}
            out = self.sample(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, lat,
                              callback=progress.sampler_callback(model))
            progress.end_round()
            decoded = vae.decode(out)
            if not torch.isfinite(decoded).all():  # a black image would be inspected, perhaps delivered
                raise ValueError("Recurrent Generate: the VAE decoded NaN pixels (a half-precision VAE overflowing, "
                                 "or a broken model or LoRA): start ComfyUI with --fp32-vae, or try a lower cfg")
            return [pl.paste_back(im) for im in host.image_to_pils(decoded.reshape(-1, *decoded.shape[-3:]))]

        def inspect(images):
            return inspect_images(rfnet, [pl.cutout], host.pils_to_image(images), caption, threshold=threshold)

        def on_attempt(a, n):
            host.node_status(unique_id, f"attempt {a.index + 1}/{n}: {a.label} {a.p_available:.2f}",
                             "green" if a.accepted else "red")

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
        if any(str(a.info.get("note") or "").startswith("outside the inspector's training data") for a in res.attempts):
            report += ("; RFNet has not seen images like these, so it accepts none on its own: label them with "
                       "Review & Label and train your own inspector with Train RFNet")
        host.log.info("[reliable_ad] Recurrent Generate: %s", report)
        shown = [badge(a.image, shown_label(a.label, a.info.get("note")), a.p_available, a.accepted)
                 for a in res.attempts]
        progress.finish(attempt_strip(shown))
        dev = host.intermediate_device()
        return {"ui": {"images": save_previews(shown, "rf_recurrent"), "rf_verdicts": rows, "text": [report]},
                "result": (host.pils_to_image([res.chosen.image]).to(dev),
                           host.pils_to_image([a.image for a in res.attempts]).to(dev),
                           res.accepted, "\n".join(json.dumps(r) for r in rows), report)}


NODE_CLASS_MAPPINGS = {"RFRecurrentGenerate": RecurrentGenerate}
NODE_DISPLAY_NAME_MAPPINGS = {"RFRecurrentGenerate": "Recurrent Generate (RFNet)"}
