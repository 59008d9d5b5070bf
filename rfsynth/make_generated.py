"""RF-Gen: generator-drawn images of RF-Synth, labelled by the oracle (RF1M's stand-in).

    python -m rfsynth.make_generated --out data/rfgen_train --num_jobs 3000 --seed 100 \
        --splits train=0.9,val=0.1 [--controlnet rfft_none=runs/.../controlnet ...]
    python -m rfsynth.make_generated relabel --out data/rfgen_train   # after a rule change

RF1M is a million images drawn by the paper's generators and labelled by people. RF-Gen is
the same for this world: products and prompts of RF-Synth, backgrounds drawn by generators
(the embedded one at several guidance scales and step counts, with products placed as the
paper's release places them or lifted, and any RFFT-tuned ControlNets given), labelled by the
oracle, RF-Synth's "human annotator". A share of the products come with damaged cutouts
(Unsuitable), as RF1M's do.

A job is one product, one prompt and one recipe (generator settings), drawn from (seed, job);
it yields ``--images_per_job`` images of different seeds in one batched call. Every record
says how it was made: recipe, generator, ControlNet, guidance, steps, image seed, prompt,
product, placement, and the oracle's measures. A test set takes a seed of its own, so its
products, prompts and seeds are disjoint from the training set's.

Resumable: finished jobs are listed in ``jobs_done.txt`` and skipped; a job interrupted while
being written keeps the samples already in the manifest. Images that come out non-finite or
constant (a broken generator) are not written; they are counted in ``dropped.jsonl`` with the
reason. ``relabel`` judges every stored image again with the current rules (the generated
images do not depend on the rules, only the labels do) and rewrites the manifest atomically.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

from rfnet.errors import InputError

from . import rules
from .make import _split as split_of
from .make import parse_splits, resolve_version
from .oracle import judge
from .products import damage, render_product, sample_spec, tight
from .scene import VERSION, appearance_for  # RF-Gen's version is its world's
from .text import caption_for, draw_prompt

SURFACES = ("wooden table", "marble table", "podium", "shelf", "fabric cloth", "floor")


@dataclass(frozen=True)
class Recipe:
    """How one job's images are drawn. ``controlnet`` None is the generator's own."""
    name: str
    controlnet: str | None = None
    guidance: float = 7.5
    steps: int = 40
    lift: float = 0.0  # the product placed this share of the canvas above the centre
    weight: float = 1.0


# The embedded generator under the samplers a user might pick: the paper's (DDIM 40, 7.5),
# weak and strong guidance, fewer steps, and products placed higher than the release does
# (where a generator has to draw support under them, and sometimes does not).
DEFAULT_RECIPES = (
    Recipe("paper", guidance=7.5, steps=40, weight=2.0),
    Recipe("g3", guidance=3.0, steps=40),
    Recipe("g12", guidance=12.0, steps=40),
    Recipe("s20", guidance=7.5, steps=20),
    Recipe("g5_s20", guidance=5.0, steps=20),
    Recipe("lift", guidance=7.5, steps=40, lift=0.15),
    Recipe("lift25", guidance=7.5, steps=40, lift=0.25),
)
DAMAGE_P = 0.14  # share of jobs with a damaged cutout (Unsuitable); the label shares it gives: docs/RFSYNTH.md


def draw_job(seed: int, index: int, recipes: tuple[Recipe, ...], size: int, images_per_job: int,
             damage_p: float = DAMAGE_P, version: int = VERSION) -> dict:
    """Everything about job ``index`` of ``seed``, as plain data (the image seeds included).
    ``version`` 1 draws RF-Gen v1's jobs; 2 gives a share of the products a hard matte (from a
    stream of its own: everything else is v1's)."""
    rng = np.random.default_rng([seed, index, 7])
    spec = sample_spec(rng)
    look = appearance_for([seed, index, 7], version)
    spec.matte, spec.printed = look["matte"], look["printed"]
    cut = render_product(spec, 96, rng)
    damaged = None
    if rng.uniform() < damage_p:
        intact = cut
        cut, damaged = damage(cut, rng, float(rng.uniform()))
        if version >= 2 and damaged["removed_frac"] < rules.DAMAGE_MIN_FRAC:
            cut, damaged = intact, None  # a cut through a thin part: too little to see
    if version >= 2:  # every cutout in its one-pixel frame: a margin says nothing (products.tight)
        cut = tight(cut)
    prompt, _, _ = draw_prompt(rng, spec, SURFACES, reference_p=0.6)
    w = np.array([r.weight for r in recipes], float)
    recipe = recipes[int(rng.choice(len(recipes), p=w / w.sum()))]
    seeds = [int(s) for s in np.random.SeedSequence([seed, index, 11]).generate_state(images_per_job)]
    return {"index": index, "cutout": cut, "category": spec.category, "caption": caption_for(rng, spec),
            "prompt": prompt,
            "scale": float(rng.uniform(0.35, 0.62)), "recipe": recipe, "seeds": seeds, "damage": damaged,
            "size": size, "matte": spec.matte, "printed": spec.printed}


