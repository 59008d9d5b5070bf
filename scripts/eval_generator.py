"""Judge a generator on held-out RF-Synth products with the oracle: available rate, prompt
fidelity (does the wall have the prompt's colour, the surface the prompt's material?), and how
often the embedded RFNet agrees with the oracle on generated images.

    python scripts/eval_generator.py --generator rfft/embedded/generator-synth-tiny \
        --products 200 --seed 31337 --out runs/eval_gen.json

Products, prompts and image scales are drawn from ``--seed`` (never used for training: the
generator's data seed is 7001). One image per product, with the paper's sampler (DDIM, 40
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
from rfsynth.catalog import COLOURS, DECORATIONS, LIGHTING, MATERIALS, REFERENCE_FOR_SIZE, WALL_COLOURS
from rfsynth.oracle import judge
from rfsynth.products import render_product, sample_spec
from rfsynth.text import prompt_for

SURFACES_DRAWN = ("wooden table", "marble table", "podium", "shelf", "fabric cloth")  # not floor


def draw_job(seed: int, i: int) -> dict:
    rng = np.random.default_rng([seed, i])
    spec = sample_spec(rng)
    cut = render_product(spec, 96, rng)
    wall = WALL_COLOURS[rng.integers(len(WALL_COLOURS))]
    material = list(MATERIALS)[rng.integers(len(MATERIALS))]
    surface = SURFACES_DRAWN[rng.integers(len(SURFACES_DRAWN))]
    light = LIGHTING[rng.integers(len(LIGHTING))]
    deco = DECORATIONS[rng.integers(len(DECORATIONS))]
    refs = REFERENCE_FOR_SIZE[spec.cat.size_class]
    ref = refs[rng.integers(len(refs))] if rng.uniform() < 0.5 else None
    prompt = prompt_for(spec, wall, material, surface, light, deco, ref)
    return {"cutout": cut, "category": spec.category, "prompt": prompt, "wall": wall, "material": material,
            "scale": float(rng.uniform(0.4, 0.6))}


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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--generator", default="embedded")
    p.add_argument("--products", type=int, default=200)
    p.add_argument("--seed", type=int, default=31337)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--guidance_scale", type=float, default=7.5)
    p.add_argument("--negative_prompt", default="")
    p.add_argument("--batch", type=int, default=8, help="products generated together")
    p.add_argument("--out", default="runs/eval_gen.json")
    p.add_argument("--save_images", default=None, help="a folder for the first 32 images")
    a = p.parse_args(argv)

    from rfft.pipeline import AdInpaintPipeline
    from rfft.placement import place
    from rfnet.embedded import embedded_path
    from rfnet.inspect import Inspector

    pipe = AdInpaintPipeline.load(a.generator)
    inspector = Inspector.from_pretrained(embedded_path("rfnet"))
    S = pipe.unet.config.sample_size * pipe.latent_factor
    labels, agree, wall_ok, surf_ok, rows = Counter(), 0, 0, 0, []
    t0 = time.time()
    gen_s = 0.0
    for i in range(a.products):
        job = draw_job(a.seed, i)
        pl = place(job["cutout"], S, job["scale"])
        t1 = time.time()
        img = pipe(pl, job["prompt"], a.negative_prompt, seeds=[a.seed * 100_000 + i],
                   num_inference_steps=a.steps, guidance_scale=a.guidance_scale).images[0]
        gen_s += time.time() - t1
        v = judge(img, pl.cutout, pl.box, job["category"])
        r = inspector(pl.cutout, img, job["category"])[0]
        w, m = fidelity(np.asarray(img), pl.alpha)
        labels[v.label] += 1
        agree += (r.label == "Available") == (v.label == "Available")
        wall_ok += w == job["wall"]
        surf_ok += m == job["material"]
        rows.append({"i": i, "prompt": job["prompt"], "oracle": v.label, "rfnet": r.label,
                     "p_available": round(r.p_available, 4), "wall_seen": w, "material_seen": m})
        if a.save_images and i < 32:
            save_image(Path(a.save_images) / f"{i:03d}_{v.label.replace(' ', '_')}.png", img)
    n = a.products
    res = {"generator": str(a.generator), "products": n, "seed": a.seed, "steps": a.steps,
           "guidance_scale": a.guidance_scale, "size": S,
           "available_rate": labels["Available"] / n, "labels": dict(labels),
           "wall_colour_match": wall_ok / n, "wall_chance": 1 / len(WALL_COLOURS),
           "material_match": surf_ok / n, "material_chance": 1 / len(MATERIALS),
           "rfnet_oracle_agreement_available": agree / n,
           "seconds_per_image": gen_s / n, "seconds": time.time() - t0, "rows": rows}
    write_json(a.out, res)
    print(json.dumps({k: v for k, v in res.items() if k != "rows"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
