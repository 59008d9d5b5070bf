"""Train a small depth or salience estimator on ground-truth maps:

    python -m rfnet.train_maps --kind depth --train_data DIR --output_dir DIR

The data is any RF dataset whose samples carry the maps (RF-Synth writes them). Loss: L1 for
depth, binary cross-entropy for salience. A checkpoint (weights, optimizer, epoch, random
state) is written after every epoch as ``checkpoint-EPOCH`` (rfnet.checkpoints, the newest two
kept); ``--resume`` continues from the newest intact one exactly. The result is a
folder that ``make_extractor(kind, folder)`` and ``--depth_model``/``--salience_model`` take.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from . import checkpoints, fileio
from .data import RFDataset
from .errors import InputError, cli_errors
from .estimators import LearnedMapExtractor, MapEstimatorConfig

log = logging.getLogger("rfnet.train_maps")
STATE = "training_state.pt"  # inside each checkpoint-N: weights, optimizer, schedule, random state, epoch


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m rfnet.train_maps", description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", choices=["depth", "salience"], required=True)
    p.add_argument("--train_data", required=True)
    p.add_argument("--train_split", default="train")
    p.add_argument("--validation_split", default="val")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--input_size", type=int, default=64)
    p.add_argument("--base_channels", type=int, default=16)
    p.add_argument("--levels", type=int, default=3)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--learning_rate", type=float, default=2e-3)
    p.add_argument("--max_samples", type=int, default=None, help="use only the first N training samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume_from_checkpoint", "--resume", dest="resume", nargs="?", const="latest", default=None,
                   choices=["latest"], help="continue from the newest intact checkpoint-N in output_dir")
    p.add_argument("--epochs_this_run", type=int, default=None,
                   help="stop after this many epochs (a checkpoint is kept); --resume goes on later")
    p.add_argument("--save_dtype", choices=["float32", "float16"], default="float32")
    return p.parse_args(argv)


def _tensors(ds: RFDataset, kind: str, limit: int | None):
    """All (image, map) pairs in memory: these sets are small (64x64)."""
    n = len(ds) if limit is None else min(limit, len(ds))
    xs, ys = [], []
    for i in range(n):
        it = ds[i]
        xs.append(it["generated"])
        ys.append(it[kind])
    return torch.stack(xs), torch.stack(ys)


def _loss(kind, pred, target):
    if kind == "depth":
        return F.l1_loss(pred, target)
    return F.binary_cross_entropy(pred.clamp(1e-6, 1 - 1e-6), target)


@torch.no_grad()
def evaluate_maps(ex: LearnedMapExtractor, x, y, batch: int = 256) -> dict:
    ex.eval()
    preds = torch.cat([ex(x[i:i + batch]) for i in range(0, len(x), batch)])
    out = {"mae": float((preds - y).abs().mean())}
    if ex.kind == "salience":
        p, t = preds > 0.5, y > 0.5
        out["iou"] = float((p & t).sum() / (p | t).sum().clamp_min(1))
    return out


def train_maps(args) -> Path:
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    cfg = MapEstimatorConfig(kind=args.kind, input_size=args.input_size,
                             base_channels=args.base_channels, levels=args.levels)
    maps = (args.kind,)
    train = RFDataset(args.train_data, label_set="rf1m6", split=args.train_split,
                      image_size=args.input_size, need_product=False, maps=maps)
    x, y = _tensors(train, args.kind, args.max_samples)
    val = RFDataset(args.train_data, label_set="rf1m6", split=args.validation_split,
                    image_size=args.input_size, need_product=False, maps=maps)
    xv, yv = _tensors(val, args.kind, 2000) if len(val) else (None, None)
    ex = LearnedMapExtractor(cfg, name=f"learned-{args.kind}")
    opt = torch.optim.AdamW(ex.net.parameters(), lr=args.learning_rate, weight_decay=1e-4)
    steps = (len(x) + args.batch_size - 1) // args.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.learning_rate, total_steps=args.epochs * steps)
    start = 0
    # checkpoint-EPOCH folders; checkpoint.pt is where runs before them kept their one checkpoint
    ckpt = checkpoints.latest_intact(out, "checkpoint", (STATE,)) if args.resume else None
    ckpt = ckpt / STATE if ckpt else out / "checkpoint.pt"
    if args.resume and ckpt.exists():
        st = torch.load(ckpt, map_location="cpu", weights_only=True)  # our own file, tensors only
        if int(st.get("epochs", args.epochs)) != args.epochs:
            raise InputError(f"{ckpt} belongs to a run of --epochs {st['epochs']}; resume with the same "
                             "arguments, or start afresh in another --output_dir")
        ex.net.load_state_dict(st["net"])
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        torch.set_rng_state(st["rng"])
        start = int(st["epoch"])
        log.info("resumed after epoch %d", start)
    history = []
    stop = args.epochs if args.epochs_this_run is None else min(args.epochs, start + args.epochs_this_run)
    for epoch in range(start, stop):
        ex.train()
        g = torch.Generator().manual_seed(args.seed * 1000 + epoch)
        order = torch.randperm(len(x), generator=g)
        t0, total = time.time(), 0.0
        for i in range(0, len(x), args.batch_size):
            idx = order[i:i + args.batch_size]
            loss = _loss(args.kind, ex(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        row = {"epoch": epoch + 1, "loss": total / len(x), "seconds": time.time() - t0}
        if xv is not None:
            row.update({f"val_{k}": v for k, v in evaluate_maps(ex, xv, yv).items()})
        history.append(row)
        log.info("epoch %s", json.dumps(row))
        state = {"net": ex.net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                 "rng": torch.get_rng_state(), "epoch": epoch + 1, "epochs": args.epochs}
        checkpoints.save_plain(out, epoch + 1, lambda d, state=state: torch.save(state, d / STATE), 2)
    if stop < args.epochs:
        print(f"stopped after epoch {stop} of {args.epochs}; continue with --resume")
        return out
    ex.eval()
    ex.save_pretrained(out, dtype=getattr(torch, args.save_dtype))
    fileio.write_json(out / "train_history.json", {"args": vars(args), "history": history})
    print(f"saved {args.kind} estimator to {out}" + (f": {history[-1]}" if history else ""))
    return out


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parse_args(argv)
    with cli_errors("python -m rfnet.train_maps"):
        train_maps(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
