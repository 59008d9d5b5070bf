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

The reader also takes RF1M's ``label.txt`` (see :func:`read_label_txt`). It checks every file
up front; a missing, truncated or unreadable file, an unknown label or an image of the wrong
mode is reported with its path and skipped, and :class:`SkipReport` counts what was skipped
and why. Missing depth and salience maps are computed once and cached under
``.cache/maps/<extractor>/`` inside the dataset folder (or, when the folder is read-only, in a
user cache folder: see :func:`user_cache_dir`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from . import fileio
from .labels import UnknownLabelError, canonical, to_index

log = logging.getLogger(__name__)

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
# Conversions
# ---------------------------------------------------------------------------------------------
def to_rgb_tensor(im: Image.Image, size: int | None = None) -> torch.Tensor:
    """(3, H, W) float in 0..1. Transparency is composited on white, as product shots are;
    16-bit grey is scaled to 8 bits (Pillow's convert would clip it: nearly all white)."""
    if im.mode in SIXTEEN_BIT_MODES:
        a = np.asarray(im, dtype=np.float64)
        # 'I' may hold 8-bit values (a converted L image): scale by 255 then, as rfft.placement does.
        full = 65535.0 if im.mode != "I" or a.max() > 255 else 255.0
        im = Image.fromarray((np.clip(a / full, 0, 1) * 255 + 0.5).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "P"):
        im = im.convert("RGBA")
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im)
    im = im.convert("RGB")
    if size is not None and im.size != (size, size):
        im = im.resize((size, size), Image.BICUBIC)
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def to_map_tensor(im: Image.Image, size: int | None = None) -> torch.Tensor:
    """(1, H, W) float in 0..1 from an 8-bit, 16-bit or float single-channel map."""
    if im.mode in ("RGB", "LA"):
        im = im.convert("L")
    a = np.asarray(im).astype(np.float32)
    if im.mode == "L":
        a = a / 255.0
    elif im.mode.startswith("I;16") or (im.mode == "I" and a.max() <= 65535):
        a = a / 65535.0
    else:  # float maps: normalise to their own range
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    t = torch.from_numpy(np.clip(a, 0.0, 1.0))[None]
    if size is not None and t.shape[-2:] != (size, size):
        t = torch.nn.functional.interpolate(t[None], size=(size, size), mode="bilinear",
                                            align_corners=False, antialias=True)[0]
    return t


def map_to_image(t: torch.Tensor) -> Image.Image:
    """A (1, H, W) or (H, W) map in 0..1 as an 8-bit grey image."""
    a = t.detach().float().squeeze().clamp(0, 1).cpu().numpy()
    return Image.fromarray((a * 255.0 + 0.5).astype(np.uint8), mode="L")


def _as_pil(x: Any, mode: str | None = None) -> Image.Image:
    if isinstance(x, Image.Image):
        return x
    if torch.is_tensor(x):
        x = x.detach().cpu().numpy()
        if x.ndim == 3 and x.shape[0] in (1, 3, 4):
            x = np.moveaxis(x, 0, -1)
    a = np.asarray(x)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    return Image.fromarray(a, mode=mode)


# ---------------------------------------------------------------------------------------------
# Writer
# ---------------------------------------------------------------------------------------------
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
            "write one with rfnet.data.RFDatasetWriter or point at the right folder"
        )
    if root.suffix == ".jsonl":
        return root.parent, list(_iter_manifest(root, skips)), {}
    if root.suffix == ".txt":
        return root.parent, read_label_txt(root, skips), {"origin": "label.txt"}
    raise FileNotFoundError(f"{root}: not a dataset folder, manifest.jsonl or label.txt")


