"""One RFFT step: the feedback of eq. 5 with the regularizer of eq. 6 or eq. 7-8 (eq. 9).

For a batch of (placed product, prompt, caption):

1. draw the gradient step: one index j among the last K of a T-step DDIM schedule, once for the
   whole batch (AlignProp's bug was to redraw it inside the loop);
2. run steps 0..j-1 without gradients, with the ControlNet being trained and eq. 2 (the product's
   latent kept outside the mask);
3. at step j, with gradients: the guided noise prediction, x0_hat, the product's latent put back
   outside the mask, decoding by the frozen VAE (gradients flow through it), the product's
   pixels pasted back, depth and salience by the frozen estimators, RFNet (frozen): F_AC;
4. the regularizer at the same x_t and t against the frozen starting ControlNet: Consistent
   Condition (``cc``), KL in epsilon space (``kl``), or none (``none``, ReFL);
5. an optional extra differentiable reward ``F_IR(images, prompts)`` with its own weight.

Only the ControlNet receives gradients. The same code runs SD1.5-shaped and tiny models.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .losses import consistent_condition_loss, feedback_loss, kl_loss
from .placement import Placement


@dataclass
class RFFTConfig:
    num_inference_steps: int = 40
    grad_steps_window: int = 10  # K: the gradient step is one of the last K
    guidance_scale: float = 7.5
    reg: str = "cc"  # cc | kl | none
    beta: float = 1.0
    extra_reward_weight: float = 0.0
    controlnet_conditioning_scale: float = 1.0
    cc_form: str = "score"  # eq. 7-8 as written (score), or the first version's eps form

    def __post_init__(self):
        if self.reg not in ("cc", "kl", "none"):
            raise ValueError(f"reg must be cc, kl or none, not {self.reg!r}")
        if self.cc_form not in ("score", "eps"):
            raise ValueError(f"cc_form must be score or eps, not {self.cc_form!r}")
        if not 1 <= self.grad_steps_window <= self.num_inference_steps:
            raise ValueError("grad_steps_window must be between 1 and num_inference_steps")
        # NaN fails every comparison: a non-finite or negative weight would make every loss NaN
        if not (math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"beta must be a finite number, 0 or more, not {self.beta}")
        if not math.isfinite(self.extra_reward_weight):
            raise ValueError(f"extra_reward_weight must be a finite number, not {self.extra_reward_weight}")


@dataclass
class Example:
    placement: Placement
    prompt: str
    negative_prompt: str
    caption: str


class DifferentiableJudge(torch.nn.Module):
    """RFNet with its depth and salience estimators, frozen, differentiable in the image: class
    scores (B, C) for decoded images in 0..1. The embedded estimators are small U-Nets; DPT and
    U^2-Net are differentiable too; the no-weight fallbacks are not learned but still pass
    gradients through their arithmetic."""

    def __init__(self, model, tokenizer, depth=None, salience=None):
        super().__init__()
        if model.config.mask_input:
            raise ValueError("RFFT's judge reads no product mask; this RFNet was trained with --mask_input: "
                             "judge with one trained without it (the embedded one is)")
        if model.config.product_input != "cutout":
            # RFFT's reward reads the placed cutout (product_tensor); a judge trained on the
            # product at its place would read it as a product filling the image
            raise ValueError(f"RFFT's judge must read the product as a cutout; this RFNet was trained with "
                             f"product_input {model.config.product_input!r}: judge with one trained without "
                             "--product_input placed (the embedded one is)")
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.depth = depth.eval().requires_grad_(False) if depth is not None and model.config.use_depth else None
        self.salience = salience.eval().requires_grad_(False) if salience is not None and model.config.use_salience else None

    @classmethod
    def from_pretrained(cls, folder) -> "DifferentiableJudge":
        import json
        from pathlib import Path

        from rfnet.embedded import embedded_path
        from rfnet.extractors import make_extractor
        from rfnet.loading import load_model_and_tokenizer

        folder = embedded_path("rfnet") if folder in (None, "embedded") else Path(folder)
        model, tok = load_model_and_tokenizer(folder, False)
        info = json.loads((folder / "inspector.json").read_text()) if (folder / "inspector.json").exists() else {}
        d = make_extractor("depth", info.get("depth_model") or "fallback") if model.config.use_depth else None
        s = make_extractor("salience", info.get("salience_model") or "fallback") if model.config.use_salience else None
        return cls(model.float(), tok, d, s)

    def forward(self, product: torch.Tensor, images: torch.Tensor, captions: Sequence[str]) -> torch.Tensor:
        kw = dict(product=product, generated=images,
                  depth=self.depth(images) if self.depth is not None else None,
                  salience=self.salience(images) if self.salience is not None else None)
        if self.model.config.use_caption:
            enc = self.tokenizer(list(captions), padding=True, truncation=True,
                                 max_length=self.model.config.caption_max_length, return_tensors="pt")
            kw.update(input_ids=enc["input_ids"].to(images.device), attention_mask=enc["attention_mask"].to(images.device))
        return self.model(**kw).logits


def product_tensor(placement: Placement, size: int | None = None) -> torch.Tensor:
    """The product cutout composited on white, (3, H, W) in 0..1: RFNet's I_o."""
    from rfnet.data import to_rgb_tensor

    return to_rgb_tensor(placement.cutout, size)


