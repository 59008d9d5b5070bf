"""Evaluate RFNet: ``python -m rfnet.evaluate --model DIR --data DIR --output_dir DIR``.

Writes metrics.json (precision, recall, F1 and AP of the Available class as in the paper's
Table 1, accuracy, 95% bootstrap intervals of AP and accuracy, a per-class report, the
confusion matrix, and what was skipped), predictions.jsonl (one line a sample with its
probabilities), pr_curve.png and confusion_matrix.png.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import torch

from . import fileio
from .data import Collator, RFDataset
from .dataformat import SkipReport, check_split, read_records  # noqa: F401  (check_split: re-exported)
from .errors import InputError, cli_errors
from .extractors import make_extractor
from .loading import check_model_folder, load_model_and_tokenizer  # noqa: F401  (re-exported: they lived here)
from .metrics import at_threshold, inspection_report, pr_curve

log = logging.getLogger("rfnet.evaluate")
PROG = "python -m rfnet.evaluate"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG,
                                description="Precision, recall, F1 and AP of RFNet's Available class.")
    p.add_argument("--rfnet", "--model", dest="model", required=True, help="folder with config.json, model.safetensors (and tokenizer/), or 'embedded'")
    p.add_argument("--data", required=True, help="RF dataset folder, manifest.jsonl or RF1M label.txt")
    p.add_argument("--split", default="test", help="split to evaluate ('all' for every sample)")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--depth_model", default="fallback", help="for samples without depth maps (see rfnet.train)")
    p.add_argument("--salience_model", default="fallback", help="for samples without salience maps")
    p.add_argument("--ignore_stored_maps", action="store_true",
                   help="compute depth and salience with the extractors even where the dataset has maps")
    p.add_argument("--cache_dir", default=None,
                   help="where computed depth/salience maps are cached (default: the dataset's "
                        ".cache/maps, or the user cache folder when the dataset is read-only)")
    p.add_argument("--mirror_average", action="store_true",
                   help="average each sample's probabilities with its left-right mirror's, whatever the "
                        "model's config.json says (mirror_average there turns it on for every use)")
    p.add_argument("--allow_download", action="store_true")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    """Refuse bad arguments in one line each, before any model is loaded."""
    if args.batch_size < 1:
        raise InputError(f"--batch_size must be at least 1, not {args.batch_size}")
    from .embedded import rfnet_folder

    args.model = str(rfnet_folder(args.model))
    check_model_folder(args.model, "--model")
    check_split(args.data, args.split, "--data")


def evaluate(args: argparse.Namespace) -> dict:
    from .train import predict

    check_args(args)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, tok = load_model_and_tokenizer(args.model, args.allow_download)
    model.to(args.device)
    cfg = model.config
    if args.mirror_average:
        if cfg.architecture != "rfnet":
            raise InputError(f"--mirror_average is for RFNet models; {args.model} is a {cfg.architecture} classifier")
        cfg.mirror_average = True
    depth = make_extractor("depth", args.depth_model, args.allow_download) if cfg.use_depth else None
    sal = make_extractor("salience", args.salience_model, args.allow_download) if cfg.use_salience else None
    ds = RFDataset.for_model(cfg, args.data, args.split, depth, sal, stored_maps=not args.ignore_stored_maps,
                             cache_dir=getattr(args, "cache_dir", None))
    if len(ds) == 0:
        raise InputError(f"no usable samples in {args.data} (split {args.split}); {ds.skips.summary()}")
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch_size,
                                         collate_fn=Collator(tok, cfg.caption_max_length))

    y, probs, ids = predict(model, loader, device=args.device)
    report = inspection_report(y, probs, cfg.labels, intervals=True)
    report.update(model=str(args.model), data=str(args.data), split=args.split, mirror_average=cfg.mirror_average,
                  skipped=ds.skips.counts, skipped_total=len(ds.skips))
    if cfg.acceptance_threshold is not None:
        # what a user gets: images accepted at the calibrated threshold (chosen on validation data)
        report["at_calibrated_threshold"] = at_threshold(np.asarray(y) == 0, probs[:, 0], cfg.acceptance_threshold)
    fileio.write_json(out / "metrics.json", report)
    lines = [json.dumps({"id": i, "label": cfg.labels[t], "predicted": cfg.labels[int(p.argmax())],
                         "p_available": float(p[0]), "probs": dict(zip(cfg.labels, map(float, p)))},
                        ensure_ascii=False) for i, t, p in zip(ids, y, probs)]
    fileio.write_text(out / "predictions.jsonl", "\n".join(lines) + "\n")
    plot_pr_curve(y == 0, probs[:, 0], report["available"]["ap"], out / "pr_curve.png")
    plot_confusion(np.array(report["confusion_matrix"]), cfg.labels, out / "confusion_matrix.png")
    a = report["available"]
    msg = (f"{report['n']} samples: Available precision {a['precision']:.4f} recall {a['recall']:.4f} "
           f"F1 {a['f1']:.4f} AP {a['ap']:.4f} (95% CI {a['ap_ci95'][0]:.4f}-{a['ap_ci95'][1]:.4f}); "
           f"accuracy {report['accuracy']:.4f} (95% CI {report['accuracy_ci95'][0]:.4f}-{report['accuracy_ci95'][1]:.4f}); "
           f"{ds.skips.summary()}; written to {out}")
    if "at_calibrated_threshold" in report:
        c = report["at_calibrated_threshold"]
        msg += (f"; at the calibrated threshold {c['threshold']:.4f}: precision {c['precision']:.4f}, "
                f"recall {c['recall']:.4f}, {c['accepted']} accepted")
    print(msg)
    return report


def _fig_to_file(fig, path: Path) -> None:
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    fileio.write_bytes(path, buf.getvalue())


def plot_pr_curve(is_available, p_available, ap: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4))
    if np.any(is_available):
        precision, recall, _ = pr_curve(is_available, p_available)
        ax.step(np.r_[0.0, recall], np.r_[precision[0], precision], where="post")
    ax.set_xlabel("recall (Available)")
    ax.set_ylabel("precision (Available)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"RFNet precision-recall, AP {ap:.3f}")
    ax.grid(alpha=0.3)
    _fig_to_file(fig, path)


def plot_confusion(cm: np.ndarray, labels, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.2 * len(labels) + 2, 1.1 * len(labels) + 1.5))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=35, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_title("confusion matrix")
    _fig_to_file(fig, path)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    with cli_errors(PROG):
        evaluate(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
