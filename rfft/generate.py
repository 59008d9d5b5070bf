"""The main job: from product cutouts and prompts to inspected, usable advertising images.

    python -m rfft.generate --products DIR --out DIR [--prompts config.json] [--attempts 5]
                            [--candidates 1] [--threshold P] [--seed 0]

Defaults: the bundled example products (RF-Synth cutouts with captions), the bundled prompt
config, the embedded generator and the embedded RFNet, so it runs offline on a fresh machine.
Per product, Recurrent Generation (rfft/recurrent.py) generates rounds of candidates until RFNet
accepts one. The output folder gets:

- ``accepted/NAME.png``: the accepted image of each product (or ``best/NAME.png`` when none passed);
- ``rejects/NAME_aI.png``: every rejected attempt;
- ``manifest.jsonl``: one line per attempt (product, seed, prompt, verdict, probabilities, time);
- ``contact_sheet.png``: every attempt with an accept/reject badge and its reason;
- ``report.md`` and ``fig6.png``: the available rate and time per available image against the
  number of attempts (the paper's Fig. 6). Products whose category RF-Synth knows are also
  judged by the RF-Synth oracle, the "human" of this world.

Products are finished one by one (``done/NAME.json``); a stopped run resumes where it stopped
(a corrupt done file means "not done"; temporary files a killed run left are removed). A run
locks ``--out`` (``.lock``) and records the settings that change outputs (``settings.json``): a
second run on it, or a resume with other settings, is refused (``--overwrite`` starts over).
NAME keeps the file's name, Unicode included, made safe and unique (see ``output_names``).
Under ``accelerate launch -m rfft.generate`` the products are shared among the processes.
A product that cannot be read or placed is reported and skipped; the others go on. Bad
arguments, models or folders are refused in one line (exit code 2) before any model loads.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import re
import shutil
import unicodedata
from collections import defaultdict
from pathlib import Path

from PIL import Image, ImageDraw

from rfnet import fileio
from rfnet.errors import USER_ERRORS, InputError, cli_errors

from .placement import MAX_SIDE, ProductError, load_product, place
from .products import (  # noqa: F401  (the library's names, re-exported: they lived here)
    EXAMPLES,
    IMAGE_SUFFIXES,
    MAX_CAPTION_BYTES,
    PromptEntry,
    display_name,
    find_products,
    load_prompts,
    name_problem,
    read_caption,
)
from .recurrent import Attempt, rate_curve, recurrent_generate

log = logging.getLogger("rfft.generate")

PROG = "python -m rfft.generate"
# What a run writes into --out, and all that --overwrite deletes (never anything else there).
OUTPUTS = ("accepted", "best", "rejects", "done", "inspected", "manifest.jsonl", "contact_sheet.png", "fig6.png",
           "report.md", "settings.json")
# rfnet.fileio's temporary names (".NAME.tmpPID", ".NAME.oldPID"): left behind only by a killed run
TEMP_NAME = re.compile(r"^\..+\.(tmp|old)\d+$")


# ---- the product folder: rfft/products.py ----------------------------------------------------
# Output names: readable (Unicode kept: Chinese product names are the norm), safe on any file
# system, and unique. A name that had to be changed gets a short hash of the original file name,
# so two names cannot meet after cleaning; names still equal (x.png and x.webp; A.png and a.png
# on a case-insensitive disk) get their extension, then the hash. Computed over the whole folder
# (not --limit), so a product's outputs keep their name between runs.
_UNSAFE_CHARS = set('/\\:*?"<>|')
MAX_NAME_BYTES = 120  # + "-hash", ".ext", "_aN.png": far under the usual 255-byte limit


def _short_hash(name: str) -> str:
    return hashlib.sha1(os.fsencode(name)).hexdigest()[:8]


def _clean(stem: str) -> str:
    s = "".join("_" if c in _UNSAFE_CHARS or unicodedata.category(c)[0] == "C" else c for c in stem)
    s = s.strip(" .")  # no hidden file, no "..", nothing Windows refuses
    while len(s.encode("utf-8")) > MAX_NAME_BYTES:
        s = s[:-1]
    return s or "product"


def output_names(files: list[Path]) -> dict[str, str]:
    """{file name: output name} for ``files``, unique (also case-insensitively) and deterministic."""
    names = {}
    for f in files:
        stem = _clean(f.stem)
        names[f.name] = stem if stem == f.stem else f"{stem}-{_short_hash(f.name)}"

    def clashes():
        groups = defaultdict(list)
        for k, v in names.items():
            groups[unicodedata.normalize("NFC", v).casefold()].append(k)
        return [k for g in groups.values() if len(g) > 1 for k in g]

    for k in clashes():
        names[k] = f"{names[k]}.{_clean(Path(k).suffix[1:])}"
    for k in clashes():
        names[k] = f"{names[k]}-{_short_hash(k)}"
    if clashes():  # two different names with one 32-bit hash; never seen, but never silent
        raise InputError(f"cannot give unique output names to {', '.join(map(display_name, clashes()))}; "
                         "rename one of them")
    return names


# ---- done/NAME.json -------------------------------------------------------------------------
ATTEMPT_KEYS = ("attempt", "round", "seed", "label", "p_available", "accepted", "seconds", "file", "chosen")
OUTPUT_FILE = re.compile(r"^(accepted|best|rejects)/[^/\\]+\.png$")


def _done_problem(d, product: str, out: Path) -> str | None:
    if not isinstance(d, dict):
        return f"a JSON {type(d).__name__}, not a record"
    if d.get("product") != product:
        return f"it records {d.get('product')!r}, not {product!r}"
    if d.get("status") not in ("accepted", "rejected") or not isinstance(d.get("attempts"), list) \
            or not d["attempts"]:
        return "it records no finished generation"
    for r in d["attempts"]:
        if not isinstance(r, dict) or any(k not in r for k in ATTEMPT_KEYS):
            return f"an attempt lacks some of {', '.join(ATTEMPT_KEYS)}"
        # the file must be one of ours inside --out, and still there
        if not isinstance(r["file"], str) or not OUTPUT_FILE.match(r["file"]) or not (out / r["file"]).is_file():
            return f"its image {r['file']!r} is missing"
    return None


def read_done(path: Path, product: str) -> dict | None:
    """A finished product's record, or None: absent, a skipped product (tried again on every
    run: its file may have been fixed), or corrupt (garbage, empty, keys or images missing: the
    product is done again, with a warning naming the file)."""
    if not path.exists():
        return None
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        problem = f"not valid JSON ({e})"
    else:
        if isinstance(d, dict) and d.get("status") == "skipped" and d.get("product") == product:
            return None
        problem = _done_problem(d, product, path.parent.parent)
    if problem:
        log.warning("%s is corrupt (%s): %s is generated again", display_name(str(path)), problem, product)
        return None
    return d


# ---------------------------------------------------------------------------------------------
def run_product(path: Path, meta: dict, entry: PromptEntry, pipe, inspector, a, out: Path,
                size: tuple[int, int], oracle_ok: bool, bar=None, *, name: str, product_seed: int,
                cutout=None) -> dict:
    """One product's Recurrent Generation; its images are written under ``name`` (see
    :func:`output_names`). A product that cannot be read or placed raises ProductError."""
    cutout = load_product(path) if cutout is None else cutout
    pl = place(cutout, size, entry.image_scale, keep_location=a.keep_location)
    category = meta.get("category")
    prompt = entry.for_product(category or "product")
    caption = meta.get("caption") or category or path.stem

    def generate(seeds):
        g = pipe(pl, prompt, entry.negative_prompt, seeds=seeds, num_inference_steps=a.steps,
                 guidance_scale=a.guidance_scale)
        bad = [s for s, b in zip(seeds, g.nonfinite) if b]
        if bad:  # a black image would be inspected, and perhaps delivered, as if it were one
            raise ProductError(f"the generator gave NaN pixels (seed {bad[0]}): its ControlNet or LoRA is broken "
                               "or overflows; try the generator without them, or a lower --guidance_scale")
        return g.images

    def inspect(images):
        return inspector(pl.cutout, images, caption)

    def on_attempt(att: Attempt, n: int):
        if bar is not None:
            bar.set_postfix_str(f"{name}: attempt {att.index + 1}/{n}: {att.label} ({att.p_available:.2f})")

    measuring = getattr(a, "all_attempts", False)
    res = recurrent_generate(generate, inspect, a.attempts, a.candidates, product_seed, on_attempt,
                             stop_on_accept=not measuring)
    if measuring:  # the cutout exactly as inspected, so that other inspectors can judge the same input
        fileio.save_image(out / "inspected" / f"{name}.png", pl.cutout)
    records = []
    for att in res.attempts:
        chosen = att is res.chosen
        if chosen:
            sub = "accepted" if res.accepted else "best"
            fname = f"{sub}/{name}.png"
        else:
            fname = f"rejects/{name}_a{att.index}.png"
        fileio.save_image(out / fname, att.image)
        rec = {"product": path.name, **att.record(), "prompt": prompt,
               "negative_prompt": entry.negative_prompt, "image_scale": entry.image_scale,
               "caption": caption, "file": fname, "chosen": chosen, "status": res.status}
        if oracle_ok and category:
            from rfsynth.oracle import judge

            # a supplied product has no damage record: the oracle judges the scene, not the cutout
            rec["oracle"] = judge(att.image, pl.cutout, pl.box, category, damage=None).label
        records.append(rec)
    return {"product": path.name, "status": res.status, "attempts": records,
            "seconds": round(res.seconds, 3)}


# ---------------------------------------------------------------------------------------------
def contact_sheet(done: list[dict], out: Path, cell: int = 128, max_cols: int = 8) -> Image.Image:
    """One row per product: its attempts in order, each with a badge (green accepted, orange
    the best of a rejected run, red rejected) and the verdict; the oracle's label under it."""
    from rfnet.badge import GREEN, ORANGE, RED, badge, fit_font, font, shown_label

    rows = [d for d in done if d.get("attempts")]
    cols = max(1, min(max_cols, max((len(d["attempts"]) for d in rows), default=1)))
    lab_h, head_w = cell // 7, 150
    sheet = Image.new("RGB", (cols * cell + head_w, max(1, len(rows)) * (cell + lab_h)), "white")
    dr = ImageDraw.Draw(sheet)
    name_font = font(14)
    for r, d in enumerate(rows):
        y = r * (cell + lab_h)
        name = "".join(c if c.isprintable() else "?" for c in d["product"])  # one line, whatever the file name
        dr.text((4, y + 4), name, fill="black", font=fit_font(dr, name, head_w - 8, 14))
        dr.text((4, y + 24), d["status"], fill=GREEN if d["status"] == "accepted" else RED, font=name_font)
        for c, rec in enumerate(d["attempts"][:cols]):
            x = head_w + c * cell
            try:
                with Image.open(out / rec["file"]) as im:
                    tile = im.convert("RGB").resize((cell, cell), Image.NEAREST)
            except OSError:
                tile = Image.new("RGB", (cell, cell), "lightgrey")
            colour = GREEN if rec["accepted"] else (ORANGE if rec["chosen"] else RED)
            shown = "OK" if rec["accepted"] else shown_label(rec["label"], rec.get("note"))
            sheet.paste(badge(tile, shown, rec["p_available"], rec["accepted"],
                              min_side=cell, colour=colour), (x, y))
            if "oracle" in rec:
                text = f"oracle: {rec['oracle']}"
                dr.text((x + 2, y + cell + lab_h / 2), text, fill="black", anchor="lm",
                        font=fit_font(dr, text, cell - 4, max(10, int(lab_h * 0.8))))
    return sheet