class RFFTObjective:
    def __init__(self, pipe, controlnet, ref_controlnet, judge: DifferentiableJudge, cfg: RFFTConfig,
                 extra_reward: Callable | None = None):
        self.pipe, self.controlnet, self.ref, self.judge, self.cfg = pipe, controlnet, ref_controlnet, judge, cfg
        self.extra_reward = extra_reward
        self.ref.eval().requires_grad_(False)

    def draw_step(self, g: torch.Generator) -> int:
        """The index of the gradient step among the last K, drawn once per batch."""
        T, K = self.cfg.num_inference_steps, self.cfg.grad_steps_window
        return T - K + int(torch.randint(K, (1,), generator=g))

    def _prepare(self, batch: Sequence[Example]):
        p = self.pipe
        dt = p.unet.dtype
        cond = p.encode_prompt([e.prompt for e in batch])
        uncond = p.encode_prompt([e.negative_prompt for e in batch])
        # the text-free condition only CC uses (eq. 8); no text-encoder pass for the others
        empty = p.encode_prompt([""] * len(batch)) if self.cfg.reg == "cc" else None
        control = torch.cat([p.control_tensor(e.placement, 1) for e in batch]).to(self.controlnet.dtype)
        mask = torch.cat([p.latent_mask(e.placement) for e in batch])
        z_prod = torch.cat([p.encode_image(e.placement.product_image()) for e in batch]).to(dt)
        alpha = torch.stack([torch.from_numpy(e.placement.alpha) for e in batch])[:, None].to(p.device)
        pixels = torch.stack([torch.from_numpy(e.placement.product.astype(np.float32) / 255.0).permute(2, 0, 1)
                              for e in batch]).to(p.device)
        return cond, uncond, empty, control, mask, z_prod, alpha, pixels

    def __call__(self, batch: Sequence[Example], g: torch.Generator) -> tuple[torch.Tensor, dict]:
        p, cfg = self.pipe, self.cfg
        cond, uncond, empty, control, mask, z_prod, alpha, pixels = self._prepare(batch)
        W, H = batch[0].placement.size
        f = p.latent_factor
        shape = (len(batch), p.unet.config.in_channels, H // f, W // f)
        noise = torch.randn(shape, generator=g).to(p.device, z_prod.dtype)
        j = self.draw_step(g)
        p.scheduler.set_timesteps(cfg.num_inference_steps, device=p.device)
        ts = p.scheduler.timesteps
        with torch.no_grad():
            x = noise * p.scheduler.init_noise_sigma
            x = p.keep_product(x, z_prod, noise, mask, ts[0])
            for i in range(j):
                eps = p.guided_noise(x, ts[i], cond, uncond, control, cfg.guidance_scale,
                                     cfg.controlnet_conditioning_scale, controlnet=self.controlnet)
                x = p.scheduler.step(eps, ts[i], x).prev_sample
                x = p.keep_product(x, z_prod, noise, mask, ts[i + 1])
        t = ts[j]
        x = x.detach()
        # the step with gradients: both guidance branches, and CC's text-free branch when the
        # negative prompt is not already empty, in ONE call. Each ControlNet weight is then used
        # once, so its gradient is complete (and, stepping in backward, freed) as soon as
        # backward reaches it; a separate call would hold every weight's gradient until the
        # other call's backward arrives (1.45 GB at SD1.5 scale).
        need_c = cfg.reg == "cc" and not all(e.negative_prompt == "" for e in batch)
        embs = [uncond, cond, empty] if need_c else [uncond, cond]
        n = len(embs)
        out = p.predict_noise(torch.cat([x] * n), t, torch.cat(embs), torch.cat([control] * n),
                              cfg.controlnet_conditioning_scale, controlnet=self.controlnet).chunk(n)
        eps_u, eps_tc = out[0], out[1]
        eps = eps_u + cfg.guidance_scale * (eps_tc - eps_u)
        ab = p.scheduler.alphas_cumprod.to(p.device)[t].to(x.dtype)
        x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
        x0 = mask * x0 + (1 - mask) * z_prod  # the product's latent, clean, outside the mask
        img = p.decode(x0)
        img = img * (1 - alpha) + pixels * alpha  # its pixels pasted back, as in the final image
        # products differ in shape; RFNet resizes every input to its own square size anyway
        side = self.judge.model.config.image_size
        prods = torch.stack([product_tensor(e.placement, side) for e in batch]).to(img.device)
        logits = self.judge(prods, img, [e.caption for e in batch])
        f_ac = feedback_loss(logits)
        logs = {"f_ac": float(f_ac.detach()), "p_available": float(logits.detach().float().softmax(-1)[:, 0].mean()),
            "step_index": j}
        loss = f_ac
        if cfg.reg != "none":
            with torch.no_grad():
                ref_tc = p.predict_noise(x, t, cond, control, cfg.controlnet_conditioning_scale, controlnet=self.ref)
            if cfg.reg == "cc":
                eps_c = out[2] if need_c else eps_u
                with torch.no_grad():
                    ref_c = p.predict_noise(x, t, empty, control, cfg.controlnet_conditioning_scale, controlnet=self.ref)
                sigma = (1 - ab).sqrt() if cfg.cc_form == "score" else None
                reg = consistent_condition_loss(eps_tc, eps_c, ref_tc, ref_c, sigma)
            else:
                reg = kl_loss(eps_tc, ref_tc)
            loss = loss + cfg.beta * reg
            logs["reg"] = float(reg.detach())
        if self.extra_reward is not None and cfg.extra_reward_weight:
            r = self.extra_reward(img, [e.prompt for e in batch]).mean()
            loss = loss - cfg.extra_reward_weight * r  # a reward is maximised
            logs["extra_reward"] = float(r.detach())
        logs["loss"] = float(loss.detach())
        return loss, logs
