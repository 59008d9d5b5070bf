"""Train RFNet: ``python -m rfnet.train --train_data DIR --output_dir DIR``.

Defaults follow the paper (section 5.1): 10 epochs, AdamW, lr 1e-4 divided by 10 at epoch 5.
accelerate gives several GPUs, mixed precision and gradient accumulation. Checkpoints every N
optimizer steps (``checkpoint-N`` folders, written to a temporary name and renamed);
``--resume_from_checkpoint latest`` continues exactly where the last one stopped: weights,
optimizer, schedule, random states and the position in the epoch's data order. Output: the
model as config.json + model.safetensors, its tokenizer, TensorBoard and CSV logs.

The command is a thin shell: :func:`train` takes the parsed arguments and is what the tests
and other tools call.
"""
from __future__ import annotations

import csv
import json
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from . import checkpoints, fileio
from .augment import flip_mask, hflip_batch
from .configargs import arg, check_choices, parse_config
from .data import Collator, RFDataset
from .dataformat import SkipReport, read_records
from .errors import InputError, cli_errors
from .extractors import make_extractor
from .labels import LABEL_SETS
from .metrics import inspection_report
from .model import MODALITIES, RFNetConfig, create_model, with_mask_input
from .text import SCRATCH_CAPTION_CONFIGS, build_tokenizer, load_tokenizer

log = logging.getLogger("rfnet.train")
PROG = "python -m rfnet.train"

PRESETS = {
    # The paper's model: ResNet50 at 384, a Chinese RoBERTa, width 384, 8 heads, N1=1, N2=3.
    "paper": dict(image_backbone="resnet50", image_size=384, width=384, num_heads=8,
                  num_filter_layers=1, num_attention_layers=3,
                  caption_encoder="hfl/chinese-roberta-wwm-ext", image_weights="required"),
    # A CPU-sized model of the same structure, trained from scratch.
    "tiny": dict(image_backbone="resnet10t", image_size=64, width=64, num_heads=4,
                 num_filter_layers=1, num_attention_layers=2,
                 caption_encoder="scratch", image_weights="none"),
}


