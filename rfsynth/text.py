"""Captions in the style of e-commerce titles, and background prompts in the paper's style.

A caption carries signal (the category, its colour, attributes) and noise (brands, model
numbers, capacities, shop slogans), in Chinese and English, as real product titles do. A
prompt names the wall colour, the support surface and its material, the lighting, the
decorations and the reference object, as the paper's release's prompt configs do.
"""
from __future__ import annotations

import numpy as np

from .catalog import (
    BRANDS,
    COLOURS,
    DECORATIONS,
    FILLERS,
    LIGHTING,
    MATERIALS,
    REFERENCE_FOR_SIZE,
    WALL_COLOURS,
)


def caption_for(rng: np.random.Generator, spec) -> str:
    cat = spec.cat
    colour_zh = COLOURS[spec.colour][1]
    attr = cat.attributes[rng.integers(len(cat.attributes))]
    brand = BRANDS[rng.integers(len(BRANDS))]
    model = f"{chr(65 + rng.integers(26))}{chr(65 + rng.integers(26))}-{rng.integers(10, 9999)}"
    size = {"small": f"{rng.integers(3, 120)}{('ml', 'g', 'ml')[rng.integers(3)]}",
            "medium": f"{rng.integers(15, 60)}cm", "large": f"{rng.integers(80, 200)}cm"}[cat.size_class]
    parts = [brand, f"{colour_zh}{cat.zh}", f"{spec.colour} {cat.name}", attr, model, size]
    noise = [FILLERS[i] for i in rng.choice(len(FILLERS), size=int(rng.integers(0, 3)), replace=False)]
    parts += noise
    order = [0] + list(1 + rng.permutation(len(parts) - 1))  # the brand first, as shops do
    return " ".join(parts[i] for i in order)


def draw_prompt(rng: np.random.Generator, spec, surfaces, reference_p: float) -> tuple[str, str, str]:
    """(prompt, wall colour, material) for a job: the scene's words drawn in a fixed order (wall,
    material, surface from ``surfaces``, lighting, decoration, and a reference object with
    probability ``reference_p``), so that a job's seed fixes its prompt."""
    wall = WALL_COLOURS[rng.integers(len(WALL_COLOURS))]
    material = list(MATERIALS)[rng.integers(len(MATERIALS))]
    surface = surfaces[rng.integers(len(surfaces))]
    light = LIGHTING[rng.integers(len(LIGHTING))]
    deco = DECORATIONS[rng.integers(len(DECORATIONS))]
    refs = REFERENCE_FOR_SIZE[spec.cat.size_class]
    ref = refs[rng.integers(len(refs))] if rng.uniform() < reference_p else None
    return prompt_for(spec, wall, material, surface, light, deco, ref), wall, material


def prompt_for(spec, wall: str, material: str, surface: str, lighting: str, decoration: str,
               reference: str | None) -> str:
    bits = [f"a {spec.category} on a {material} {surface}", f"{wall} wall", lighting]
    if decoration not in ("none", ""):
        bits.append(decoration)
    if reference:
        bits.append(f"a {reference} beside it")
    return ", ".join(bits)
