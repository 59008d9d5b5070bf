"""Training checkpoints, one way for every trainer of the pack.

A checkpoint is a ``checkpoint-N`` folder, N the optimizer step (or the epoch). For the
accelerate trainers (rfnet.train, rfft.train) it holds accelerate's full state (weights,
optimizer, schedule, random states): :func:`save` and :func:`resume`. The plain torch loops
(rfnet.train_maps, rfft.train_generator) write their own files into it: :func:`save_plain` and
:func:`latest_intact`. It is written to ``checkpoint-N.tmp``, given a
manifest of its files and their sizes (written last), flushed to disk and renamed, so a kill
never leaves a half checkpoint under a checkpoint-N name and a file truncated later (a full
disk, a bad copy) shows. Resuming takes the newest intact one, saying which it skipped and why.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

from .errors import InputError

log = logging.getLogger("rfnet.checkpoints")

MANIFEST = "checkpoint_manifest.json"  # written last into a checkpoint: its files and their sizes
# the same file as rfft.train named it before the trainers shared this module
OLD_MANIFESTS = ("rfft_checkpoint.json",)


def step_of(p: Path, prefix: str = "checkpoint") -> int | None:
    """N of a ``checkpoint-N`` folder (``PREFIX-N``); None for anything else (``checkpoint-foo``,
    a ``.tmp``)."""
    m = re.fullmatch(rf"{re.escape(prefix)}-(\d+)", Path(p).name)
    return int(m.group(1)) if m else None


def list_checkpoints(out: Path, prefix: str = "checkpoint") -> list[Path]:
    """The ``checkpoint-N`` (``PREFIX-N``) folders of ``out``, oldest first."""
    out = Path(out)
    if not out.is_dir():
        return []
    found = [p for p in out.glob(f"{prefix}-*") if p.is_dir() and step_of(p, prefix) is not None]
    return sorted(found, key=lambda p: step_of(p, prefix))


def _manifest(ck: Path) -> Path | None:
    return next((ck / n for n in (MANIFEST, *OLD_MANIFESTS) if (ck / n).exists()), None)


def broken(ck: Path, legacy_files: tuple[str, ...] | None = None) -> str | None:
    """Why ``ck`` is not an intact checkpoint, or None. With a manifest, every file it lists
    must be there at its size. Without one (checkpoints from before it existed), accelerate's
    files, or a plain trainer's ``legacy_files``, must be there and not empty."""
    man = _manifest(ck)
    if man is not None:
        try:
            files = json.loads(man.read_text())["files"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            return f"unreadable {man.name} ({e})"
        for name, size in files.items():
            f = ck / name
            if not f.is_file():
                return f"{name} is missing"
            if f.stat().st_size != size:
                return (f"{name} is {'truncated' if f.stat().st_size < size else 'of the wrong size'} "
                        f"({f.stat().st_size} of {size} bytes)")
        return None
    names = {p.name for p in ck.iterdir() if p.is_file() and p.stat().st_size > 0}
    if legacy_files is not None:
        missing = [n for n in legacy_files if n not in names]
        return f"{', '.join(missing)} missing or empty" if missing else None
    if not any(n.startswith(("model", "pytorch_model")) for n in names):
        return "no model weights"
    if "optimizer.bin" not in names:
        return "optimizer.bin is missing or empty"
    # a scheduler passed through accelerate's prepare is scheduler.bin; rfnet.train registers
    # its own for checkpointing, which accelerate saves as custom_checkpoint_0.pkl
    if "scheduler.bin" not in names and not any(n.startswith("custom_checkpoint_") for n in names):
        return "scheduler.bin is missing or empty"
    return None


def save(acc, out: Path, step: int, limit: int | None, extra: dict[str, dict] | None = None) -> Path:
    """accelerate's state as ``out/checkpoint-{step}``, with ``extra`` JSON files (name ->
    content: a trainer's own position) inside it; keeps the newest ``limit`` checkpoints."""
    out = Path(out)
    final, tmp = out / f"checkpoint-{step}", out / f"checkpoint-{step}.tmp"
    if acc.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    acc.wait_for_everyone()
    acc.save_state(str(tmp))
    acc.wait_for_everyone()
    if acc.is_main_process:
        for name, content in (extra or {}).items():
            (tmp / name).write_text(json.dumps(content, indent=1))
        _seal(tmp, final, step, out, limit, "checkpoint")
    acc.wait_for_everyone()
    return final


def save_plain(out: Path, step: int, write, limit: int | None, prefix: str = "checkpoint") -> Path:
    """A checkpoint of a trainer without accelerate: ``write(folder)`` puts its files into the
    temporary folder, which then gets the same manifest, flush and rename as :func:`save`;
    keeps the newest ``limit`` ``PREFIX-N`` folders."""
    out = Path(out)
    final, tmp = out / f"{prefix}-{step}", out / f"{prefix}-{step}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    write(tmp)
    _seal(tmp, final, step, out, limit, prefix)
    return final


def latest_intact(out: Path, prefix: str = "checkpoint", legacy_files: tuple[str, ...] | None = None) -> Path | None:
    """The newest intact ``PREFIX-N`` folder of a plain trainer, or None; damaged ones are
    skipped with a warning naming what is wrong. ``legacy_files``: what a checkpoint written
    before the manifest existed must hold."""
    for ck in reversed(list_checkpoints(out, prefix)):
        why = broken(ck, legacy_files)
        if why is None:
            return ck
        log.warning("skipping %s: %s", ck, why)
    return None


def _seal(tmp: Path, final: Path, step: int, out: Path, limit: int | None, prefix: str) -> None:
    """The manifest (written last), a flush to disk, the rename, and the pruning of old ones.
    A run's steps only grow, so a checkpoint numbered after this one is an earlier run's (a
    fresh run in a used folder, or a resume from an older checkpoint): it would outrank this
    run's own in the pruning and in a later resume, so it goes."""
    files = {p.relative_to(tmp).as_posix(): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()}
    (tmp / MANIFEST).write_text(json.dumps({"step": step, "files": files}, indent=1))
    _fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    found = list_checkpoints(out, prefix)
    stale = [c for c in found if step_of(c, prefix) > step]
    if stale:
        log.info("removed %s: an earlier run's, after this run's step %d", ", ".join(c.name for c in stale), step)
    mine = [c for c in found if step_of(c, prefix) <= step]
    for old in stale + (mine[:-limit] if limit else []):
        shutil.rmtree(old, ignore_errors=True)


def _fsync_dir(d: Path) -> None:
    """Flush the checkpoint's files before the rename makes it count (a power cut otherwise
    can leave a checkpoint-N whose files are empty)."""
    for p in d.rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())


