"""What the nodes need from ComfyUI, in one place, each a no-op (or a plain default) when
ComfyUI is not there: unit tests and the headless engine import the nodes without it.

Also: the conversions between ComfyUI's tensors (IMAGE float [B, H, W, C] in 0..1, MASK
[B, H, W]) and the engine's PIL images, and the model folders the loaders list.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import unicodedata
from pathlib import Path

import numpy as np
import torch
from PIL import Image

log = logging.getLogger("reliable_ad")

PACK_ROOT = Path(__file__).resolve().parents[1]
if str(PACK_ROOT) not in sys.path:  # the engine packages (rfnet, rfft, rfsynth) live beside nodes/
    sys.path.insert(0, str(PACK_ROOT))

# Model folders under ComfyUI's models/ (extra_model_paths.yaml may add more).
FOLDERS = {"rfnet": {".json", ".safetensors"}, "rf_depth": {".json", ".safetensors", ".pth", ".pt", ".bin"},
           "rf_salience": {".json", ".safetensors", ".pth", ".pt", ".bin"}}


# Modules the engine needs beyond what ComfyUI ships, and the pip name of each.
PIP_NAMES = {"cv2": "opencv-python-headless", "timm": "timm", "transformers": "transformers",
             "safetensors": "safetensors", "diffusers": "diffusers", "peft": "peft"}


def require(*modules: str) -> None:
    """Raise ImportError naming the pip package when a module is not installed, without
    importing anything (ComfyUI's start-up stays fast): a node module calls this at its top,
    so load_nodes() leaves out only that module, with a line saying what to install."""
    import importlib.util

    for m in modules:
        if importlib.util.find_spec(m) is None:
            pip = PIP_NAMES.get(m, m)
            raise ImportError(f"No module named {m!r}", name=pip)


def _folder_paths():
    try:
        import folder_paths  # ComfyUI's

        return folder_paths
    except ImportError:
        return None


def register_folders() -> None:
    """Register models/rfnet, models/rf_depth, models/rf_salience with ComfyUI, keeping every
    path extra_model_paths.yaml registered already, and set their extensions (a key that
    add_model_folder_path creates has none, which would list every file)."""
    fp = _folder_paths()
    if fp is None:
        return
    for name, exts in FOLDERS.items():
        fp.add_model_folder_path(name, os.path.join(fp.models_dir, name))
        paths, old = fp.folder_names_and_paths[name]
        fp.folder_names_and_paths[name] = (paths, set(old) | exts)


def model_dirs(kind: str) -> list[Path]:
    fp = _folder_paths()
    if fp is None:
        return [Path(p) for p in os.environ.get("RF_MODELS_DIR", "").split(os.pathsep) if p]
    try:
        return [Path(p) for p in fp.get_folder_paths(kind)]
    except KeyError:
        return []


def list_models(kind: str, model_files: tuple[str, ...] = ("config.json",), files: tuple[str, ...] = ()) -> list[str]:
    """Model folders (holding one of ``model_files``) and single files with a suffix in
    ``files``, found in the registered folders of ``kind``; names relative to their folder."""
    out = []
    for d in model_dirs(kind):
        if not d.is_dir():
            continue
        for p in sorted(d.rglob("*")):
            rel = p.relative_to(d).as_posix()
            if p.is_dir() and any((p / m).exists() for m in model_files):
                out.append(rel)
            elif p.is_file() and p.suffix.lower() in files:
                out.append(rel)
    return sorted(set(out))


def resolve_model(kind: str, name: str) -> Path:
    """A name from a loader's list to its path, inside one of the registered folders: a name
    that climbs out (``..``, an absolute path) is refused."""
    from rfnet.weights import WeightsNotFoundError

    dirs = model_dirs(kind)
    for d in dirs:
        p = safe_join(d, name)
        if p is not None and p.exists():
            return p
    what = MODEL_KINDS.get(kind, "the model")
    raise WeightsNotFoundError(
        name, dirs or [f"ComfyUI/models/{kind}"],
        advice=f"Put {what} in ComfyUI/models/{kind}/ (for example ComfyUI/models/{kind}/{name}), then press R "
               f"in the browser to refresh the lists and pick it in the loader again. Folder and file names may "
               f"be Chinese and contain spaces.")


# what a designer puts in each models/ folder, for the missing-model message
MODEL_KINDS = {
    "rfnet": "the RFNet folder (config.json, model.safetensors and tokenizer/, as Train RFNet or "
             "python -m rfnet.train writes it)",
    "rf_depth": "the depth model folder (a transformers DPT or Depth Anything folder)",
    "rf_salience": "the salience model file (u2net.pth or u2netp.pth)",
    "controlnet": "the ControlNet (a diffusers folder, or a single .safetensors file)",
    "diffusers": "the Stable Diffusion 1.5 folder in diffusers format (model_index.json, unet/, vae/, ...)",
}


def safe_join(base: str | Path, name: str) -> Path | None:
    """``base/name`` when it stays inside ``base``, else None."""
    base = Path(base).resolve()
    p = (base / name).resolve()
    return p if p == base or base in p.parents else None


# Path separators, characters Windows forbids in names, and control characters. Anything else
# (Chinese, spaces) is a name designers type and keeps.
_UNSAFE_IN_NAME = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]+')
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


def safe_name(name: str, default: str = "feedback") -> str:
    """A folder name typed in a widget, made one plain name under an output folder: separators
    and '..' cannot climb out; Chinese characters and spaces stay ("红色 香水" is a good name)."""
    name = unicodedata.normalize("NFC", name or "")
    name = _UNSAFE_IN_NAME.sub("_", name).strip(" ._")[:100].rstrip(" .")
    if name.split(".")[0].upper() in _WINDOWS_RESERVED:
        name = "_" + name
    return name or default


def output_dir() -> Path:
    fp = _folder_paths()
    return Path(fp.get_output_directory()) if fp else Path.cwd() / "output"


def input_dir() -> Path:
    fp = _folder_paths()
    return Path(fp.get_input_directory()) if fp else Path.cwd() / "input"


def temp_dir() -> Path:
    fp = _folder_paths()
    return Path(fp.get_temp_directory()) if fp else Path.cwd() / "temp"


# ---- device, progress, cancel ------------------------------------------------------------------
def torch_device() -> torch.device:
    try:
        import comfy.model_management as mm

        return mm.get_torch_device()
    except ImportError:
        return torch.device("cpu")


def intermediate_device() -> torch.device:
    try:
        import comfy.model_management as mm

        return mm.intermediate_device()
    except ImportError:
        return torch.device("cpu")


def check_cancel() -> None:
    """Raises ComfyUI's interruption when the user pressed cancel; nothing outside ComfyUI."""
    try:
        import comfy.model_management as mm
    except ImportError:
        return
    mm.throw_exception_if_processing_interrupted()


def progress_text(text: str, node_id) -> None:
    if node_id is None:
        return
    try:
        from server import PromptServer

        PromptServer.instance.send_progress_text(text, node_id)
    except (ImportError, AttributeError):
        log.info("[reliable_ad] %s", text)


def node_status(node_id, text: str, colour: str = "grey") -> None:
    """A line of status for the node's badge (web/reliable_ad.js draws it above the title). Not
    ComfyUI's progress text: the front end draws that over the node's image preview."""
    if node_id is None:
        return
    try:
        from server import PromptServer

        srv = PromptServer.instance
        srv.send_sync("reliable_ad.status", {"node": str(node_id), "text": text, "colour": colour}, srv.client_id)
    except (ImportError, AttributeError):
        log.info("[reliable_ad] %s", text)


class Progress:
    """comfy.utils.ProgressBar (also a cancel point in the server), or nothing."""

    def __init__(self, total: int, node_id=None):
        self.total, self.current = total, 0
        try:
            import comfy.utils

            self.bar = comfy.utils.ProgressBar(total, node_id=node_id)
        except ImportError:
            self.bar = None

    def update(self, n: int = 1, preview=None) -> None:
        self.set(self.current + n, preview)

    def set(self, value: int, preview=None) -> None:
        """Progress at ``value`` of ``total``; ``preview`` is ComfyUI's ("JPEG"/"PNG", PIL image, max size)."""
        self.current = max(0, min(int(value), self.total))
        if self.bar is not None:
            self.bar.update_absolute(self.current, None, preview)


class ManagedModule:
    """An engine model (RFNet with its estimators) that ComfyUI's model management loads onto
    the GPU when a node needs it and moves off when it frees memory."""

    def __init__(self, module: torch.nn.Module):
        self.module = module
        self.patcher = None
        try:
            import comfy.model_management as mm
            import comfy.model_patcher

            self.patcher = comfy.model_patcher.ModelPatcher(module, load_device=mm.get_torch_device(),
                                                            offload_device=mm.unet_offload_device())
        except ImportError:
            pass

    def load(self) -> torch.device:
        if self.patcher is None:
            return torch.device("cpu")
        import comfy.model_management as mm

        mm.load_models_gpu([self.patcher])
        return self.patcher.load_device


# ---- tensors and images ------------------------------------------------------------------------
def image_to_pils(image: torch.Tensor, mask: torch.Tensor | None = None) -> list[Image.Image]:
    """ComfyUI IMAGE [B, H, W, C] (and LoadImage's MASK, 1 where transparent) to PIL images,
    RGBA where a mask is given."""
    arr = (image.detach().float().cpu().clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    out = []
    for i in range(arr.shape[0]):
        a = arr[i][..., :3]
        if mask is not None:
            m = mask[min(i, mask.shape[0] - 1)] if mask.dim() == 3 else mask
            m = m.detach().float().cpu()
            if tuple(m.shape) != a.shape[:2]:
                m = torch.nn.functional.interpolate(m[None, None], size=a.shape[:2], mode="bilinear")[0, 0]
            alpha = ((1 - m.clamp(0, 1)).numpy() * 255).round().astype(np.uint8)
            out.append(Image.fromarray(np.dstack([a, alpha]), "RGBA"))
        elif arr[i].shape[-1] == 4:
            out.append(Image.fromarray(arr[i], "RGBA"))
        else:
            out.append(Image.fromarray(a, "RGB"))
    return out


def pils_to_image(images) -> torch.Tensor:
    arrs = [np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0 for im in images]
    return torch.from_numpy(np.stack(arrs))


def alpha_to_mask(images) -> torch.Tensor:
    """ComfyUI's MASK convention for cutouts (LoadImage): 1 where transparent."""
    return torch.from_numpy(np.stack([1.0 - np.asarray(im.convert("RGBA"))[..., 3].astype(np.float32) / 255.0
                                      for im in images]))


def array_mask(masks) -> torch.Tensor:
    return torch.from_numpy(np.stack([np.asarray(m, dtype=np.float32) for m in masks]))
