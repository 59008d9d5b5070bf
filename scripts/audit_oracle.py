"""A blind audit of the oracle on generated images, by eye.

    python scripts/audit_oracle.py sheet --set A --seed 300 --jobs 100 [--controlnet NAME=DIR ...]
    (label every id in audit/labels_A.csv, by eye, then commit that file)
    python scripts/audit_oracle.py reveal --set A
    python scripts/audit_oracle.py compare --set E --labeller "" --labeller _2   # two labellers of one set
    python scripts/audit_oracle.py rounds --set F --old _rules4   # two rule rounds on one set, paired

``sheet`` draws the set's images with RF-Gen's recipes (rfsynth.make_generated: the embedded
generator under several samplers, and any RFFT-tuned ControlNets given) into data/audit_SET,
and writes contact sheets with ids only (audit/sheets_SET/*.png, sheets_SET_2/ for a further labeller: each image at 256 px, the
product beside it, its category and real height, and the world's reference-object convention
on every sheet), the ids (audit/ids_SET.txt) and an empty labels file (audit/labels_SET.csv:
``id,label,note``; label one of the six classes or ``unsure``).

``reveal`` refuses to run while the labels file is missing, has an id unlabelled, unknown or
repeated, or is not committed as it is on disk (naming which); the commit history then shows
the labels came first. It judges every image with the current rules, and writes
audit/oracle_SET.csv, the agreement table audit/agreement_SET.md (Available-or-not over the
images the labeller was sure of, the six classes, per class, the confusion table) and
docs/img/audit/disagreements_SET.jpg (each kind of disagreement, up to six of each).

A second labeller of the same images labels audit/labels_SET_2.csv (``sheet ... --labeller _2``
writes it empty; ``reveal --labeller _2`` judges against it). ``compare`` sets two committed
labellers side by side: how often people agree with each other bounds what the oracle can reach.
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image, ImageDraw  # noqa: E402

from rfnet.badge import font  # noqa: E402
from rfsynth.catalog import CATEGORY_BY_NAME, REFERENCES  # noqa: E402

AUDIT = ROOT / "audit"
LABELS = ("Available", "Unsuitable", "Space Mismatch", "Size Mismatch", "Indistinctiveness", "Shape Hallucination")
UNSURE = "unsure"
CELL, PER_ROW, ROWS = 256, 3, 4
NOTE = ("How to read these images: each is a product (pasted exactly, never redrawn) in a background a generator "
        "drew. Label what a designer would: Available (usable as is), Unsuitable (the product cutout itself is "
        "cut or has holes), Space Mismatch (not standing on a surface: floating, or over an edge), Size Mismatch "
        "(judged against a reference object standing on the surface: the height the image implies for the product, "
        "product height / reference height x the reference's real height, is below 2/3 of the category's smallest "
        "real height or above 1.5 times its largest; e.g. a 9-12 cm mug must measure 6-18 cm), Indistinctiveness (the "
        "product does not stand out: low contrast with what touches it, clutter, or no coherent scene around it), "
        "Shape Hallucination (the background continues the product's shape in its colours: extra legs, a "
        "pedestal, a part added on a side). Reference objects in this world are drawn in one reserved colour "
        "each; a blob of that colour standing on the surface IS that object:")


# The world's conventions where people read generated images two ways (sets E and F: blocks under
# a product, columns under a floating one, blurred or hanging reference blobs, two defects at
# once), written out from rfsynth/rules.py for sheets drawn with --conventions 2 (set G on).
CONVENTIONS = ("The world's conventions, where an image can be read two ways: (1) If several defects apply, give the "
               "first of: Unsuitable, Indistinctiveness by low contrast or clutter, Shape Hallucination, Space Mismatch, "
               "Indistinctiveness by no coherent scene, Size Mismatch. (2) Unsuitable: look at the cutout beside the "
               "image; a cut edge or a hole there is Unsuitable even where the image hides it. (3) A body directly under "
               "the product is Shape Hallucination when it is in the colour of the part it touches (and one of the "
               "product's main colours), with wall showing on both sides of it, at any width; or when, in any colour, "
               "it is about as wide as the product's foot (0.75 to 1.2 times) with wall beside it and reaches a third "
               "of the product's height down. A body in another colour and wider than that is a table: the product "
               "stands on it. (4) Space Mismatch: under at least half of the product's bottom there is wall (a gap), "
               "or it hangs over an edge. (5) Size: only a blob that stands on the surface is a reference object; a "
               "blob hanging on the wall is decoration. Measure a blob's full height, its soft edge included; with "
               "several, use the largest. No standing reference: nothing contradicts the size.")
# Round 6 (after set H): how a blob between two reserved colours, or a smudge, is read.
CONVENTIONS_3 = (" (6) A saturated blob between two reserved colours is the one it is nearest to (mint: the book "
                 "stack; lime: the stool). A blob shorter than 5% of the image's height is a smudge, not an object.")
# Round 8 (after set I): what a cut looks like on a cutout, and smudges under a floating product.
# The eye missed half of the world's damaged products on sets G-I, nearly all cut on a side: what
# is left looks like a whole, narrower product.
CONVENTIONS_4 = (" (7) A cut shows on the cutout as a straight, pixel-sharp side where the rest of its outline is "
                 "soft or rounded, often flush with the edge of the cutout's box: the product lost that part "
                 "(Unsuitable), though what is left can look like a whole, narrower product. (8) A smudge or blob "
                 "under the product that hangs in the wall, reaching neither the floor nor a side of the image, "
                 "holds nothing up: the product floats (Space Mismatch).")
NOTES = {1: NOTE, 2: NOTE + " " + CONVENTIONS, 3: NOTE + " " + CONVENTIONS + CONVENTIONS_3,
         4: NOTE + " " + CONVENTIONS + CONVENTIONS_3 + CONVENTIONS_4}


def _legend(width: int, conventions: int = 1) -> Image.Image:
    """The annotator's convention, shown on every sheet: what each reserved colour is. Laid out
    first, then drawn, so that no width cuts a line or a swatch off."""
    f = font(13)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines, line = [], ""
    for w in NOTES[conventions].split():
        if line and measure.textlength(line + " " + w, font=f) > width - 16:
            lines.append(line)
            line = w
        else:
            line = (line + " " + w).strip()
    lines.append(line)
    per_row = max(1, (width - 8) // 230)
    swatch_rows = -(-len(REFERENCES) // per_row)
    top = 4 + 16 * len(lines) + 4
    img = Image.new("RGB", (width, top + 24 * swatch_rows + 4), "white")
    d = ImageDraw.Draw(img)
    for i, text in enumerate(lines):
        d.text((8, 4 + 16 * i), text, fill="black", font=f)
    for i, (name, ref) in enumerate(REFERENCES.items()):
        x, y = 8 + 230 * (i % per_row), top + 24 * (i // per_row)
        d.rectangle((x, y, x + 18, y + 18), fill=tuple(ref["colour"]), outline="black")
        d.text((x + 24, y + 1), f"{name}: {ref['height_cm']:g} cm tall", fill="black", font=f)
    return img


def _checker(size: tuple[int, int]) -> Image.Image:
    bg = Image.new("RGB", size, (235, 235, 235))
    d = ImageDraw.Draw(bg)
    for yy in range(0, size[1], 8):
        for xx in range(0, size[0], 8):
            if (xx // 8 + yy // 8) % 2:
                d.rectangle((xx, yy, xx + 7, yy + 7), fill=(205, 205, 205))
    return bg


def write_sheets(folder: Path, recs: list[dict], out: Path, conventions: int = 1) -> list[Path]:
    """Contact sheets with ids only: the image, the product, its category and real height, under
    the annotator's legend (``conventions`` 2 adds the world's written conventions)."""
    out.mkdir(parents=True, exist_ok=True)
    f, fb = font(14), font(16)
    cw, ch = CELL + 110, CELL + 26
    legend = _legend(PER_ROW * cw, conventions)
    paths = []
    per_sheet = PER_ROW * ROWS
    for s in range(0, len(recs), per_sheet):
        page = recs[s:s + per_sheet]
        sheet = Image.new("RGB", (PER_ROW * cw, legend.height + ROWS * ch), "white")
        sheet.paste(legend, (0, 0))
        d = ImageDraw.Draw(sheet)
        for j, r in enumerate(page):
            x, y = (j % PER_ROW) * cw, legend.height + (j // PER_ROW) * ch
            img = Image.open(folder / r["image"]).convert("RGB").resize((CELL, CELL), Image.BICUBIC)
            sheet.paste(img, (x + 4, y + 22))
            prod = Image.open(folder / r["product"]).convert("RGBA")
            if conventions >= 2:  # enlarged, pixel for pixel, so that a cut or a hole shows (convention 2)
                f_ = 96 / max(prod.size)
                prod = prod.resize((max(1, round(prod.width * f_)), max(1, round(prod.height * f_))), Image.NEAREST)
            else:
                prod.thumbnail((96, 96))
            bg = _checker(prod.size)
            bg.paste(prod, (0, 0), prod)
            sheet.paste(bg, (x + CELL + 8, y + 22))
            cat = CATEGORY_BY_NAME[r["source"]["category"]]
            lo, hi = cat.height_cm
            d.text((x + 4, y + 2), r["id"], fill="black", font=fb)
            d.text((x + CELL + 8, y + 126), cat.name.replace("_", " "), fill="black", font=f)
            d.text((x + CELL + 8, y + 144), f"{lo:g}-{hi:g} cm", fill="black", font=f)
        p = out / f"sheet_{s // per_sheet + 1:02d}.png"
        sheet.save(p)
        paths.append(p)
    return paths


def _records(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / "manifest.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]


def cmd_sheet(a) -> int:
    from rfsynth.make_generated import DEFAULT_RECIPES, make, parse_controlnets

    folder = ROOT / "data" / f"audit_{a.set}"
    recipes = DEFAULT_RECIPES + parse_controlnets(a.controlnet)
    if a.controlnet_weight != 1.0:
        from dataclasses import replace

        recipes = tuple(replace(r, weight=a.controlnet_weight) if r.controlnet else r for r in recipes)
    make(folder, a.jobs, a.seed, "audit=1", images_per_job=a.images_per_job, recipes=recipes, workers=a.workers,
         threads=1, damage_p=a.damage_p, version=a.version)
    recs = sorted(_records(folder), key=lambda r: r["id"])
    AUDIT.mkdir(exist_ok=True)
    (AUDIT / f"ids_{a.set}.txt").write_text("".join(r["id"] + "\n" for r in recs))
    labels = labels_path(a.set, a.labeller)
    if not labels.exists():
        with open(labels, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["id", "label", "note"])
            for r in recs:
                w.writerow([r["id"], "", ""])
    # a further labeller gets sheets of their own: they may be drawn with other conventions
    sheet_dir = AUDIT / f"sheets_{a.set}{a.labeller}"
    sheets = write_sheets(folder, recs, sheet_dir, a.conventions)
    print(f"{len(recs)} images, {len(sheets)} sheets in {sheet_dir}; label them in {labels} "
          f"(one of: {', '.join(LABELS)}, {UNSURE}), commit it, then run reveal --set {a.set}")
    return 0


def labels_path(set_name: str, labeller: str = "") -> Path:
    return AUDIT / f"labels_{set_name}{labeller}.csv"


def check_labels(set_name: str, labeller: str = "") -> dict[str, tuple[str, str]]:
    """The labeller's labels, or ValueError naming what is missing, incomplete or uncommitted."""
    path = labels_path(set_name, labeller)
    ids_path = AUDIT / f"ids_{set_name}.txt"
    if not ids_path.exists():
        raise ValueError(f"{ids_path} is missing: run `sheet --set {set_name}` first")
    if not path.exists():
        raise ValueError(f"{path} is missing: label every image of audit/sheets_{set_name}/ and commit the file")
    ids = ids_path.read_text().split()
    labels: dict[str, tuple[str, str]] = {}
    problems = []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            i, lab = (row.get("id") or "").strip(), (row.get("label") or "").strip()
            if i in labels:
                problems.append(f"{i} labelled twice")
            elif lab not in LABELS + (UNSURE,):
                problems.append(f"{i}: label {lab!r} is not one of {', '.join(LABELS)}, {UNSURE}")
            labels[i] = (lab, (row.get("note") or "").strip())
    missing = [i for i in ids if i not in labels]
    extra = [i for i in labels if i not in set(ids)]
    if missing:
        problems.append(f"{len(missing)} ids without a row, first {missing[:5]}")
    if extra:
        problems.append(f"{len(extra)} rows for ids not in the set, first {extra[:5]}")
    if problems:
        raise ValueError(f"{path} is incomplete: " + "; ".join(problems[:8]))
    rel = path.relative_to(ROOT)
    if subprocess.run(["git", "ls-files", "--error-unmatch", str(rel)], cwd=ROOT, capture_output=True).returncode:
        raise ValueError(f"{rel} is not committed: commit the labels before revealing the oracle's")
    if subprocess.run(["git", "diff", "--quiet", "HEAD", "--", str(rel)], cwd=ROOT).returncode:
        raise ValueError(f"{rel} has changes that are not committed: commit them before revealing")
    return labels