# ---- the worker: one pipeline per ControlNet, loaded once per process ----------------------
_PIPES: dict = {}
_GENERATOR = "embedded"


def _init_worker(generator: str, threads: int) -> None:
    import torch

    global _GENERATOR
    if generator != _GENERATOR:
        _PIPES.clear()
    _GENERATOR = generator
    torch.set_num_threads(max(1, threads))


def _init_pool_worker(generator: str, threads: int) -> None:
    # Ctrl-C reaches every process of the terminal's group; the main process alone handles it
    # (it stops the pool), so the workers do not each print a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _init_worker(generator, threads)


def _pipe(controlnet):
    if controlnet not in _PIPES:
        from rfft.pipeline import AdInpaintPipeline

        p = AdInpaintPipeline.load(_GENERATOR, controlnet)
        p.set_progress_bar_config(disable=True)
        _PIPES[controlnet] = p
    return _PIPES[controlnet]


def placement_for(job: dict, size: int):
    """The release's placement (fit into ``scale x S``, centred), lifted by the recipe."""
    from rfft.placement import from_box, place

    pl = place(job["cutout"], size, job["scale"])
    lift = int(round(job["recipe"].lift * size))
    if lift:
        box = dict(pl.box, y=max(0, pl.box["y"] - lift))
        pl = from_box(pl.cutout, box, size)
    return pl


def degenerate(raw: np.ndarray) -> str | None:
    """Why a decoded image (H, W, 3 float) is no image: non-finite or constant; else None."""
    if not np.isfinite(raw).all():
        return "non-finite pixels"
    if float(raw.max() - raw.min()) < 1e-3:
        return "constant image"
    return None


def run_job(job: dict) -> tuple[int, dict, list[dict], list[dict]]:
    """Generate, check and judge one job's images: (index, the job's description, samples, dropped)."""
    import torch

    r: Recipe = job["recipe"]
    pipe = _pipe(r.controlnet)
    size = job["size"]
    pl = placement_for(job, size)
    finite = [True]

    def watch(i, t, latents):
        if not torch.isfinite(latents).all():
            finite[0] = False

    out = pipe(pl, job["prompt"], seeds=job["seeds"], num_inference_steps=r.steps, guidance_scale=r.guidance,
               callback=watch)
    samples, dropped = [], []
    for k, (img, raw) in enumerate(zip(out.images, out.raw)):
        arr = np.asarray(raw, np.float32)
        why = ("non-finite latents" if not finite[0] else "non-finite pixels" if out.nonfinite[k]
               else degenerate(arr))  # the pipeline shows a NaN image black: say why, not "constant"
        if why:
            dropped.append({"index": job["index"], "k": k, "seed": job["seeds"][k], "recipe": r.name, "reason": why})
            continue
        v = judge(img, pl.cutout, pl.box, job["category"], supplied=job["cutout"], damage=job["damage"])
        samples.append({"k": k, "image": img, "product": pl.cutout, "supplied": job["cutout"], "placement": dict(pl.box),
                        "label": v.label, "measures": v.measures, "seed": job["seeds"][k]})
    meta = {k: job[k] for k in ("caption", "prompt", "category", "scale", "damage", "matte", "printed")}
    return job["index"], dict(meta, recipe=r), samples, dropped