def resume(acc, out: Path, which: str, flag: str = "--resume_from_checkpoint") -> Path | None:
    """Load the checkpoint to resume from and return it (None: start fresh). ``which`` is
    ``latest`` (the newest intact one; damaged ones are skipped with a warning) or a
    checkpoint folder (a path, or a name inside ``out``), which must be intact."""
    out = Path(out)
    if which != "latest":
        p = Path(which)
        ck = p if p.exists() else out / which
        if not ck.is_dir() or step_of(ck) is None:
            raise InputError(f"{flag} {which}: no checkpoint-N folder there (or in {out})")
        why = broken(ck)
        if why:
            raise InputError(f"{flag} {ck}: not an intact checkpoint ({why}); "
                             "pass 'latest' to take the newest intact one")
        try:
            acc.load_state(str(ck))
        except (MemoryError, InputError):
            raise
        except Exception as e:  # noqa: BLE001 - intact by size, yet unreadable
            if type(e).__name__ == "OutOfMemoryError":  # torch's: not the checkpoint's fault
                raise
            raise InputError(f"{flag} {ck}: cannot load it ({type(e).__name__}: "
                             f"{(str(e).splitlines() or [''])[0][:200]})") from None
        log.info("resumed from %s (step %d)", ck, step_of(ck))
        return ck
    if out.is_dir():
        stray = [p.name for p in out.glob("checkpoint-*") if p.is_dir() and step_of(p) is None
                 and not p.name.endswith(".tmp")]
        if stray:
            log.warning("ignoring %s in %s: not checkpoint-N folders", ", ".join(sorted(stray)), out)
    skipped, tried_loading = [], False
    for ck in reversed(list_checkpoints(out)):
        why = broken(ck)
        if why is None:
            try:
                acc.load_state(str(ck))
            except Exception as e:  # noqa: BLE001 - a file whole by size but unreadable fails in many ways
                tried_loading = True
                why = f"cannot load it ({type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]})"
        if why:
            skipped.append(f"{ck.name} ({why})")
            log.warning("skipping %s: %s", ck, why)
            continue
        if skipped:
            log.warning("resuming from %s, the newest intact checkpoint; skipped %s", ck.name, "; ".join(skipped))
        log.info("resumed from %s (step %d)", ck, step_of(ck))
        return ck
    if tried_loading:  # a failed load may have changed some weights: starting fresh from them would be wrong
        raise InputError(f"no checkpoint in {out} could be loaded (skipped {'; '.join(skipped)}); "
                         "remove the broken ones or choose a new --output_dir")
    if skipped:
        log.warning("no intact checkpoint in %s (skipped %s): starting fresh", out, "; ".join(skipped))
    else:
        log.info("no checkpoint in %s: starting fresh", out)
    return None