@dataclass(kw_only=True)
class RFNetTrainConfig:
    """Everything ``python -m rfnet.train`` takes. The CLI parses it (transformers'
    HfArgumentParser: one flag per field); the Train RFNet node builds it directly."""
    # data
    train_data: list[str] = arg(help="RF dataset folders, manifest.jsonl or RF1M label.txt files; several are trained "
                                     "on together (e.g. RF-Gen's generated images and RF-Synth's composed scenes)")
    train_split: str = arg("train", "split of --train_data to train on ('all' for every sample)")
    train_samples: list[int] | None = arg(None, "per --train_data, train on its first N usable samples (0: all); "
                                                "e.g. a learning curve")
    validation_data: list[str] | None = arg(None, "datasets for validation (default: --train_data)")
    validation_split: str = arg("val", "split used for validation ('none' to skip)")
    depth_model: str = arg("fallback", "depth extractor for samples without depth maps: a transformers folder (DPT, "
                                       "Depth Anything), 'embedded', or 'fallback' (no weights; weak)")
    salience_model: str = arg("fallback", "salience extractor for samples without salience maps: a U2-Net .pth file, "
                                          "'embedded', or 'fallback' (spectral residual; no weights)")
    ignore_stored_maps: bool = arg(False, "compute depth and salience with the extractors even where the dataset has "
                                          "maps, to train on the maps an inspector will see")
    dataloader_num_workers: int = arg(0)
    cache_dir: str | None = arg(None, "where computed depth/salience maps are cached (default: the dataset's "
                                      ".cache/maps, or the user cache folder when the dataset is read-only)")
    # model
    init_from: str | None = arg(None, "fine-tune an existing RFNet: a folder rfnet.train wrote (config.json, "
                                      "model.safetensors, tokenizer/) or 'embedded'; its architecture, labels and "
                                      "tokenizer are kept, and the model flags below are ignored, except "
                                      "--image_size (a CNN's weights take any input size), --product_input and "
                                      "--mask_input")
    preset: str = arg("paper", choices=sorted(PRESETS))
    model_config: str | None = arg(None, "RFNet config.json to build from (overrides the preset)")
    label_set: str = arg("paper5", choices=sorted(LABEL_SETS))
    architecture: str = arg("rfnet", "single_image: a plain timm classifier of the generated image (Table 1 "
                                     "baselines)", choices=["rfnet", "single_image"])
    image_backbone: str | None = arg(None, "any timm model name (paper: resnet50)")
    image_size: int | None = arg(None)
    product_input: str | None = arg(None, "what the product input shows: 'cutout' (the product alone; the default) or "
                                          "'placed' (on white where it stands in the generated image; the records "
                                          "need source.placement). Also taken with --init_from",
                                    choices=["cutout", "placed"])
    mask_input: bool = arg(False, "the image encoder also reads where the product stands (its alpha at its placement) "
                                  "as a fourth channel of the generated image and its maps; the records need "
                                  "source.placement. With --init_from, the new channel's weights start at zero, so "
                                  "the model starts as the one it came from")
    width: int | None = arg(None)
    num_heads: int | None = arg(None)
    num_filter_layers: int | None = arg(None, "N1")
    num_attention_layers: int | None = arg(None, "N2")
    drop: list[str] = arg(help="inputs to leave out (the paper's Table 2 ablation)", choices=list(MODALITIES),
                          factory=list)
    caption_encoder: str | None = arg(None, "transformers model folder or hub id; 'scratch' trains a small BERT with "
                                            "a tokenizer built from the training captions")
    image_weights: str | None = arg(None, "pretrained weights of the timm backbone (.safetensors/.pth/.bin); 'none' "
                                          "for random init")
    allow_download: bool = arg(False, "let timm/transformers fetch pretrained weights from the hub (needs network)")
    # optimisation (paper defaults)
    num_train_epochs: int = arg(10)
    max_train_steps: int | None = arg(None, "stop after this many optimizer steps")
    learning_rate: float = arg(1e-4)
    lr_decay_epoch: int = arg(5, "divide the lr at this epoch (0: never)")
    lr_decay_factor: float = arg(0.1)
    weight_decay: float = arg(1e-2)
    train_batch_size: int = arg(16)
    gradient_accumulation_steps: int = arg(1)
    max_grad_norm: float = arg(1.0)
    aux_targets: list[str] = arg(help="numbers of each record's aux_targets to predict beside the label, from the "
                                      "same features (RF-Gen: the oracle's measures, written there by `python -m "
                                      "rfsynth.measures DIR`); records without them train the label alone",
                                 factory=list)
    aux_weight: float = arg(1.0, "weight of the auxiliary targets' squared error in the loss")
    hflip: float = arg(0.0, "probability of mirroring each training sample left-right: the product, the generated "
                            "image and its maps together (every defect is the same defect in the mirror)")
    balance: str = arg("none", "class balancing: weighted loss or a class-balanced sampler",
                       choices=["none", "loss", "sampler"])
    mixed_precision: str = arg("no", choices=["no", "fp16", "bf16"])
    seed: int = arg(0)
    # checkpoints and logs
    output_dir: str = arg(help="where checkpoints, logs and the trained model go")
    checkpointing_steps: int = arg(500)
    checkpoints_total_limit: int | None = arg(None)
    resume_from_checkpoint: str | None = arg(None, "a checkpoint folder or 'latest'")
    calibrate_precision: float | None = arg(None, "after training, store in config.json the P(Available) at which "
                                                  "this share of the validation images it accepts are Available "
                                                  "(rfnet.calibrate); needs validation data")
    report_to: str = arg("tensorboard", choices=["tensorboard", "none"])
    logging_steps: int = arg(10)
    no_progress: bool = arg(False, "no tqdm bar")


def parse_args(argv=None, exit_on_error: bool = True) -> RFNetTrainConfig:
    """The CLI's arguments as an :class:`RFNetTrainConfig`. ``exit_on_error=False`` (library
    callers): a bad argument raises InputError instead of argparse's SystemExit."""
    return parse_config(RFNetTrainConfig, argv, PROG, "Train RFNet (the paper's inspector) on an RF dataset folder "
                        "or RF1M label.txt.", exit_on_error)


# ---------------------------------------------------------------------------------------------
# Model and tokenizer
# ---------------------------------------------------------------------------------------------
def _setting(args, name):
    v = getattr(args, name)
    return v if v is not None else PRESETS[args.preset].get(name)


def build_model(args, captions: list[str], out: Path, resuming: bool = False):
    """(model, tokenizer) for a run. A resumed run takes the tokenizer the first run saved in
    ``out``, so it rebuilds exactly the same model even if the data changed since."""
    model, tokenizer = _build_model(args, captions, out, resuming)
    if args.product_input and args.product_input != model.config.product_input:
        # what the product input shows changes no weight (a fine-tuned model adapts to it), so
        # it is taken whichever way the model was made: preset, --model_config or --init_from
        log.info("product input %s -> %s", model.config.product_input, args.product_input)
        model.config.product_input = args.product_input
    if args.mask_input and not model.config.mask_input:
        if model.config.architecture != "rfnet" or not model.config.use_generated:
            raise InputError("--mask_input needs the rfnet architecture with the generated image")
        # deterministic (a zero channel), so a resumed run rebuilds the same model
        log.info("mask input: the image encoder's first convolution gets a fourth channel, at zero")
        model = with_mask_input(model)
    aux = tuple(args.aux_targets or ())
    if aux and aux != tuple(model.config.aux_targets):
        if not hasattr(model, "add_aux_head"):  # a single_image classifier given as --init_from
            raise InputError("--aux_targets needs the rfnet architecture; "
                             f"{args.init_from} is a {model.config.architecture} classifier")
        # A new head (fresh weights from the run's seed) for the targets asked for; a model
        # fine-tuned without --aux_targets keeps the head it has, unused.
        model.config.aux_targets = aux
        model.add_aux_head()
    return model, tokenizer