# ---- the writer ----------------------------------------------------------------------------
def parse_controlnets(items: list[str] | None, guidance: float = 7.5, steps: int = 40) -> tuple[Recipe, ...]:
    """``NAME=DIR`` items: RFFT-tuned ControlNets, each a recipe with the paper's sampler."""
    out = []
    for it in items or []:
        name, sep, path = it.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--controlnet {it!r}: expected NAME=FOLDER (a ControlNet saved by rfft.train)")
        if not (Path(path) / "config.json").is_file():
            raise FileNotFoundError(f"--controlnet {name}: {path} has no config.json; expected a ControlNet folder "
                                    "(save_pretrained output, e.g. runs/rfft/controlnet)")
        out.append(Recipe(f"cn_{name}", controlnet=str(path), guidance=guidance, steps=steps))
    return tuple(out)


@contextmanager
def _runner(workers: int, generator: str, threads: int):
    """``run(jobs)`` over a pool of worker processes, or in this process for one worker (the
    pipeline then stays loaded between calls, which tests and small sets rely on)."""
    if workers <= 1:
        import torch

        before = torch.get_num_threads()  # the caller's, given back: a test after this one trains with it
        _init_worker(generator, threads)
        try:
            yield lambda jobs: map(run_job, jobs)
        finally:
            torch.set_num_threads(before)
        return
    ctx = get_context("fork" if sys.platform != "win32" else "spawn")
    with ctx.Pool(workers, initializer=_init_pool_worker, initargs=(generator, threads)) as pool:
        yield lambda jobs: pool.imap(run_job, jobs, chunksize=1)


def sample_id(seed: int, index: int, k: int) -> str:
    return f"rfgen{seed}_{index:06d}_{k}"


def jobs_done(out) -> set[int]:
    """The indices of the jobs a folder holds (``jobs_done.txt``; empty for a new folder)."""
    path = Path(out) / "jobs_done.txt"
    return {int(x) for x in path.read_text().split()} if path.exists() else set()


