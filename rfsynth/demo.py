"""Inspection alone on the embedded defaults, offline: RFNet against the RF-Synth oracle.

    python -m rfsynth.demo --output_dir demo_out [--samples 12] [--seed 2026]

Renders fresh RF-Synth samples (one of each case in turn, a seed never used for training),
inspects each with the embedded RFNet, depth and salience estimators (rfnet/embedded/), asks
the RF-Synth oracle for the ground-truth verdict, and writes:

- ``inspection_sheet.png``: every image with a verdict badge (green Available, red with the
  defect) and the oracle's label under it;
- ``inspection.jsonl``: one line an image: verdict, P(Available), class probabilities, oracle.

``--train`` instead runs the training path end to end on a small RF-Synth set (write, train a
tiny RFNet, evaluate), the check that the trainer works on this machine.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from PIL import Image

from rfnet import fileio


def contact_sheet(images: list[Image.Image], verdicts, truths: list[str], cell: int = 160) -> Image.Image:
    """Each image with RFNet's badge, the oracle's label under it."""
    from rfnet.badge import badge, grid

    cells = [badge(im.resize((cell, cell), Image.BICUBIC), v.label, v.p_available, v.accepted, min_side=cell)
             for im, v in zip(images, verdicts)]
    return grid(cells, cols=6, captions=[f"oracle: {t}" for t in truths])


def inspect_embedded(out: Path, samples: int, seed: int, size: int = 128) -> dict:
    from rfnet.embedded import embedded_path
    from rfnet.inspect import Inspector

    from .make import sample_seed
    from .oracle import judge
    from .scene import LABELS, render_sample

    insp = Inspector.from_pretrained(embedded_path("rfnet"), depth="embedded", salience="embedded")
    print(f"inspector: {embedded_path('rfnet').name}, depth {insp.depth.name}, salience {insp.salience.name}")
    images, verdicts, truths, lines = [], [], [], []
    agree = 0
    for i in range(samples):
        label = LABELS[i % len(LABELS)]
        s = render_sample(sample_seed(seed, i), size, label=label)
        v = insp(s.product, s.image, s.caption)[0]
        truth = judge(s.image, s.product, s.placement, s.category, damage=s.damage).label
        agree += (v.label == truth)
        images.append(s.image)
        verdicts.append(v)
        truths.append(truth)
        lines.append(json.dumps({"index": i, "oracle": truth, **v.to_dict(), "caption": s.caption,
                                 "prompt": s.prompt}, ensure_ascii=False))
        print(f"  {i:>3}: {v.label:<20} P(Available)={v.p_available:.2f} "
              f"{'accepted' if v.accepted else 'rejected':<8}  oracle: {truth}")
    fileio.save_image(out / "inspection_sheet.png", contact_sheet(images, verdicts, truths))
    fileio.write_text(out / "inspection.jsonl", "\n".join(lines) + "\n")
    print(f"done: the inspector agrees with the oracle on {agree}/{samples}; "
          f"see {out / 'inspection_sheet.png'}")
    return {"agree": agree, "n": samples}


def train_path(out: Path, samples: int, epochs: int, seed: int) -> dict:
    from rfnet import evaluate, train

    from .make import make

    data, model_dir, eval_dir = out / "data", out / "rfnet", out / "eval"
    print(f"[1/3] writing {samples} RF-Synth samples to {data}", flush=True)
    make(data, samples, size=64, seed=seed, splits="train=0.7,val=0.15,test=0.15", progress=False)
    print(f"[2/3] training a tiny RFNet for {epochs} epochs into {model_dir}", flush=True)
    train.train(train.RFNetTrainConfig(
        train_data=[str(data)], output_dir=str(model_dir), preset="tiny", label_set="rf1m6", num_train_epochs=epochs,
        lr_decay_epoch=max(1, epochs // 2), learning_rate=1e-3, train_batch_size=16, seed=seed, checkpointing_steps=50,
        checkpoints_total_limit=1, resume_from_checkpoint="latest"))
    print(f"[3/3] evaluating on the test split into {eval_dir}", flush=True)
    return evaluate.evaluate(evaluate.parse_args(
        ["--rfnet", str(model_dir), "--data", str(data), "--split", "test", "--output_dir", str(eval_dir)]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m rfsynth.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--output_dir", "--out", dest="out", default="demo_out")
    p.add_argument("--samples", type=int, default=12)
    p.add_argument("--seed", type=int, default=2026, help="RF-Synth seed of the samples (not a training seed)")
    p.add_argument("--train", action="store_true", help="run the training path instead (see above)")
    p.add_argument("--epochs", type=int, default=10, help="with --train")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.train:
        train_path(out, max(args.samples, 40), args.epochs, args.seed)
    else:
        inspect_embedded(out, args.samples, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