def _build_model(args, captions: list[str], out: Path, resuming: bool):
    if args.init_from:
        model, tok = _model_to_fine_tune(args.init_from)
        if args.image_size and args.image_size != model.config.image_size:
            # Convolutions and the sine position code take any map size; a ViT's learned
            # position embedding does not, so it is refused in check_args.
            log.info("input size %d -> %d", model.config.image_size, args.image_size)
            model.config.image_size = args.image_size
        return model, tok
    caption_src = _setting(args, "caption_encoder")
    use = {m: m not in args.drop for m in MODALITIES}
    if args.architecture == "single_image":
        use = {m: m == "generated" for m in MODALITIES}
    if (use["caption"] and caption_src != "scratch" and not args.allow_download
            and not Path(caption_src).expanduser().exists()):
        raise InputError(
            f"the caption encoder {caption_src!r} is not a local folder and downloads are off: "
            f"download it (https://huggingface.co/{caption_src}) and pass --caption_encoder PATH, "
            "or pass --allow_download, or --caption_encoder scratch to train one from scratch "
            "(--preset tiny does that for a quick CPU run)"
        )
    tokenizer = None
    if args.model_config:
        cfg = _read_model_config(args.model_config)
    else:
        kw = {k: _setting(args, k) for k in ("image_backbone", "image_size", "width", "num_heads",
                                            "num_filter_layers", "num_attention_layers")}
        cfg = RFNetConfig(label_set=args.label_set, architecture=args.architecture,
                          **kw, **{f"use_{m}": v for m, v in use.items()})
        if cfg.image_inputs:
            import timm

            pc = timm.create_model(cfg.image_backbone, pretrained=False).pretrained_cfg
            cfg.image_mean, cfg.image_std = tuple(pc["mean"]), tuple(pc["std"])
    if cfg.use_caption:
        if resuming and (out / "tokenizer").exists():
            tokenizer = load_tokenizer(out / "tokenizer")
        elif caption_src == "scratch":
            tokenizer = build_tokenizer(captions, vocab_size=2000)
        else:
            tokenizer = load_tokenizer(caption_src, args.allow_download)
        if not args.model_config:
            if caption_src == "scratch":
                size = "paper" if args.preset == "paper" else "tiny"
                cfg.caption_config = dict(SCRATCH_CAPTION_CONFIGS[size], vocab_size=len(tokenizer))
            else:
                from transformers import AutoConfig

                cfg.caption_config = AutoConfig.from_pretrained(
                    caption_src, local_files_only=not args.allow_download).to_dict()
    model = create_model(cfg)
    loaded = []
    img_w = _setting(args, "image_weights")
    if cfg.image_inputs and img_w not in (None, "none"):
        if img_w == "required" and not args.allow_download:
            raise InputError(
                f"the paper preset starts from an ImageNet-pretrained {cfg.image_backbone}: pass "
                "--image_weights FILE (a timm checkpoint, e.g. model.safetensors from "
                f"https://huggingface.co/timm/{cfg.image_backbone}.a1_in1k), --allow_download, "
                "or --image_weights none to start from random weights"
            )
        loaded += model.load_pretrained_backbones(
            image_weights=None if img_w == "required" else img_w, allow_download=args.allow_download)
    if cfg.use_caption and caption_src != "scratch" and not args.model_config:
        loaded += model.load_pretrained_backbones(caption_weights=caption_src,
                                                  allow_download=args.allow_download)
    for line in loaded:
        log.info("pretrained: %s", line)
    return model, tokenizer


# ---------------------------------------------------------------------------------------------
# Data order
# ---------------------------------------------------------------------------------------------
class EpochSampler(torch.utils.data.Sampler):
    """A shuffled order that depends only on (seed, epoch), so a resumed run sees exactly the
    order the interrupted one would have. With ``weights``, draws with replacement in
    proportion to them (the class-balanced option)."""

    def __init__(self, n: int, seed: int, weights: list[float] | None = None):
        self.n, self.seed, self.weights, self.epoch = n, seed, weights, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self):
        return self.n

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.weights is None:
            return iter(torch.randperm(self.n, generator=g).tolist())
        w = torch.tensor(self.weights, dtype=torch.double)
        return iter(torch.multinomial(w, self.n, replacement=True, generator=g).tolist())


