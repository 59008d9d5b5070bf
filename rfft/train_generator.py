"""Train the embedded generator on RF-Synth scenes: ``python -m rfft.train_generator``.

Two stages, one command, resumable at any checkpoint with the same result as an unbroken run:

1. the VAE (reconstruction L1 + a small KL term), then its latent scale (1 / std of the
   training latents, which is what SD1.5's 0.18215 is);
2. the text encoder, UNet and ControlNet together on the standard epsilon-prediction loss, with
   the canny image of the product alone as the control and 10% empty prompts so that
   classifier-free guidance works. The exported weights are an exponential moving average.

SD1.5 trained its UNet first and the ControlNet later, on a frozen UNet; a world this small
learns both at once, and RFFT later fine-tunes only the ControlNet, as in the paper.

Every random draw of step ``s`` (the batch, noise, timesteps, prompt dropout) comes from a
generator seeded with (seed, stage, s), so a resumed run replays exactly what an unbroken run
would have done.
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import re
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from rfnet import checkpoints

from . import components as C
from .placement import from_box

log = logging.getLogger("rfft.train_generator")

EXTRA_WORDS = ("a product on a table, blurry, low quality, deformed, floating, watermark, text, "
               "cluttered, dark, distorted, extra legs, duplicate")
GENERIC = re.compile(r"^a .+? on a ")


# ---------------------------------------------------------------------------------------------
# data
def load_scenes(root: Path, split: str = "train", limit: int | None = None):
    """Images, placed products' control images and prompts of an RF-Synth dataset."""
    from rfnet.dataformat import SkipReport, read_records

    skips = SkipReport()
    root, recs, _ = read_records(root, skips)
    recs = [r for r in recs if r.get("split", "train") == split]
    if limit:
        recs = recs[:limit]
    imgs, ctrls, prompts, ids = [], [], [], []
    for r in recs:
        try:
            im = Image.open(root / r["image"]).convert("RGB")
            prod = Image.open(root / r["product"]).convert("RGBA")
            pl = from_box(prod, r["source"]["placement"], im.size)
        except (OSError, KeyError, ValueError) as e:
            skips.add("unreadable", root / r.get("image", "?"), str(e))
            continue
        imgs.append(np.asarray(im))
        ctrls.append(np.asarray(pl.control)[..., 0])
        prompts.append(r.get("prompt") or "")
        ids.append(r["id"])
    if len(skips):
        log.warning("skipped %d samples: %s", len(skips), skips.summary())
    return np.stack(imgs), np.stack(ctrls), prompts, ids


def to_unit(x_uint8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x_uint8).permute(0, 3, 1, 2).float().div(127.5).sub(1)


def build_prompt_tokenizer(prompts: list[str]):
    from rfnet.text import build_tokenizer

    tok = build_tokenizer(list(prompts) + [EXTRA_WORDS], vocab_size=4000)
    tok.model_max_length = C.TINY["text_encoder"]["max_position_embeddings"]
    return tok


def tokenize(tok, texts: list[str]) -> torch.Tensor:
    return tok(texts, padding="max_length", truncation=True, max_length=tok.model_max_length,
               return_tensors="pt").input_ids


# ---------------------------------------------------------------------------------------------
def _gen(seed: int, stage: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + stage * 100_003 + step)


# A checkpoint: model.safetensors (weights; the diffusion stage's EMA too), optimizer.pt and
# state.json, in a PREFIX-N folder written the pack's one way (rfnet.checkpoints)
CKPT_FILES = ("model.safetensors", "optimizer.pt", "state.json")


def _save_ckpt(out: Path, prefix: str, tensors: dict, opt_state: dict, step: int, keep: int) -> None:
    from safetensors.torch import save_file

    def write(tmp: Path) -> None:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp / "model.safetensors"))
        torch.save(opt_state, tmp / "optimizer.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step}))

    checkpoints.save_plain(out, step, write, keep, prefix)


def _load_ckpt(path: Path):
    from safetensors.torch import load_file

    # our own file: the optimizer's tensors and numbers only
    return (load_file(str(path / "model.safetensors")), torch.load(path / "optimizer.pt", weights_only=True),
            json.loads((path / "state.json").read_text()))


# ---------------------------------------------------------------------------------------------
def train_vae(a, images: torch.Tensor, out: Path):
    # seeded: torch seeds its default generator at random in each process, so an unseeded
    # initialisation made every run different (the committed weights came from one such run)
    torch.manual_seed(a.seed)
    vae = C.build_vae("tiny")
    opt = torch.optim.AdamW(vae.parameters(), lr=a.vae_lr, weight_decay=0.0)
    step = 0
    ck = checkpoints.latest_intact(out, "vae-checkpoint", CKPT_FILES)
    if ck is not None:
        sd, osd, st = _load_ckpt(ck)
        vae.load_state_dict(sd)
        opt.load_state_dict(osd)
        step = st["step"]
        log.info("VAE: resumed from %s", ck)
    vae.train()
    t0 = time.time()
    while step < a.vae_steps:
        g = _gen(a.seed, 1, step)
        idx = torch.randint(len(images), (a.vae_batch_size,), generator=g)
        x = images[idx]
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=g)
        rec = vae.decode(z).sample
        loss = F.l1_loss(rec, x) + 0.5 * F.mse_loss(rec, x) + a.kl_weight * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 50 == 0:
            log.info("vae step %d/%d loss %.4f (%.2f s/step)", step, a.vae_steps, loss.item(),
                     (time.time() - t0) / 50)
            t0 = time.time()
            _metric(out, {"stage": "vae", "step": step, "loss": loss.item()})
        if step % a.checkpointing_steps == 0 or step == a.vae_steps:
            _save_ckpt(out, "vae-checkpoint", vae.state_dict(), opt.state_dict(), step, 2)
    vae.eval().requires_grad_(False)
    return vae


