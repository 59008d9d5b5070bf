"""Does an inspector take a hard matte for damage? Its verdicts split by the product's matte.

    python -m rfnet.evaluate --rfnet DIR --data data/rfsynth_v2_s1_128 --split all --output_dir runs/eval/X ...
    python scripts/matte_check.py --data data/rfsynth_v2_s1_128 --predictions gen3=runs/eval/gen3_v2s1 \
        --predictions gen4=runs/eval/gen4_v2s1

RF-Synth v2 gives 30% of its products a hard matte (binary alpha, as real matted cutouts have);
v1 had soft mattes only, and an inspector trained on v1 learned "hard edge = damaged". For each
inspector and each matte this prints: of the intact products, the share it calls Unsuitable
(its top class: the false alarm a designer sees on their own photos); of the damaged ones, the
share it calls Unsuitable (recall); and its six-class accuracy. Reads the look from each
record (RF-Synth: source.params.product.matte and .printed; RF-Gen: source.matte and
.printed; absent: soft, no label).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path


def matte_of(rec: dict) -> str:
    """The product's look: its matte, and ", printed" when it has a printed label (v2)."""
    src = rec.get("source", {})
    prod = src.get("params", {}).get("product", {})
    matte = src.get("matte") or prod.get("matte") or "soft"
    printed = src.get("printed", prod.get("printed"))
    return matte + (", printed" if printed is not None else "")


def split_by_matte(records: dict[str, dict], predictions: list[dict]) -> dict[str, dict]:
    """{matte: {intact, intact_unsuitable, damaged, damaged_unsuitable, n, correct}}."""
    out: dict[str, dict] = defaultdict(lambda: defaultdict(int))
    for p in predictions:
        rec = records.get(p["id"])
        if rec is None:
            continue
        row = out[matte_of(rec)]
        damaged = rec["label"] == "Unsuitable"
        called = p["predicted"] == "Unsuitable"
        row["damaged" if damaged else "intact"] += 1
        row["damaged_unsuitable" if damaged else "intact_unsuitable"] += called
        row["n"] += 1
        row["correct"] += p["predicted"] == rec["label"]
    return {m: dict(r) for m, r in sorted(out.items())}


def _pct(k: int, n: int) -> str:
    return f"{100 * k / n:.1f}% ({k}/{n})" if n else "-"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python scripts/matte_check.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="the dataset the predictions are of")
    p.add_argument("--predictions", action="append", required=True, metavar="NAME=DIR",
                   help="an rfnet.evaluate output folder (predictions.jsonl), repeatable")
    a = p.parse_args(argv)
    manifest = Path(a.data) / "manifest.jsonl"
    records = {r["id"]: r for r in (json.loads(x) for x in manifest.read_text(encoding="utf-8").splitlines()
                                    if x.strip())}
    print("| inspector | matte | images | intact called Unsuitable | damaged called Unsuitable | accuracy, 6 classes |")
    print("|---|---|---:|---:|---:|---:|")
    for item in a.predictions:
        name, _, folder = item.partition("=")
        preds = [json.loads(x) for x in (Path(folder) / "predictions.jsonl").read_text().splitlines() if x.strip()]
        for matte, r in split_by_matte(records, preds).items():
            print(f"| {name} | {matte} | {r['n']} | {_pct(r.get('intact_unsuitable', 0), r.get('intact', 0))} | "
                  f"{_pct(r.get('damaged_unsuitable', 0), r.get('damaged', 0))} | {_pct(r['correct'], r['n'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
