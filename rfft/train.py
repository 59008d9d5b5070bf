"""RFFT: fine-tune the ControlNet with RFNet's feedback: ``python -m rfft.train``.

    python -m rfft.train --output_dir runs/rfft [--pretrained_model_name_or_path embedded]
        [--controlnet_model_name_or_path DIR] [--products DIR] [--prompts config.json]
        [--reg cc|kl|none] [--beta 1.0] [--max_train_steps 200] [--resume_from_checkpoint latest]

The flags are those of diffusers' examples/controlnet/train_controlnet.py where they mean the
same, plus the paper's: --reg, --beta, --num_inference_steps, --grad_steps_window, --rfnet.
Only the ControlNet learns; the UNet, VAE, text encoder, RFNet and its estimators are frozen (in
--mixed_precision's dtype; the trained weights stay float32). Checkpoints are accelerate states
in ``checkpoint-N``; every random draw of step N (its examples, noise, gradient step) comes from
a generator seeded with (seed, N), so a resumed run continues exactly. The result is
``OUTPUT_DIR/controlnet`` (config.json + diffusion_pytorch_model.safetensors), which diffusers
loads and, for SD1.5-shaped models, ComfyUI's ControlNetLoader too.
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
import logging
import shutil
import time
from pathlib import Path

import torch

from .rewards import REWARDS

log = logging.getLogger("rfft.train")


def parse_args(argv=None):
    from .generate import EXAMPLES

    p = argparse.ArgumentParser(prog="python -m rfft.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--pretrained_model_name_or_path", default="embedded",
                   help="a diffusers SD1.5 folder (unet/, vae/, text_encoder/, tokenizer/, scheduler/) or 'embedded'")
    p.add_argument("--controlnet_model_name_or_path", default=None,
                   help="the ControlNet to start from (default: the generator folder's controlnet/)")
    p.add_argument("--rfnet", default="embedded", help="an RFNet folder or 'embedded'")
    p.add_argument("--products", default=str(EXAMPLES / "products"))
    p.add_argument("--prompts", default=str(EXAMPLES / "prompts.json"))
    p.add_argument("--validation_products", default=None, help="held-out products (default: none)")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resolution", type=int, default=None, help="canvas side (default: the generator's)")
    p.add_argument("--train_batch_size", type=int, default=1)
    p.add_argument("--max_train_steps", type=int, default=200)
    p.add_argument("--gradient_accumulation_steps", type=int, default=1)
    p.add_argument("--gradient_checkpointing", action="store_true")
    p.add_argument("--release_text_encoder", action="store_true",
                   help="encode every prompt once, then free the text encoder (saves its memory)")
    p.add_argument("--learning_rate", type=float, default=1e-5)
    p.add_argument("--lr_scheduler", default="constant", choices=["constant", "constant_with_warmup", "cosine", "linear"])
    p.add_argument("--lr_warmup_steps", type=int, default=0)
    p.add_argument("--adam_weight_decay", type=float, default=1e-2)
    p.add_argument("--max_grad_norm", type=float, default=1.0)
    p.add_argument("--optimizer", default="adamw", choices=["adamw", "adamw_lowmem", "adamw_8bit"],
                   help="adamw_lowmem: bfloat16 moments; adamw_8bit: block-scaled float8 moments (rfft/optim.py); "
                        "with --step_in_backward each parameter steps as soon as its gradient is ready, so "
                        "gradients never all exist")
    p.add_argument("--step_in_backward", action="store_true",
                   help="with adamw_lowmem or adamw_8bit and no gradient accumulation; gradient clipping is skipped")
    p.add_argument("--mixed_precision", default="no", choices=["no", "fp16", "bf16"])
    p.add_argument("--checkpointing_steps", type=int, default=50)
    p.add_argument("--checkpoints_total_limit", type=int, default=2)
    p.add_argument("--resume_from_checkpoint", default=None, help="a checkpoint folder, or 'latest'")
    p.add_argument("--validation_steps", type=int, default=100)
    p.add_argument("--num_validation_images", type=int, default=4)
    p.add_argument("--report_to", default="csv", choices=["csv", "tensorboard", "all", "none"])
    # the paper's
    p.add_argument("--reg", default="cc", choices=["cc", "kl", "none"],
                   help="cc: Consistent Condition (eq. 7-8); kl: eq. 6 in epsilon space; none: ReFL")
    p.add_argument("--beta", type=float, default=1.0)
    p.add_argument("--num_inference_steps", type=int, default=40)
    p.add_argument("--grad_steps_window", type=int, default=10, help="K: the gradient step is one of the last K")
    p.add_argument("--guidance_scale", type=float, default=7.5)
    p.add_argument("--extra_reward", default=None, choices=[None, *REWARDS],
                   help="an extra differentiable reward (the paper's F_IR), see rfft/rewards.py")
    p.add_argument("--extra_reward_weight", type=float, default=0.0)
    p.add_argument("--max_steps_this_run", type=int, default=None, help="stop (with a checkpoint) after N steps")
    return p.parse_args(argv)


def _examples(products_dir, prompts_file, size):
    from .generate import find_products, load_prompts
    from .placement import ProductError, load_product, place
    from .trainer import Example

    files, meta = find_products(products_dir)
    entries = load_prompts(prompts_file)
    out, skipped = [], []
    for i, f in enumerate(files):
        try:
            cut = load_product(f)
        except ProductError as e:
            skipped.append(f"{f.name}: {e}")
            continue
        m = meta.get(f.name, {})
        for e in entries:
            out.append(Example(place(cut, size, e.image_scale), e.for_product(m.get("category") or "product"),
                               e.negative_prompt, m.get("caption") or m.get("category") or f.stem))
    if skipped:
        log.warning("skipped %d products: %s", len(skipped), "; ".join(skipped))
    if not out:
        raise SystemExit(f"error: no usable products in {products_dir}")
    return out


def main(argv=None) -> int:
    return train(parse_args(argv))


def train(a, on_step=None) -> int:
    """Run RFFT with parsed arguments. ``on_step(step, max_steps, row)`` is called after each
    optimizer step (progress, cancel: it may raise, and the last checkpoint stays intact)."""
    from accelerate import Accelerator
    from accelerate.utils import AutocastKwargs, ProjectConfiguration
    from diffusers.optimization import get_scheduler

    from .memory import checkpoint_judge, checkpoint_vae_decoder
    from .pipeline import AdInpaintPipeline, load_parts
    from .trainer import DifferentiableJudge, RFFTConfig, RFFTObjective

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    out = Path(a.output_dir)
    # no autocast weight cache: it would keep a bfloat16 copy of every ControlNet weight for the
    # whole step, which gradient checkpointing otherwise frees after each block (0.7 GB at SD1.5)
    acc = Accelerator(gradient_accumulation_steps=a.gradient_accumulation_steps, mixed_precision=a.mixed_precision,
                      project_config=ProjectConfiguration(project_dir=str(out)),
                      kwargs_handlers=[AutocastKwargs(cache_enabled=False)],
                      log_with="tensorboard" if a.report_to in ("tensorboard", "all") else None)
    wdt = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[a.mixed_precision]
    # the frozen parts load straight in the working precision (never a float32 copy); the
    # trained ControlNet in float32, its frozen reference cast from it
    parts = load_parts(a.pretrained_model_name_or_path, a.controlnet_model_name_or_path, dtype=wdt,
                       controlnet_dtype=torch.float32)
    controlnet = parts.pop("controlnet")
    ref = copy.deepcopy(controlnet).to(wdt).requires_grad_(False)
    pipe = AdInpaintPipeline(controlnet=ref, **parts).to(acc.device)
    pipe.set_progress_bar_config(disable=True)
    controlnet.train().requires_grad_(True)
    if a.gradient_checkpointing:
        controlnet.enable_gradient_checkpointing()
        pipe.unet.enable_gradient_checkpointing()
        checkpoint_vae_decoder(pipe.vae)  # block by block, finer than diffusers' (rfft/memory.py)
    judge = DifferentiableJudge.from_pretrained(a.rfnet).to(acc.device)
    if a.gradient_checkpointing:
        checkpoint_judge(judge)
    cfg = RFFTConfig(a.num_inference_steps, a.grad_steps_window, a.guidance_scale, a.reg, a.beta,
                     a.extra_reward_weight)
    objective = RFFTObjective(pipe, controlnet, ref, judge, cfg,
                              REWARDS[a.extra_reward] if a.extra_reward else None)
    size = a.resolution or pipe.unet.config.sample_size * pipe.latent_factor
    examples = _examples(a.products, a.prompts, size)
    val = _examples(a.validation_products, a.prompts, size)[:a.num_validation_images] if a.validation_products else []
    if a.release_text_encoder:
        n = pipe.cache_prompts([q for e in examples + val for q in (e.prompt, e.negative_prompt)] + [""],
                               release_text_encoder=True)
        log.info("cached %d prompt embeddings and released the text encoder", n)

    if a.optimizer in ("adamw_lowmem", "adamw_8bit"):
        from .optim import LowMemoryAdamW

        if a.step_in_backward and a.gradient_accumulation_steps != 1:
            raise SystemExit("error: --step_in_backward needs --gradient_accumulation_steps 1")
        opt = LowMemoryAdamW(controlnet.parameters(), lr=a.learning_rate, weight_decay=a.adam_weight_decay,
                             state_dtype="float8" if a.optimizer == "adamw_8bit" else torch.bfloat16,
                             step_in_backward=a.step_in_backward)
    else:
        opt = torch.optim.AdamW(controlnet.parameters(), lr=a.learning_rate, weight_decay=a.adam_weight_decay)
    lr_sched = get_scheduler(a.lr_scheduler, opt, num_warmup_steps=a.lr_warmup_steps * acc.num_processes,
                             num_training_steps=a.max_train_steps * acc.num_processes)
    controlnet, opt, lr_sched = acc.prepare(controlnet, opt, lr_sched)
    objective.controlnet = controlnet

    step = 0
    if a.resume_from_checkpoint:
        ck = _find_checkpoint(out, a.resume_from_checkpoint)
        if ck is None:
            log.info("no checkpoint in %s: starting fresh", out)
        else:
            acc.load_state(str(ck))
            step = int(ck.name.split("-")[1])
            log.info("resumed from %s (step %d)", ck, step)
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "args.json").write_text(json.dumps(vars(a), indent=1))
        if acc.log_with:
            acc.init_trackers("rfft", config={k: v for k, v in vars(a).items() if isinstance(v, (int, float, str, bool))})
    stop_at = min(a.max_train_steps, step + a.max_steps_this_run) if a.max_steps_this_run else a.max_train_steps
    t0 = time.time()
    while step < stop_at:
        logs_acc = []
        for micro in range(a.gradient_accumulation_steps):
            g = torch.Generator().manual_seed(a.seed * 1_000_003 + step * 1_009 + micro * 7 + acc.process_index * 104_729)
            idx = torch.randint(len(examples), (a.train_batch_size,), generator=g).tolist()
            with acc.accumulate(controlnet), acc.autocast():
                loss, logs = objective([examples[i] for i in idx], g)
                acc.backward(loss)
                if acc.sync_gradients and not a.step_in_backward:
                    acc.clip_grad_norm_(controlnet.parameters(), a.max_grad_norm)
                opt.step()
                lr_sched.step()
                opt.zero_grad(set_to_none=True)
            logs_acc.append(logs)
        step += 1
        row = {k: sum(d[k] for d in logs_acc) / len(logs_acc) for k in logs_acc[0]}
        row.update(step=step, lr=lr_sched.get_last_lr()[0], seconds=round(time.time() - t0, 2))
        if acc.is_main_process:
            _log_row(out, row, a.report_to)
            if acc.log_with:
                acc.log({k: v for k, v in row.items() if k != "step"}, step=step)
            log.info("step %d/%d %s", step, a.max_train_steps,
                     " ".join(f"{k} {v:.4f}" for k, v in row.items() if k not in ("step",)))
        if step % a.checkpointing_steps == 0 or step == stop_at:
            _checkpoint(acc, out, step, a.checkpoints_total_limit)
        if val and acc.is_main_process and (step % a.validation_steps == 0 or step == a.max_train_steps):
            _validate(pipe, acc.unwrap_model(controlnet), val, out, step, a)
        if on_step is not None:
            on_step(step, a.max_train_steps, row)
    if acc.is_main_process and step >= a.max_train_steps:
        _save_controlnet(acc.unwrap_model(controlnet), out / "controlnet")
        log.info("wrote %s", out / "controlnet")
    acc.end_training()
    return 0


def _find_checkpoint(out: Path, which: str) -> Path | None:
    if which != "latest":
        p = Path(which)
        return p if p.exists() else out / which
    found = sorted((p for p in out.glob("checkpoint-*") if p.is_dir() and not p.name.endswith(".tmp")),
                   key=lambda p: int(p.name.split("-")[1]))
    return found[-1] if found else None


def _checkpoint(acc, out: Path, step: int, limit: int) -> None:
    """accelerate's state, written to a temporary folder and renamed: a kill never leaves a
    half checkpoint under a checkpoint-N name."""
    final = out / f"checkpoint-{step}"
    tmp = out / f"checkpoint-{step}.tmp"
    if acc.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    acc.wait_for_everyone()
    acc.save_state(str(tmp))
    acc.wait_for_everyone()
    if acc.is_main_process:
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        found = sorted((p for p in out.glob("checkpoint-*") if p.is_dir() and not p.name.endswith(".tmp")),
                       key=lambda p: int(p.name.split("-")[1]))
        for old in found[:-limit] if limit else []:
            shutil.rmtree(old, ignore_errors=True)


def _save_controlnet(controlnet, dst: Path) -> None:
    from rfnet.fileio import atomic_dir

    with atomic_dir(dst) as tmp:
        controlnet.save_pretrained(tmp, safe_serialization=True)


def _log_row(out: Path, row: dict, report_to: str) -> None:
    if report_to not in ("csv", "all"):
        return
    path = out / "metrics.csv"
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


@torch.no_grad()
def _validate(pipe, controlnet, val, out: Path, step: int, a) -> None:
    """Validation images of held-out products with RFNet's verdicts, as a badged grid, and
    their available rate in metrics (validation.csv)."""
    from rfnet.badge import badge, grid
    from rfnet.embedded import embedded_path
    from rfnet.fileio import save_image
    from rfnet.inspect import Inspector

    insp = Inspector.from_pretrained(embedded_path("rfnet") if a.rfnet == "embedded" else a.rfnet)
    keep = pipe.controlnet
    pipe.controlnet = controlnet
    try:
        shown, ok = [], 0
        for i, e in enumerate(val):
            im = pipe(e.placement, e.prompt, e.negative_prompt, seeds=[a.seed + 10_000 + i],
                      num_inference_steps=a.num_inference_steps, guidance_scale=a.guidance_scale).images[0]
            v = insp(e.placement.cutout, im, e.caption)[0]
            ok += v.accepted
            shown.append(badge(im, v.label, v.p_available, v.accepted))
    finally:
        pipe.controlnet = keep
    save_image(out / "validation" / f"step-{step:06d}.png", grid(shown))
    with open(out / "validation.csv", "a") as f:
        f.write(f"{step},{ok / len(val):.4f}\n")


if __name__ == "__main__":
    raise SystemExit(main())
