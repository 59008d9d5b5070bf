"""The RF dataset format: a folder with a manifest and the files it names.

    my_dataset/
      dataset.json        {"format": "rf-dataset", "version": 1, "label_set": "rf1m6", ...}
      manifest.jsonl      one JSON record a sample (below), appended as samples are written
      images/ID.png       the generated advertising image I_g (RGB)
      products/ID.png     the product cutout I_o (RGBA; RGB on white is accepted too)
      depth/ID.png        optional depth map of I_g (L or 16-bit; near is bright)
      salience/ID.png     optional salience map of I_g (L)

A record: ``{"id", "image", "product", "depth", "salience", "caption", "prompt", "label",
"split", "source"}``; paths are relative to the folder, ``depth``/``salience`` may be null,
``label`` is a name of the RF1M six-label set (see labels.py), ``source`` is free-form (which
generator, seed, construction parameters). docs/DATASET_FORMAT.md has the full text.

This module is the format alone, and it never imports torch: rfsynth writes datasets with it
and tools read them without loading a model. :class:`RFDatasetWriter` writes; the readers
(:func:`read_records`) also take RF1M's ``label.txt`` (see :func:`read_label_txt`). A reader
that opens the files (rfnet.data's ``RFDataset``) checks every one up front with
:func:`open_image`; a missing, truncated or unreadable file, an unknown label or an image of
the wrong mode is reported with its path and skipped, and :class:`SkipReport` counts what was
skipped and why.
"""
from __future__ import annotations

import json
import logging
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from PIL import Image, UnidentifiedImageError

from . import fileio
from .errors import InputError
from .labels import UnknownLabelError, canonical

# The name it had before the format left rfnet.data: users' logging filters keep working.
log = logging.getLogger("rfnet.data")

FORMAT = "rf-dataset"
VERSION = 1
MANIFEST = "manifest.jsonl"
INFO = "dataset.json"

# Modes we convert without loss of meaning; anything else is refused by name. 16-bit grey
# (I;16, or I as older Pillow opens such PNGs) is scaled to 8 bits by to_rgb_tensor.
SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I"}
IMAGE_MODES = {"RGB", "RGBA", "L", "LA", "P"} | SIXTEEN_BIT_MODES
MAP_MODES = {"L", "I", "I;16", "I;16B", "I;16L", "F", "RGB", "LA"}
# Larger images are refused before decoding: a small PNG can claim 20000x20000 pixels (a
# decompression bomb) and would take gigabytes to decode. Pillow's own warning threshold.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485


# ---------------------------------------------------------------------------------------------
# Skips
# ---------------------------------------------------------------------------------------------
@dataclass
class SkipReport:
    """What was skipped and why; printed at the end of a run."""

    items: list[tuple[str, str, str]] = field(default_factory=list)  # (reason, path, detail)

    def add(self, reason: str, path: str | Path, detail: str) -> None:
        self.items.append((reason, str(path), detail))
        log.warning("skipped %s: %s (%s)", path, detail, reason)

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(r for r, _, _ in self.items))

    def __len__(self) -> int:
        return len(self.items)

    def summary(self) -> str:
        if not self.items:
            return "skipped 0 samples"
        parts = ", ".join(f"{n} {r}" for r, n in sorted(self.counts.items()))
        return f"skipped {len(self.items)} samples: {parts}"


class SampleError(Exception):
    def __init__(self, reason: str, path: str | Path, detail: str):
        super().__init__(f"{path}: {detail}")
        self.reason, self.path, self.detail = reason, str(path), detail


def open_image(path: Path, allowed: set[str], what: str) -> Image.Image:
    """Fully decoded image, or SampleError naming what is wrong with it."""
    if not path.exists():
        raise SampleError("missing file", path, f"{what} file does not exist")
    if path.is_dir():
        raise SampleError("unreadable file", path, f"{what} is a folder, not an image file")
    try:
        im = Image.open(path)
        if im.width * im.height > MAX_PIXELS:  # checked before load(): refuse the bomb undecoded
            raise Image.DecompressionBombError(
                f"{im.width}x{im.height} is {im.width * im.height} pixels, more than {MAX_PIXELS}")
        im.load()  # decodes everything: a truncated file fails here, not in a worker later
    except Image.DecompressionBombError as e:  # Pillow's own check fires in open() past 2x
        raise SampleError("image too large", path,
                          f"{what} is too large ({str(e).rstrip('.')}): a decompression bomb, "
                          "or an image to scale down first") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise SampleError("unreadable file", path, f"{what} cannot be decoded ({e})") from None
    if im.mode not in allowed:
        raise SampleError(
            "wrong mode", path,
            f"{what} has mode {im.mode}; expected one of {', '.join(sorted(allowed))} "
            "(convert it, e.g. to RGB, before use)",
        )
    return im


