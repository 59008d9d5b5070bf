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

import copy
import csv
import json
import logging
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from rfnet import checkpoints
from rfnet.configargs import arg, check_choices, parse_config
from rfnet.errors import InputError, cli_errors

from .rewards import REWARDS

log = logging.getLogger("rfft.train")

PROG = "python -m rfft.train"


class NonFiniteLossError(InputError):
    """The loss (or a weight) became inf/NaN: almost always a --learning_rate or --beta too
    large. Training stops before the bad update is stepped or saved."""


# old option names that still work
OPTIMIZER_ALIASES = {"adamw_8bit": "adamw_float8"}


def _default_products() -> str:
    from .products import EXAMPLES

    return str(EXAMPLES / "products")


def _default_prompts() -> str:
    from .products import EXAMPLES

    return str(EXAMPLES / "prompts.json")


@dataclass
class RFFTTrainConfig:
    """Everything ``python -m rfft.train`` takes. The CLI parses it (transformers'
    HfArgumentParser: one flag per field); the RFFT Train node builds it directly."""
    output_dir: str = arg(help="where checkpoints, logs and the trained controlnet/ go")
    pretrained_model_name_or_path: str = arg(
        "embedded", "a diffusers SD1.5 folder (unet/, vae/, text_encoder/, tokenizer/, scheduler/) or 'embedded'")
    controlnet_model_name_or_path: str | None = arg(
        None, "the ControlNet to start from (default: the generator folder's controlnet/), or embedded-rfft")
    rfnet: str = arg("embedded", "an RFNet folder or 'embedded'")
    products: str = arg(factory=_default_products, help="a product folder (default: the bundled examples)")
    prompts: str = arg(factory=_default_prompts, help="a prompt config (default: the bundled one)")
    validation_products: str | None = arg(None, "held-out products (default: none)")
    seed: int = arg(0)
    resolution: int | None = arg(None, "canvas side (default: the generator's)")
    train_batch_size: int = arg(1)
    max_train_steps: int = arg(200)
    gradient_accumulation_steps: int = arg(1)
    gradient_checkpointing: bool = arg(False)
    release_text_encoder: bool = arg(False, "encode every prompt once, then free the text encoder (saves its memory)")
    learning_rate: float = arg(1e-5)
    lr_scheduler: str = arg("constant", choices=["constant", "constant_with_warmup", "cosine", "linear"])
    lr_warmup_steps: int = arg(0)
    adam_weight_decay: float = arg(1e-2)
    max_grad_norm: float = arg(1.0)
    optimizer: str = arg("adamw", choices=["adamw", "adamw_lowmem", "adamw_float8", "adamw_bnb_8bit", *OPTIMIZER_ALIASES],
                          help="adamw_lowmem: bfloat16 moments; adamw_float8: block-scaled float8 moments (rfft/optim.py, "
                               "any device; adamw_8bit is its old name); adamw_bnb_8bit: bitsandbytes' 8-bit AdamW (a "
                               "CUDA GPU with bitsandbytes installed). With --step_in_backward (lowmem, float8) each "
                               "parameter steps as soon as its gradient is ready, so gradients never all exist")
    step_in_backward: bool = arg(False, "with adamw_lowmem or adamw_float8 and no gradient accumulation; "
                                         "gradient clipping is skipped")
    mixed_precision: str = arg("no", choices=["no", "fp16", "bf16"])
    checkpointing_steps: int = arg(50)
    checkpoints_total_limit: int = arg(2)
    resume_from_checkpoint: str | None = arg(None, "a checkpoint folder, or 'latest'")
    validation_steps: int = arg(100)
    num_validation_images: int = arg(4)
    report_to: str = arg("csv", choices=["csv", "tensorboard", "all", "none"])
    # the paper's
    reg: str = arg("cc", "cc: Consistent Condition (eq. 7-8); kl: eq. 6 in epsilon space; none: ReFL",
                    choices=["cc", "kl", "none"])
    beta: float = arg(1.0)
    cc_form: str = arg("score", "L_CC on the score (eq. 7-8 as written: eps / sqrt(1 - alphabar_t)) or on eps "
                                 "(the first version; its beta is on another scale)", choices=["score", "eps"])
    num_inference_steps: int = arg(40)
    grad_steps_window: int = arg(10, "K: the gradient step is one of the last K")
    guidance_scale: float = arg(7.5)
    extra_reward: str | None = arg(None, "an extra differentiable reward (the paper's F_IR), see rfft/rewards.py",
                                    choices=list(REWARDS))
    extra_reward_weight: float = arg(0.0)
    max_steps_this_run: int | None = arg(None, "stop (with a checkpoint) after N steps")

    def __post_init__(self):
        self.optimizer = OPTIMIZER_ALIASES.get(self.optimizer, self.optimizer)


