"""The oracle's measures as training targets for an inspector (``rfnet.train --aux_targets``).

    python -m rfsynth.measures data/rfgen_train [more folders]   # writes each record's aux_targets

RF-Gen records keep every measure the oracle took on its way to the label
(``source.oracle``, rfsynth/oracle.py). A label says only which rule fired; the measures say how
far each image is from each rule's threshold: how much of the ring round the product has its
colours, how much of its base stands on something, how tall the reference object makes it.
An inspector asked to predict them as well as the label gets several numbers per image instead
of one class, which is the point when generated images are few (docs/RESULTS.md, *auxiliary
targets*).

Each target is the measure divided by its rule's threshold (so 1 is the boundary where the
verdict flips) and clipped to 0..2, so that one loss weight fits them all and far-off values do
not dominate; ``size_margin`` is signed. The oracle stops at the first rule that fires, so later
rules' measures are often absent: the target is NaN then, and the loss skips it. Records without
measures (composed RF-Synth scenes, a designer's labels) give all NaN and train the label alone.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from . import rules
from .catalog import CATEGORY_BY_NAME

# name -> (the oracle's measure, its rule's threshold (the unit), what it is: listed by --help)
AUX_TARGETS: dict[str, tuple[str, float, str]] = {
    "low_contrast_frac": ("low_contrast_frac", rules.LOW_CONTRAST_FRAC,
                          "share of the ring round the product in the product's colours (rule 2)"),
    "clutter_frac": ("clutter_frac", rules.CLUTTER_FRAC, "share of strong edges round the product (rule 2)"),
    "attached_frac": ("attached_frac", rules.HALLUCINATION_AREA,
                      "product-coloured area grown onto the product, per product area (rule 3)"),
    "supported_frac": ("supported_frac", rules.SUPPORT_MIN_FRAC,
                       "share of the base's columns that stand on a surface (rule 4)"),
    "gap": ("median_gap_px", rules.SUPPORT_GAP, "median gap under the base, per image side (rule 4)"),
    "scene_coherence": ("scene_coherence", rules.SCENE_COHERENCE_MIN,
                        "share of the surroundings that is wall or surface (rule 4b)"),
    "size_margin": ("implied_height_cm", math.log(rules.SIZE_TOLERANCE),
                    "log distance of the implied height inside (+) or outside (-) the category's "
                    "height band (rule 5)"),
}
CLIP = 2.0
NAN = float("nan")


def _clip(x: float, lo: float = 0.0) -> float:
    return min(max(float(x), lo), CLIP)


def size_margin(measures: dict, category: str | None) -> float:
    """How far the implied real height lies inside (+) or outside (-) the category's band
    [lo / tol, hi * tol], in units of log(tol), clipped to -2..2; NaN where rule 5 measured
    no reference object or the category is unknown."""
    implied = measures.get("implied_height_cm")
    cat = CATEGORY_BY_NAME.get(category) if category else None
    if not isinstance(implied, (int, float)) or cat is None or not implied > 0:
        return NAN
    lo, hi = cat.height_cm
    tol = rules.SIZE_TOLERANCE
    unit = AUX_TARGETS["size_margin"][1]  # log(tol)
    return _clip(min(math.log(implied * tol / lo), math.log(hi * tol / implied)) / unit, -CLIP)


def targets(record: dict, names, image_px: int | None = None) -> list[float]:
    """The targets ``names`` of one dataset record (a manifest line), NaN where not measured.
    ``image_px``: the side of the images the oracle judged (the dataset's ``size``), for the
    gap, which rule 4 measures in pixels; without it the gap is NaN."""
    src = record.get("source") if isinstance(record.get("source"), dict) else {}
    m = src.get("oracle") if isinstance(src.get("oracle"), dict) else {}
    out = []
    for name in names:
        if name not in AUX_TARGETS:
            raise ValueError(f"unknown auxiliary target {name!r}; known: {', '.join(AUX_TARGETS)}")
        if name == "size_margin":  # needs the category's height band, not only the measure
            out.append(size_margin(m, src.get("category")))
            continue
        key, threshold, _ = AUX_TARGETS[name]
        v = m.get(key)
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            v = NAN
        elif name == "gap":
            v = _clip(v / (threshold * image_px)) if image_px else NAN
        else:
            v = _clip(v / threshold)
        out.append(v if math.isfinite(v) else NAN)
    return out


def annotate(folder) -> int:
    """Write every record's targets (those measured) into its ``aux_targets`` field, where
    rfnet reads them; the manifest is rewritten atomically. Returns the records written."""
    from rfnet.dataformat import MANIFEST
    from rfnet.fileio import write_text

    folder = Path(folder)
    info = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    px = info.get("size") if isinstance(info.get("size"), int) else None
    lines = []
    for line in (folder / MANIFEST).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        vals = targets(rec, AUX_TARGETS, px)
        rec["aux_targets"] = {n: round(v, 6) for n, v in zip(AUX_TARGETS, vals) if math.isfinite(v)}
        lines.append(json.dumps(rec, ensure_ascii=False))
    write_text(folder / MANIFEST, "\n".join(lines) + ("\n" if lines else ""))
    return len(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m rfsynth.measures", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Write the oracle's measures, scaled as training targets, into each record's "
                    "aux_targets (rfnet.train --aux_targets).",
        epilog="targets:\n" + "\n".join(f"  {n}: {d}" for n, (_, _, d) in AUX_TARGETS.items()))
    p.add_argument("folders", nargs="+", help="RF-Gen dataset folders")
    for f in p.parse_args(argv).folders:
        if not (Path(f) / "dataset.json").is_file():
            p.error(f"{f} is not an RF dataset folder (no dataset.json)")
        print(f"{f}: {annotate(f)} records")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