def make(out, num_jobs: int, seed: int, splits="train=0.9,val=0.1", size: int = 64, images_per_job: int = 4,
         recipes: tuple[Recipe, ...] = DEFAULT_RECIPES, generator: str = "embedded", workers: int = 2,
         progress: bool = True, threads: int | None = None, damage_p: float = DAMAGE_P,
         version: int | None = None) -> dict:
    """Write ``num_jobs`` jobs of ``seed`` into ``out`` (skipping finished ones). ``threads``:
    torch threads per worker (default: the cores shared out; on a busy machine 1 is much faster,
    since a thread waiting on a descheduled sibling stalls the whole step). ``version``: default
    the folder's if begun (a resumed v1 folder stays v1), else the newest."""
    out = Path(out)
    version = resolve_version(out, version, "rfgen_version", "rfsynth.make_generated")
    split_list = parse_splits(splits) if isinstance(splits, str) else splits
    from rfnet.dataformat import RFDatasetWriter

    writer = RFDatasetWriter(out, label_set="rf1m6",
                                 description=f"RF-Gen v{version}: generated images of RF-Synth, labelled by the oracle",
                                 extra_info={"generator": "rfsynth.make_generated", "rfgen_version": version,
                                             "seed": seed, "size": size, "images_per_job": images_per_job,
                                             "recipes": [asdict(r) for r in recipes], "damage_p": damage_p,
                                             "splits": dict(split_list)})
    done_path = out / "jobs_done.txt"
    done = jobs_done(out)
    todo = [i for i in range(num_jobs) if i not in done]
    counts: dict[str, int] = {}
    n_drop = 0
    t0 = time.time()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=num_jobs, initial=num_jobs - len(todo), desc="rfsynth.make_generated", unit="job")
    jobs = (draw_job(seed, i, recipes, size, images_per_job, damage_p, version) for i in todo)
    threads = threads or max(1, (os.cpu_count() or 1) // max(1, workers))
    # the bar closes with the runner, on Ctrl-C too, so that the stop message starts on its own line
    with _runner(workers, generator, threads) as run, (bar if bar is not None else nullcontext()):
        for index, job, samples, dropped in run(jobs):
            split = split_of(seed, index, split_list)
            r = job["recipe"]
            for s in samples:
                sid = sample_id(seed, index, s["k"])
                if sid in writer:
                    continue
                writer.add(sid, s["image"], s["product"], s["label"], caption=job["caption"], prompt=job["prompt"],
                           split=split, extra_images={"supplied": s["supplied"]}, source={
                               "generator": "rfsynth.make_generated", "version": version, "seed": seed,
                               "job": index, "k": s["k"], "image_seed": s["seed"], "recipe": r.name,
                               "model": generator, "controlnet": r.controlnet, "guidance": r.guidance,
                               "steps": r.steps, "scheduler": "DDIMScheduler", "lift": r.lift,
                               "scale": job["scale"], "category": job["category"], "placement": s["placement"],
                               "damage": job["damage"], "matte": job["matte"], "printed": job["printed"],
                               "annotator": "oracle",
                               "oracle": _jsonable(s["measures"])})
                counts[s["label"]] = counts.get(s["label"], 0) + 1
            for d in dropped:
                with open(out / "dropped.jsonl", "a", encoding="utf-8") as f:
                    f.write(json.dumps(d) + "\n")
            n_drop += len(dropped)
            with open(done_path, "a") as f:
                f.write(f"{index}\n")
            if bar:
                bar.update(1)
                bar.set_postfix(dropped=n_drop)
    return {"jobs": len(todo), "seconds": time.time() - t0, "labels": counts, "dropped": n_drop, "out": str(out)}


def relabel(out) -> dict:
    """Judge every stored image again with the current rules; rewrite the manifest atomically."""
    from rfnet.dataformat import MANIFEST
    from rfnet.fileio import write_text

    out = Path(out)
    recs = [json.loads(x) for x in (out / MANIFEST).read_text(encoding="utf-8").splitlines() if x.strip()]
    info = json.loads((out / "dataset.json").read_text(encoding="utf-8"))
    moved: dict[str, int] = {}
    lines = []
    for rec in recs:
        src = rec.get("source", {})
        img, prod, supplied = record_images(out, rec, info)
        v = judge(img, prod, src["placement"], src["category"], supplied=supplied, damage=src.get("damage"))
        if v.label != rec["label"]:
            key = f"{rec['label']} -> {v.label}"
            moved[key] = moved.get(key, 0) + 1
        rec["label"] = v.label
        src["oracle"] = _jsonable(v.measures)
        lines.append(json.dumps(rec, ensure_ascii=False))
    write_text(out / MANIFEST, "\n".join(lines) + ("\n" if lines else ""))
    return {"samples": len(recs), "moved": moved}


def record_images(folder: Path, rec: dict, info: dict) -> tuple[Image.Image, Image.Image, Image.Image]:
    """(generated image, placed cutout, supplied cutout) of a record: what the oracle judges."""
    img = Image.open(folder / rec["image"]).convert("RGB")
    prod = Image.open(folder / rec["product"]).convert("RGBA")
    return img, prod, supplied_cutout(folder, rec, info)


def supplied_cutout(folder: Path, rec: dict, info: dict) -> Image.Image:
    """The cutout as supplied (before placement resized it): stored as ``supplied/ID.png``, or,
    in datasets written before it was stored, drawn again from the job's seed (the product is
    drawn first in a job, so the recipes do not change it)."""
    if rec.get("supplied"):
        return Image.open(folder / rec["supplied"]).convert("RGBA")
    src = rec["source"]
    job = draw_job(src["seed"], src["job"], (Recipe("any"),), info.get("size", 64), 1,
                   info.get("damage_p", 0.1), info.get("rfgen_version", 1))
    return job["cutout"]


def _jsonable(x):
    return json.loads(json.dumps(x, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["relabel"]:
        p = argparse.ArgumentParser(prog="python -m rfsynth.make_generated relabel")
        p.add_argument("--output_dir", "--out", dest="out", required=True)
        a = p.parse_args(argv[1:])
        if not (Path(a.out) / "manifest.jsonl").is_file():
            print(f"error: {a.out} has no manifest.jsonl: point --out at a folder written by rfsynth.make_generated",
                  file=sys.stderr)
            return 2
        print(json.dumps(relabel(a.out), ensure_ascii=False))
        return 0
    p = argparse.ArgumentParser(prog="python -m rfsynth.make_generated", description=__doc__.split("\n\n")[0])
    p.add_argument("--output_dir", "--out", dest="out", required=True)
    p.add_argument("--num_jobs", type=int, default=3000)
    p.add_argument("--images_per_job", type=int, default=4)
    p.add_argument("--seed", type=int, default=100)
    p.add_argument("--splits", default="train=0.9,val=0.1")
    p.add_argument("--generator", default="embedded", help="the generator folder (default: the embedded one)")
    p.add_argument("--size", type=int, default=64, help="image side; the embedded generator draws 64 px")
    p.add_argument("--controlnet", action="append", default=[], metavar="NAME=DIR",
                   help="an RFFT-tuned ControlNet to draw with as well (repeatable)")
    p.add_argument("--no_default_recipes", action="store_true", help="only the --controlnet recipes")
    p.add_argument("--damage_p", type=float, default=DAMAGE_P, help="share of jobs with a damaged cutout")
    p.add_argument("--version", type=int, default=None,
                   help="1: RF-Synth v1's products (soft mattes, flat colours); 2: also hard mattes, printed labels, "
                        "tight frames (docs/RFSYNTH.md). Default: a begun folder's own, else 2")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch threads per worker (default: cores / workers)")
    p.add_argument("--no_progress", action="store_true")
    a = p.parse_args(argv)
    try:
        for flag in ("num_jobs", "images_per_job", "workers", "size"):
            if getattr(a, flag) < 1:
                raise ValueError(f"--{flag} must be at least 1, got {getattr(a, flag)}")
        if not 0 <= a.damage_p <= 1:
            raise ValueError(f"--damage_p must be in [0, 1], got {a.damage_p}")
        splits = parse_splits(a.splits)
        recipes = parse_controlnets(a.controlnet)
        if not a.no_default_recipes:
            recipes = DEFAULT_RECIPES + recipes
        if not recipes:
            raise ValueError("--no_default_recipes without --controlnet leaves nothing to draw with")
        if a.generator != "embedded" and not Path(a.generator).exists():
            raise FileNotFoundError(f"--generator {a.generator}: no such folder")
    except (ValueError, FileNotFoundError) as e:
        print(f"python -m rfsynth.make_generated: error: {e}", file=sys.stderr)
        return 2
    try:
        r = make(a.out, a.num_jobs, a.seed, splits, a.size, a.images_per_job, recipes, a.generator, a.workers,
                 not a.no_progress, a.threads, a.damage_p, a.version)
    except InputError as e:
        print(f"python -m rfsynth.make_generated: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        n = len(jobs_done(a.out) & set(range(a.num_jobs)))  # a folder begun with a larger --num_jobs holds more
        print(f"python -m rfsynth.make_generated: stopped; {n} of {a.num_jobs} jobs are in {a.out}; "
              "run the same command to go on from there", file=sys.stderr)
        return 130
    print(f"{r['jobs']} jobs to {r['out']} in {r['seconds']:.0f} s; labels {r['labels']}; "
          f"dropped {r['dropped']} (see dropped.jsonl)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