def parse_args(argv=None, exit_on_error: bool = True) -> RFFTTrainConfig:
    """The CLI's arguments as an :class:`RFFTTrainConfig`. ``exit_on_error=False`` (library
    callers): a bad argument raises InputError instead of argparse's SystemExit."""
    return parse_config(RFFTTrainConfig, argv, PROG, __doc__.split("\n\n")[0], exit_on_error)


def validate_args(a) -> None:
    """Every check that needs no model, before any is loaded: a bad count or rate is one line
    (InputError), not a traceback minutes later. A configuration built in code (the node) gets
    the same choice checks as the command line."""
    check_choices(a, RFFTTrainConfig)

    def positive(name, v):
        if v is not None and v < 1:
            raise InputError(f"--{name} must be at least 1, got {v}")

    for name in ("train_batch_size", "max_train_steps", "gradient_accumulation_steps", "checkpointing_steps",
                 "validation_steps", "num_validation_images", "num_inference_steps", "grad_steps_window",
                 "max_steps_this_run"):
        positive(name, getattr(a, name))
    for name in ("checkpoints_total_limit", "lr_warmup_steps"):
        if getattr(a, name) < 0:
            raise InputError(f"--{name} must be 0 or more, got {getattr(a, name)}")
    if not a.grad_steps_window <= a.num_inference_steps:
        raise InputError(f"--grad_steps_window ({a.grad_steps_window}) must not exceed --num_inference_steps "
                         f"({a.num_inference_steps})")
    if a.resolution is not None and a.resolution < 8:
        raise InputError(f"--resolution must be at least 8 pixels, got {a.resolution}")
    # NaN passes every comparison, so finiteness first
    for name, lo, strict in (("learning_rate", 0.0, True), ("beta", 0.0, False), ("adam_weight_decay", 0.0, False),
                             ("max_grad_norm", 0.0, True), ("guidance_scale", None, False),
                             ("extra_reward_weight", None, False)):
        v = getattr(a, name)
        if not math.isfinite(v):
            raise InputError(f"--{name} must be a finite number, got {v}")
        if lo is not None and (v <= lo if strict else v < lo):
            raise InputError(f"--{name} must be {'positive' if strict else '0 or more'}, got {v}")
    if a.step_in_backward and a.gradient_accumulation_steps != 1:
        raise InputError("--step_in_backward needs --gradient_accumulation_steps 1")
    if a.step_in_backward and a.optimizer not in ("adamw_lowmem", "adamw_float8"):
        raise InputError("--step_in_backward needs --optimizer adamw_lowmem or adamw_float8")
    out = Path(a.output_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"--output_dir {out} is a file, not a folder")
    _check_model_folders(a)


