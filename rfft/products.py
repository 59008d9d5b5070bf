"""The inputs of generation and RFFT: a folder of product images with their captions, and a
prompt config in the paper's release format. Library code, shared by ``python -m rfft.generate``,
``python -m rfft.train`` and the nodes.

- :func:`find_products`: the images of a folder and their metadata (``products.json``, ``NAME.txt``);
- :func:`load_prompts`: the prompt config, as :class:`PromptEntry` objects;
- ``EXAMPLES``: the bundled example products and prompts (the CLIs' defaults).
"""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from rfnet.errors import InputError

# The name it had before these left rfft.generate: users' logging filters keep working.
log = logging.getLogger("rfft.generate")

EXAMPLES = Path(__file__).resolve().parent / "examples"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
MAX_CAPTION_BYTES = 64 << 10  # a caption file larger than this is not a caption


@dataclass
class PromptEntry:
    prompt: str
    negative_prompt: str = ""
    image_scale: float = 0.5

    def for_product(self, name: str) -> str:
        return self.prompt.replace("{product}", name)


def load_prompts(path: str | Path) -> list[PromptEntry]:
    """A prompt config in the paper's release format: a JSON list of objects with ``prompt``,
    ``negative_prompt`` and ``image_scale`` (other keys are ignored; ``null`` means the
    default). ``{product}`` in a prompt becomes the product's category, or "product"."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}: cannot read the prompt config ({e})") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        raise InputError(f"{path}: expected a JSON list of {{prompt, negative_prompt, image_scale}}")
    out = []
    for i, e in enumerate(data):
        if not isinstance(e, dict) or not isinstance(e.get("prompt"), str):
            raise InputError(f"{path}: entry {i} has no 'prompt' string")
        neg = e.get("negative_prompt")
        if neg is not None and not isinstance(neg, str):
            raise InputError(f"{path}: entry {i}: negative_prompt must be a string or null, "
                             f"got {type(neg).__name__}")
        scale = e.get("image_scale")
        if scale is None:
            scale = PromptEntry.image_scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 1:
            raise InputError(f"{path}: entry {i}: image_scale must be a number in (0, 1], got {scale!r}")
        out.append(PromptEntry(e["prompt"], neg or "", float(scale)))
    return out


def display_name(name: str) -> str:
    """A file name as text: bytes that are not UTF-8 (Linux keeps them as surrogates) show as
    U+FFFD, so messages, JSON and reports can always be written."""
    try:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return name.encode("utf-8", "replace").decode("utf-8")


def name_problem(path: Path) -> str | None:
    """Why a product's file name cannot be used (its record could not name it), or None."""
    if display_name(path.name) != path.name:
        return (f"the file name is not valid UTF-8 (shown as {display_name(path.name)!r}); rename "
                "the file to a UTF-8 name")
    return None


def read_caption(txt: Path) -> tuple[str | None, str | None]:
    """(caption or None, warning or None) from a NAME.txt: UTF-8 (with or without BOM); else
    GB18030 (what Chinese Windows editors save), said in the warning; else no caption."""
    try:
        if txt.stat().st_size > MAX_CAPTION_BYTES:
            return None, f"{txt.name} is larger than {MAX_CAPTION_BYTES >> 10} KiB, not a caption; ignored"
        data = txt.read_bytes()
    except OSError as e:
        return None, f"{txt.name} cannot be read ({e.strerror or e}); no caption"
    try:
        return data.decode("utf-8-sig").strip(), None
    except UnicodeDecodeError:
        pass
    for enc in (("utf-16",) if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ()) + ("gb18030",):
        try:
            text = data.decode(enc).strip()
        except UnicodeDecodeError:
            continue
        return text, f"{txt.name} is not UTF-8; read as {enc.upper()} (save it as UTF-8 to be sure)"
    return None, (f"{txt.name} is not UTF-8 text; its caption is ignored and the category or file "
                  "name is used instead (save it as UTF-8)")


def find_products(folder: str | Path, warnings: list | None = None) -> tuple[list[Path], dict]:
    """Image files of ``folder`` (sorted) and their metadata: ``products.json`` (name ->
    {caption, category}) and/or ``NAME.txt`` caption files.

    Bad metadata never stops the others: a products.json that is not an object of objects is
    ignored (a warning); a bad entry gives its product ``meta[name]["error"]`` (the product is
    skipped); an unreadable caption file a per-product ``meta[name]["warnings"]``. Folder-level
    warnings are appended to ``warnings`` (else logged)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"--products {folder}: not a folder of product images")

    def warn(msg):
        (warnings.append if warnings is not None else log.warning)(msg)

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    meta: dict = defaultdict(dict)
    mj = folder / "products.json"
    if mj.is_file():
        expected = 'an object {"NAME.png": {"caption": "...", "category": "..."}}'
        try:
            data = json.loads(mj.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            warn(f"products.json is not valid UTF-8 JSON ({e}); ignored: expected {expected}")
            data = {}
        if not isinstance(data, dict):
            warn(f"products.json is a JSON {type(data).__name__}; ignored: expected {expected}")
            data = {}
        for k, v in data.items():
            bad = (not isinstance(v, dict) or
                   any(v.get(f) is not None and not isinstance(v.get(f), str) for f in ("caption", "category")))
            if bad:
                meta[k]["error"] = (f"products.json: the entry for {k!r} is {json.dumps(v, ensure_ascii=False)[:60]}, "
                                    "expected an object with string 'caption' and 'category'; fix that entry")
            else:
                meta[k].update({f: v[f] for f in ("caption", "category") if isinstance(v.get(f), str)})
    for p in files:
        txt = p.with_suffix(".txt")
        if txt.is_file():
            caption, problem = read_caption(txt)
            if caption is not None:
                meta[p.name]["caption"] = caption
            if problem:
                meta[p.name].setdefault("warnings", []).append(display_name(problem))
    return files, dict(meta)