def agreement(pairs: list[tuple[str, str, str]], eye: str = "eye", oracle: str = "oracle") -> str:
    """Markdown tables from (id, eye, oracle) over the images the labeller was sure of (both
    labellers, when ``oracle`` is a second labeller)."""
    sure = [(i, e, o) for i, e, o in pairs if UNSURE not in (e, o)]
    n = len(sure)
    bin_ok = sum((e == "Available") == (o == "Available") for _, e, o in sure)
    six_ok = sum(e == o for _, e, o in sure)
    lines = [f"{len(pairs)} images; sure of {n}, unsure of {len(pairs) - n}.", "",
             "| measure | agreement |", "|---|---:|",
             f"| Available or not (sure images) | {bin_ok}/{n} = {100 * bin_ok / max(n, 1):.1f}% |",
             f"| six classes (sure images) | {six_ok}/{n} = {100 * six_ok / max(n, 1):.1f}% |", "",
             f"Per class (rows: the {eye}'s label; recall of the {eye}'s class by the {oracle}, and precision of "
             f"the {oracle}'s class against the {eye}):", "",
             f"| class | {eye} | {oracle} | both | {oracle} agrees with {eye} | {eye} agrees with {oracle} |",
             "|---|---:|---:|---:|---:|---:|"]
    for c in LABELS:
        ne = sum(e == c for _, e, _ in sure)
        no = sum(o == c for _, _, o in sure)
        nb = sum(e == c and o == c for _, e, o in sure)
        lines.append(f"| {c} | {ne} | {no} | {nb} | {100 * nb / ne:.0f}% | {100 * nb / no:.0f}% |".replace(
            "| nan%", "| -") if ne and no else f"| {c} | {ne} | {no} | {nb} | - | - |")
    cols = LABELS + ((UNSURE,) if any(o == UNSURE for _, _, o in pairs) else ())
    lines += ["", f"Confusion (rows: {eye}, columns: {oracle}; all images, unsure included):", "",
              f"| {eye} \\ {oracle} | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    conf = Counter((e, o) for _, e, o in pairs)
    for e in LABELS + (UNSURE,):
        if any(conf[(e, o)] for o in cols):
            lines.append(f"| {e} | " + " | ".join(str(conf[(e, o)]) for o in cols) + " |")
    return "\n".join(lines) + "\n"


def disagreement_sheet(folder: Path, recs: dict, pairs, out: Path) -> None:
    groups = defaultdict(list)
    for i, e, o in pairs:
        if e != UNSURE and e != o:
            groups[(e, o)].append(i)
    if not groups:
        return
    f = font(13)
    cell, w = 160, 6
    rows = []
    for (e, o), ids in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        rows.append((f"eye: {e} / oracle: {o} ({len(ids)}; the first {min(w, len(ids))})", ids[:w]))
    sheet = Image.new("RGB", (w * (cell + 4) + 4, len(rows) * (cell + 36)), "white")
    d = ImageDraw.Draw(sheet)
    for k, (title, ids) in enumerate(rows):
        y = k * (cell + 36)
        d.text((4, y + 2), title, fill="black", font=f)
        for j, i in enumerate(ids):
            img = Image.open(folder / recs[i]["image"]).convert("RGB").resize((cell, cell), Image.BICUBIC)
            sheet.paste(img, (4 + j * (cell + 4), y + 18))
            d.text((4 + j * (cell + 4), y + 18 + cell), i, fill="black", font=font(10))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, quality=82)