def _share(a: int, n: int) -> str:
    return f"{a / n:.1%} ({a}/{n})" if n else "- (0/0)"


def report(done: list[dict], out: Path, max_k: int, args: dict, warnings: list[str] = ()) -> dict:
    runs = [[_as_attempt(r) for r in d["attempts"]] for d in done if d.get("attempts")]
    judged = all("oracle" in r for d in done for r in d.get("attempts", []))

    def judge_fn(att):  # the oracle where it can judge, else RFNet's own acceptance
        return att.info.get("oracle") == "Available" if judged else att.accepted

    curve = rate_curve(runs, judge_fn, max_k)
    judge_name = "the RF-Synth oracle" if judged else "RFNet (no oracle for these products)"
    _plot(curve, out / "fig6.png", judge_name)
    failed = [d for d in done if d.get("error")]
    warned = list(warnings) + [f"{d['product']}: {w}" for d in done for w in d.get("warnings", [])]
    lines = ["# Recurrent Generation report", "",
             f"{len(runs)} products generated, {len(failed)} skipped, {len(warned)} warnings; "
             f"judged by {judge_name}.", "",
             "Settings: " + ", ".join(f"{k}={v}" for k, v in args.items()), "",
             "| attempts k | available rate | available / products | seconds per available image |"
             + (" wasted rejections | false accepts |" if judged else ""),
             "|---:|---:|---:|---:|" + ("---:|---:|" if judged else "")]
    for row in curve:
        line = (f"| {row['k']} | {row['available_rate']:.1%} | {row['available']}/{row['products']} "
                f"| {row['seconds_per_available']:.2f} |")
        if judged:  # the inspector's mistakes, as the oracle sees them
            line += f" {_share(row['wasted_rejections'], row['rejections'])} " \
                    f"| {_share(row['false_accepts'], row['accepts'])} |"
        lines.append(line)
    if judged:
        lines += ["", "Wasted rejections: attempts RFNet rejected that the oracle calls Available (of all "
                  "rejections up to k). False accepts: delivered images RFNet accepted that the oracle does "
                  "not (of all accepted)."]
    lines += ["", "![available rate and time against attempts](fig6.png)", ""]
    if failed:
        lines += ["## Skipped products", ""] + [f"- {d['product']}: {d['error']}" for d in failed] + [""]
    outside = sorted({d["product"] for d in done for r in d.get("attempts", [])
                      if str(r.get("note") or "").startswith("outside the inspector's training data")})
    if outside:  # the inspector cannot vouch for these: a person's labels can (the paper's loop)
        lines += ["## Outside the inspector's training data", "",
                  f"RFNet has not seen products or images like these {len(outside)}, so its verdicts on them are "
                  "not accepted on their own: " + ", ".join(outside) + ". Label such images with the Review & Label "
                  "node (or Feedback) and fine-tune an inspector on them with Train RFNet (or python -m rfnet.train "
                  "--init_from embedded ...).", ""]
    if warned:
        lines += ["## Warnings", ""] + [f"- {w}" for w in warned] + [""]
    fileio.write_text(out / "report.md", "\n".join(lines))
    return {"curve": curve, "judge": judge_name, "skipped": len(failed), "products": len(runs),
            "warnings": len(warned)}


