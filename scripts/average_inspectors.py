"""Average the weights of several RFNets into one (a uniform or weighted "model soup").

Fine-tunes of one starting inspector on different data (one session's generated images each)
can be averaged tensor by tensor into a single inspector that costs one pass per image, where
an ensemble costs one per member (Wortsman et al., "Model soups", ICML 2022). The members must
share their architecture, tokenizer and depth/salience models; their acceptance thresholds do
not carry over, so the average has none until it is calibrated (``python -m rfnet.calibrate``).

    python scripts/average_inspectors.py --rfnet runs/candC runs/candD runs/candE --output_dir runs/candG
"""
from __future__ import annotations

import argparse
import filecmp
import json
import math
import shutil
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rfnet.errors import InputError  # noqa: E402
from rfnet.fileio import atomic_dir, write_json, write_text  # noqa: E402
from rfnet.loading import check_model_folder  # noqa: E402
from rfnet.weights import save_file_atomic  # noqa: E402

# Set per model by calibration on its own predictions: an average's threshold is its own.
PER_MODEL_KEYS = ("acceptance_threshold", "acceptance_calibration")


def average_state_dicts(states: list[dict[str, torch.Tensor]], weights: list[float] | None = None) -> dict:
    """The weighted mean of every floating-point tensor; other tensors (batch-norm step
    counters) are taken from the first state. Weights are normalised to sum to 1."""
    if len(states) < 2:
        raise InputError("averaging needs at least two models")
    weights = [1.0] * len(states) if weights is None else [float(w) for w in weights]
    if len(weights) != len(states) or any(not (w > 0 and math.isfinite(w)) for w in weights):
        raise InputError(f"give one positive weight per model ({len(states)} models, weights {weights})")
    total = sum(weights)
    keys = list(states[0])
    for i, s in enumerate(states[1:], 1):
        if set(s) != set(keys):
            diff = sorted(set(s) ^ set(keys))
            raise InputError(f"model {i + 1} has other tensors than model 1 (first: {diff[:3]}); "
                             "only models of one architecture can be averaged")
        for k in keys:
            if s[k].shape != states[0][k].shape:
                raise InputError(f"tensor {k} is {tuple(s[k].shape)} in model {i + 1} and "
                                 f"{tuple(states[0][k].shape)} in model 1")
    out = {}
    for k in keys:
        t0 = states[0][k]
        if not t0.is_floating_point():
            out[k] = t0.clone()
            continue
        acc = torch.zeros(t0.shape, dtype=torch.float64)
        for w, s in zip(weights, states):
            acc += (w / total) * s[k].to(torch.float64)
        out[k] = acc.to(t0.dtype)
    return out


def _same_files(a: Path, b: Path) -> bool:
    """True when the two paths hold byte-identical files (a folder: recursively)."""
    if a.is_file() or b.is_file():
        return a.is_file() and b.is_file() and filecmp.cmp(a, b, shallow=False)
    if not (a.is_dir() and b.is_dir()):
        return not a.exists() and not b.exists()
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files or cmp.common_funny:
        return False
    return all(_same_files(a / n, b / n) for n in cmp.common_files + cmp.common_dirs)


def average_inspectors(folders: list[str | Path], output_dir: str | Path,
                       weights: list[float] | None = None) -> Path:
    """Write the average of the RFNet ``folders`` to ``output_dir``, a new or empty folder."""
    from safetensors.torch import load_file

    folders = [Path(f) for f in folders]
    out = Path(output_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"--output_dir {out} exists and is not an empty folder; choose a new one")
    configs = []
    for f in folders:
        # compared as RFNetConfig reads them, so that a config written before an option existed
        # (no key) equals one written after (the option's default)
        cfg = check_model_folder(f, "--rfnet folder").to_dict()
        name = json.loads((f / "config.json").read_text(encoding="utf-8")).get("_class_name", "RFNet")
        configs.append({"_class_name": name, **{k: v for k, v in cfg.items() if k not in PER_MODEL_KEYS}})
    for f, c in zip(folders[1:], configs[1:]):
        if c != configs[0]:
            keys = sorted(k for k in set(c) | set(configs[0]) if c.get(k) != configs[0].get(k))
            raise InputError(f"{f} and {folders[0]} differ in config.json ({', '.join(keys)}); "
                             "only models of one configuration can be averaged")
        for part in ("tokenizer", "inspector.json"):
            if not _same_files(folders[0] / part, f / part):
                raise InputError(f"{f / part} differs from {folders[0] / part}: averaged models must read "
                                 "the same tokens and the same depth and salience maps")
    state = average_state_dicts([load_file(str(f / "model.safetensors")) for f in folders], weights)

    with atomic_dir(out) as tmp:  # the folder appears whole or not at all
        save_file_atomic(state, tmp / "model.safetensors", metadata={"format": "pt", "model": "RFNet"})
        write_json(tmp / "config.json", {**configs[0], **dict.fromkeys(PER_MODEL_KEYS)})
        for part in ("tokenizer", "inspector.json"):
            src = folders[0] / part
            if src.is_dir():
                shutil.copytree(src, tmp / part)
            elif src.is_file():
                shutil.copy2(src, tmp / part)
        write_text(tmp / "MODEL_CARD.md", _card(folders, weights, out))
    return out


def _card(folders: list[Path], weights: list[float] | None, out: Path) -> str:
    w = [1.0] * len(folders) if weights is None else weights
    lines = [f"# RFNet: {out.name}", "",
             "The weighted average of the weights of these RFNets (`scripts/average_inspectors.py`):", ""]
    lines += [f"- `{f}`, weight {wi / sum(w):.4g}" for f, wi in zip(folders, w)]
    lines += ["", "No acceptance threshold: calibrate it on validation data (`python -m rfnet.calibrate`).", ""]
    for f in folders:
        card = f / "MODEL_CARD.md"
        if card.is_file():
            text = card.read_text(encoding="utf-8")
            start = text.find("## Data it saw")
            if start >= 0:
                end = text.find("\n## ", start + 3)
                section = text[start:end if end > 0 else None].strip().splitlines()[1:]
                lines += [f"## Data `{f}` saw", *section, ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rfnet", nargs="+", required=True, help="two or more RFNet folders of one configuration")
    ap.add_argument("--weights", nargs="+", type=float, default=None,
                    help="one positive weight per folder (default: equal)")
    ap.add_argument("--output_dir", required=True)
    a = ap.parse_args(argv)
    try:
        out = average_inspectors(a.rfnet, a.output_dir, a.weights)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out} (the average of {len(a.rfnet)} RFNets; no threshold until calibrated)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