def masked_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the finite targets only (NaN: the oracle did not measure it);
    zero, still on the graph, when a batch has none."""
    ok = torch.isfinite(target)
    if not bool(ok.any()):
        return pred.sum() * 0.0
    return (pred.float()[ok] - target[ok]).pow(2).mean()


def _model_inputs(batch: dict) -> dict:
    keys = ("product", "generated", "depth", "salience", "mask", "input_ids", "attention_mask")
    return {k: batch[k] for k in keys if k in batch}


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------
def list_checkpoints(out: Path) -> list[Path]:
    """checkpoint-N folders with their trainer_state.json, oldest first (a stray checkpoint-foo
    or a half-written checkpoint-N.tmp is not one)."""
    return [p for p in checkpoints.list_checkpoints(out) if (p / "trainer_state.json").exists()]


def read_trainer_state(ckpt: Path) -> dict:
    """A checkpoint's position, after checking that its state file parses and its safetensors
    files are complete; InputError naming the damaged file otherwise."""
    from safetensors import safe_open

    path = ckpt / "trainer_state.json"
    try:
        st = json.loads(path.read_text(encoding="utf-8"))
        st = {k: int(st[k]) for k in ("global_step", "epoch", "batches_in_epoch")}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"{path} is damaged ({type(e).__name__}: {e})") from None
    for f in sorted(ckpt.glob("*.safetensors")):
        try:
            with safe_open(str(f), "pt") as h:  # reads the header; checks the file's length
                h.keys()
        except Exception as e:  # noqa: BLE001 - SafetensorError is not exported under one name
            raise InputError(f"{f} is damaged or truncated ({str(e).splitlines()[0]})") from None
    return st


def save_checkpoint(accelerator, out: Path, state: dict, limit: int | None) -> Path:
    """accelerate's full state plus our position (trainer_state.json), the pack's way
    (rfnet.checkpoints: a temporary folder, a manifest, renamed into place)."""
    return checkpoints.save(accelerator, out, state["global_step"], limit, extra={"trainer_state.json": state})


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def predict(model, loader, accelerator=None, device=None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(true labels, class probabilities, ids) of every sample of ``loader``."""
    model.eval()
    ys, ps, ids = [], [], []
    for batch in loader:
        if device is not None:
            batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        out = model(**_model_inputs(batch))
        probs, y = out.probs, batch["label"]
        if accelerator is not None:
            probs, y = accelerator.gather_for_metrics((probs, y))
        ys.append(y.cpu().numpy())
        ps.append(probs.float().cpu().numpy())
        ids += batch["id"]
    model.train()
    if not ys:
        return np.zeros(0, int), np.zeros((0, 0)), []
    return np.concatenate(ys), np.concatenate(ps), ids


CSV_FIELDS = ["step", "epoch", "loss", "lr", "val_loss", "val_accuracy", "val_ap", "time"]