def _as_attempt(r: dict) -> Attempt:
    return Attempt(index=r["attempt"], round=r["round"], seed=r["seed"], label=r["label"],
                   p_available=r["p_available"], accepted=r["accepted"], probs=r.get("probs", {}),
                   seconds=r["seconds"], info={"oracle": r.get("oracle")})


def _plot(curve: list[dict], path: Path, judge_name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = [r["k"] for r in curve]
    fig, ax = plt.subplots(1, 2, figsize=(8, 3.2))
    ax[0].plot(ks, [100 * r["available_rate"] for r in curve], "o-")
    ax[0].set_xlabel("attempts k")
    ax[0].set_ylabel("available rate (%)")
    ax[0].set_title(f"judged by {judge_name.split(' (')[0]}", fontsize=9)
    ax[0].set_ylim(0, 100)
    ax[1].plot(ks, [r["seconds_per_available"] for r in curve], "o-", color="C1")
    ax[1].set_xlabel("attempts k")
    ax[1].set_ylabel("seconds per available image")
    for x in ax:
        x.set_xticks(ks)
        x.grid(alpha=0.3)
    fig.tight_layout()
    with fileio.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


# ---- checks before any model is loaded -------------------------------------------------------
def check_args(a) -> None:
    """The numbers, each refused in one line: 0 never silently means "default" or "all"."""
    for flag in ("attempts", "candidates", "steps", "limit"):
        v = getattr(a, flag)
        if v is not None and v < 1:
            raise InputError(f"--{flag} must be at least 1, got {v}")
    if a.size is not None and not 0 < a.size <= MAX_SIDE:
        raise InputError(f"--size must be a positive canvas side of at most {MAX_SIDE} px, got {a.size}")
    if a.threshold is not None and not 0 <= a.threshold <= 1:
        raise InputError(f"--threshold is a probability in [0, 1], got {a.threshold}")
    for flag in ("guidance_scale", "lora_scale"):
        if not math.isfinite(getattr(a, flag)):
            raise InputError(f"--{flag} must be a finite number, got {getattr(a, flag)}")


def check_device(device: str | None) -> None:
    if device is None:
        return
    import torch

    try:
        d = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"--device {device!r} is not a device torch knows; use cpu, cuda or cuda:N "
                         "(or leave --device out)") from None
    if d.type == "cpu":
        return
    mod = torch.backends.mps if d.type == "mps" else getattr(torch, d.type, None)
    if mod is None or not getattr(mod, "is_available", lambda: False)():
        why = " (this torch is built without CUDA)" if d.type == "cuda" and torch.version.cuda is None else ""
        raise InputError(f"--device {device}: {d.type} is not available on this machine{why}; "
                         "use --device cpu, or leave --device out to take what there is")
    n = getattr(mod, "device_count", lambda: 1)()
    if d.index is not None and d.index >= n:
        raise InputError(f"--device {device}: this machine has {n} {d.type} device(s), 0 to {n - 1}")