# ---------------------------------------------------------------------------------------------
# Dataset
# ---------------------------------------------------------------------------------------------
class RFDataset(torch.utils.data.Dataset):
    """Samples of an RF dataset as tensors for RFNet.

    Each item: ``product`` (3,S,S) composited on white, ``generated`` (3,S,S), ``depth`` and
    ``salience`` (1,S,S), all in 0..1; ``caption`` (str), ``label`` (int in ``label_set``),
    ``id``. Construction checks every file and computes the missing maps named in ``maps``
    (cached); ``need_product=False`` and ``maps=()`` serve models that drop those inputs.
    ``cache_dir``: where computed maps go instead of the dataset's own ``.cache/maps`` (which
    is also left for the user cache folder when the dataset folder is not writable).
    """

    def __init__(
        self,
        root: str | Path,
        label_set: str = "paper5",
        split: str | None = None,
        image_size: int = 384,
        depth_extractor=None,
        salience_extractor=None,
        need_product: bool = True,
        maps: tuple[str, ...] = ("depth", "salience"),
        map_batch_size: int = 16,
        stored_maps: bool = True,
        cache_dir: str | Path | None = None,
        limit: int | None = None,
    ):
        self.skips = SkipReport()
        self.cache_dir = None if cache_dir is None else Path(cache_dir).expanduser()
        self.base, records, self.info = read_records(root, self.skips)
        self.label_set, self.image_size = label_set, image_size
        self.samples: list[dict] = []
        for rec in records:
            if split is not None and rec.get("split", "train") != split:
                continue
            try:
                self.samples.append(self._check(rec, need_product))
            except SampleError as e:
                self.skips.add(e.reason, e.path, e.detail)
        if limit:  # the first ``limit`` usable samples, in manifest order (a learning curve's subsets)
            self.samples = self.samples[:limit]
        if not stored_maps:  # use the extractors' maps everywhere: what an inspector will see
            for smp in self.samples:
                for kind in maps:
                    smp[kind] = None
        # Only the maps the model uses are required (and computed when missing).
        if "depth" in maps:
            self._fill_maps("depth", depth_extractor, map_batch_size)
        if "salience" in maps:
            self._fill_maps("salience", salience_extractor, map_batch_size)
        if self.skips:
            log.warning("%s: %s", root, self.skips.summary())

    @classmethod
    def for_model(cls, config, root, split: str | None = None, depth_extractor=None,
                  salience_extractor=None, stored_maps: bool = True,
                  cache_dir: str | Path | None = None, limit: int | None = None) -> "RFDataset":
        """The dataset as an RFNet of ``config`` reads it: its label set and image size, and
        only the inputs it uses. ``split`` 'all' (or None) takes every sample."""
        return cls(
            root, label_set=config.label_set, split=None if split in (None, "all") else split,
            image_size=config.image_size, depth_extractor=depth_extractor,
            salience_extractor=salience_extractor, need_product=config.use_product,
            maps=tuple(m for m in ("depth", "salience") if getattr(config, f"use_{m}")),
            stored_maps=stored_maps, cache_dir=cache_dir, limit=limit,
        )

    def _check(self, rec: dict, need_product: bool) -> dict:
        where = f"{self.base / MANIFEST}#{rec.get('id')}"
        bad = bad_id(rec.get("id"))
        if bad:
            raise SampleError("bad id", where, bad)
        for key in ("image", "product", "depth", "salience"):
            if rec.get(key) is not None and not isinstance(rec[key], str):
                raise SampleError("bad manifest line", where,
                                  f"{key} must be a path relative to the folder, not {rec[key]!r}")
        rec = dict(rec, id=str(rec["id"]))
        if not isinstance(rec.get("caption", ""), str):  # a number or null: still a caption
            rec["caption"] = "" if rec["caption"] is None else str(rec["caption"])
        try:
            label = canonical(rec.get("label", ""))
        except UnknownLabelError as e:
            raise SampleError("unknown label", where, str(e)) from None
        idx = to_index(label, self.label_set)
        if idx is None:
            raise SampleError("label not in label set", where,
                              f"{label} is not a class of the {self.label_set} label set")
        if not rec.get("image"):
            raise SampleError("missing file", where, "record names no generated image")
        out = dict(rec, label_index=idx, label=label)
        open_image(self.base / rec["image"], IMAGE_MODES, "generated image")
        if need_product:
            if not rec.get("product"):
                raise SampleError("missing file", where, "record names no product image")
            open_image(self.base / rec["product"], IMAGE_MODES, "product image")
        for key in ("depth", "salience"):
            if rec.get(key):
                open_image(self.base / rec[key], MAP_MODES, f"{key} map")
        return out

    def _fill_maps(self, kind: str, extractor, batch_size: int) -> None:
        """Compute the maps samples lack, once: cached under .cache/maps/<extractor>/ (see
        :meth:`_map_caches` for where when that is not writable)."""
        todo = [s for s in self.samples if not s.get(kind)]
        if not todo:
            return
        if extractor is None:
            for s in todo:
                self.skips.add(f"no {kind} map", self.base / s["image"],
                               f"sample has no {kind} map and no {kind} extractor was given")
            bad = {id(s) for s in todo}
            self.samples = [s for s in self.samples if id(s) not in bad]
            return
        sub = Path(_safe_name(extractor.name)) / kind
        own, write_to = self._map_caches()
        where = {}  # sample -> its cached map, found in the dataset's cache or the other one
        for s in todo:
            name = map_cache_name(s["image"])
            where[id(s)] = next((c / sub / name for c in (own, write_to) if (c / sub / name).exists()),
                                write_to / sub / name)
        missing = [s for s in todo if not where[id(s)].exists()]
        if missing:
            log.info("computing %d %s maps with %s (cached in %s)", len(missing), kind,
                     extractor.name, write_to / sub)
        for i in range(0, len(missing), batch_size):
            chunk = missing[i:i + batch_size]
            imgs = [to_rgb_tensor(Image.open(self.base / s["image"])) for s in chunk]
            maps = _run_grouped(extractor, imgs)
            for s, m in zip(chunk, maps):
                fileio.save_image(where[id(s)], map_to_image(m))
        for s in todo:  # absolute: base / an absolute path is that path (caches outside base)
            s[kind] = str(where[id(s)])

    def _map_caches(self) -> tuple[Path, Path]:
        """(the dataset's own cache, the cache that computed maps are written to). The dataset's
        own .cache/maps when it is writable; else ``cache_dir`` or the user cache folder, under
        a name from the dataset's path so that two datasets never share maps."""
        own = (self.base / ".cache" / "maps").absolute()
        if self.cache_dir is None and _writable(own):
            return own, own
        key = hashlib.sha256(str(self.base.resolve()).encode()).hexdigest()[:16]
        other = ((self.cache_dir or user_cache_dir()) / key).absolute()
        if self.cache_dir is None:
            log.warning("%s is not writable: caching its depth and salience maps in %s",
                        self.base, other)
        return own, other

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> list[int]:
        return [s["label_index"] for s in self.samples]

    def __getitem__(self, i: int) -> dict:
        s, size = self.samples[i], self.image_size
        item = {
            "id": s["id"],
            "generated": to_rgb_tensor(Image.open(self.base / s["image"]), size),
            "caption": s.get("caption") or "",
            "label": s["label_index"],
        }
        if s.get("product"):
            item["product"] = to_rgb_tensor(Image.open(self.base / s["product"]), size)
        for key in ("depth", "salience"):
            if s.get(key):
                item[key] = to_map_tensor(Image.open(self.base / s[key]), size)
        return item


