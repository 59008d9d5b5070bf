"""How often does the oracle change its verdict when a generated image changes in a way no
person would see, and what does that leave for an inspector that learns from its labels?

Each image of an RF-Gen folder is judged again after small changes:

- ``noise``: Gaussian noise of sigma 2 (of 255) on every channel, rounded (seeded by the
  image's id, so a run repeats);
- ``jpeg``: a JPEG round trip at quality 95 with full-resolution colour;
- ``bright``: every pixel times 1.02.

An image is *fragile* when any change moves its verdict, Available or not. Unsuitable comes from
the world's damage record (rule 1), so those images cannot move and are counted apart.

Why it bounds an inspector: one that gives an image and its changed copy the same verdict
agrees with the oracle on at most 1 - p/2 of the verdicts over both copies, where p is the
share whose verdict the change moves (on each such pair it is wrong once); over an image and
all its changed copies, on at most the mean share of the majority verdict.

Second, how close the Size Mismatch rule's verdicts are to its boundary: for every image whose
verdict rule 5 decided (a reference object was measured), by how many pixels the reference
object's height would have to change to flip the verdict. With rfnet.evaluate's
``predictions.jsonl`` of the same folder, the inspector's agreement is also split by fragile
and stable images.

    python scripts/oracle_stability.py --data data/rfgen_test [--predictions runs/eval/X/predictions.jsonl]
        [--limit N] [--json out.json]
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rfnet.dataformat import SkipReport, read_records  # noqa: E402
from rfsynth import rules  # noqa: E402
from rfsynth.catalog import CATEGORY_BY_NAME  # noqa: E402
from rfsynth.make_generated import supplied_cutout  # noqa: E402
from rfsynth.oracle import judge  # noqa: E402

NOISE_SIGMA = 2.0
JPEG_QUALITY = 95
BRIGHTNESS = 1.02


def _seed(sample_id: str, salt: str) -> int:
    return zlib.crc32(f"{salt}:{sample_id}".encode("utf-8"))


def noise(img: np.ndarray, sample_id: str) -> np.ndarray:
    rng = np.random.default_rng(_seed(sample_id, "noise"))
    return np.clip(np.rint(img + rng.normal(0.0, NOISE_SIGMA, img.shape)), 0, 255).astype(np.uint8)


def jpeg(img: np.ndarray, sample_id: str) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def bright(img: np.ndarray, sample_id: str) -> np.ndarray:
    return np.clip(np.rint(img.astype(np.float32) * BRIGHTNESS), 0, 255).astype(np.uint8)


CHANGES = {"noise": noise, "jpeg": jpeg, "bright": bright}


def judge_changed(folder: Path, rec: dict, info: dict) -> dict:
    """The oracle's label of the stored image and of each changed copy: {"as stored": ..., name: ...}."""
    src = rec["source"]
    img = np.asarray(Image.open(folder / rec["image"]).convert("RGB"))
    prod = Image.open(folder / rec["product"]).convert("RGBA")
    supplied = supplied_cutout(folder, rec, info)
    args = (prod, src["placement"], src["category"], supplied)
    out = {"as stored": judge(img, *args, damage=src.get("damage")).label}
    for name, change in CHANGES.items():
        out[name] = judge(change(img, rec["id"]), *args, damage=src.get("damage")).label
    return out


def size_margin_px(measures: dict, category: str) -> float | None:
    """For a verdict decided by rule 5 (a reference object was measured): by how many pixels
    the reference object's height would have to change to flip it; positive inside the band
    (Available), negative outside (Size Mismatch). None when rule 5 measured nothing."""
    if "implied_height_cm" not in measures or "reference_px" not in measures:
        return None
    implied, ref_px = float(measures["implied_height_cm"]), float(measures["reference_px"])
    lo, hi = CATEGORY_BY_NAME[category].height_cm
    # implied = h * ref_cm / ref_px, so the band [lo / tol, hi * tol] holds for ref_px in [a, b]
    a = implied * ref_px / (hi * rules.SIZE_TOLERANCE)
    b = implied * ref_px * rules.SIZE_TOLERANCE / lo
    if a <= ref_px <= b:
        return min(ref_px - a, b - ref_px)
    return -min(abs(ref_px - a), abs(ref_px - b))


SIZE_BINS = ((0.0, 1.0), (1.0, 2.0), (2.0, 4.0), (4.0, float("inf")))


def _available(label: str) -> bool:
    return label == "Available"


def agreement(rows: list[dict], predictions: dict[str, str], label=lambda r: r["label"]) -> dict:
    """The inspector's top class against the oracle's label, Available or not, over the rows it predicted."""
    have = [r for r in rows if r["id"] in predictions]
    hit = sum(_available(predictions[r["id"]]) == _available(label(r)) for r in have)
    return {"images": len(have), "agree": hit, "share": hit / max(1, len(have))}


def size_margins(rows: list[dict], predictions: dict[str, str] | None = None) -> list[dict]:
    """Rule-5 verdicts by |size_margin_px| bin, with the inspector's agreement in each.
    rows: {"id", "label", "size_margin_px"} (None where rule 5 measured nothing)."""
    out = []
    for lo, hi in SIZE_BINS:
        sel = [r for r in rows if r["size_margin_px"] is not None and lo <= abs(r["size_margin_px"]) < hi]
        b = {"px": [lo, hi], "images": len(sel), "Available": sum(r["label"] == "Available" for r in sel),
             "Size Mismatch": sum(r["label"] == "Size Mismatch" for r in sel)}
        if predictions is not None:
            a = agreement(sel, predictions)
            b["inspector_agrees"], b["inspector_images"] = a["agree"], a["images"]
        out.append(b)
    return out