def check_inspector(spec: str) -> Path:
    """An RFNet folder whose config and weights are whole (read without loading the model)."""
    from .pipeline import check_safetensors, read_json_object

    if spec == "embedded":
        from rfnet.embedded import embedded_path

        return embedded_path("rfnet")
    d = Path(spec)
    if not d.is_dir():
        raise FileNotFoundError(f"--inspector {d}: no such folder; pass an RFNet folder (config.json, "
                                "model.safetensors, tokenizer/ as python -m rfnet.train writes) or 'embedded'")
    read_json_object(d / "config.json", f"--inspector {d}")
    w = d / "model.safetensors"
    if not w.is_file():
        raise FileNotFoundError(f"--inspector {d}: {w.name} is missing; pass a trained RFNet folder or 'embedded'")
    check_safetensors(w)
    return d


def check_out(out: Path, products: Path) -> None:
    o, p = out.resolve(), products.resolve()
    if o == p or p in o.parents:
        raise InputError(f"--out {out} is inside --products {products}: a later run would take its own outputs "
                         "for products; pass an --out outside the product folder")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a folder; pass a folder (it is created if missing)")


def shown_threshold(threshold, insp_dir) -> str:
    """The acceptance rule the report states: the explicit --threshold, else the inspector's
    calibrated one from its config.json, else the top class."""
    if threshold is not None:
        return f"{threshold:g}"
    try:
        t = json.loads((Path(insp_dir) / "config.json").read_text(encoding="utf-8")).get("acceptance_threshold")
    except (OSError, ValueError, AttributeError):
        t = None
    return f"{t:.2f} (the inspector's calibrated one)" if isinstance(t, (int, float)) else "none (top class Available)"