@torch.no_grad()
def encode_all(vae, images: torch.Tensor, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    means, stds = [], []
    for i in range(0, len(images), batch):
        d = vae.encode(images[i:i + batch]).latent_dist
        means.append(d.mean)
        stds.append(d.std)
    # contiguous, as they come back from the cache file: the VAE returns them channels-last, and
    # the UNet's convolutions round differently on that layout, so a resumed run drifted
    return torch.cat(means).contiguous(), torch.cat(stds).contiguous()


def train_diffusion(a, mean, std, scale: float, ctrl, ids_full, ids_generic, ids_empty, tok, vae, out: Path):
    """Stage 2 on the VAE's latents (``mean``, ``std``, times the latent ``scale``); returns the
    exponential moving average of the text encoder, UNet and ControlNet."""
    from diffusers.optimization import get_scheduler

    torch.manual_seed(a.seed)
    unet = C.build_unet("tiny")
    controlnet = C.build_controlnet(unet, "tiny")
    text_encoder = C.build_text_encoder("tiny", vocab_size=len(tok), pad_token_id=tok.pad_token_id,
                                        eos_token_id=tok.sep_token_id)
    models = torch.nn.ModuleDict({"unet": unet, "controlnet": controlnet, "text_encoder": text_encoder})
    ema = copy.deepcopy(models).requires_grad_(False)
    opt = torch.optim.AdamW(models.parameters(), lr=a.learning_rate, weight_decay=1e-2)
    sched = C.build_scheduler("DDPMScheduler")
    step = 0
    ck = checkpoints.latest_intact(out, "checkpoint", CKPT_FILES)
    if ck is not None:
        sd, osd, st = _load_ckpt(ck)
        models.load_state_dict({k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")})
        ema.load_state_dict({k[len("ema."):]: v for k, v in sd.items() if k.startswith("ema.")})
        opt.load_state_dict(osd)
        step = st["step"]
        log.info("diffusion: resumed from %s", ck)
    # linear warm-up, then constant; at step s the rate is lr * min(1, (s + 1) / warmup), so the
    # schedule starts one step in (its epoch 0 would train the first step at rate 0)
    for pg in opt.param_groups:
        pg["initial_lr"] = a.learning_rate
    lr_sched = get_scheduler("constant_with_warmup", opt, num_warmup_steps=a.lr_warmup_steps, last_epoch=step)
    models.train()
    n = len(mean)
    t0 = time.time()
    while step < a.max_train_steps:
        g = _gen(a.seed, 2, step)
        idx = torch.randint(n, (a.train_batch_size,), generator=g)
        z0 = (mean[idx].float() + std[idx].float() * torch.randn(mean[idx].shape, generator=g)) * scale
        noise = torch.randn(z0.shape, generator=g)
        t = torch.randint(0, sched.config.num_train_timesteps, (len(idx),), generator=g)
        zt = sched.add_noise(z0, noise, t)
        u = torch.rand(len(idx), generator=g)
        ids = torch.where((u < a.empty_prompt_p)[:, None], ids_empty[None].expand(len(idx), -1),
                          torch.where((u < a.empty_prompt_p + a.generic_prompt_p)[:, None],
                                      ids_generic[idx], ids_full[idx]))
        cond = ctrl[idx].float().div(255).unsqueeze(1).expand(-1, 3, -1, -1)
        h = text_encoder(ids)[0]
        down, mid = controlnet(zt, t, encoder_hidden_states=h, controlnet_cond=cond, return_dict=False)
        pred = unet(zt, t, encoder_hidden_states=h, down_block_additional_residuals=down,
                    mid_block_additional_residual=mid).sample
        loss = F.mse_loss(pred, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(models.parameters(), 1.0)
        opt.step()
        lr = lr_sched.get_last_lr()[0]
        lr_sched.step()
        step += 1
        # diffusers' EMAModel has the same decay warm-up one step later and rounds its update
        # differently (sub_ against lerp_): the embedded generator's model card reproduces
        # bit for bit with this one, so it stays
        decay = min(a.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), models.parameters()):
                pe.lerp_(pm, 1 - decay)
        if step % 50 == 0:
            log.info("diffusion step %d/%d loss %.4f lr %.2e (%.2f s/step)", step, a.max_train_steps,
                     loss.item(), lr, (time.time() - t0) / 50)
            t0 = time.time()
            _metric(out, {"stage": "diffusion", "step": step, "loss": loss.item()})
        if step % a.checkpointing_steps == 0 or step == a.max_train_steps:
            tensors = {f"model.{k}": v for k, v in models.state_dict().items()}
            tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
            _save_ckpt(out, "checkpoint", tensors, opt.state_dict(), step, a.checkpoints_total_limit)
            if a.export_every and step % a.export_every == 0:
                export(ema, out / f"export-{step}", tok, a, vae, step=step)
    return ema


def _metric(out: Path, rec: dict) -> None:
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps(rec) + "\n")


def export(ema: torch.nn.ModuleDict, dst: Path, tok, a, vae, step: int | None = None) -> Path:
    """A diffusers-layout generator folder: what ``rfft.pipeline.load_parts`` and
    ``AdInpaintPipeline.load`` read."""
    from .pipeline import save_generator

    save_generator(dst, unet=ema["unet"], controlnet=ema["controlnet"], vae=vae,
                   text_encoder=ema["text_encoder"], tokenizer=tok, scheduler=C.build_scheduler(),
                   extra={"trained_by": "python -m rfft.train_generator", "data": Path(a.data).name,
                          "seed": a.seed, "steps": step if step is not None else a.max_train_steps})
    return dst


def export_embedded(src: str | Path, dst: str | Path | None = None) -> Path:
    """A trained generator folder (``final`` or ``export-N``) as the embedded one: fp16."""
    from .pipeline import EMBEDDED, load_parts, save_generator

    parts = load_parts(src)
    meta = json.loads((Path(src) / "model_index.json").read_text()).get("_rfft", {})
    return save_generator(dst or EMBEDDED, **parts, extra={**meta, "exported_from": Path(src).name},
                          dtype=torch.float16)


# ---------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    from rfnet.errors import cli_errors

    with cli_errors("python -m rfft.train_generator"):  # a missing dataset or folder: one line, exit 2
        return _main(argv)


def _main(argv=None) -> int:
    import sys

    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["export"]:
        p = argparse.ArgumentParser(prog="python -m rfft.train_generator export")
        p.add_argument("export")
        p.add_argument("--src", required=True, help="a trained generator folder (final/ or export-N/)")
        p.add_argument("--dst", default=None, help="default: rfft/embedded/generator-synth-tiny")
        a = p.parse_args(argv)
        print(export_embedded(a.src, a.dst))
        return 0
    p = argparse.ArgumentParser(prog="python -m rfft.train_generator", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="an RF-Synth dataset (python -m rfsynth.make)")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="use the first N training samples")
    p.add_argument("--vae_steps", type=int, default=1500)
    p.add_argument("--vae_batch_size", type=int, default=16)
    p.add_argument("--vae_lr", type=float, default=5e-4)
    p.add_argument("--kl_weight", type=float, default=1e-6)
    p.add_argument("--max_train_steps", type=int, default=6000)
    p.add_argument("--train_batch_size", type=int, default=32)
    p.add_argument("--learning_rate", type=float, default=3e-4)
    p.add_argument("--lr_warmup_steps", type=int, default=200)
    p.add_argument("--ema_decay", type=float, default=0.999)
    p.add_argument("--empty_prompt_p", type=float, default=0.1)
    p.add_argument("--generic_prompt_p", type=float, default=0.25,
                   help="share of prompts whose category is replaced by 'a product'")
    p.add_argument("--checkpointing_steps", type=int, default=250)
    p.add_argument("--checkpoints_total_limit", type=int, default=2)
    p.add_argument("--export_every", type=int, default=1000)
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if a.threads:
        torch.set_num_threads(a.threads)
    imgs, ctrl, prompts, _ = load_scenes(Path(a.data), "train", a.limit)  # a bad --data writes nothing
    out = Path(a.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "args.json").write_text(json.dumps(vars(a), indent=1))

    log.info("%d training scenes from %s", len(imgs), a.data)
    images = to_unit(imgs)
    vae = train_vae(a, images, out)

    cache = out / "latents.safetensors"
    if cache.exists():
        from safetensors.torch import load_file

        lat = load_file(str(cache))
        mean, std = lat["mean"], lat["std"]
    else:
        from safetensors.torch import save_file

        mean, std = encode_all(vae, images)
        save_file({"mean": mean.contiguous(), "std": std.contiguous()}, str(cache))
    scale = float(1.0 / mean.std())
    vae.register_to_config(scaling_factor=scale)
    log.info("latent scale %.4f", scale)
    del images

    tok = build_prompt_tokenizer(prompts)
    ids_full = tokenize(tok, prompts)
    ids_generic = tokenize(tok, [GENERIC.sub("a product on a ", q) for q in prompts])
    ids_empty = tokenize(tok, [""])[0]
    ema = train_diffusion(a, mean, std, scale, torch.from_numpy(ctrl), ids_full, ids_generic, ids_empty, tok, vae, out)
    export(ema, out / "final", tok, a, vae)
    log.info("done: %s", out / "final")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