def cmd_reveal(a) -> int:
    from rfsynth.make_generated import supplied_cutout
    from rfsynth.oracle import judge

    try:
        eye = check_labels(a.set, a.labeller)
    except ValueError as e:
        print(f"audit_oracle reveal: refused: {e}", file=sys.stderr)
        return 2
    name = f"{a.set}{a.labeller}{a.suffix}"
    folder = ROOT / "data" / f"audit_{a.set}"
    recs = {r["id"]: r for r in _records(folder)}
    info = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    pairs, rows = [], []
    for i in sorted(eye):
        r = recs[i]
        v = judge(Image.open(folder / r["image"]), Image.open(folder / r["product"]), r["source"]["placement"],
                  r["source"]["category"], supplied=supplied_cutout(folder, r, info), damage=r["source"].get("damage"))
        pairs.append((i, eye[i][0], v.label))
        rows.append([i, v.label, r["source"]["recipe"], json.dumps(v.measures)])
    with open(AUDIT / f"oracle_{name}.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "oracle", "recipe", "measures"])
        w.writerows(rows)
    table = agreement(pairs)
    (AUDIT / f"agreement_{name}.md").write_text(f"# Oracle audit, set {name}\n\n{table}")
    disagreement_sheet(folder, recs, pairs, ROOT / "docs" / "img" / "audit" / f"disagreements_{name}.jpg")
    print(table)
    return 0


def consensus(pairs: list[tuple[str, str, str]], oracle: dict[str, str]) -> str:
    """The oracle's agreement on the images two labellers agree on (sure ones only): Available or
    not where both say the same of it, six classes where both give the same label."""
    sure = [(i, x, y) for i, x, y in pairs if UNSURE not in (x, y)]
    both = [(i, x) for i, x, y in sure if (x == "Available") == (y == "Available")]
    same = [(i, x) for i, x, y in sure if x == y]
    ok_bin = sum((oracle[i] == "Available") == (x == "Available") for i, x in both)
    ok_six = sum(oracle[i] == x for i, x in same)
    return ("| the oracle where both labellers agree | agreement |\n|---|---:|\n"
            f"| Available or not | {ok_bin}/{len(both)} = {100 * ok_bin / max(len(both), 1):.1f}% |\n"
            f"| six classes | {ok_six}/{len(same)} = {100 * ok_six / max(len(same), 1):.1f}% |\n")


def labellers_vs_oracle(one: dict[str, str], two: dict[str, str], oracle: dict[str, str], n_boot: int = 2000) -> dict:
    """The oracle against each of two labellers of the same images (both sure), and the paired
    difference, second minus first, in points with a 95% interval that resamples whole jobs:
    whether the oracle is closer to one labeller (for instance one who read the written
    conventions) than to the other. The same statistic as :func:`rounds`, with the roles of eye
    and oracle swapped."""
    both = {i for i in one if UNSURE not in (one[i], two.get(i, UNSURE)) and i in oracle}
    return rounds({i: oracle[i] for i in both}, {i: one[i] for i in both}, {i: two[i] for i in both}, n_boot)


def cmd_compare(a) -> int:
    """Two labellers of one set, each committed: their agreement with each other."""
    first, second = a.labeller
    try:
        one, two = check_labels(a.set, first), check_labels(a.set, second)
    except ValueError as e:
        print(f"audit_oracle compare: refused: {e}", file=sys.stderr)
        return 2
    pairs = [(i, one[i][0], two[i][0]) for i in sorted(one)]
    names = tuple(f"labeller {x.lstrip('_') or '1'}" for x in (first, second))
    table = agreement(pairs, *names)
    revealed = AUDIT / f"oracle_{a.set}{first}.csv"
    if revealed.exists():  # after reveal: the oracle on the images the two people agree on
        with open(revealed, newline="", encoding="utf-8") as fh:
            oracle = {r["id"]: r["oracle"] for r in csv.DictReader(fh)}
        table += "\n" + consensus(pairs, oracle)
        r = labellers_vs_oracle({i: v[0] for i, v in one.items()}, {i: v[0] for i, v in two.items()}, oracle)
        table += (f"\n| the oracle against ({r['n']} images both were sure of) | {names[0]} | {names[1]} | "
                  f"{names[1]} - {names[0]} [95%, jobs] |\n|---|---:|---:|---:|\n")
        for m in ("Available or not", "six classes"):
            d = r[m]["diff"]
            table += f"| {m} | {r[m]['old']:.1f}% | {r[m]['new']:.1f}% | {d[0]:+.1f} [{d[1]:+.1f}, {d[2]:+.1f}] |\n"
    out = AUDIT / f"labellers_{a.set}{first}{second}.md"
    out.write_text(f"# Set {a.set}: {names[0]} against {names[1]}\n\n{table}")
    print(table)
    return 0


def read_oracle(set_name: str, name: str) -> dict[str, str]:
    path = AUDIT / f"oracle_{set_name}{name}.csv"
    if not path.exists():
        raise ValueError(f"{path} is missing: run `reveal --set {set_name} --suffix {name}` with those rules first")
    with open(path, newline="", encoding="utf-8") as fh:
        return {r["id"]: r["oracle"] for r in csv.DictReader(fh)}


def rounds(eye: dict[str, str], old: dict[str, str], new: dict[str, str], n_boot: int = 2000) -> dict:
    """Two rule rounds judged on the same labelled images: each one's agreement with the eye
    (Available or not, six classes; sure images) and the paired difference, new minus old, in
    points with a 95% interval that resamples whole RF-Gen jobs (paired_compare.paired_agreement)."""
    from paired_compare import paired_agreement

    try:
        return paired_agreement(eye, old, new, n_boot, unsure=UNSURE)
    except ValueError:
        raise ValueError("no sure image judged by both rounds") from None


def cmd_rounds(a) -> int:
    """Two revealed rule rounds on one set: which agrees with the eye more, paired."""
    try:
        eye = {i: lab for i, (lab, _) in check_labels(a.set, a.labeller).items()}
        # the oracle's verdicts do not depend on who labelled: the first labeller's reveal has them
        r = rounds(eye, read_oracle(a.set, a.old), read_oracle(a.set, a.new))
    except ValueError as e:
        print(f"audit_oracle rounds: refused: {e}", file=sys.stderr)
        return 2
    print(f"set {a.set}{a.labeller}: {r['n']} sure images, {r['changed']} verdicts differ between the rounds\n")
    print(f"| | rules {a.old or '(plain reveal)'} | rules {a.new or '(plain reveal)'} | new - old [95%] |\n|---|---:|---:|---:|")
    for m in ("Available or not", "six classes"):
        d = r[m]["diff"]
        print(f"| {m} | {r[m]['old']:.1f}% | {r[m]['new']:.1f}% | {d[0]:+.1f} [{d[1]:+.1f}, {d[2]:+.1f}] |")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="scripts/audit_oracle.py", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sheet")
    s.add_argument("--set", required=True)
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--jobs", type=int, default=100)
    s.add_argument("--images_per_job", type=int, default=2)
    s.add_argument("--controlnet", action="append", default=[], metavar="NAME=DIR")
    s.add_argument("--controlnet_weight", type=float, default=1.0, help="how often each ControlNet recipe is drawn")
    s.add_argument("--damage_p", type=float, default=0.1, help="share of damaged cutouts (sets A and B: 0.1)")
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--conventions", type=int, choices=sorted(NOTES), default=4,
                   help="the legend: 1 as on sets A-F, 2 with the world's written conventions (sets F_2, G, H), "
                        "3 with round 6's reading of blobs as well (set I), 4 with how a cut looks and what a "
                        "smudge under the product holds (round 8, set J)")
    s.add_argument("--version", type=int, default=None,
                   help="RF-Gen's version: 1 for sets A-D as they were drawn; default 2 (a begun set keeps its own)")
    r = sub.add_parser("reveal")
    r.add_argument("--set", required=True)
    r.add_argument("--suffix", default="", help="added to the output names (a later rule version's re-judging)")
    c = sub.add_parser("compare")
    c.add_argument("--set", required=True)
    c.add_argument("--labeller", action="append", required=True, help="give it twice: \"\" (the first) and _2")
    o = sub.add_parser("rounds", help="two revealed rule rounds on one set, paired")
    o.add_argument("--set", required=True)
    o.add_argument("--old", required=True, help="the suffix of the earlier round's reveal, e.g. _rules4")
    o.add_argument("--new", default="", help="the suffix of the later round's reveal (default: the plain reveal)")
    for q in (s, r, o):
        q.add_argument("--labeller", default="", help="a further labeller of the same images: _2 reads labels_SET_2.csv")
    a = p.parse_args(argv)
    if a.cmd == "compare" and len(a.labeller) != 2:
        p.error("compare takes --labeller twice")
    return {"sheet": cmd_sheet, "reveal": cmd_reveal, "compare": cmd_compare, "rounds": cmd_rounds}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