def settings_of(a, entries: list[PromptEntry], size: int) -> dict:
    """What changes the outputs (recorded in out/settings.json; a resume must match it). Not
    --limit (it only picks products) nor --device (numbers, not the recipe, change)."""
    def path(v):
        return v if v in (None, "embedded") else str(Path(v).resolve())

    return {"products": path(a.products), "prompts": [vars(e) for e in entries],
            "generator": path(a.generator), "controlnet": path(a.controlnet), "config": path(a.config),
            "lora": path(a.lora), "lora_scale": a.lora_scale if a.lora else None, "scheduler": a.scheduler,
            "inspector": path(a.inspector), "attempts": a.attempts, "candidates": a.candidates,
            "threshold": a.threshold, "seed": a.seed, "steps": a.steps, "guidance_scale": a.guidance_scale,
            "size": size, "keep_location": a.keep_location, "no_oracle": a.no_oracle,
            # only when set, so that folders written before the option still resume
            **({"all_attempts": True} if getattr(a, "all_attempts", False) else {})}


# ---- the output folder: lock, stale temporary files, settings ---------------------------------
def lock_out(out: Path):
    """An exclusive, non-blocking lock on out/.lock for this process's lifetime (the OS frees it
    when the process dies, even by SIGKILL). Returns the open file descriptor."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; runs on one --out must not overlap
        log.warning("no file locking on this system: do not start two runs on one --out")
        return None
    try:
        fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise InputError(f"--out {out} is not writable ({e.strerror}); pass a folder you can write") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        pid = os.read(fd, 32).decode("ascii", "replace").strip()
        os.close(fd)
        raise InputError(f"--out {out} is in use by another rfft.generate run (pid {pid or 'unknown'}); wait "
                         "for it to finish or stop it, or pass another --out") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def remove_stale_temporaries(out: Path) -> int:
    """Delete the temporary files a killed run left (rfnet.fileio's names only); safe because
    this run holds the lock, so no other writer is in --out."""
    n = 0
    for root, _, names in os.walk(out):
        for nm in names:
            p = Path(root) / nm
            if TEMP_NAME.match(nm) and not p.is_symlink() and p.is_file():
                p.unlink()
                n += 1
    if n:
        log.info("removed %d temporary files left by a stopped run in %s", n, out)
    return n


def _show(v) -> str:
    t = json.dumps(v, ensure_ascii=False)
    return t if len(t) <= 60 else t[:57] + "..."


def prepare_out(out: Path, settings: dict, overwrite: bool, products: Path):
    """Create and lock --out, clean it, and check (or record) its settings. Returns the lock."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InputError(f"--out {out} is a file, not a folder; pass a folder") from None
    except OSError as e:
        raise InputError(f"--out {out} cannot be created ({e.strerror}); pass a folder you can write") from None
    lock = lock_out(out)
    try:
        remove_stale_temporaries(out)
        sj = out / "settings.json"
        if overwrite:
            p = products.resolve()
            for nm in OUTPUTS:
                t = out / nm
                if t.resolve() == p or t.resolve() in p.parents:
                    raise InputError(f"--overwrite would delete {t}, which holds --products; move the products")
            for nm in OUTPUTS:
                t = out / nm
                if t.is_symlink() or t.is_file():
                    t.unlink()
                elif t.is_dir():
                    shutil.rmtree(t)
            log.info("--overwrite: deleted the previous outputs in %s", out)
        elif sj.exists():
            try:
                old = json.loads(sj.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                old = None
            if not isinstance(old, dict):  # (an assert would vanish under python -O)
                log.warning("%s is unreadable: it is written again with this run's settings", sj)
                old = {}
            diff = [k for k in settings if k in old and old[k] != settings[k]]
            if diff:
                what = "; ".join("prompts (the prompt config's entries)" if k == "prompts" else
                                 f"{k} {_show(old[k])} -> {_show(settings[k])}" for k in diff)
                raise InputError(
                    f"--out {out} holds outputs made with other settings ({what}). To resume, run again "
                    f"with the settings in {sj}; for the new settings pass a new --out, or add --overwrite "
                    f"to delete {out}'s previous outputs ({', '.join(OUTPUTS)}) and start over")
        try:
            fileio.write_json(sj, settings)
        except OSError as e:
            raise InputError(f"--out {out} is not writable ({e.strerror}); pass a folder you can write") from None
    except BaseException:
        if lock is not None:
            os.close(lock)
        raise
    return lock


# ---------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--products", default=str(EXAMPLES / "products"),
                   help="a folder of RGBA cutouts or RGB products on white (default: bundled examples)")
    p.add_argument("--output_dir", "--out", dest="out", default="generate_out",
                   help="output folder; a run locks it, and a resume must use the settings recorded there")
    p.add_argument("--overwrite", action="store_true",
                   help="delete the previous outputs in --out (" + ", ".join(OUTPUTS) + "; nothing else) "
                        "and start over, instead of resuming; needed to change the settings of an --out")
    p.add_argument("--prompts", default=str(EXAMPLES / "prompts.json"),
                   help="prompt config in the paper's release format; entries are used in turn")
    p.add_argument("--generator", default="embedded",
                   help="a diffusers SD1.5 folder, a single-file checkpoint (with --config), or 'embedded'")
    p.add_argument("--controlnet", default=None, help="a canny ControlNet folder, or embedded-rfft (the embedded generator's RFFT-tuned one); default: the generator's")
    p.add_argument("--config", default=None, help="local SD1.5 config folder for a single-file checkpoint")
    p.add_argument("--lora", default=None)
    p.add_argument("--lora_scale", type=float, default=0.8)
    p.add_argument("--scheduler", default="DDIMScheduler")
    p.add_argument("--rfnet", "--inspector", dest="inspector", default="embedded",
                   help="an RFNet folder or 'embedded'")
    p.add_argument("--attempts", type=int, default=5, help="at most N attempts per product (N >= 1)")
    p.add_argument("--candidates", type=int, default=1, help="candidates per round, generated as one batch")
    p.add_argument("--threshold", type=float, default=None,
                   help="accept when P(Available) >= this (default: the inspector's calibrated threshold from "
                        "its config.json, else when Available is the top class)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num_inference_steps", "--steps", dest="steps", type=int, default=40)
    p.add_argument("--guidance_scale", type=float, default=7.5)
    p.add_argument("--size", type=int, default=None,
                   help="canvas side, a multiple of the generator's VAE factor (default: the generator's)")
    p.add_argument("--keep_location", action="store_true", help="cutouts are canvas-sized; keep them in place")
    p.add_argument("--limit", type=int, default=None, help="the first N products only (N >= 1)")
    p.add_argument("--device", default=None)
    p.add_argument("--no_oracle", action="store_true", help="do not judge RF-Synth products with the oracle")
    p.add_argument("--all_attempts", action="store_true",
                   help="measure instead of deliver: generate every attempt even after one is accepted (the "
                        "delivered image is the same); scripts/fig6_inspectors.py then compares inspectors and "
                        "thresholds on the same images")
    return p


def main(argv=None) -> int:
    """The CLI: 0 when the run finished (bad products are skipped and reported); a bad argument,
    file or --out is one line on stderr and exit code 2 (SystemExit), before any model loads."""
    a = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with cli_errors(PROG):
        return run(a)


def run(a) -> int:
    from .pipeline import check_generator, check_safetensors, check_scheduler

    # 1. everything that needs no model, in seconds
    check_args(a)
    entries = load_prompts(a.prompts)
    products, out = Path(a.products), Path(a.out)
    if not products.is_dir():
        raise InputError(f"--products {products}: not a folder of product images")
    check_out(out, products)
    folder_warnings: list[str] = []
    files, meta = find_products(products, folder_warnings)
    names = output_names(files)  # over the whole folder: names do not depend on --limit
    if a.limit is not None:
        files = files[:a.limit]
    if not files:
        raise InputError(f"no product images ({', '.join(IMAGE_SUFFIXES)}) in {products}")
    order = {f.name: i for i, f in enumerate(files)}
    gen = check_generator(a.generator, a.controlnet, a.config)
    factor = gen["latent_factor"]
    res = a.size if a.size is not None else gen["sample_size"] * factor
    if res % factor:
        raise InputError(f"--size {res} is not a multiple of {factor}, the generator's VAE factor; use e.g. "
                         f"{max(factor, res // factor * factor)} or {(res // factor + 1) * factor}")
    insp_dir = check_inspector(a.inspector)
    if a.lora:
        lora = Path(a.lora)
        if not lora.is_file():
            raise FileNotFoundError(f"--lora {lora}: no such file")
        if lora.suffix == ".safetensors":
            check_safetensors(lora)
    check_scheduler(a.scheduler)
    check_device(a.device)
    settings = settings_of(a, entries, res)

    # 2. the output folder, by the main process only (the others wait for its word)
    from accelerate import PartialState

    state = PartialState(cpu=a.device == "cpu")
    device = a.device or str(state.device)
    lock, err = None, None
    if state.is_main_process:
        try:
            lock = prepare_out(out, settings, a.overwrite, products)
        except USER_ERRORS as e:
            err = e
    if state.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        msg = broadcast_object_list([None if err is None else str(err)])[0]
        if msg and err is None:
            raise InputError(msg)
    if err is not None:
        raise err
    try:
        return _generate(a, state, device, entries, files, meta, names, order, out, res, insp_dir,
                         folder_warnings, settings)
    finally:
        if lock is not None:
            os.close(lock)


def _generate(a, state, device, entries, files, meta, names, order, out, res, insp_dir, folder_warnings,
              settings) -> int:
    import torch

    from rfnet.inspect import Inspector

    from .pipeline import AdInpaintPipeline, first_line

    # 3. the models, loaded for the first product to generate (a finished run's resume, or one
    # whose only products left are bad, loads none); a file that passed the checks but still
    # does not load: one line, named
    def done_path(f):
        return out / "done" / f"{names[f.name]}.json"

    mine = files[state.process_index::state.num_processes]
    todo = [f for f in mine if read_done(done_path(f), display_name(f.name)) is None]
    models = []

    def load_models():
        if models:
            return models
        pipe = AdInpaintPipeline.load(a.generator, a.controlnet, a.config, device=device)
        pipe.set_progress_bar_config(disable=True)
        if a.scheduler != "DDIMScheduler":
            pipe.set_scheduler(a.scheduler)
        if a.lora:
            pipe.add_lora(a.lora, a.lora_scale)
        try:
            inspector = Inspector.from_pretrained(insp_dir, threshold=a.threshold, device=device)
        except (InputError, FileNotFoundError):
            raise
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as e:
            raise InputError(f"cannot load the inspector {insp_dir}: {first_line(e)}") from e
        models.extend([pipe, inspector])
        return models

    size = (res, res)
    from rfsynth.catalog import CATEGORY_BY_NAME

    # 4. the products, one by one; a done one is skipped, a bad one recorded as skipped
    if len(todo) < len(mine):
        log.info("resuming: %d of %d products already done", len(mine) - len(todo), len(mine))
    from tqdm.auto import tqdm

    bar = tqdm(total=len(mine), initial=len(mine) - len(todo), desc="products", unit="product",
               disable=not state.is_local_main_process)
    torch.manual_seed(a.seed)
    for f in todo:
        entry = entries[order[f.name] % len(entries)]
        m = meta.get(f.name, {})
        oracle_ok = not a.no_oracle and m.get("category") in CATEGORY_BY_NAME
        problem = name_problem(f) or m.get("error")
        try:
            if problem:
                raise ProductError(problem)
            cutout = load_product(f)  # a bad image is skipped before any model is loaded
            pipe, inspector = load_models()
            rec = run_product(f, m, entry, pipe, inspector, a, out, size, oracle_ok, bar,
                              name=names[f.name], product_seed=a.seed + 1000 * order[f.name], cutout=cutout)
        except ProductError as e:
            log.warning("skipped %s: %s", display_name(f.name), display_name(str(e)))
            rec = {"product": display_name(f.name), "status": "skipped", "error": display_name(str(e)),
                   "attempts": []}
        if m.get("warnings"):
            rec["warnings"] = m["warnings"]
        fileio.write_json(done_path(f), rec)
        bar.update(1)
    bar.close()

    state.wait_for_everyone()
    if not state.is_main_process:
        return 0
    # 5. the whole run's manifest, contact sheet and report (skipped products listed in it)
    done = []
    for f in files:
        dp = done_path(f)
        d = read_done(dp, display_name(f.name))
        if d is None and dp.exists():
            try:
                d = json.loads(dp.read_text(encoding="utf-8"))  # a skipped product's record
            except (OSError, ValueError):
                d = None
            d = d if isinstance(d, dict) and d.get("status") == "skipped" else None
        if d is not None:
            done.append(d)
    fileio.write_text(out / "manifest.jsonl", "".join(
        json.dumps(r, ensure_ascii=False) + "\n" for d in done for r in d["attempts"]))
    fileio.save_image(out / "contact_sheet.png", contact_sheet(done, out))
    shown = dict(attempts=a.attempts, candidates=a.candidates, threshold=shown_threshold(a.threshold, insp_dir), seed=a.seed,
                 steps=a.steps, guidance=a.guidance_scale, generator=a.generator, size=res)
    summary = report(done, out, a.attempts, shown, folder_warnings)
    acc = sum(d["status"] == "accepted" for d in done)
    print(f"{acc}/{summary['products']} products accepted by RFNet within {a.attempts} attempts; "
          f"{summary['skipped']} skipped, {summary['warnings']} warnings. Available rate after {a.attempts} "
          f"attempts ({summary['judge']}): {summary['curve'][-1]['available_rate']:.1%}. See {out / 'report.md'}, "
          f"{out / 'contact_sheet.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
