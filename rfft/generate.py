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

Products are finished one by one (``done/NAME.json``); a stopped run resumes where it stopped.
Under ``accelerate launch -m rfft.generate`` the products are shared among the processes.
A product that cannot be read or placed is reported and skipped; the others go on.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from rfnet import fileio

from .placement import ProductError, load_product, place
from .recurrent import Attempt, recurrent_generate, rate_curve

log = logging.getLogger("rfft.generate")

EXAMPLES = Path(__file__).resolve().parent / "examples"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


@dataclass
class PromptEntry:
    prompt: str
    negative_prompt: str = ""
    image_scale: float = 0.5

    def for_product(self, name: str) -> str:
        return self.prompt.replace("{product}", name)


def load_prompts(path: str | Path) -> list[PromptEntry]:
    """A prompt config in the paper's release format: a JSON list of objects with ``prompt``,
    ``negative_prompt`` and ``image_scale`` (other keys are ignored). ``{product}`` in a prompt
    becomes the product's category, or "product"."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read the prompt config ({e})") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        raise ValueError(f"{path}: expected a JSON list of {{prompt, negative_prompt, image_scale}}")
    out = []
    for i, e in enumerate(data):
        if not isinstance(e, dict) or not isinstance(e.get("prompt"), str):
            raise ValueError(f"{path}: entry {i} has no 'prompt' string")
        scale = float(e.get("image_scale", 0.5))
        if not 0 < scale <= 1:
            raise ValueError(f"{path}: entry {i}: image_scale must be in (0, 1], got {scale}")
        out.append(PromptEntry(e["prompt"], str(e.get("negative_prompt", "")), scale))
    return out


def find_products(folder: str | Path) -> tuple[list[Path], dict]:
    """Image files of ``folder`` (sorted) and their metadata: ``products.json`` (name ->
    {caption, category}) and/or ``NAME.txt`` caption files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"--products {folder}: not a folder of product images")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    meta = {}
    mj = folder / "products.json"
    if mj.exists():
        meta = json.loads(mj.read_text(encoding="utf-8"))
    for p in files:
        txt = p.with_suffix(".txt")
        if txt.exists():
            meta.setdefault(p.name, {})["caption"] = txt.read_text(encoding="utf-8").strip()
    return files, meta