def _append_csv(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        if new:
            w.writeheader()
        w.writerow(row)


def _read_model_config(path) -> RFNetConfig:
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError(f"a JSON {type(raw).__name__}, not an object")
        return RFNetConfig.from_dict(raw)
    except FileNotFoundError:
        raise InputError(f"--model_config {p}: no such file") from None
    except (OSError, ValueError, TypeError) as e:
        raise InputError(f"--model_config {p} is not a valid RFNet config ({e})") from None


def init_from_path(src: str) -> Path:
    """The folder of the RFNet to fine-tune ('embedded': the pack's default inspector)."""
    from .embedded import rfnet_folder

    p = rfnet_folder(src)
    missing = [f for f in ("config.json", "model.safetensors") if not (p / f).is_file()]
    if missing:
        raise InputError(f"--init_from {src}: no {' or '.join(missing)} there; pass a folder rfnet.train wrote "
                         "(or models/rfnet/NAME), or 'embedded'")
    return p


def _model_to_fine_tune(src: str):
    """(model, tokenizer) of an existing RFNet, in float32 for training. A resumed run loads its
    own checkpoint over these weights, so starting from them again changes nothing."""
    from .loading import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(init_from_path(src))
    model = model.float()
    model.config.acceptance_threshold = None  # the old calibration does not hold for new weights
    model.config.acceptance_calibration = None
    log.info("fine-tuning %s", src)
    return model, tok


class TrainingSets(torch.utils.data.ConcatDataset):
    """Several RF datasets as one, with their labels and skip reports joined."""

    def __init__(self, datasets: list[RFDataset]):
        super().__init__(datasets)
        self.labels = [y for d in datasets for y in d.labels]
        self.skips = SkipReport()
        for d in datasets:
            self.skips.items.extend(d.skips.items)


def load_sets(cfg, roots: list[str], split: str, depth, sal, stored_maps: bool, cache_dir,
              limits: list[int] | None = None) -> TrainingSets:
    """The datasets as one; ``limits[i]`` keeps the first so many usable samples of ``roots[i]`` (0: all)."""
    limits = limits or [0] * len(roots)
    return TrainingSets([RFDataset.for_model(cfg, r, split, depth, sal, stored_maps=stored_maps,
                                             cache_dir=cache_dir, limit=n or None) for r, n in zip(roots, limits)])


def check_args(args: RFNetTrainConfig) -> None:
    """Refuse bad arguments in one line each, before a model is built or a map computed."""
    from .dataformat import check_split

    check_choices(args, RFNetTrainConfig)

    at_least = {"train_batch_size": 1, "num_train_epochs": 1, "gradient_accumulation_steps": 1,
                "checkpointing_steps": 1, "logging_steps": 1, "lr_decay_epoch": 0,
                "dataloader_num_workers": 0, "max_train_steps": 1, "checkpoints_total_limit": 1,
                "image_size": 8, "width": 4, "num_heads": 1, "num_filter_layers": 0,
                "num_attention_layers": 0}
    for name, low in at_least.items():
        v = getattr(args, name)
        if v is not None and v < low:
            raise InputError(f"--{name} must be at least {low}, not {v}")
    cp = args.calibrate_precision
    if cp is not None and not 0 < cp <= 1:
        raise InputError(f"--calibrate_precision is a share of accepted images in (0, 1], not {cp}")
    for name in ("learning_rate", "lr_decay_factor"):
        v = getattr(args, name)
        if not math.isfinite(v) or v <= 0:
            raise InputError(f"--{name} must be a positive number, not {v}")
    if args.aux_targets and args.architecture == "single_image" and not args.init_from:
        raise InputError("--aux_targets needs the rfnet architecture (a single_image classifier has no "
                         "pooled features of all inputs to predict them from)")
    if not (math.isfinite(args.hflip) and 0 <= args.hflip <= 1):
        raise InputError(f"--hflip is a probability in [0, 1], not {args.hflip}")
    for name in ("weight_decay", "max_grad_norm", "aux_weight"):
        v = getattr(args, name)
        if not math.isfinite(v) or v < 0:
            raise InputError(f"--{name} must be a number >= 0, not {v}")
    for d in args.train_data:
        check_split(d, args.train_split, "--train_data")
    n = args.train_samples
    if n is not None and (len(n) != len(args.train_data) or min(n) < 0):
        raise InputError(f"--train_samples needs one count >= 0 per --train_data ({len(args.train_data)}), got {n}")
    if args.validation_data is not None and args.validation_split != "none":
        for d in args.validation_data:
            read_records(d, SkipReport())  # FileNotFoundError names it
    if args.init_from:
        src = init_from_path(args.init_from)
        if args.image_size is not None:
            backbone = json.loads((src / "config.json").read_text(encoding="utf-8")).get("image_backbone", "")
            if "vit" in backbone:
                raise InputError(f"--image_size with --init_from needs a CNN backbone; {args.init_from} has "
                                 f"{backbone}, whose position embedding is fixed to its size")
    if args.model_config:
        _read_model_config(args.model_config)
    r = args.resume_from_checkpoint
    if r and r != "latest" and not (Path(r) / "trainer_state.json").is_file():
        raise InputError(f"--resume_from_checkpoint {r} is not a complete checkpoint (no "
                         "trainer_state.json); pass a checkpoint-N folder or 'latest'")


def _resume(accelerator, out: Path, candidates: list[Path], explicit: bool) -> tuple[Path, dict] | None:
    """Load the newest intact checkpoint of ``candidates`` (newest last). A damaged one (a
    truncated file, a garbage trainer_state.json) is skipped with a warning in favour of the
    one before it; an explicitly named one is an error. Every load replaces the whole state
    (weights, optimizer, schedule, random states), so a failed attempt leaves nothing behind
    once an older checkpoint loads."""
    for ckpt in reversed(candidates):
        try:
            why = checkpoints.broken(ckpt)
            if why:
                raise InputError(f"not an intact checkpoint ({why})")
            st = read_trainer_state(ckpt)
            accelerator.load_state(str(ckpt))
            return ckpt, st
        except Exception as e:  # noqa: BLE001 - damage shows as many types (EOF, unpickling, shapes)
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            if explicit:
                raise InputError(f"cannot resume from {ckpt}: {msg}") from None
            log.warning("checkpoint %s cannot be loaded (%s): trying the one before it", ckpt, msg)
    if candidates:
        raise InputError(f"no intact checkpoint in {out} (tried {len(candidates)}); delete them or "
                         "start without --resume_from_checkpoint")
    return None


def label_counts(ds, labels: list[str]) -> dict[str, int]:
    counts = np.bincount(np.asarray(ds.labels, dtype=np.int64), minlength=len(labels))
    return {lab: int(c) for lab, c in zip(labels, counts)}


def write_model_card(out: Path, args: RFNetTrainConfig, labels: list[str], train_set, val_set,
                     val_report: dict | None, calibration: dict | None, steps: int,
                     product_input: str = "cutout", mask_input: bool = False) -> None:
    """MODEL_CARD.md: what the model saw (each dataset, the label counts), how it was trained, and
    how it did on its validation data."""
    lines = [f"# RFNet: {out.name}", "", "Written by `python -m rfnet.train` (or the Train RFNet node).", "",
             "## Data it saw", ""]
    samples = args.train_samples or []
    for i, d in enumerate(args.train_data):
        cap = f" (first {samples[i]} samples)" if i < len(samples) and samples[i] else ""
        lines.append(f"- `{d}`, split `{args.train_split}`{cap}")
    lines += ["", "Training labels: " + ", ".join(f"{k} {v}" for k, v in label_counts(train_set, labels).items()),
              f"({len(train_set)} samples; {train_set.skips.summary()})."]
    if val_set is not None:
        lines += ["", "Validation labels: " + ", ".join(f"{k} {v}" for k, v in label_counts(val_set, labels).items())
                  + f" ({len(val_set)} samples)."]
    lines += ["", "## Training", "", f"- initialised from: {args.init_from or 'the preset ' + str(args.preset)}",
              f"- {steps} steps, batch {args.train_batch_size}, lr {args.learning_rate:g}, seed {args.seed}",
              f"- depth maps: {args.depth_model}; salience maps: {args.salience_model}"]
    if product_input == "placed":
        lines.append("- product input: placed (the product on white where it stands in the generated image)")
    if mask_input:
        lines.append("- mask input: the image encoder reads where the product stands as a fourth channel")
    if args.hflip:
        lines.append(f"- mirrored left-right with probability {args.hflip:g} (product, image and maps together)")
    if args.aux_targets:
        lines.append(f"- auxiliary targets (the oracle's measures, weight {args.aux_weight:g}): "
                     + ", ".join(args.aux_targets))
    lines.append("")
    if val_report:
        a = val_report["available"]
        lines += ["## Validation", "", f"- accuracy {val_report['accuracy']:.3f}, AP (Available) {a['ap']:.3f}, "
                  f"Available precision {a['precision']:.3f}, recall {a['recall']:.3f}", ""]
    if calibration:
        note = "" if calibration["reached"] else " (the target was not reached: the most precise threshold)"
        lines += [f"Acceptance threshold (config.json `acceptance_threshold`): P(Available) >= "
                  f"{calibration['threshold']:.4f}, precision {calibration['precision']:.3f} and recall "
                  f"{calibration['recall']:.3f} on validation, target precision {calibration['target_precision']:g}{note}.", ""]
    fileio.write_text(out / "MODEL_CARD.md", "\n".join(lines))


def train(args: RFNetTrainConfig, on_step=None) -> Path:
    """Train (or fine-tune, with --init_from) and save to --output_dir. ``on_step(step, total,
    status)`` is called after every optimizer step (status: loss, val_accuracy of the last
    validation or None); an exception it raises (a cancel) stops training, and the last
    checkpoint stays for a resume."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed
    from tqdm.auto import tqdm

    check_args(args)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    report_to = None
    if args.report_to == "tensorboard":
        try:
            import tensorboard  # noqa: F401

            report_to = "tensorboard"
        except ImportError:
            log.warning("tensorboard is not installed (pip install tensorboard): CSV log only")
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=report_to,
        project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs")),
    )
    set_seed(args.seed)

    resume_from: list[Path] = []  # checkpoints to try, newest last
    if args.resume_from_checkpoint:
        if args.resume_from_checkpoint == "latest":
            resume_from = list_checkpoints(out)
            if not resume_from:
                log.info("no checkpoint in %s: starting from scratch", out)
        else:
            resume_from = [Path(args.resume_from_checkpoint)]

    # Data (the model config decides image size and which maps are needed).
    captions = [r.get("caption", "") or "" for d in args.train_data for r in read_records(d, SkipReport())[1]]
    model, tokenizer = build_model(args, captions, out, resuming=bool(resume_from))
    cfg = model.config
    depth = make_extractor("depth", args.depth_model, args.allow_download) if cfg.use_depth else None
    sal = make_extractor("salience", args.salience_model, args.allow_download) if cfg.use_salience else None
    for ex in (depth, sal):
        if ex is not None and ex.is_fallback:
            log.warning("samples without %s maps get them from %s (no weights)", ex.kind, ex.name)
    cache_dir = args.cache_dir
    with accelerator.main_process_first():
        train_set = load_sets(cfg, args.train_data, args.train_split, depth, sal, not args.ignore_stored_maps,
                              cache_dir, args.train_samples)
    if len(train_set) == 0:
        raise InputError(f"no usable training samples in {', '.join(args.train_data)} "
                         f"(split {args.train_split}); {train_set.skips.summary()}")
    if args.aux_targets and not any(np.isfinite(s["aux"]).any() for d in train_set.datasets for s in d.samples):
        raise InputError(f"no training record has any of --aux_targets {' '.join(args.aux_targets)}: write them "
                         "with `python -m rfsynth.measures DIR` (RF-Gen folders), or leave --aux_targets out")
    val_set = None
    if args.validation_split != "none":
        with accelerator.main_process_first():
            val_set = load_sets(cfg, args.validation_data or args.train_data, args.validation_split, depth, sal,
                                not args.ignore_stored_maps, cache_dir)
        if len(val_set) == 0:
            val_set = None

    counts = np.bincount(train_set.labels, minlength=len(cfg.labels)).astype(np.float64)
    class_w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / (counts > 0).sum(), 0.0)
    sampler = EpochSampler(len(train_set), args.seed,
                           [float(class_w[y]) for y in train_set.labels] if args.balance == "sampler" else None)
    collate = Collator(tokenizer, cfg.caption_max_length)
    # Loaders get generators of their own: creating an iterator must not draw from the global
    # RNG, or a resumed run's dropout would drift from the uninterrupted one.
    loader = torch.utils.data.DataLoader(
        train_set, batch_size=args.train_batch_size, sampler=sampler, collate_fn=collate,
        num_workers=args.dataloader_num_workers, drop_last=False,
        generator=torch.Generator().manual_seed(args.seed),
    )
    val_loader = None
    if val_set is not None:
        val_loader = torch.utils.data.DataLoader(
            val_set, batch_size=args.train_batch_size, collate_fn=collate,
            num_workers=args.dataloader_num_workers, generator=torch.Generator().manual_seed(args.seed))
    loss_weight = torch.tensor(class_w, dtype=torch.float32) if args.balance == "loss" else None

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    if val_loader is not None:
        val_loader = accelerator.prepare(val_loader)
    steps_per_epoch = math.ceil(len(loader) / args.gradient_accumulation_steps)
    max_steps = args.max_train_steps or args.num_train_epochs * steps_per_epoch
    num_epochs = math.ceil(max_steps / steps_per_epoch)
    decay_at = args.lr_decay_epoch * steps_per_epoch
    # The paper's step schedule: lr x factor from epoch `lr_decay_epoch` on.
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: args.lr_decay_factor ** (s // decay_at) if decay_at else 1.0)
    accelerator.register_for_checkpointing(scheduler)

    global_step, start_epoch, skip_batches = 0, 0, 0
    resumed = _resume(accelerator, out, resume_from, explicit=args.resume_from_checkpoint != "latest")
    resume_dir = resumed[0] if resumed else None
    if resumed:
        st = resumed[1]
        global_step, start_epoch, skip_batches = st["global_step"], st["epoch"], st["batches_in_epoch"]
        log.info("resumed from %s (step %d, epoch %d, batch %d)", resume_dir, global_step,
                 start_epoch, skip_batches)

    if accelerator.is_main_process:
        if tokenizer is not None and not (resume_dir and (out / "tokenizer").exists()):
            with fileio.atomic_dir(out / "tokenizer") as tdir:
                tokenizer.save_pretrained(str(tdir))
        fileio.write_json(out / "train_args.json", asdict(args))
        # What an Inspector should pair this model with (rfnet.inspect reads it).
        fileio.write_json(out / "inspector.json", {
            "depth_model": args.depth_model, "salience_model": args.salience_model,
            "maps_seen_in_training": "extractors" if args.ignore_stored_maps else "dataset maps where present",
        })
        if report_to:
            accelerator.init_trackers("rfnet", config={k: v for k, v in asdict(args).items()
                                                       if isinstance(v, (int, float, str, bool))})
    csv_path = out / "logs" / "train_log.csv"
    if accelerator.is_main_process:
        # A fresh run starts a new log; a resumed one keeps the rows up to its checkpoint.
        rows = []
        if csv_path.exists() and global_step:
            with open(csv_path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= global_step]
        csv_path.unlink(missing_ok=True)
        for r in rows:
            _append_csv(csv_path, r)

    def log_row(row: dict):
        if not accelerator.is_main_process:
            return
        _append_csv(csv_path, row)
        if report_to:
            accelerator.log({k: v for k, v in row.items() if k not in ("step", "time") and v != ""},
                            step=row["step"])

    log.info("%d training samples (%s), %d validation; %d steps/epoch, %d steps",
             len(train_set), train_set.skips.summary(), len(val_set) if val_set else 0,
             steps_per_epoch, max_steps)
    bar = tqdm(total=max_steps, initial=global_step, desc="rfnet.train",
               disable=args.no_progress or not accelerator.is_local_main_process)
    model.train()
    t0, running, n_running = time.time(), 0.0, 0
    val_report, last_val_acc = None, None
    done = global_step >= max_steps
    for epoch in range(start_epoch, num_epochs):
        if done:
            break
        batches = loader
        if epoch == start_epoch and skip_batches:
            batches = accelerator.skip_first_batches(loader, skip_batches)
        # accelerate's loaders push their own iteration count into the sampler when iterated:
        # set it, or a resumed run would replay epoch 0's order.
        sampler.set_epoch(epoch)
        if hasattr(batches, "set_epoch"):
            batches.set_epoch(epoch)
        b_in_epoch = skip_batches if epoch == start_epoch else 0
        for batch in batches:
            if args.hflip:
                batch = hflip_batch(batch, flip_mask(len(batch["label"]), args.hflip, args.seed, epoch, b_in_epoch))
            with accelerator.accumulate(model):
                pred = model(**_model_inputs(batch))
                logits = pred.logits
                w = loss_weight.to(logits.device) if loss_weight is not None else None
                loss = torch.nn.functional.cross_entropy(logits.float(), batch["label"], weight=w)
                if args.aux_targets and args.aux_weight:
                    loss = loss + args.aux_weight * masked_mse(pred.aux, batch["aux"])
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                if accelerator.sync_gradients:
                    scheduler.step()
                optimizer.zero_grad()
            b_in_epoch += 1
            running += loss.detach().float().item()
            n_running += 1
            if not accelerator.sync_gradients:
                continue
            global_step += 1
            bar.update(1)
            if on_step is not None:
                on_step(global_step, max_steps, {"loss": float(loss.detach().float().item()),
                                                 "val_accuracy": last_val_acc})
            end_of_epoch = b_in_epoch >= len(loader)
            if global_step % args.logging_steps == 0 or global_step == max_steps:
                row = {"step": global_step, "epoch": epoch, "loss": running / n_running,
                       "lr": scheduler.get_last_lr()[0], "val_loss": "", "val_accuracy": "",
                       "val_ap": "", "time": round(time.time() - t0, 2)}
                bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.1e}")
                log_row(row)
                running, n_running = 0.0, 0
            if global_step % args.checkpointing_steps == 0 or global_step == max_steps:
                next_epoch, next_b = (epoch + 1, 0) if end_of_epoch else (epoch, b_in_epoch)
                save_checkpoint(accelerator, out, {"global_step": global_step, "epoch": next_epoch,
                                                   "batches_in_epoch": next_b},
                                args.checkpoints_total_limit)
            if global_step >= max_steps:
                done = True
                break
        if val_loader is not None:
            y, p, _ = predict(model, val_loader, accelerator)
            if len(y):
                rep = val_report = inspection_report(y, p, cfg.labels)
                last_val_acc = rep["accuracy"]
                vloss = float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1)).mean())
                log_row({"step": global_step, "epoch": epoch, "loss": "", "lr": "",
                         "val_loss": vloss, "val_accuracy": rep["accuracy"],
                         "val_ap": rep["available"]["ap"], "time": round(time.time() - t0, 2)})
                log.info("epoch %d: val loss %.4f, accuracy %.3f, AP(Available) %.3f", epoch,
                         vloss, rep["accuracy"], rep["available"]["ap"])
    bar.close()
    accelerator.wait_for_everyone()
    calibration = None
    if accelerator.is_main_process:
        accelerator.unwrap_model(model).save_pretrained(out)
        if args.calibrate_precision is not None and val_loader is not None:
            calibration = _calibrate(accelerator, model, val_loader, cfg, out, args.calibrate_precision)
        write_model_card(out, args, cfg.labels, train_set, val_set, val_report, calibration, global_step,
                         cfg.product_input, cfg.mask_input)
        fileio.write_json(out / "skipped.json", {
            "train": train_set.skips.counts, "validation": val_set.skips.counts if val_set else {},
            "items": [list(x) for x in train_set.skips.items[:1000]],
        })
    if report_to:
        accelerator.end_training()
    msg = f"saved {out / 'model.safetensors'} after {global_step} steps; train data: {train_set.skips.summary()}"
    if val_set is not None:
        msg += f"; validation data: {val_set.skips.summary()}"
    log.info(msg)
    print(msg)
    return out


def _calibrate(accelerator, model, val_loader, cfg, out: Path, target: float) -> dict | None:
    """The acceptance threshold on the validation data, written into out/config.json (as
    rfnet.calibrate does from rfnet.evaluate's predictions)."""
    from .metrics import threshold_for_precision

    y, p, _ = predict(model, val_loader, accelerator)
    if not len(y):
        return None
    res = threshold_for_precision(y == cfg.labels.index("Available"), p[:, cfg.labels.index("Available")], target)
    res["data"] = "validation split of rfnet.train"
    cfg_path = out / "config.json"
    conf = json.loads(cfg_path.read_text(encoding="utf-8"))
    conf["acceptance_threshold"] = round(res["threshold"], 6)
    conf["acceptance_calibration"] = res
    fileio.write_json(cfg_path, conf)
    log.info("acceptance threshold %.4f: precision %.3f, recall %.3f on validation (target %g)",
             res["threshold"], res["precision"], res["recall"], target)
    return res


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("accelerate").setLevel(logging.WARNING)  # one line per saved file otherwise
    with cli_errors(PROG):
        train(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
