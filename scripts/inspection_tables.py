"""The paper's inspection tables re-measured on RF-Synth: Table 1 (RFNet against single-image
classifiers from timm) and Table 2 (RFNet without each input, and with coarse labels).

    python scripts/inspection_tables.py --train_data data/rfsynth_s0_128 --test_data data/rfsynth_s1_128 \
        --out runs/tables [--epochs 4] [--image_size 64]

Every row trains on the same data with the same budget (epochs, batch, learning rate,
schedule, seed) and is evaluated on the test dataset, which must come from a seed never used
for training or tuning. Depth and salience come from the embedded estimators, as at
inspection time. Every run resumes where it stopped (rerun the same command), and rows
already evaluated are not run again. Writes tables.md and tables.json to --out.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROWS = {
    # name: (table, extra training arguments)
    "RFNet": ("1,2", []),
    "ResNet-18 (I_g only)": ("1", ["--architecture", "single_image", "--image_backbone", "resnet18"]),
    "ResNeXt-26 (I_g only)": ("1", ["--architecture", "single_image", "--image_backbone", "resnext26ts"]),
    "ViT-Tiny/16 (I_g only)": ("1", ["--architecture", "single_image", "--image_backbone", "vit_tiny_patch16_224"]),
    "RFNet w/o I_o": ("2", ["--drop", "product"]),
    "RFNet w/o I_g": ("2", ["--drop", "generated"]),
    "RFNet w/o I_d": ("2", ["--drop", "depth"]),
    "RFNet w/o I_s": ("2", ["--drop", "salience"]),
    "RFNet w/o Cap": ("2", ["--drop", "caption"]),
    "RFNet, coarse labels": ("2", ["--label_set", "coarse"]),
}


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def write_tables(out: Path, a, results: dict) -> None:
    lines = [f"Train: {a.train_data}; test: {a.test_data}; {a.epochs} epochs at {a.image_size}px, "
             f"batch {a.batch_size}, lr {a.learning_rate} (divided by 10 at epoch {max(1, a.epochs // 2)}), "
             f"seed {a.seed}.", ""]
    for t in ("1", "2"):
        lines += [f"Table {t}", "", "| model | precision | recall | F1 | AP | accuracy |", "|---|---|---|---|---|---|"]
        for name, r in results.items():
            if t in r["table"].split(","):
                lines.append(f"| {name} | {100 * r['precision']:.2f} | {100 * r['recall']:.2f} | "
                             f"{100 * r['f1']:.2f} | {100 * r['ap']:.2f} | {100 * r['accuracy']:.2f} |")
        lines.append("")
    (out / "tables.md").write_text("\n".join(lines))
    (out / "tables.json").write_text(json.dumps({"args": vars(a), "results": results}, indent=2))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--train_data", required=True)
    p.add_argument("--test_data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--image_size", type=int, default=64)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--learning_rate", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rows", nargs="*", default=list(ROWS), help="a subset of: " + "; ".join(ROWS))
    a = p.parse_args()

    from rfnet import evaluate, train

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    maps = ["--depth_model", "embedded", "--salience_model", "embedded", "--ignore_stored_maps"]
    results = {}
    for name in a.rows:
        table, extra = ROWS[name]
        run = out / slug(name)
        metrics = run / "eval" / "metrics.json"
        if not metrics.exists():
            label_set = "coarse" if "--label_set" in extra else "rf1m6"
            extra = [x for x in extra if x not in ("--label_set", "coarse")]
            train.train(train.parse_args([
                "--train_data", a.train_data, "--output_dir", str(run), "--preset", "tiny",
                "--label_set", label_set, "--image_size", str(a.image_size),
                "--num_train_epochs", str(a.epochs), "--lr_decay_epoch", str(max(1, a.epochs // 2)),
                "--learning_rate", str(a.learning_rate), "--train_batch_size", str(a.batch_size),
                "--seed", str(a.seed), "--checkpointing_steps", "100", "--checkpoints_total_limit", "1",
                "--resume_from_checkpoint", "latest", "--no_progress", *maps, *extra,
            ]))
            evaluate.evaluate(evaluate.parse_args([
                "--model", str(run), "--data", a.test_data, "--split", "all",
                "--output_dir", str(run / "eval"), *maps]))
        m = json.loads(metrics.read_text())
        results[name] = {"table": table, **m["available"], "accuracy": m["accuracy"], "n": m["n"]}
        print(f"{name}: {results[name]}", flush=True)
        write_tables(out, a, results)  # after every row: a stopped run still shows what it has
    print((out / "tables.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
