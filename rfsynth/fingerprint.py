"""A dataset's fingerprint, to check that a copy is the benchmark's, sample for sample.

    python -m rfsynth.fingerprint data/rfsynth_s1_128

Prints one SHA-256 over every sample in id order: its id, split, label, caption and prompt,
and the decoded pixels (mode, size and bytes) of each of its images. Pixels rather than files,
so that a PNG written with another zlib or compression level gives the same fingerprint, and
a changed pixel, label or caption a different one. docs/RFSYNTH.md lists the fingerprints of
the benchmark's datasets: a copy written on another machine should match them.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from PIL import Image

TEXT_FIELDS = ("id", "split", "label", "caption", "prompt")
IMAGE_FIELDS = ("image", "product", "mask", "depth", "salience")


def fingerprint(folder: str | Path) -> tuple[str, int]:
    """(SHA-256 hex digest, number of samples) of an RF dataset folder written by rfsynth.make."""
    folder = Path(folder)
    manifest = folder / "manifest.jsonl"
    if not manifest.exists():
        raise FileNotFoundError(f"{folder} has no manifest.jsonl: point at a folder written by rfsynth.make")
    records = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()]
    h = hashlib.sha256()
    for rec in sorted(records, key=lambda r: r["id"]):
        h.update(json.dumps([rec.get(k) for k in TEXT_FIELDS], ensure_ascii=False).encode("utf-8"))
        for k in IMAGE_FIELDS:
            if not rec.get(k):
                h.update(b"-")
                continue
            # names come from the manifest: resolve them inside the folder, never outside it
            path = (folder / rec[k]).resolve()
            if folder.resolve() not in path.parents:
                raise ValueError(f"{rec['id']}: {k} path {rec[k]!r} points outside {folder}")
            with Image.open(path) as im:
                h.update(f"{k}:{im.mode}:{im.size}".encode())
                h.update(im.tobytes())
    return h.hexdigest(), len(records)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m rfsynth.fingerprint", description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", help="dataset folders written by rfsynth.make")
    a = p.parse_args(argv)
    for f in a.folders:
        digest, n = fingerprint(f)
        print(f"{digest}  {n} samples  {f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
