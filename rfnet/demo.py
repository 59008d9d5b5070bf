"""The main job until generation lands: inspection end to end on a fresh machine.

    python -m rfnet.demo --out demo_out

1. writes a toy RF dataset (rfnet.toyset) in the RF dataset format;
2. trains a CPU-sized RFNet on it (``rfnet.train --preset tiny``);
3. evaluates it on the held-out split (``rfnet.evaluate``: metrics.json and plots);
4. inspects held-out images with :class:`rfnet.inspect.Inspector` and writes a contact sheet
   with a verdict badge on each image (green Available, red with the defect otherwise).

Nothing is downloaded: depth and salience come from the named no-weight fallbacks.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from PIL import Image, ImageDraw

from . import fileio


def contact_sheet(images: list[Image.Image], verdicts, truths: list[str], cell: int = 160) -> Image.Image:
    cols = min(6, len(images))
    rows = (len(images) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * cell, rows * (cell + 34)), "white")
    d = ImageDraw.Draw(sheet)
    for k, (im, v, t) in enumerate(zip(images, verdicts, truths)):
        x, y = (k % cols) * cell, (k // cols) * (cell + 34)
        sheet.paste(im.convert("RGB").resize((cell, cell), Image.NEAREST), (x, y))
        colour = (30, 150, 60) if v.accepted else (200, 40, 40)
        d.rectangle([x, y + cell, x + cell - 1, y + cell + 16], fill=colour)
        d.text((x + 3, y + cell + 3), f"{v.label} {v.p_available:.2f}", fill="white")
        d.text((x + 3, y + cell + 19), f"truth: {t}", fill="black")
    return sheet


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m rfnet.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="demo_out")
    p.add_argument("--samples", type=int, default=400)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    out = Path(args.out)
    data, model_dir, eval_dir = out / "data", out / "rfnet", out / "eval"

    from .toyset import write_toy_dataset

    if not (data / "manifest.jsonl").exists():
        print(f"[1/4] writing {args.samples} toy samples to {data}", flush=True)
        write_toy_dataset(data, n=args.samples, seed=args.seed)
    else:
        print(f"[1/4] reusing the toy dataset in {data}", flush=True)

    from . import evaluate, train

    print(f"[2/4] training a tiny RFNet for {args.epochs} epochs into {model_dir}", flush=True)
    train.train(train.parse_args([
        "--train_data", str(data), "--output_dir", str(model_dir), "--preset", "tiny",
        "--num_train_epochs", str(args.epochs), "--lr_decay_epoch", str(max(1, args.epochs // 2)),
        "--learning_rate", "1e-3", "--train_batch_size", "16", "--seed", str(args.seed),
        "--checkpointing_steps", "50", "--checkpoints_total_limit", "1",
        "--resume_from_checkpoint", "latest",
    ]))
    print(f"[3/4] evaluating on the test split into {eval_dir}", flush=True)
    report = evaluate.evaluate(evaluate.parse_args([
        "--model", str(model_dir), "--data", str(data), "--split", "test", "--output_dir", str(eval_dir)]))

    from .inspect import Inspector

    print("[4/4] inspecting held-out images", flush=True)
    insp = Inspector.from_pretrained(model_dir)
    recs = [json.loads(l) for l in (data / "manifest.jsonl").read_text().splitlines()]
    recs = [r for r in recs if r["split"] == "test"][:12]
    images, verdicts = [], []
    for r in recs:
        product = Image.open(data / r["product"])
        image = Image.open(data / r["image"])
        v = insp(product, image, r["caption"])[0]
        images.append(image)
        verdicts.append(v)
        print(f"  {r['id']}: {v.label:<20} P(Available)={v.p_available:.2f} "
              f"{'accepted' if v.accepted else 'rejected'}   (truth: {r['label']})")
    fileio.save_image(out / "inspection_sheet.png", contact_sheet(images, verdicts, [r["label"] for r in recs]))
    a = report["available"]
    print(f"done: Available AP {a['ap']:.3f}, F1 {a['f1']:.3f}, accuracy {report['accuracy']:.3f}; "
          f"see {out / 'inspection_sheet.png'} and {eval_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
