"""Error of a depth or salience extractor against an RF dataset's ground-truth maps.

    python scripts/eval_maps.py --kind depth --model embedded --data data/rfsynth_s1_128 [--n 1000]

Prints the mean absolute error (maps in 0..1) and, for salience, the IoU of the maps
thresholded at 0.5; the named fallbacks are measured the same way for comparison.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    import torch

    from rfnet.data import RFDataset
    from rfnet.extractors import make_extractor

    p = argparse.ArgumentParser()
    p.add_argument("--kind", choices=["depth", "salience"], required=True)
    p.add_argument("--model", default="embedded")
    p.add_argument("--data", required=True)
    p.add_argument("--split", default=None)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--size", type=int, default=128)
    a = p.parse_args()
    ds = RFDataset(a.data, label_set="rf1m6", split=a.split, image_size=a.size, need_product=False, maps=(a.kind,))
    n = min(a.n, len(ds))
    x = torch.stack([ds[i]["generated"] for i in range(n)])
    y = torch.stack([ds[i][a.kind] for i in range(n)])
    out = {}
    for spec in (a.model, "fallback"):
        ex = make_extractor(a.kind, spec).eval()
        with torch.no_grad():
            pred = torch.cat([ex(x[i:i + 64]) for i in range(0, n, 64)])
        r = {"mae": float((pred - y).abs().mean())}
        if a.kind == "salience":
            pb, tb = pred > 0.5, y > 0.5
            r["iou"] = float((pb & tb).sum() / (pb | tb).sum().clamp_min(1))
        out[ex.name] = r
    print(json.dumps({"kind": a.kind, "data": a.data, "n": n, "size": a.size, "results": out}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