# ---------------------------------------------------------------------------------------------
# Writer
# ---------------------------------------------------------------------------------------------
def _as_pil(x: Any, mode: str | None = None) -> Image.Image:
    if isinstance(x, Image.Image):
        return x
    torch = sys.modules.get("torch")  # a tensor exists only if torch is loaded: never import it here
    if torch is not None and torch.is_tensor(x):
        x = x.detach().cpu().numpy()
        if x.ndim == 3 and x.shape[0] in (1, 3, 4):
            x = np.moveaxis(x, 0, -1)
    a = np.asarray(x)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    return Image.fromarray(a, mode=mode)


class RFDatasetWriter:
    """Writes samples in the RF dataset format. Every file is written atomically and a record
    is appended to the manifest only after its files are in place, so an interrupted writer
    leaves a valid dataset of the samples written so far."""

    def __init__(self, root: str | Path, label_set: str = "rf1m6", description: str = "",
                 extra_info: dict | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        info_path = self.root / INFO
        if not info_path.exists():
            fileio.write_json(info_path, {
                "format": FORMAT, "version": VERSION, "label_set": label_set,
                "description": description, **(extra_info or {}),
            })
        self._ids = {r["id"] for r in _iter_manifest(self.root / MANIFEST, SkipReport())}

    def __contains__(self, id: str) -> bool:
        return id in self._ids

    def add(
        self,
        id: str,
        image: Any,
        product: Any,
        label: str | int,
        caption: str = "",
        prompt: str = "",
        split: str = "train",
        depth: Any = None,
        salience: Any = None,
        source: dict | None = None,
        extra_images: dict[str, Any] | None = None,
    ) -> dict:
        """Write one sample. ``extra_images`` ({key: image}) are stored as ``key/ID.png`` and
        named in the record under ``key`` (ground truth such as a product mask)."""
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", id) or id.startswith("."):
            raise ValueError(f"sample id {id!r} must be letters, digits, '_', '-', '.'")
        if id in self._ids:
            raise ValueError(f"sample id {id!r} is already in {self.root / MANIFEST}")
        label = canonical(label)
        rec: dict[str, Any] = {"id": id}
        for key, folder, obj, mode in (
            ("image", "images", image, None),
            ("product", "products", product, None),
            ("depth", "depth", depth, "L"),
            ("salience", "salience", salience, "L"),
        ):
            if obj is None:
                rec[key] = None
                continue
            rel = f"{folder}/{id}.png"
            im = _as_pil(obj)
            if mode and im.mode != mode and im.mode not in MAP_MODES:
                im = im.convert(mode)
            fileio.save_image(self.root / rel, im)
            rec[key] = rel
        for key, obj in (extra_images or {}).items():
            if key in rec or not re.fullmatch(r"[a-z_]+", key):
                raise ValueError(f"extra image key {key!r} must be lower-case and not a record field")
            rel = f"{key}/{id}.png"
            fileio.save_image(self.root / rel, _as_pil(obj))
            rec[key] = rel
        rec.update(caption=caption, prompt=prompt, label=label, split=split, source=source or {})
        with open(self.root / MANIFEST, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            f.flush()
        self._ids.add(id)
        return rec


# ---------------------------------------------------------------------------------------------
# Readers of index files
# ---------------------------------------------------------------------------------------------
def _decode_lines(path: Path) -> list[str]:
    """The lines of a text file that should be UTF-8. Bytes that are not (a caption saved in
    GBK, say) become U+FFFD with a warning instead of failing the whole file."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        text = data.decode("utf-8-sig", errors="replace")
        line = data[:e.start].count(b"\n") + 1
        log.warning("%s is not valid UTF-8 (first at line %d); undecodable bytes are replaced "
                    "by U+FFFD: re-save it as UTF-8 to keep them", path, line)
    return text.splitlines()


def _iter_manifest(path: Path, skips: SkipReport) -> Iterable[dict]:
    if not path.exists():
        return
    for n, line in enumerate(_decode_lines(path), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict) or "id" not in rec:
                raise ValueError("record has no id")
        except ValueError as e:
            skips.add("bad manifest line", f"{path}:{n}", str(e))
            continue
        yield rec


_LABEL_SPLIT = re.compile(r"\t|,|\||;")
_HEADER_WORDS = {"image", "path", "file", "label", "product", "caption", "split", "prompt", "id"}


def read_label_txt(path: str | Path, skips: SkipReport | None = None) -> list[dict]:
    """Records from an RF1M-style ``label.txt``.

    Tolerant about its shape: one sample a line, ``<image path> <label>``, separated by a tab,
    comma, ``|``, ``;`` or spaces; the label a name (any case, spaces or underscores:
    ``Space Mismatch``, ``space_mismatch``) or a number 0-5 in RF1M's order (Available,
    Unsuitable, Space Mismatch, Size Mismatch, Indistinctiveness, Shape Hallucination). An
    optional header line names columns (image, label, product, caption, prompt, split, id), in
    which case those columns are read by name. Lines starting with # are comments.
    """
    path = Path(path)
    skips = skips if skips is not None else SkipReport()
    lines = list(enumerate(_decode_lines(path), 1))
    lines = [(n, l) for n, l in lines if l.strip() and not l.lstrip().startswith("#")]
    header = None
    if lines:
        first = [c.strip().lower() for c in _split_cols(lines[0][1])]
        if "label" in first and set(first) <= _HEADER_WORDS:
            header, lines = first, lines[1:]
    out = []
    for n, line in lines:
        where = f"{path}:{n}"
        cols = _split_cols(line)
        try:
            if header:
                if len(cols) != len(header):
                    raise SampleError("bad label line", where,
                                      f"{len(cols)} columns, header has {len(header)}")
                row = dict(zip(header, cols))
                image = row.get("image") or row.get("path") or row.get("file")
                raw_label = row["label"]
            else:
                (image, raw_label), row = _guess_columns(cols, where), {}
            label = canonical(raw_label)
        except UnknownLabelError as e:
            skips.add("unknown label", where, str(e))
            continue
        except SampleError as e:
            skips.add(e.reason, e.path, e.detail)
            continue
        rec = {
            "id": row.get("id") or Path(image).stem,
            "image": image,
            "product": row.get("product"),
            "depth": None,
            "salience": None,
            "caption": row.get("caption", ""),
            "prompt": row.get("prompt", ""),
            "label": label,
            "split": row.get("split", "train"),
            "source": {"label_txt": where},
        }
        out.append(rec)
    return out


def _split_cols(line: str) -> list[str]:
    if _LABEL_SPLIT.search(line):
        return [c.strip() for c in _LABEL_SPLIT.split(line)]
    return line.split()


def _guess_columns(cols: list[str], where: str) -> tuple[str, str]:
    """(image, label) from a header-less line: the path first, the label last; a label name
    may contain a space ('Space Mismatch') when columns are separated by spaces."""
    if len(cols) < 2:
        raise SampleError("bad label line", where, "expected '<image path> <label>'")
    for k in (2, 1):  # try a two-word label first: 'Size Mismatch' must not read as 'Mismatch'
        if len(cols) > k:
            cand = " ".join(cols[-k:])
            try:
                canonical(cand)
                return cols[0], cand
            except UnknownLabelError:
                pass
    return cols[0], cols[-1]  # canonical() will explain what is wrong with it


def read_records(root: str | Path, skips: SkipReport) -> tuple[Path, list[dict], dict]:
    """(base folder, records, info) of a dataset folder, a manifest.jsonl or a label.txt."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such dataset folder or file")
    if root.is_dir():
        if (root / MANIFEST).exists():
            info = {}
            if (root / INFO).exists():
                try:  # descriptive only: a damaged dataset.json must not cost the samples
                    info = json.loads((root / INFO).read_text(encoding="utf-8"))
                except (ValueError, OSError) as e:
                    log.warning("%s cannot be read (%s); ignoring it", root / INFO, e)
            return root, list(_iter_manifest(root / MANIFEST, skips)), info
        if (root / "label.txt").exists():
            return root, read_label_txt(root / "label.txt", skips), {"origin": "label.txt"}
        raise FileNotFoundError(
            f"{root} has neither {MANIFEST} (RF dataset) nor label.txt (RF1M); "
            "write one with rfnet.dataformat.RFDatasetWriter or point at the right folder"
        )
    if root.suffix == ".jsonl":
        return root.parent, list(_iter_manifest(root, skips)), {}
    if root.suffix == ".txt":
        return root.parent, read_label_txt(root, skips), {"origin": "label.txt"}
    raise FileNotFoundError(f"{root}: not a dataset folder, manifest.jsonl or label.txt")