def _safe_stem(p: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", p.stem)[:80] or "product"


# ---------------------------------------------------------------------------------------------
def run_product(path: Path, meta: dict, entry: PromptEntry, pipe, inspector, a, out: Path,
                size: tuple[int, int], oracle_ok: bool, bar=None) -> dict:
    name = _safe_stem(path)
    cutout = load_product(path)
    pl = place(cutout, size, entry.image_scale, keep_location=a.keep_location)
    category = meta.get("category")
    prompt = entry.for_product(category or "product")
    caption = meta.get("caption") or category or path.stem

    def generate(seeds):
        return pipe(pl, prompt, entry.negative_prompt, seeds=seeds, num_inference_steps=a.steps,
                    guidance_scale=a.guidance_scale).images

    def inspect(images):
        return inspector(pl.cutout, images, caption)

    def on_attempt(att: Attempt, n: int):
        if bar is not None:
            bar.set_postfix_str(f"{name}: attempt {att.index + 1}/{n}: {att.label} ({att.p_available:.2f})")

    product_seed = a.seed + 1000 * _product_index(path, a)
    res = recurrent_generate(generate, inspect, a.attempts, a.candidates, product_seed, on_attempt)
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

            rec["oracle"] = judge(att.image, pl.cutout, pl.box, category).label
        records.append(rec)
    return {"product": path.name, "status": res.status, "attempts": records,
            "seconds": round(res.seconds, 3)}


def _product_index(path: Path, a) -> int:
    return a._order[path.name]


# ---------------------------------------------------------------------------------------------
def contact_sheet(done: list[dict], out: Path, cell: int = 128, max_cols: int = 8) -> Image.Image:
    """One row per product: its attempts in order, each with a badge (green accepted, orange
    the best of a rejected run, red rejected) and the verdict; the oracle's label under it."""
    rows = [d for d in done if d.get("attempts")]
    cols = max(1, min(max_cols, max((len(d["attempts"]) for d in rows), default=1)))
    lab_h = 30
    sheet = Image.new("RGB", (cols * cell + 150, max(1, len(rows)) * (cell + lab_h)), "white")
    dr = ImageDraw.Draw(sheet)
    for r, d in enumerate(rows):
        y = r * (cell + lab_h)
        dr.text((4, y + 4), d["product"][:22], fill="black")
        dr.text((4, y + 18), d["status"], fill=(30, 130, 60) if d["status"] == "accepted" else (190, 40, 40))
        for c, rec in enumerate(d["attempts"][:cols]):
            x = 150 + c * cell
            try:
                with Image.open(out / rec["file"]) as im:
                    sheet.paste(im.convert("RGB").resize((cell, cell), Image.NEAREST), (x, y))
            except OSError:
                dr.rectangle([x, y, x + cell - 1, y + cell - 1], outline="grey")
            colour = (30, 150, 60) if rec["accepted"] else ((230, 140, 20) if rec["chosen"] else (200, 40, 40))
            dr.rectangle([x, y + cell, x + cell - 1, y + cell + 14], fill=colour)
            badge = "OK" if rec["accepted"] else rec["label"]
            dr.text((x + 2, y + cell + 2), f"{badge[:16]} {rec['p_available']:.2f}", fill="white")
            if "oracle" in rec:
                dr.text((x + 2, y + cell + 16), f"oracle: {rec['oracle'][:14]}", fill="black")
    return sheet


def report(done: list[dict], out: Path, max_k: int, args: dict) -> dict:
    runs = [[_as_attempt(r) for r in d["attempts"]] for d in done if d.get("attempts")]
    judged = all("oracle" in r for d in done for r in d.get("attempts", []))

    def judge_fn(att):  # the oracle where it can judge, else RFNet's own acceptance
        return att.info.get("oracle") == "Available" if judged else att.accepted

    curve = rate_curve(runs, judge_fn, max_k)
    judge_name = "the RF-Synth oracle" if judged else "RFNet (no oracle for these products)"
    _plot(curve, out / "fig6.png", judge_name)
    failed = [d for d in done if d.get("error")]
    lines = ["# Recurrent Generation report", "",
             f"{len(runs)} products generated, {len(failed)} skipped; judged by {judge_name}.", "",
             "Settings: " + ", ".join(f"{k}={v}" for k, v in args.items()), "",
             "| attempts k | available rate | available / products | seconds per available image |",
             "|---:|---:|---:|---:|"]
    for row in curve:
        lines.append(f"| {row['k']} | {row['available_rate']:.1%} | {row['available']}/{row['products']} "
                     f"| {row['seconds_per_available']:.2f} |")
    lines += ["", "![available rate and time against attempts](fig6.png)", ""]
    if failed:
        lines += ["## Skipped products", ""] + [f"- {d['product']}: {d['error']}" for d in failed] + [""]
    fileio.write_text(out / "report.md", "\n".join(lines))
    return {"curve": curve, "judge": judge_name, "skipped": len(failed), "products": len(runs)}


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


# ---------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m rfft.generate", description=__doc__.split("\n\n")[0])
    p.add_argument("--products", default=str(EXAMPLES / "products"),
                   help="a folder of RGBA cutouts or RGB products on white (default: bundled examples)")
    p.add_argument("--out", default="generate_out")
    p.add_argument("--prompts", default=str(EXAMPLES / "prompts.json"),
                   help="prompt config in the paper's release format; entries are used in turn")
    p.add_argument("--generator", default="embedded",
                   help="a diffusers SD1.5 folder, a single-file checkpoint (with --config), or 'embedded'")
    p.add_argument("--controlnet", default=None, help="a canny ControlNet folder (default: the generator's)")
    p.add_argument("--config", default=None, help="local SD1.5 config folder for a single-file checkpoint")
    p.add_argument("--lora", default=None)
    p.add_argument("--lora_scale", type=float, default=0.8)
    p.add_argument("--scheduler", default="DDIMScheduler")
    p.add_argument("--inspector", default="embedded", help="an RFNet folder or 'embedded'")
    p.add_argument("--attempts", type=int, default=5, help="at most N attempts per product")
    p.add_argument("--candidates", type=int, default=1, help="candidates per round, generated as one batch")
    p.add_argument("--threshold", type=float, default=None,
                   help="accept when P(Available) >= this (default: when Available is the top class)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--guidance_scale", type=float, default=7.5)
    p.add_argument("--size", type=int, default=None, help="canvas side (default: the generator's)")
    p.add_argument("--keep_location", action="store_true", help="cutouts are canvas-sized; keep them in place")
    p.add_argument("--limit", type=int, default=None, help="the first N products only")
    p.add_argument("--device", default=None)
    p.add_argument("--no_oracle", action="store_true", help="do not judge RF-Synth products with the oracle")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    try:
        entries = load_prompts(a.prompts)
        files, meta = find_products(a.products)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.limit:
        files = files[:a.limit]
    if not files:
        print(f"error: no product images ({', '.join(IMAGE_SUFFIXES)}) in {a.products}", file=sys.stderr)
        return 2
    a._order = {f.name: i for i, f in enumerate(files)}

    from accelerate import PartialState

    state = PartialState(cpu=a.device == "cpu")
    device = a.device or str(state.device)
    out = Path(a.out)
    import torch

    from rfnet.inspect import Inspector

    from .pipeline import AdInpaintPipeline, GeneratorNotFoundError

    try:
        pipe = AdInpaintPipeline.load(a.generator, a.controlnet, a.config, device=device)
    except GeneratorNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    pipe.set_progress_bar_config(disable=True)
    if a.scheduler != "DDIMScheduler":
        pipe.set_scheduler(a.scheduler)
    if a.lora:
        pipe.add_lora(a.lora, a.lora_scale)
    if a.inspector == "embedded":
        from rfnet.embedded import embedded_path

        insp_dir = embedded_path("rfnet")
    else:
        insp_dir = Path(a.inspector)
    inspector = Inspector.from_pretrained(insp_dir, threshold=a.threshold, device=device)
    res = a.size or pipe.unet.config.sample_size * pipe.latent_factor
    size = (res, res)
    from rfsynth.catalog import CATEGORY_BY_NAME

    mine = files[state.process_index::state.num_processes]
    todo = [f for f in mine if not (out / "done" / f"{_safe_stem(f)}.json").exists()]
    if len(todo) < len(mine):
        log.info("resuming: %d of %d products already done", len(mine) - len(todo), len(mine))
    from tqdm.auto import tqdm

    bar = tqdm(total=len(mine), initial=len(mine) - len(todo), desc="products", unit="product",
               disable=not state.is_local_main_process)
    torch.manual_seed(a.seed)
    for f in todo:
        entry = entries[a._order[f.name] % len(entries)]
        m = meta.get(f.name, {})
        oracle_ok = not a.no_oracle and m.get("category") in CATEGORY_BY_NAME
        try:
            rec = run_product(f, m, entry, pipe, inspector, a, out, size, oracle_ok, bar)
        except ProductError as e:
            log.warning("skipped %s: %s", f.name, e)
            rec = {"product": f.name, "status": "skipped", "error": str(e), "attempts": []}
        fileio.write_json(out / "done" / f"{_safe_stem(f)}.json", rec)
        bar.update(1)
    bar.close()

    state.wait_for_everyone()
    if not state.is_main_process:
        return 0
    done = []
    for f in files:
        dj = out / "done" / f"{_safe_stem(f)}.json"
        if dj.exists():
            done.append(json.loads(dj.read_text(encoding="utf-8")))
    fileio.write_text(out / "manifest.jsonl", "".join(
        json.dumps(r, ensure_ascii=False) + "\n" for d in done for r in d["attempts"]))
    fileio.save_image(out / "contact_sheet.png", contact_sheet(done, out))
    settings = dict(attempts=a.attempts, candidates=a.candidates, threshold=a.threshold, seed=a.seed,
                    steps=a.steps, guidance=a.guidance_scale, generator=a.generator, size=res)
    summary = report(done, out, a.attempts, settings)
    acc = sum(d["status"] == "accepted" for d in done)
    print(f"{acc}/{summary['products']} products accepted by RFNet within {a.attempts} attempts; "
          f"{summary['skipped']} skipped. Available rate after {a.attempts} attempts "
          f"({summary['judge']}): {summary['curve'][-1]['available_rate']:.1%}. See {out / 'report.md'}, "
          f"{out / 'contact_sheet.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
