"""RF datasets as tensors for RFNet: :class:`RFDataset` (with its map cache) and :class:`Collator`.

The format itself (writer, readers, RF1M's ``label.txt``, the skip report) is in
:mod:`rfnet.dataformat`, which never imports torch; its names are re-exported here, so
``from rfnet.data import RFDatasetWriter`` keeps working. Missing depth and salience maps are
computed once and cached under ``.cache/maps/<extractor>/`` inside the dataset folder (or, when
the folder is read-only, in a user cache folder: see :func:`user_cache_dir`).
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from . import fileio
from .dataformat import (  # noqa: F401  (the format's names, re-exported: rfnet.data had them first)
    FORMAT,
    IMAGE_MODES,
    INFO,
    MANIFEST,
    MAP_MODES,
    MAX_PIXELS,
    SIXTEEN_BIT_MODES,
    VERSION,
    RFDatasetWriter,
    SampleError,
    SkipReport,
    bad_id,
    check_split,
    open_image,
    read_label_txt,
    read_records,
)
from .labels import UnknownLabelError, canonical, to_index

log = logging.getLogger(__name__)


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


def placed_on_canvas(product: Image.Image, placement: dict, canvas: tuple[int, int]) -> Image.Image:
    """The product (RGBA as the record stores it, placed and resized) at ``placement``'s x, y on a
    white canvas of ``canvas`` (width, height): what an inspector with ``product_input`` "placed"
    reads. Parts beyond the canvas are cut, as in the generated image."""
    out = Image.new("RGBA", canvas, (255, 255, 255, 255))
    return Image.alpha_composite(out, _placed_layer(product, placement, canvas)).convert("RGB")


def placed_mask(product: Image.Image, placement: dict, canvas: tuple[int, int]) -> Image.Image:
    """The product's alpha at ``placement``'s x, y on an empty canvas of ``canvas`` (width,
    height), 8-bit: where the product stands, what an inspector with ``mask_input`` reads."""
    return _placed_layer(product, placement, canvas).getchannel("A")


def _placed_layer(product: Image.Image, placement: dict, canvas: tuple[int, int]) -> Image.Image:
    """The product (RGBA) at ``placement``'s x, y on a transparent canvas; parts beyond it are cut."""
    layer = Image.new("RGBA", canvas, (0, 0, 0, 0))
    layer.paste(product.convert("RGBA"), (int(placement["x"]), int(placement["y"])))
    return layer


def placement_problem(rec: dict) -> str | None:
    """Why ``rec`` gives no product placement ({"x", "y"} numbers in its source), or None."""
    src = rec.get("source")
    pl = src.get("placement") if isinstance(src, dict) else None
    if not isinstance(pl, dict):
        return "its source has no placement {x, y} (the product's top-left on the image); write one, or train " \
               "with --product_input cutout and without --mask_input"
    for k in ("x", "y"):
        v = pl.get(k)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            return f"placement {k} must be a number of pixels, not {v!r}"
    return None


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


def record_targets(rec: dict, names) -> list[float]:
    """The record's ``aux_targets`` values for ``names`` (RF-Gen: the oracle's measures, which
    ``python -m rfsynth.measures DIR`` writes there), NaN where it has none."""
    d = rec.get("aux_targets") if isinstance(rec.get("aux_targets"), dict) else {}
    out = []
    for n in names:
        v = d.get(n)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
        out.append(float(v) if ok else float("nan"))
    return out


def map_to_image(t: torch.Tensor) -> Image.Image:
    """A (1, H, W) or (H, W) map in 0..1 as an 8-bit grey image."""
    a = t.detach().float().squeeze().clamp(0, 1).cpu().numpy()
    return Image.fromarray((a * 255.0 + 0.5).astype(np.uint8), mode="L")


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
        aux_targets: tuple[str, ...] = (),
        product_input: str = "cutout",
        mask_input: bool = False,
    ):
        self.skips = SkipReport()
        self.product_input = product_input
        self.mask_input = mask_input
        self.aux_targets = tuple(aux_targets)
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
        if self.aux_targets:  # numbers the record carries beside its label; NaN where it has none
            for smp in self.samples:
                smp["aux"] = record_targets(smp, self.aux_targets)
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
            aux_targets=config.aux_targets, product_input=config.product_input,
            mask_input=config.mask_input,
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
        if need_product or self.mask_input:  # mask_input: the product's alpha is the mask
            if not rec.get("product"):
                raise SampleError("missing file", where, "record names no product image")
            open_image(self.base / rec["product"], IMAGE_MODES, "product image")
        if (need_product and self.product_input == "placed") or self.mask_input:
            why = placement_problem(rec)
            if why:
                raise SampleError("no placement", where, f"the inspector reads the product where it stands: {why}")
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
        generated = Image.open(self.base / s["image"])
        item = {
            "id": s["id"],
            "generated": to_rgb_tensor(generated, size),
            "caption": s.get("caption") or "",
            "label": s["label_index"],
        }
        if "aux" in s:
            item["aux"] = torch.tensor(s["aux"], dtype=torch.float32)
        if s.get("product"):
            product = Image.open(self.base / s["product"])
            if self.mask_input:
                item["mask"] = to_map_tensor(placed_mask(product, s["source"]["placement"], generated.size), size)
            if self.product_input == "placed":
                product = placed_on_canvas(product, s["source"]["placement"], generated.size)
            item["product"] = to_rgb_tensor(product, size)
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
        for key in ("product", "generated", "depth", "salience", "mask", "aux"):
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