def bad_id(sample_id) -> str | None:
    """Why a record's id is refused, or None. Ids name files (predictions, the writer's
    images/ID.png), so one must be a plain file name: '../x' or 'a/b' could point elsewhere."""
    if isinstance(sample_id, int) and not isinstance(sample_id, bool):
        sample_id = str(sample_id)
    if not isinstance(sample_id, str) or not sample_id.strip():
        return f"id {sample_id!r} is not a non-empty string"
    if (len(sample_id) > 200 or any(c in sample_id for c in "/\\") or sample_id.startswith(".")
            or any(ord(c) < 32 for c in sample_id)):
        return (f"id {sample_id!r} is not a plain file name (no '/', '\\', leading '.', control "
                "characters; at most 200 characters)")
    return None


def check_split(data, split, what: str) -> None:
    """A dataset that exists and has records in ``split`` ('all' or None: any), named in the
    error with the splits it does have."""
    records = read_records(data, SkipReport())[1]  # FileNotFoundError names a missing folder
    if split in (None, "all"):
        if not records:
            raise InputError(f"{what} {data} has no samples")
        return
    splits = {}
    for r in records:
        splits[str(r.get("split", "train"))] = splits.get(str(r.get("split", "train")), 0) + 1
    if split not in splits:
        have = ", ".join(f"{k} ({n})" for k, n in sorted(splits.items())) or "none"
        raise InputError(f"{what} {data} has no samples in split {split!r}; splits there: {have} "
                         "('all' takes every sample)")
