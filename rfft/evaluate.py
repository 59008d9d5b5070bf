"""Judge a generator on held-out RF-Synth products with the oracle: ``python -m rfft.evaluate``.

    python -m rfft.evaluate --generator embedded [--controlnet DIR] --products 200 --seed 31337 \
        --out runs/eval_gen.json [--rfnet DIR] [--threshold P|top]

Measures the available rate (the oracle: RF-Synth's "human"; and RFNet), prompt fidelity (does
the wall have the prompt's colour, the surface the prompt's material?), background diversity
(two seeds per job: mean absolute difference of their backgrounds) and background detail (mean
gradient off the product: a collapsed, uniform background has none). Products, prompts and image
scales are drawn from ``--seed`` (never used for training: the generator's data seed is 7001,
RFFT's training products 4242). One image per job and seed, with the paper's sampler (DDIM, 40
steps, guidance 7.5) unless told otherwise.
"""
from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

from rfnet.fileio import save_image, write_json
from rfsynth import rules
from rfsynth.catalog import COLOURS, MATERIALS, WALL_COLOURS
from rfsynth.oracle import judge
from rfsynth.products import render_product, sample_spec
from rfsynth.text import caption_for, draw_prompt

SURFACES_DRAWN = ("wooden table", "marble table", "podium", "shelf", "fabric cloth")  # not floor


def draw_job(seed: int, i: int) -> dict:
    rng = np.random.default_rng([seed, i])
    spec = sample_spec(rng)
    cut = render_product(spec, 96, rng)
    prompt, wall, material = draw_prompt(rng, spec, SURFACES_DRAWN, reference_p=0.5)
    scale = float(rng.uniform(0.4, 0.6))
    return {"cutout": cut, "category": spec.category, "prompt": prompt, "wall": wall, "material": material,
            "scale": scale, "caption": caption_for(rng, spec)}


def nearest(rgb, table: dict) -> str:
    return min(table, key=lambda k: float(np.linalg.norm(np.asarray(rgb, float) - np.asarray(table[k], float))))