def _run_grouped(extractor, imgs: list[torch.Tensor]) -> list[torch.Tensor]:
    """Run an extractor on images that may differ in size: one batch per size."""
    out: list[torch.Tensor | None] = [None] * len(imgs)
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(imgs):
        groups.setdefault(tuple(t.shape), []).append(i)
    with torch.no_grad():
        for idxs in groups.values():
            maps = extractor(torch.stack([imgs[i] for i in idxs]))
            for i, m in zip(idxs, maps):
                out[i] = m
    return out  # type: ignore[return-value]


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]+", "_", name).strip("._") or "extractor"


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


def map_cache_name(image_rel: str) -> str:
    """The cache file of the map of the image at ``image_rel`` (relative to the dataset):
    keyed by the whole relative path, so a/x.png and b/x.png never share a map, and made of
    safe characters only, so no id or path can place it outside the cache folder."""
    key = Path(image_rel).as_posix()
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    stem = re.sub(r"[^A-Za-z0-9_\-]+", "_", Path(key).stem)[:40].strip("_") or "map"
    return f"{stem}-{digest}.png"


def user_cache_dir() -> Path:
    """Where maps of read-only datasets are cached: $XDG_CACHE_HOME (or ~/.cache)/reliable_ad/maps."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "reliable_ad" / "maps"


def _writable(folder: Path) -> bool:
    """Whether files can be created in ``folder`` (made if missing). Tried, not guessed from
    permission bits: root ignores them and a read-only mount does not show in them."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe"):
            pass
        return True
    except OSError:
        return False


class Collator:
    """Stacks tensors and tokenizes captions with the model's tokenizer."""

    def __init__(self, tokenizer=None, max_length: int = 64):
        self.tokenizer, self.max_length = tokenizer, max_length

    def __call__(self, items: list[dict]) -> dict:
        batch: dict[str, Any] = {
            "id": [it["id"] for it in items],
            "label": torch.tensor([it["label"] for it in items], dtype=torch.long),
        }
        for key in ("product", "generated", "depth", "salience"):
            if all(key in it for it in items):
                batch[key] = torch.stack([it[key] for it in items])
        captions = [it["caption"] for it in items]
        batch["caption"] = captions
        if self.tokenizer is not None:
            enc = self.tokenizer(captions, padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt")
            batch["input_ids"] = enc["input_ids"]
            batch["attention_mask"] = enc["attention_mask"]
        return batch