def _check_model_folders(a) -> None:
    """A missing or incomplete model folder, named before anything loads (loading itself is
    wrapped too, by _loading, for files that exist but are garbage)."""
    gen = a.pretrained_model_name_or_path
    if gen != "embedded":
        g = Path(gen).expanduser()
        if not g.exists():
            raise InputError(f"--pretrained_model_name_or_path {g}: not found; pass a diffusers SD1.5 folder "
                             "(unet/, vae/, text_encoder/, tokenizer/, scheduler/) or 'embedded'")
        if not g.is_dir():
            raise InputError(f"--pretrained_model_name_or_path {g} is a file; rfft.train needs a diffusers folder "
                             "(unet/, vae/, text_encoder/, tokenizer/, scheduler/)")
        for sub in ("model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json", "tokenizer",
                    "scheduler/scheduler_config.json"):
            if not (g / sub).exists():
                raise InputError(f"--pretrained_model_name_or_path {g}: {sub} is missing; not a diffusers SD1.5 folder")
        if a.controlnet_model_name_or_path is None and not (g / "controlnet" / "config.json").exists():
            raise InputError(f"--pretrained_model_name_or_path {g} has no controlnet/config.json; pass "
                             "--controlnet_model_name_or_path (a diffusers canny ControlNet folder)")
    if a.controlnet_model_name_or_path is not None:
        from .pipeline import GeneratorNotFoundError, resolve_controlnet

        try:
            a.controlnet_model_name_or_path = str(resolve_controlnet(a.controlnet_model_name_or_path))
        except GeneratorNotFoundError as e:
            raise InputError(str(e).replace("--controlnet", "--controlnet_model_name_or_path", 1)) from None
        c = Path(a.controlnet_model_name_or_path).expanduser()
        if not (c / "config.json").is_file():
            raise InputError(f"--controlnet_model_name_or_path {c}: no config.json there; pass a diffusers "
                             "ControlNet folder (config.json + diffusion_pytorch_model.safetensors)")
    if a.rfnet != "embedded":
        r = Path(a.rfnet).expanduser()
        if not (r / "config.json").is_file():
            raise InputError(f"--rfnet {r}: no config.json there; pass an RFNet folder (rfnet.train's output) "
                             "or 'embedded'")


@contextmanager
def _loading(*named):
    """Loading the models the user named, ``(flag, path)`` pairs: a folder that exists but holds
    garbage (bad JSON, a truncated weight file) becomes one line naming it (the pair whose path
    the error mentions, else the first). Running out of memory is not the folder's fault and
    passes through."""
    def culprit(e):
        text = str(e)
        return next(((f, p) for f, p in named if str(p) in text), named[0])

    try:
        yield
    except (MemoryError, torch.OutOfMemoryError):
        raise
    except InputError as e:  # the loader's own one-line message: say which flag it is about
        raise InputError(f"{culprit(e)[0]}: {e}") from e
    except Exception as e:  # diffusers/transformers/safetensors raise many kinds here
        flag, path = culprit(e)
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise InputError(f"{flag} {path}: cannot load it ({type(e).__name__}: {first})") from e


def _products(products_dir, flag: str = "--products") -> list:
    """Read every product cutout (cheap, before the models): [(path, cutout, meta)]. An
    unreadable file is skipped with a warning; none left is an InputError."""
    from .placement import ProductError, load_product
    from .products import find_products

    d = Path(products_dir)
    if not d.is_dir():
        raise InputError(f"{flag} {d}: not a folder of product images")
    try:
        files, meta = find_products(d)
    except (ValueError, OSError) as e:  # a garbage products.json or caption file
        raise InputError(f"{flag} {d}: cannot read its metadata ({e})") from e
    out, skipped = [], []
    for f in files:
        try:
            out.append((f, load_product(f), meta.get(f.name, {}) if isinstance(meta, dict) else {}))
        except (ProductError, OSError, ValueError) as e:
            skipped.append(f"{f.name}: {e}")
    if skipped:
        log.warning("skipped %d products: %s", len(skipped), "; ".join(skipped))
    if not out:
        raise InputError(f"{flag} {d}: no usable product image "
                         f"({'; '.join(skipped) if skipped else 'the folder has no image file'})")
    return out