def fidelity(image: np.ndarray, alpha: np.ndarray) -> tuple[str, str]:
    """The wall's named colour (median of the top band, off the product) and the surface's
    material (median of the rows just below the product's base)."""
    S = image.shape[0]
    band = image[: max(1, int(rules.WALL_BAND * S))][alpha[: max(1, int(rules.WALL_BAND * S))] == 0]
    wall = nearest(np.median(band, axis=0), {k: COLOURS[k][0] for k in WALL_COLOURS})
    rows = np.nonzero((alpha > 0.5).any(1))[0]
    base = int(rows[-1])
    below = image[min(S - 1, base + 1):min(S, base + 1 + max(2, S // 16))]
    surf = nearest(np.median(below.reshape(-1, 3), axis=0), {k: v[0] for k, v in MATERIALS.items()})
    return wall, surf


def background_stats(a: np.ndarray, b: np.ndarray, alpha: np.ndarray) -> tuple[float, float]:
    """(diversity, detail): mean |a - b| off the product (0..255), and mean gradient off the
    product in ``a``."""
    bg = alpha == 0
    div = float(np.abs(a.astype(np.float32) - b.astype(np.float32))[bg].mean())
    gy, gx = np.gradient(a.astype(np.float32), axis=(0, 1))
    det = float(np.sqrt(gx ** 2 + gy ** 2).max(-1)[bg].mean())
    return div, det


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a rate k / n (sound near 0 and 1, where the normal
    approximation leaves [0, 1])."""
    if n <= 0:
        raise ValueError("wilson_interval needs n > 0")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


def paired_difference(a, b, z: float = 1.96) -> tuple[float, float, float]:
    """Rate of ``a`` minus rate of ``b`` over the same jobs (0/1 outcomes, job for job), with the
    95% interval of the mean of the per-job differences (normal approximation). Pairing removes
    what the jobs share: two configurations judged on the same products and seeds differ by much
    less than two independent samples' intervals suggest."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"paired_difference needs two equal-length 1-D outcome lists, got {a.shape} and {b.shape}")
    d = a - b
    half = z * d.std(ddof=1) / np.sqrt(len(d))
    return float(d.mean()), float(d.mean() - half), float(d.mean() + half)


def image_seeds(seed: int) -> tuple[int, int]:
    """The first seeds of an evaluation's two images per job (job i adds i): far apart, so that
    no job's second image shares a seed with another job's first."""
    return seed * 100_000, seed * 100_000 + 50_000


def draw_job_images(pipe, job: dict, seeds: list[int], steps: int = 40, guidance: float = 7.5,
                    negative_prompt: str = ""):
    """A held-out job placed on the generator's canvas and drawn once per seed: (placement, images).
    Job i of an evaluation is drawn with seeds (first + i, second + i)."""
    from .placement import place

    pl = place(job["cutout"], pipe.unet.config.sample_size * pipe.latent_factor, job["scale"])
    out = pipe(pl, job["prompt"], negative_prompt, seeds=seeds, num_inference_steps=steps, guidance_scale=guidance)
    return pl, out.images


def evaluate(pipe, inspector, jobs: list[dict], seeds: tuple[int, int], steps: int = 40, guidance: float = 7.5,
             negative_prompt: str = "", save_dir=None) -> dict:
    """Every job with two seeds; the first image is judged, both give diversity."""
    labels, agree, agree_top, wall_ok, surf_ok, rows = Counter(), 0, 0, 0, 0, []
    rf_ok, divs, dets, gen_s = 0, [], [], 0.0
    for i, job in enumerate(jobs):
        t1 = time.time()
        pl, (img, other) = draw_job_images(pipe, job, [seeds[0] + i, seeds[1] + i], steps, guidance, negative_prompt)
        gen_s += (time.time() - t1) / 2
        v = judge(img, pl.cutout, pl.box, job["category"], damage=None)  # held-out products are intact
        r = inspector(pl.cutout, img, job["caption"])[0]
        w, m = fidelity(np.asarray(img), pl.alpha)
        d, det = background_stats(np.asarray(img), np.asarray(other), pl.alpha)
        labels[v.label] += 1
        rf_ok += r.accepted
        agree += r.accepted == (v.label == "Available")
        agree_top += (r.label == "Available") == (v.label == "Available")
        wall_ok += w == job["wall"]
        surf_ok += m == job["material"]
        divs.append(d)
        dets.append(det)
        rows.append({"i": i, "prompt": job["prompt"], "oracle": v.label, "rfnet": r.label,
                     "p_available": round(r.p_available, 4), "accepted": r.accepted, "note": r.note, "wall_seen": w, "material_seen": m,
                     "diversity": round(d, 2), "detail": round(det, 2)})
        if save_dir is not None and i < 32:
            save_image(Path(save_dir) / f"{i:03d}_{v.label.replace(' ', '_')}.png", img)
    n = len(jobs)
    return {"jobs": n, "available_rate_oracle": labels["Available"] / n, "available_rate_rfnet": rf_ok / n,
            "available_rate_oracle_ci95": wilson_interval(labels["Available"], n),
            "available_rate_rfnet_ci95": wilson_interval(rf_ok, n), "rfnet_threshold": inspector.threshold,
            "labels": dict(labels), "wall_colour_match": wall_ok / n, "wall_chance": 1 / len(WALL_COLOURS),
            "material_match": surf_ok / n, "material_chance": 1 / len(MATERIALS),
            "rfnet_oracle_agreement": agree / n, "rfnet_oracle_agreement_top_class": agree_top / n,
            "background_diversity": float(np.mean(divs)),
            "background_detail": float(np.mean(dets)), "seconds_per_image": gen_s / n, "rows": rows}


def draw_jobs(seed: int, n: int) -> list[dict]:
    return [draw_job(seed, i) for i in range(n)]


def _parse_threshold(text: str):
    from rfnet.inspect import parse_threshold  # rfnet (torch) loads only when the command runs

    return parse_threshold(text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m rfft.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--generator", default="embedded")
    p.add_argument("--controlnet", default=None, help="a fine-tuned ControlNet folder (RFFT's output), or embedded-rfft; default: the generator's original")
    p.add_argument("--products", type=int, default=200)
    p.add_argument("--seed", type=int, default=31337)
    p.add_argument("--num_inference_steps", "--steps", dest="steps", type=int, default=40)
    p.add_argument("--guidance_scale", type=float, default=7.5)
    p.add_argument("--negative_prompt", default="")
    p.add_argument("--out", default="runs/eval_gen.json")
    p.add_argument("--save_images", default=None, help="a folder for the first 32 images")
    p.add_argument("--rfnet", "--inspector", dest="inspector", default="embedded",
                   help="the RFNet that judges beside the oracle: a folder, or 'embedded'")
    p.add_argument("--threshold", type=_parse_threshold, default=None,
                   help="accept when P(Available) >= this, or 'top' (when Available is the most probable class); "
                        "default: the inspector's calibrated threshold")
    a = p.parse_args(argv)
    from rfnet.errors import cli_errors

    with cli_errors("python -m rfft.evaluate"):  # a missing generator or ControlNet: one line, exit 2
        return _run(a)


def _run(a) -> int:
    """The evaluation itself, for :func:`main`."""
    from rfnet.inspect import Inspector

    from .generate import check_inspector
    from .pipeline import AdInpaintPipeline

    folder = check_inspector(a.inspector)  # before the generator loads: a wrong folder fails at once
    pipe = AdInpaintPipeline.load(a.generator, a.controlnet)
    pipe.set_progress_bar_config(disable=True)
    inspector = Inspector.from_pretrained(folder, threshold=a.threshold)
    t0 = time.time()
    res = evaluate(pipe, inspector, draw_jobs(a.seed, a.products), image_seeds(a.seed),
                   a.steps, a.guidance_scale, a.negative_prompt, a.save_images)
    res = {"generator": str(a.generator), "controlnet": a.controlnet, "rfnet": a.inspector, "seed": a.seed, "steps": a.steps,
           "guidance_scale": a.guidance_scale, "negative_prompt": a.negative_prompt,
           "size": pipe.unet.config.sample_size * pipe.latent_factor, **res, "seconds": time.time() - t0}
    write_json(a.out, res)
    print(json.dumps({k: v for k, v in res.items() if k != "rows"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
