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


def calibrate(model_dir: str | Path, predictions: str | Path, target_precision: float = 0.95,
              write: bool = True) -> dict:
    """Find the threshold and (with ``write``) store it in ``model_dir``/config.json."""
    cfg_path = Path(model_dir) / "config.json"
    if not cfg_path.is_file():
        raise InputError(f"{cfg_path} not found: --model must be an RFNet folder (config.json, model.safetensors)")
    ys, ps = read_predictions(predictions)
    res = threshold_for_precision(ys, ps, target_precision)
    res["data"] = str(predictions)
    if write:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        cfg["acceptance_threshold"] = round(res["threshold"], 6)
        cfg["acceptance_calibration"] = res
        fileio.write_json(cfg_path, cfg)
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m rfnet.calibrate", description=__doc__.split("\n\n")[0])
    p.add_argument("--rfnet", "--model", dest="model", required=True, help="the RFNet folder whose config.json receives the threshold")
    p.add_argument("--predictions", required=True, help="rfnet.evaluate's predictions.jsonl on validation data")
    p.add_argument("--target_precision", type=float, default=0.95)
    p.add_argument("--dry_run", action="store_true", help="print the threshold, do not write it")
    a = p.parse_args(argv)
    with cli_errors(p.prog):
        if not 0 < a.target_precision <= 1:
            raise InputError(f"--target_precision must be in (0, 1], got {a.target_precision}")
        r = calibrate(a.model, a.predictions, a.target_precision, write=not a.dry_run)
    note = "" if r["reached"] else f" (the target {a.target_precision:g} is not reached on this data: best precision)"
    print(f"threshold {r['threshold']:.4f}: precision {r['precision']:.4f}, recall {r['recall']:.4f}, "
          f"{r['accepted']}/{r['n']} accepted{note}" + ("" if a.dry_run else f"; written to {a.model}/config.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
