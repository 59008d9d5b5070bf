"""Calibrate an RFNet's acceptance: ``python -m rfnet.calibrate``.

    python -m rfnet.evaluate --model runs/rfnet --data data/rfgen_train --split val --output_dir runs/eval_val \
        --depth_model embedded --salience_model embedded --ignore_stored_maps
    python -m rfnet.calibrate --model runs/rfnet --predictions runs/eval_val/predictions.jsonl --target_precision 0.95

Chooses the lowest P(Available) at which at least ``--target_precision`` of the accepted
validation images are Available (the most recall that precision allows) and writes it into
the model's config.json (``acceptance_threshold``, with how it was found under
``acceptance_calibration``). rfnet.inspect, rfft.generate and the nodes accept at that
threshold by default; an explicit ``--threshold`` or widget value still wins. Calibrate on
validation data, never on the test set that reports the result.

The embedded inspector's rule (version 2 onwards) is several targets and a recall floor: the
highest of 0.95, 0.9, 0.85 that validation reaches while keeping 30% of the Available images,

    python -m rfnet.calibrate --model DIR --predictions P.jsonl --target_precision 0.95 0.9 0.85 --min_recall 0.3

and ``--fallback`` says what to store when none is reached.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import fileio
from .errors import InputError, cli_errors
from .labels import AVAILABLE
from .metrics import threshold_for_precision


def read_predictions(path: str | Path) -> tuple[list[bool], list[float]]:
    """(is Available by the label, P(Available)) from rfnet.evaluate's predictions.jsonl."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} not found: write it with python -m rfnet.evaluate ... --output_dir DIR")
    ys, ps = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            ys.append(rec["label"] == AVAILABLE)
            ps.append(float(rec["p_available"]))
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(f"{path}:{n} is not a prediction line of rfnet.evaluate ({e})") from None
    if not ys:
        raise InputError(f"{path} has no predictions")
    return ys, ps


def calibrate(model_dir: str | Path, predictions: str | Path, target_precision: float | list[float] = 0.95,
              write: bool = True, min_recall: float = 0.0, fallback: str = "best") -> dict:
    """Find the threshold and (with ``write``) store it in ``model_dir``/config.json.

    ``target_precision`` may be several targets: the highest one reached (with recall at least
    ``min_recall``) wins. When none is reached, ``fallback`` decides: ``best`` stores the
    threshold of highest precision among those keeping ``min_recall``; ``top`` stores no
    threshold, so the inspector accepts when Available is its most probable class.
    """
    if fallback not in ("best", "top"):
        raise InputError(f"fallback must be 'best' or 'top', not {fallback!r}")
    cfg_path = Path(model_dir) / "config.json"
    if not cfg_path.is_file():
        raise InputError(f"{cfg_path} not found: --model must be an RFNet folder (config.json, model.safetensors)")
    targets = sorted(target_precision if isinstance(target_precision, (list, tuple)) else [target_precision],
                     reverse=True)
    ys, ps = read_predictions(predictions)
    tries = [threshold_for_precision(ys, ps, t, min_recall) for t in targets]
    res = next((r for r in tries if r["reached"]), tries[-1])
    res["targets_tried"] = targets
    res["data"] = str(predictions)
    if not res["reached"] and fallback == "top":
        # the best-precision threshold stays on record beside the decision not to use it
        res = {**res, "threshold": None, "fallback": "top", "best_threshold": res["threshold"]}
    if write:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        cfg["acceptance_threshold"] = None if res["threshold"] is None else round(res["threshold"], 6)
        cfg["acceptance_calibration"] = res
        fileio.write_json(cfg_path, cfg)
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m rfnet.calibrate", description=__doc__.split("\n\n")[0])
    p.add_argument("--rfnet", "--model", dest="model", required=True, help="the RFNet folder whose config.json receives the threshold")
    p.add_argument("--predictions", required=True, help="rfnet.evaluate's predictions.jsonl on validation data")
    p.add_argument("--target_precision", type=float, nargs="+", default=[0.95],
                   help="one or more target precisions; the highest one reached wins (e.g. 0.95 0.9 0.85)")
    p.add_argument("--min_recall", type=float, default=0.0,
                   help="a threshold must keep at least this recall of the Available images to count (e.g. 0.3)")
    p.add_argument("--fallback", choices=("best", "top"), default="best",
                   help="when no target is reached: best = the highest-precision threshold kept; "
                        "top = no threshold, accept when Available is the most probable class")
    p.add_argument("--dry_run", action="store_true", help="print the threshold, do not write it")
    a = p.parse_args(argv)
    with cli_errors(p.prog):
        for t in a.target_precision:
            if not 0 < t <= 1:
                raise InputError(f"--target_precision must be in (0, 1], got {t}")
        if not 0 <= a.min_recall <= 1:
            raise InputError(f"--min_recall must be in [0, 1], got {a.min_recall}")
        r = calibrate(a.model, a.predictions, a.target_precision, write=not a.dry_run,
                      min_recall=a.min_recall, fallback=a.fallback)
    tried = " ".join(f"{t:g}" for t in r["targets_tried"])
    where = "" if a.dry_run else f"; written to {a.model}/config.json"
    if r["threshold"] is None:
        print(f"no target ({tried}) is reached with recall >= {a.min_recall:g}: no threshold, the top class "
              f"accepts (best: {r['best_threshold']:.4f}, precision {r['precision']:.4f}, recall {r['recall']:.4f}){where}")
        return 0
    note = "" if r["reached"] else f" (no target of {tried} is reached on this data: best precision)"
    print(f"threshold {r['threshold']:.4f} for target {r['target_precision']:g}: precision {r['precision']:.4f}, "
          f"recall {r['recall']:.4f}, {r['accepted']}/{r['n']} accepted{note}{where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