def _prompts(prompts_file):
    from .products import load_prompts

    try:
        return load_prompts(prompts_file)
    except ValueError as e:  # the prompt file's problem, said in one line
        raise InputError(f"--prompts {e}") from e


def _examples(products, entries, size):
    from .placement import place
    from .trainer import Example

    out = []
    for f, cut, m in products:
        for e in entries:
            out.append(Example(place(cut, size, e.image_scale), e.for_product(m.get("category") or "product"),
                               e.negative_prompt, m.get("caption") or m.get("category") or f.stem))
    return out


def main(argv=None) -> int:
    # the CLI's logging only: train() also runs inside ComfyUI, whose logging is its own
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    with cli_errors(PROG):
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

    # everything that needs no model first: a bad argument, folder or product is one line
    # before minutes of loading (and a product folder with nothing readable never gets that far)
    validate_args(a)
    products = _products(a.products)
    val_products = _products(a.validation_products, "--validation_products") if a.validation_products else []
    entries = _prompts(a.prompts)
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
    named = [("--pretrained_model_name_or_path", a.pretrained_model_name_or_path)]
    if a.controlnet_model_name_or_path:
        named.insert(0, ("--controlnet_model_name_or_path", a.controlnet_model_name_or_path))
    with _loading(*named):
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
    with _loading(("--rfnet", a.rfnet)):
        judge = DifferentiableJudge.from_pretrained(a.rfnet)
    judge = judge.to(acc.device)
    if a.gradient_checkpointing:
        checkpoint_judge(judge)
    cfg = RFFTConfig(a.num_inference_steps, a.grad_steps_window, a.guidance_scale, a.reg, a.beta,
                     a.extra_reward_weight, cc_form=a.cc_form)
    objective = RFFTObjective(pipe, controlnet, ref, judge, cfg,
                              REWARDS[a.extra_reward] if a.extra_reward else None)
    size = a.resolution or pipe.unet.config.sample_size * pipe.latent_factor
    if size % pipe.latent_factor:
        raise InputError(f"--resolution {size} must be a multiple of the generator's latent factor {pipe.latent_factor}")
    examples = _examples(products, entries, size)
    val = _examples(val_products, entries, size)[:a.num_validation_images]
    if a.release_text_encoder:
        n = pipe.cache_prompts([q for e in examples + val for q in (e.prompt, e.negative_prompt)] + [""],
                               release_text_encoder=True)
        log.info("cached %d prompt embeddings and released the text encoder", n)

    if a.optimizer in ("adamw_lowmem", "adamw_float8"):
        from .optim import LowMemoryAdamW

        opt = LowMemoryAdamW(controlnet.parameters(), lr=a.learning_rate, weight_decay=a.adam_weight_decay,
                             state_dtype="float8" if a.optimizer == "adamw_float8" else torch.bfloat16,
                             step_in_backward=a.step_in_backward)
    elif a.optimizer == "adamw_bnb_8bit":
        try:
            import bitsandbytes as bnb
        except ImportError:
            raise InputError("--optimizer adamw_bnb_8bit needs bitsandbytes (pip install bitsandbytes) and a CUDA "
                             "GPU; on a CPU use adamw_float8") from None
        opt = bnb.optim.AdamW8bit(controlnet.parameters(), lr=a.learning_rate, weight_decay=a.adam_weight_decay)
    else:
        opt = torch.optim.AdamW(controlnet.parameters(), lr=a.learning_rate, weight_decay=a.adam_weight_decay)
    lr_sched = get_scheduler(a.lr_scheduler, opt, num_warmup_steps=a.lr_warmup_steps * acc.num_processes,
                             num_training_steps=a.max_train_steps * acc.num_processes)
    controlnet, opt, lr_sched = acc.prepare(controlnet, opt, lr_sched)
    objective.controlnet = controlnet

    step, last_ck = 0, None
    if a.resume_from_checkpoint:
        last_ck = checkpoints.resume(acc, out, a.resume_from_checkpoint)
        step = checkpoints.step_of(last_ck) if last_ck else 0
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "args.json").write_text(json.dumps(vars(a), indent=1))
        # the rows of steps after the one resumed from are run again: drop them, so that each
        # step is in the logs once (a fresh start in an old folder drops them all)
        _drop_rows_after(out / "metrics.csv", step, "step")
        _drop_rows_after(out / "validation.csv", step, 0)
        if acc.log_with:
            acc.init_trackers("rfft", config={k: v for k, v in vars(a).items() if isinstance(v, (int, float, str, bool))})
    stop_at = min(a.max_train_steps, step + a.max_steps_this_run) if a.max_steps_this_run else a.max_train_steps

    def non_finite(what: str, at: int):
        kept = f"the last checkpoint ({last_ck}) is kept" if last_ck else "no checkpoint was written"
        return NonFiniteLossError(f"{what} became non-finite at step {at}: training stopped, nothing of that step "
                                  f"was saved and {kept}. Lower --learning_rate ({a.learning_rate:g}) or --beta "
                                  f"({a.beta:g})")

    t0 = time.time()
    while step < stop_at:
        logs_acc = []
        for micro in range(a.gradient_accumulation_steps):
            g = torch.Generator().manual_seed(a.seed * 1_000_003 + step * 1_009 + micro * 7 + acc.process_index * 104_729)
            idx = torch.randint(len(examples), (a.train_batch_size,), generator=g).tolist()
            with acc.accumulate(controlnet), acc.autocast():
                loss, logs = objective([examples[i] for i in idx], g)
                # before backward: with --step_in_backward the optimizer steps inside it
                if not torch.isfinite(loss.detach()).all():
                    raise non_finite("the loss (" + ", ".join(f"{k} {v:.4g}" for k, v in logs.items()) + ")", step + 1)
                acc.backward(loss)
                if acc.sync_gradients and not a.step_in_backward:
                    norm = acc.clip_grad_norm_(controlnet.parameters(), a.max_grad_norm)
                    if norm is not None and not torch.isfinite(torch.as_tensor(norm)).all():
                        raise non_finite(f"the gradient norm ({float(norm)})", step + 1)
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
            if not _all_finite(controlnet):  # never a checkpoint of inf/NaN weights
                raise non_finite("a ControlNet weight", step)
            checkpoints.save(acc, out, step, a.checkpoints_total_limit)
            last_ck = out / f"checkpoint-{step}"
        if val and acc.is_main_process and (step % a.validation_steps == 0 or step == a.max_train_steps):
            _validate(pipe, acc.unwrap_model(controlnet), val, out, step, a)
        if on_step is not None:
            on_step(step, a.max_train_steps, row)
    if acc.is_main_process and step >= a.max_train_steps:
        if not _all_finite(controlnet):
            raise non_finite("a ControlNet weight", step)
        _save_controlnet(acc.unwrap_model(controlnet), out / "controlnet")
        log.info("wrote %s", out / "controlnet")
    acc.end_training()
    return 0


def _all_finite(model) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


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


def _drop_rows_after(path: Path, step: int, column) -> None:
    """Keep the rows of ``path`` (a CSV; ``column``: the step's header name, or its index in a
    file without a header) whose step is at most ``step``; rewritten atomically. A torn last
    line (a kill mid-write) goes too."""
    if not path.exists():
        return
    from rfnet.fileio import write_text

    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    head, body = (rows[:1], rows[1:]) if isinstance(column, str) else ([], rows)
    if head and column not in head[0]:
        return
    i = head[0].index(column) if head else column

    def keep(r):
        try:
            return len(r) == len(rows[0]) and float(r[i]) <= step
        except (ValueError, IndexError):
            return False

    kept = [r for r in body if keep(r)]
    if len(kept) == len(body):
        return
    import io

    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(head + kept)
    write_text(path, buf.getvalue())


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