def summarise(rows: list[dict], predictions: dict[str, str] | None = None) -> dict:
    """rows: {"id", "label" (the manifest's), "damaged", "labels": judge_changed's}."""
    judged = [r for r in rows if not r["damaged"]]
    avail = _available
    out: dict = {"images": len(rows), "damaged": len(rows) - len(judged), "judged": len(judged),
                 "as_stored_matches_manifest": sum(r["labels"]["as stored"] == r["label"] for r in rows)}
    per = {}
    for name in CHANGES:
        moved = [r for r in judged if avail(r["labels"][name]) != avail(r["labels"]["as stored"])]
        six = [r for r in judged if r["labels"][name] != r["labels"]["as stored"]]
        p = len(moved) / max(1, len(rows))
        per[name] = {"available_moved": len(moved), "six_class_moved": len(six),
                     "share_of_all_images": p, "ceiling": 1 - p / 2,
                     "transitions": dict(Counter(f"{r['labels']['as stored']} -> {r['labels'][name]}"
                                                 for r in six).most_common())}
    out["changes"] = per
    # One verdict for an image and all its changed copies matches the oracle on at most the
    # majority of the copies' verdicts: the bound over all changes at once.
    copies = 1 + len(CHANGES)
    best = [max(k, copies - k) for k in (sum(avail(x) for x in r["labels"].values()) for r in rows)]
    out["ceiling_all_copies"] = sum(best) / max(1, copies * len(rows))
    fragile = {r["id"] for r in judged
               if any(avail(r["labels"][n]) != avail(r["labels"]["as stored"]) for n in CHANGES)}
    out["fragile"] = len(fragile)
    out["fragile_by_label"] = dict(Counter(r["labels"]["as stored"] for r in judged if r["id"] in fragile))
    out["label_counts"] = dict(Counter(r["labels"]["as stored"] for r in rows))
    if predictions is not None:
        def agree(subset):
            return agreement(subset, predictions, label=lambda r: r["labels"]["as stored"])
        out["inspector"] = {
            "all": agree(rows),
            "fragile": agree([r for r in rows if r["id"] in fragile]),
            "stable, not damaged": agree([r for r in judged if r["id"] not in fragile]),
            "damaged": agree([r for r in rows if r["damaged"]]),
        }
    return out


def read_predictions(path: Path) -> dict[str, str]:
    return {d["id"]: d["predicted"] for d in (json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()
                                              if x.strip())}


def format_summary(s: dict) -> str:
    lines = [f"{s['images']} images ({s['damaged']} damaged: Unsuitable by the record, cannot move); "
             f"as stored, the oracle repeats the manifest's label on {s['as_stored_matches_manifest']}"]
    for name, c in s["changes"].items():
        lines.append(f"  {name:7s} Available-or-not moved on {c['available_moved']} "
                     f"({100 * c['share_of_all_images']:.1f}% of all; ceiling {100 * c['ceiling']:.1f}%), "
                     f"six classes on {c['six_class_moved']}; {c['transitions']}")
    lines.append(f"  one verdict for an image and its {len(s['changes'])} changed copies agrees on at most "
                 f"{100 * s['ceiling_all_copies']:.1f}% of the copies")
    lines.append(f"  fragile (any change moves Available-or-not): {s['fragile']} {s['fragile_by_label']}")
    for k, a in s.get("inspector", {}).items():
        lines.append(f"  inspector agrees, {k}: {a['agree']}/{a['images']} = {100 * a['share']:.1f}%")
    if s.get("size_margins"):
        lines.append("rule 5 (Size Mismatch) verdicts by how many reference pixels would flip them:")
        for b in s["size_margins"]:
            ins = (f"; inspector agrees {b['inspector_agrees']}/{b['inspector_images']}"
                   if "inspector_agrees" in b else "")
            lines.append(f"  {b['px'][0]:g}-{b['px'][1]:g} px: {b['images']} images "
                         f"({b['Available']} Available, {b['Size Mismatch']} Size Mismatch){ins}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, type=Path, help="an RF-Gen folder (rfsynth.make_generated)")
    p.add_argument("--predictions", type=Path, help="rfnet.evaluate's predictions.jsonl on the same folder")
    p.add_argument("--limit", type=int, help="only the first N images")
    p.add_argument("--json", type=Path, help="write the summary and every image's labels here")
    a = p.parse_args(argv)
    if not (a.data / "manifest.jsonl").is_file():
        print(f"error: {a.data} has no manifest.jsonl; give an RF-Gen folder (python -m rfsynth.make_generated)",
              file=sys.stderr)
        return 2
    if a.predictions is not None and not a.predictions.is_file():
        print(f"error: {a.predictions} does not exist; write it with python -m rfnet.evaluate --data {a.data}",
              file=sys.stderr)
        return 2
    skips = SkipReport()
    _, recs, info = read_records(a.data, skips)
    if len(skips):
        print(f"skipped: {skips.summary()}", file=sys.stderr)
    rows = []
    for rec in recs[:a.limit] if a.limit else recs:
        src = rec["source"]
        rows.append({"id": rec["id"], "label": rec["label"], "damaged": bool(src.get("damage")),
                     "labels": judge_changed(a.data, rec, info),
                     "size_margin_px": size_margin_px(src.get("oracle", {}), src["category"])})
    pred = read_predictions(a.predictions) if a.predictions else None
    s = summarise(rows, pred)
    s["size_margins"] = size_margins(rows, pred)
    print(format_summary(s))
    if a.json:
        from rfnet.fileio import write_json
        write_json(a.json, dict(s, rows=rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
