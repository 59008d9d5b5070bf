"""Write an RF-Synth dataset in the RF dataset format.

    python -m rfsynth.make --out data/rfsynth_train --num_samples 10000 --size 128 --seed 0

Every sample is a function of (seed, index): the same command always writes the same files,
and a run that was stopped continues where it was (samples already written are kept). Each
record carries the ground truth: label, depth and salience maps, the product mask (``mask``),
the placement and category the oracle needs, and every construction parameter (``source``).
Use a seed of its own for a test set: splits inside one dataset share its seed.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

from rfnet.errors import InputError, cli_errors

from .scene import DEFAULT_PRIORS, LABELS, VERSION, VERSIONS, render_sample


def sample_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def _split(seed: int, index: int, splits: list[tuple[str, float]]) -> str:
    u = np.random.default_rng([seed, index, 99]).uniform()
    acc = 0.0
    for name, frac in splits:
        acc += frac
        if u < acc:
            return name
    return splits[-1][0]


def resolve_version(out, asked: int | None, key: str, generator: str, flag: str = "--version") -> int:
    """The world version to write into ``out``: a folder already begun keeps its own (a resumed
    v1 folder stays v1), and asking it for another is refused; a new folder gets ``asked`` or
    the default. ``key`` and ``generator``: the dataset.json field that records the version and
    the writer that should have written the folder (folders from before versions are v1)."""
    if asked is not None and asked not in VERSIONS:
        raise InputError(f"{flag} must be one of {', '.join(map(str, VERSIONS))}, got {asked}")
    begun = Path(out) / "dataset.json"
    if not begun.is_file():
        return VERSION if asked is None else asked
    try:
        info = json.loads(begun.read_text(encoding="utf-8"))
        if not isinstance(info, dict):
            raise ValueError(f"a JSON {type(info).__name__}, not an object")
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"{begun} is not valid JSON ({e}): fix it, or write to a new folder") from None
    if info.get("generator") != generator:
        raise InputError(f"{out} was written by {info.get('generator') or 'another program'}, not {generator}: "
                         "write to a new folder")
    was = info.get(key, 1)
    if was not in VERSIONS:
        raise InputError(f"{out} holds version {was!r}, which this code does not know (it knows "
                         f"{', '.join(map(str, VERSIONS))}): update the pack, or write to a new folder")
    if asked is not None and asked != was:
        raise InputError(f"{out} was begun as version {was}: resume it with {flag} {was} (or without "
                         f"{flag}), or write version {asked} to a new folder")
    return was


def _render(job):
    seed, index, size, priors, version = job
    s = render_sample(sample_seed(seed, index), size, priors=priors, version=version)
    return index, s


def _number(flag: str, part: str, text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise InputError(f"{flag} {part!r}: {text.strip()!r} is not a number") from None
    if not math.isfinite(v) or v < 0:
        raise InputError(f"{flag} {part!r}: must be a finite number, 0 or more")
    return v


def parse_splits(text: str) -> list[tuple[str, float]]:
    """``name=fraction,...``, fractions normalised to sum to 1. Bad text is an InputError."""
    out = []
    for part in text.split(","):
        name, eq, frac = part.partition("=")
        name = name.strip()
        if not eq or not name:
            raise InputError(f"--splits {text!r}: expected name=fraction,... (e.g. train=0.8,val=0.1,test=0.1), "
                             f"got {part!r}")
        if name in dict(out):
            raise InputError(f"--splits: split {name!r} is named twice")
        out.append((name, _number("--splits", part, frac)))
    total = sum(f for _, f in out)
    if total <= 0:
        raise InputError(f"--splits {text!r}: expected name=fraction,... with a positive total")
    return [(n, f / total) for n, f in out]


def parse_priors(text: str | None) -> dict:
    """``Class=weight,...`` (classes not named are not drawn). Bad text is an InputError."""
    if not text:
        return dict(DEFAULT_PRIORS)
    pri = {}
    for part in text.split(","):
        name, eq, w = part.partition("=")
        name = name.strip()
        if name not in LABELS:
            raise InputError(f"--priors: unknown class {name!r}; classes: {', '.join(LABELS)}")
        if not eq:
            raise InputError(f"--priors {part!r}: expected Class=weight")
        if name in pri:
            raise InputError(f"--priors: class {name!r} is named twice")
        pri[name] = _number("--priors", part, w)
    if sum(pri.values()) <= 0:
        raise InputError(f"--priors {text!r}: every weight is 0; give at least one class a positive weight")
    return pri


def check_counts(num_samples: int, size: int, seed: int, workers: int) -> None:
    """The counts ``make`` needs, checked before its output folder is created."""
    if num_samples < 1:
        raise InputError(f"--num_samples must be at least 1, got {num_samples}")
    if size < 64:
        raise InputError(f"--size must be at least 64, got {size}")
    if seed < 0:  # numpy's SeedSequence takes no negative seed
        raise InputError(f"--seed must be 0 or more, got {seed}")
    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")


def make(out, num_samples: int, size: int = 128, seed: int = 0, splits="train=0.8,val=0.1,test=0.1",
         priors: str | dict | None = None, workers: int = 2, progress: bool = True,
         version: int | None = None) -> dict:
    """Write ``num_samples`` samples of RF-Synth ``version`` (default: the folder's if begun,
    else the newest), skipping those already written."""
    from rfnet.dataformat import RFDatasetWriter

    # every argument is checked before the writer creates the folder: a refusal leaves nothing
    check_counts(num_samples, size, seed, workers)
    version = resolve_version(out, version, "rfsynth_version", "rfsynth")
    split_list = parse_splits(splits) if isinstance(splits, str) else splits
    pri = parse_priors(priors) if not isinstance(priors, dict) else priors
    if Path(out).exists() and not Path(out).is_dir():
        raise InputError(f"--out {out} is a file, not a folder")
    writer = RFDatasetWriter(out, label_set="rf1m6", description=f"RF-Synth v{version}, {size}px, seed {seed}",
                             extra_info={"generator": "rfsynth", "rfsynth_version": version, "seed": seed,
                                         "size": size, "priors": pri, "splits": dict(split_list)})
    todo = [i for i in range(num_samples) if f"rfs{seed}_{i:06d}" not in writer]
    jobs = [(seed, i, size, pri, version) for i in todo]
    t0 = time.time()
    counts: dict[str, int] = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=num_samples, initial=num_samples - len(todo), desc="rfsynth.make")
    ctx = get_context("fork" if sys.platform != "win32" else "spawn")
    with ctx.Pool(max(1, workers)) as pool:
        for i, s in pool.imap(_render, jobs, chunksize=16):
            sid = f"rfs{seed}_{i:06d}"
            writer.add(
                sid, s.image, s.product, s.label, caption=s.caption, prompt=s.prompt,
                split=_split(seed, i, split_list),
                depth=Image.fromarray((s.depth * 255 + 0.5).astype(np.uint8), "L"),
                salience=Image.fromarray((s.salience * 255 + 0.5).astype(np.uint8), "L"),
                extra_images={"mask": Image.fromarray((s.mask * 255 + 0.5).astype(np.uint8), "L")},
                source={"generator": "rfsynth", "version": version, "seed": seed, "index": i,
                        "sample_seed": sample_seed(seed, i), "category": s.category,
                        "placement": s.placement, "params": _jsonable(s.params)},
            )
            counts[s.label] = counts.get(s.label, 0) + 1
            if bar:
                bar.update(1)
    if bar:
        bar.close()
    dt = time.time() - t0
    return {"written": len(todo), "seconds": dt, "labels": counts, "out": str(out)}


def _jsonable(x):
    return json.loads(json.dumps(x, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m rfsynth.make", description=__doc__.split("\n\n")[0])
    p.add_argument("--output_dir", "--out", dest="out", required=True)
    p.add_argument("--num_samples", type=int, default=10000)
    p.add_argument("--size", type=int, default=128, help="image side in pixels (64 and up)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--splits", default="train=0.8,val=0.1,test=0.1")
    p.add_argument("--priors", default=None,
                   help="class weights, e.g. 'Available=0.4,Space Mismatch=0.2,...' (default: "
                        + ", ".join(f"{k}={v}" for k, v in DEFAULT_PRIORS.items()) + ")")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--version", type=int, default=None,
                   help=f"the world's version: 1 (the v1 benchmark: soft mattes and flat colours only) or 2 (also "
                        f"hard mattes, printed labels, tight frames; docs/RFSYNTH.md). Default: a begun folder's own, "
                        f"else {VERSION}")
    p.add_argument("--no_progress", action="store_true")
    a = p.parse_args(argv)
    with cli_errors(p.prog):
        r = make(a.out, a.num_samples, a.size, a.seed, a.splits, a.priors, a.workers, not a.no_progress, a.version)
    print(f"wrote {r['written']} samples to {r['out']} in {r['seconds']:.1f} s "
          f"({r['written'] / max(r['seconds'], 1e-9):.0f}/s); labels {r['labels']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
