"""The paper's inpainting pipeline (eq. 1-2): SD1.5 UNet + canny ControlNet + VAE + CLIP text
encoder, DDIM, classifier-free guidance, and the product's latent put back outside the inpaint
mask at every step.

One class runs a user's real SD1.5 and the tiny embedded generator: they differ only in the
configs of their parts. Loading takes a diffusers folder (``unet/``, ``vae/``, ...), a
single-file SD1.5 checkpoint with a local config folder, or ``"embedded"``.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from rfnet.errors import InputError

from .placement import Placement

EMBEDDED = Path(__file__).resolve().parent / "embedded" / "generator-synth-tiny"
PARTS = ("unet", "controlnet", "vae", "text_encoder", "tokenizer", "scheduler")


# The embedded generator's ControlNet fine-tuned by RFFT (issue 18), chosen by name beside the
# original: ``--controlnet embedded-rfft``
EMBEDDED_RFFT = Path(__file__).resolve().parent / "embedded" / "controlnet-rfft-tiny"
CONTROLNET_NAMES = {"embedded-rfft": EMBEDDED_RFFT}


class GeneratorNotFoundError(FileNotFoundError):
    pass


def resolve_controlnet(controlnet):
    """A ControlNet folder as given, or the folder of a named one (``embedded-rfft``), which
    must be there; None stays None (the generator's own ControlNet)."""
    if controlnet is None or str(controlnet) not in CONTROLNET_NAMES:
        return controlnet
    folder = CONTROLNET_NAMES[str(controlnet)]
    missing = [f for f in ("config.json", "diffusion_pytorch_model.safetensors") if not (folder / f).is_file()]
    if missing:
        raise GeneratorNotFoundError(
            f"--controlnet {controlnet}: {', '.join(missing)} missing from {folder}. The RFFT-tuned ControlNet "
            "ships there once RFFT raises the available rate (docs/RESULTS.md, issue 18); reinstall the pack, "
            "or leave out --controlnet to use the original one")
    return folder


# ---------------------------------------------------------------------------------------------
# checks before loading: a user's bad folder is one line naming the file, in seconds, not a
# traceback from deep inside diffusers after minutes of loading
def read_json_object(path: Path, what: str) -> dict:
    if not path.is_file():
        raise GeneratorNotFoundError(f"{what}: {path} is missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{what}: {path} is not valid JSON ({e}); download or export it again") from None
    if not isinstance(data, dict):
        raise InputError(f"{what}: {path} is a JSON {type(data).__name__}, not an object; "
                         "download or export it again")
    return data


def check_safetensors(path: str | Path) -> None:
    """A .safetensors file whose header parses and whose size matches the header: catches a
    truncated download or a garbage file by reading its first bytes only."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 < n <= min(size - 8, 100 << 20):
            raise InputError(f"{path} is not a safetensors file (or is truncated: {size} bytes); "
                             "download or export it again")
        try:
            header = json.loads(f.read(n))
            end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
            raise InputError(f"{path}: its safetensors header is garbage ({type(e).__name__}); "
                             "download or export it again") from None
    if size != 8 + n + end:
        what = "truncated" if size < 8 + n + end else "longer than its header says"
        raise InputError(f"{path} is {what} ({size} bytes, {8 + n + end} expected); download or export it again")


def _check_part(folder: Path, what: str) -> dict:
    """A diffusers/transformers model folder: config.json and a weight file; returns the config."""
    if not folder.is_dir():
        raise GeneratorNotFoundError(f"{what}: {folder} is missing (a diffusers model folder)")
    cfg = read_json_object(folder / "config.json", what)
    weights = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin"))
    if not weights:
        raise GeneratorNotFoundError(f"{what}: no weight file (*.safetensors or *.bin) in {folder}")
    for w in weights:
        if w.suffix == ".safetensors":
            check_safetensors(w)
    return cfg


def check_generator(path="embedded", controlnet=None, config=None) -> dict:
    """Everything :func:`load_parts` needs, checked without reading a weight: folders, JSON
    configs, complete safetensors files. Returns ``latent_factor`` (the VAE's) and
    ``sample_size`` (the UNet's latent side), so a canvas can be checked before loading."""
    root = _resolve(path)
    controlnet = resolve_controlnet(controlnet)
    if root.is_file():
        if config is None or controlnet is None:
            raise GeneratorNotFoundError(
                f"{root} is a single-file checkpoint: also pass a local SD1.5 config folder (--config) "
                "and a canny ControlNet folder (--controlnet)")
        if root.suffix == ".safetensors":
            check_safetensors(root)
        cfg_root = Path(config)
        if not cfg_root.is_dir():
            raise GeneratorNotFoundError(f"config folder not found: {cfg_root}")
        unet = read_json_object(cfg_root / "unet" / "config.json", "the SD1.5 config folder")
        vae = read_json_object(cfg_root / "vae" / "config.json", "the SD1.5 config folder")
        sub = cfg_root
    else:
        if not (root / "model_index.json").is_file():
            raise GeneratorNotFoundError(
                f"{root}: model_index.json is missing; not a diffusers pipeline folder (save one with "
                "diffusers' save_pretrained, or pass a single-file checkpoint with --config)")
        unet = _check_part(root / "unet", "the generator's UNet")
        vae = _check_part(root / "vae", "the generator's VAE")
        _check_part(root / "text_encoder", "the generator's text encoder")
        sub = root
    if not (sub / "tokenizer").is_dir():
        raise GeneratorNotFoundError(f"the generator's tokenizer: {sub / 'tokenizer'} is missing")
    read_json_object(sub / "scheduler" / "scheduler_config.json", "the generator's scheduler")
    cn = Path(controlnet) if controlnet is not None else root / "controlnet"
    if not (cn / "config.json").exists():
        raise GeneratorNotFoundError(
            f"no ControlNet at {cn}: pass a canny ControlNet folder (diffusers format, e.g. "
            "lllyasviel/sd-controlnet-canny downloaded by hand)")
    _check_part(cn, "the ControlNet")
    try:
        factor = 2 ** (len(vae["block_out_channels"]) - 1)
        sample = int(unet["sample_size"])
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{path}: the VAE's config has no block_out_channels list or the UNet's no "
                         "sample_size; is it an SD1.x generator?") from None
    return {"latent_factor": factor, "sample_size": sample}


def first_line(e: BaseException) -> str:
    """An exception's first line (library errors can run to pages), or its type."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def check_scheduler(name: str):
    """A diffusers scheduler class by name, or an InputError listing some."""
    import diffusers

    cls = getattr(diffusers, name, None) if isinstance(name, str) and name.endswith("Scheduler") else None
    if cls is None:
        raise InputError(f"unknown scheduler {name!r}; use a diffusers class name such as "
                         "DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler")
    return cls


# ---------------------------------------------------------------------------------------------
# saving and loading
def save_generator(dst: str | Path, unet, controlnet, vae, text_encoder, tokenizer, scheduler,
                   extra: dict | None = None, dtype: torch.dtype | None = None) -> Path:
    """Write a diffusers-layout folder atomically (a temporary folder, renamed at the end)."""
    from rfnet.fileio import atomic_dir

    dst = Path(dst)
    with atomic_dir(dst) as tmp:
        for name, m in (("unet", unet), ("controlnet", controlnet), ("vae", vae), ("text_encoder", text_encoder)):
            m = m if dtype is None else _cast_copy(m, dtype)
            m.save_pretrained(tmp / name, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp / "tokenizer")
        scheduler.save_pretrained(tmp / "scheduler")
        index = {"_class_name": "StableDiffusionControlNetInpaintPipeline", "_rfft": extra or {},
                 "unet": ["diffusers", "UNet2DConditionModel"], "controlnet": ["diffusers", "ControlNetModel"],
                 "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"],
                 "tokenizer": ["transformers", type(tokenizer).__name__ if tokenizer is not None else None],
                 "scheduler": ["diffusers", type(scheduler).__name__]}
        (tmp / "model_index.json").write_text(json.dumps(index, indent=1))
    return dst


def _cast_copy(m, dtype):
    import copy

    return copy.deepcopy(m).to(dtype)


def _resolve(path) -> Path:
    if path in (None, "embedded"):
        if not (EMBEDDED / "unet").exists():
            raise GeneratorNotFoundError(
                f"the embedded generator is missing from {EMBEDDED}; reinstall the pack, or pass "
                "a diffusers SD1.5 folder")
        return EMBEDDED
    p = Path(path).expanduser()
    if not p.exists():
        raise GeneratorNotFoundError(
            f"generator not found: {p}. Pass a diffusers folder (with unet/, vae/, text_encoder/, "
            "tokenizer/, scheduler/), a single-file SD1.5 checkpoint with --config, or 'embedded'.")
    return p


def load_parts(path="embedded", controlnet=None, config=None, dtype=torch.float32, controlnet_dtype=None) -> dict:
    """The generator's parts from a diffusers folder, a single-file checkpoint (``config``: a
    local diffusers folder of configs, as SD1.5's), or the embedded generator. ``controlnet``
    overrides the folder's own ControlNet (a diffusers ControlNet folder). ``controlnet_dtype``
    (default ``dtype``): RFFT loads the frozen parts straight in bfloat16, never as a float32
    copy, and the ControlNet it trains in float32."""
    from diffusers import ControlNetModel, DDIMScheduler

    root = _resolve(path)
    controlnet = resolve_controlnet(controlnet)
    if root.is_file():
        return _load_single_file(root, controlnet, config, dtype, controlnet_dtype or dtype)
    cn = Path(controlnet) if controlnet is not None else root / "controlnet"
    if not (cn / "config.json").exists():
        raise GeneratorNotFoundError(
            f"no ControlNet at {cn}: pass a canny ControlNet folder (diffusers format, e.g. "
            "lllyasviel/sd-controlnet-canny downloaded by hand)")
    # diffusers reads model_index.json and loads each part with its class; components the
    # folder has and this pipeline does not take (an SD1.5 folder's safety checker) are left out
    pipe = AdInpaintPipeline.from_pretrained(
        root, controlnet=ControlNetModel.from_pretrained(cn, torch_dtype=controlnet_dtype or dtype, local_files_only=True),
        dtype=dtype, local_files_only=True)
    parts = dict(pipe.components)
    # the paper's sampler whatever the folder names (SD1.5's own is PNDM); RFFT's step assumes DDIM
    parts["scheduler"] = DDIMScheduler.from_config(parts["scheduler"].config)
    return parts


def _load_single_file(ckpt: Path, controlnet, config, dtype, controlnet_dtype) -> dict:
    """SD1.5 as one .safetensors/.ckpt file. The state dict is read by our safe loader
    (safetensors, or torch.load with weights_only) and handed to diffusers' converters with a
    local config folder, so nothing is downloaded."""
    from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, UNet2DConditionModel
    from transformers import AutoTokenizer, CLIPTextModel

    from rfnet.weights import load_state_dict

    if config is None:
        raise GeneratorNotFoundError(
            f"{ckpt} is a single-file checkpoint: also pass a local SD1.5 config folder (the "
            "diffusers layout with unet/config.json, vae/config.json, text_encoder/, tokenizer/, "
            "scheduler/; weights there are not needed)")
    if controlnet is None:  # before reading gigabytes
        raise GeneratorNotFoundError("a single-file checkpoint needs a ControlNet: pass --controlnet DIR")
    sd = load_state_dict(ckpt)
    sd = sd.get("state_dict", sd) if isinstance(sd.get("state_dict"), dict) else sd
    cfg = Path(config)
    kw = dict(config=str(cfg), torch_dtype=dtype, local_files_only=True)
    parts = dict(
        unet=UNet2DConditionModel.from_single_file(sd, subfolder="unet", **kw),
        vae=AutoencoderKL.from_single_file(sd, subfolder="vae", **kw),
        tokenizer=AutoTokenizer.from_pretrained(cfg / "tokenizer", local_files_only=True),
        scheduler=DDIMScheduler.from_pretrained(cfg, subfolder="scheduler", local_files_only=True),
    )
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint

    # the checkpoint's own text encoder (fine-tuned checkpoints change it too); the config
    # folder's weights only for files that carry none
    if any(k.startswith("cond_stage_model.transformer.") for k in sd):
        from transformers import CLIPTextConfig

        te = CLIPTextModel(CLIPTextConfig.from_pretrained(cfg / "text_encoder", local_files_only=True))
        missing, unexpected = te.load_state_dict(convert_ldm_clip_checkpoint(sd), strict=False)
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing:
            raise GeneratorNotFoundError(f"{ckpt}: the text encoder in this checkpoint does not match "
                                         f"{cfg / 'text_encoder'} ({len(missing)} weights missing, e.g. "
                                         f"{missing[0]}); is it an SD1.x checkpoint?")
        te.to(dtype)
    else:
        te = CLIPTextModel.from_pretrained(cfg, subfolder="text_encoder", torch_dtype=dtype, local_files_only=True)
    parts["text_encoder"] = te
    parts["controlnet"] = ControlNetModel.from_pretrained(controlnet, torch_dtype=controlnet_dtype, local_files_only=True)
    return parts


# ---------------------------------------------------------------------------------------------
@dataclass
class GenerationOutput:
    images: list  # PIL RGB, the product pasted back
    raw: list  # PIL RGB, as decoded
    seeds: list[int]
    prompt: str
    negative_prompt: str
    seconds: float
    trace: list = field(default_factory=list)  # (step, t, latents) when trace=True
    # per image: True where the decoded pixels held NaN (a broken ControlNet or LoRA, an
    # overflow); such an image is shown black, and its caller decides (skip, drop, count)
    nonfinite: list = field(default_factory=list)


from diffusers import DiffusionPipeline  # noqa: E402  (after the light helpers above)
from diffusers.loaders import StableDiffusionLoraLoaderMixin  # noqa: E402


class AdInpaintPipeline(DiffusionPipeline, StableDiffusionLoraLoaderMixin):
    """SD1.5 + canny ControlNet inpainting around a fixed product (eq. 1-2)."""

    _optional_components = ["tokenizer"]

    def __init__(self, unet, controlnet, vae, text_encoder, tokenizer, scheduler):
        super().__init__()
        self.register_modules(unet=unet, controlnet=controlnet, vae=vae, text_encoder=text_encoder,
                              tokenizer=tokenizer, scheduler=scheduler)
        for m in (unet, controlnet, vae, text_encoder):
            m.eval().requires_grad_(False)

    # ---- loading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, path="embedded", controlnet=None, config=None, device="cpu",
             dtype: torch.dtype | None = None) -> "AdInpaintPipeline":
        """From a diffusers folder, a single-file checkpoint (with ``config``) or "embedded".
        fp16 weights (the embedded ones) run in fp32 on a CPU, which has no fast fp16."""
        dev = torch.device(device)
        if dtype is None:
            dtype = torch.float16 if dev.type == "cuda" else torch.float32
        try:
            parts = load_parts(path, controlnet, config, dtype)
        except (GeneratorNotFoundError, InputError):
            raise
        except (OSError, ValueError, RuntimeError, KeyError) as e:
            # diffusers/transformers/safetensors: a file that passed check_generator but still
            # does not load (wrong shapes, a pickle that is not a state dict); one line, named
            raise InputError(f"cannot load the generator {path}"
                             f"{f' with ControlNet {controlnet}' if controlnet else ''}: {first_line(e)}") from e
        return cls(**parts).to(dev)

    def set_scheduler(self, name: str) -> None:
        """Any diffusers scheduler by class name (DDIMScheduler, EulerDiscreteScheduler, ...)."""
        self.scheduler = check_scheduler(name).from_config(self.scheduler.config)

    def add_lora(self, path, scale: float = 1.0, name: str | None = None) -> str:
        """A LoRA (diffusers, peft or kohya format) on the UNet and text encoder at ``scale``;
        several stack. The file is read by our safe loader; needs ``peft``."""
        from rfnet.weights import load_state_dict

        self._loras = getattr(self, "_loras", {})
        name = name or f"lora{len(self._loras)}"
        if not Path(path).is_file():
            raise FileNotFoundError(f"LoRA file not found: {path}")
        try:
            self.load_lora_weights(load_state_dict(path), adapter_name=name)
        except InputError:
            raise
        except (OSError, ValueError, RuntimeError, KeyError) as e:  # a file that is not a LoRA
            raise InputError(f"cannot load the LoRA {path}: {first_line(e)}") from e
        self._loras[name] = float(scale)
        self.set_adapters(list(self._loras), adapter_weights=list(self._loras.values()))
        return name

    # ---- parts of one run --------------------------------------------------------------------
    @property
    def latent_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @torch.no_grad()
    def encode_prompt(self, prompts: Sequence[str]) -> torch.Tensor:
        cache = getattr(self, "_prompt_cache", {})
        if prompts and all(q in cache for q in prompts):
            return torch.stack([cache[q] for q in prompts])
        if self.text_encoder is None:
            missing = next(q for q in prompts if q not in cache)
            raise ValueError(f"the text encoder was released and {missing!r} was not cached: pass every "
                             "prompt to cache_prompts() before releasing it")
        tok = self.tokenizer
        ids = tok(list(prompts), padding="max_length", max_length=tok.model_max_length, truncation=True,
                  return_tensors="pt").input_ids.to(self.device)
        return self.text_encoder(ids)[0]

    def cache_prompts(self, prompts: Sequence[str], release_text_encoder: bool = False) -> int:
        """Encode these prompts once and keep their embeddings. With ``release_text_encoder``
        the text encoder is dropped (RFFT at SD1.5 scale: 0.25 GB of bfloat16 weights); only
        cached prompts can be encoded afterwards. Returns how many prompts are cached."""
        cache = self.__dict__.setdefault("_prompt_cache", {})
        todo = [q for q in dict.fromkeys(prompts) if q not in cache]
        for i in range(0, len(todo), 16):
            for q, e in zip(todo[i:i + 16], self.encode_prompt(todo[i:i + 16])):
                cache[q] = e
        if release_text_encoder:
            self.register_modules(text_encoder=None)
        return len(cache)

    @torch.no_grad()
    def encode_image(self, image: Image.Image) -> torch.Tensor:
        x = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)[None].float() / 127.5 - 1
        x = x.to(self.device, self.vae.dtype)
        return self.vae.encode(x).latent_dist.mean * self.vae.config.scaling_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents to images in [0, 1], (B, 3, H, W); differentiable (RFFT decodes with grad)."""
        # the frozen VAE runs in its own dtype even under autocast: autocast would run every
        # GroupNorm and its SiLU in float32, doubling the full-resolution maps that backward
        # keeps (RFFT at 512 px); without autocast nothing changes
        with torch.autocast(latents.device.type, enabled=False):
            x = self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor).sample
        return (x.float() / 2 + 0.5).clamp(0, 1)

    def latent_mask(self, placement: Placement) -> torch.Tensor:
        """1 where the latent is generated. A latent cell keeps the product only when all of its
        pixels are product (a min-pool of the kept region), so no background leaks in."""
        f = self.latent_factor
        keep = torch.from_numpy(1.0 - placement.inpaint_mask)[None, None].float()
        keep = -torch.nn.functional.max_pool2d(-keep, f, f)
        return (1.0 - keep).to(self.device)

    def control_tensor(self, placement: Placement, n: int) -> torch.Tensor:
        c = torch.from_numpy(np.array(placement.control)).permute(2, 0, 1)[None].float() / 255.0
        return c.expand(n, -1, -1, -1).to(self.device, self.controlnet.dtype)

    def predict_noise(self, latents, t, text_embeds, control, cond_scale: float = 1.0,
                      controlnet=None, unet=None) -> torch.Tensor:
        """One UNet + ControlNet call without guidance (RFFT's eq. 7-8 are built from these)."""
        controlnet = controlnet or self.controlnet
        unet = unet or self.unet
        # diffusers' ``.dtype`` walks the module's parameters on every read (about 10% of a
        # 64-px image's generation time when read per residual), so each is read once
        cdt, udt = controlnet.dtype, unet.dtype
        x = self.scheduler.scale_model_input(latents, t)
        down, mid = controlnet(x.to(cdt), t, encoder_hidden_states=text_embeds.to(cdt),
                               controlnet_cond=control, conditioning_scale=cond_scale, return_dict=False)
        # a ControlNet trained in float32 (accelerate returns its outputs in float32 under mixed
        # precision) feeds a bfloat16 UNet: its residuals take the UNet's dtype
        return unet(x.to(udt), t, encoder_hidden_states=text_embeds.to(udt),
                    down_block_additional_residuals=[d.to(udt) for d in down],
                    mid_block_additional_residual=mid.to(udt)).sample

    def guided_noise(self, latents, t, cond, uncond, control, guidance: float, cond_scale: float = 1.0,
                     controlnet=None) -> torch.Tensor:
        """Classifier-free guidance in one batched call: eps_u + g (eps_c - eps_u)."""
        if guidance <= 1.0:
            return self.predict_noise(latents, t, cond, control, cond_scale, controlnet)
        eps = self.predict_noise(torch.cat([latents, latents]), t, torch.cat([uncond, cond]),
                                 torch.cat([control, control]), cond_scale, controlnet)
        eu, ec = eps.chunk(2)
        return eu + guidance * (ec - eu)

    def keep_product(self, latents, z_product, noise, mask, t) -> torch.Tensor:
        """Eq. 2: outside the inpaint mask the latent is the product's, noised to level t
        (clean when t is None, after the last step)."""
        z = z_product if t is None else self.scheduler.add_noise(z_product, noise, torch.as_tensor([t]))
        return mask * latents + (1 - mask) * z.to(latents.dtype)

    def initial_noise(self, seeds: Sequence[int], shape) -> torch.Tensor:
        # Drawn on the CPU, one generator per seed, so an image's seed reproduces it on any
        # device and in any batch (diffusers' randn_tensor with a list of generators).
        from diffusers.utils.torch_utils import randn_tensor

        gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
        return randn_tensor((len(gens), *shape[1:]), generator=gens, device=torch.device("cpu"))

    # ---- a whole run -------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, placement: Placement, prompt: str, negative_prompt: str = "",
                 num_images: int = 1, seeds: Sequence[int] | None = None, num_inference_steps: int = 40,
                 guidance_scale: float = 7.5, controlnet_conditioning_scale: float = 1.0,
                 callback: Callable | None = None, trace: bool = False,
                 progress: bool = False) -> GenerationOutput:
        t0 = time.time()
        seeds = list(seeds) if seeds is not None else [int(s) for s in np.random.SeedSequence().generate_state(num_images)]
        n = len(seeds)
        W, H = placement.size
        f = self.latent_factor
        if W % f or H % f:
            raise ValueError(f"the canvas ({W}x{H}) must be a multiple of {f}, the VAE's factor")
        cond = self.encode_prompt([prompt]).expand(n, -1, -1)
        uncond = self.encode_prompt([negative_prompt]).expand(n, -1, -1)
        control = self.control_tensor(placement, n)
        mask = self.latent_mask(placement)
        z_product = self.encode_image(placement.product_image()).expand(n, -1, -1, -1)
        shape = (1, self.unet.config.in_channels, H // f, W // f)
        noise = self.initial_noise(seeds, shape).to(self.device, z_product.dtype)
        self.scheduler.set_timesteps(num_inference_steps, device=self.device)
        timesteps = self.scheduler.timesteps
        latents = noise * self.scheduler.init_noise_sigma
        latents = self.keep_product(latents, z_product, noise, mask, timesteps[0])
        out_trace = []
        it = enumerate(timesteps)
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(it, total=len(timesteps), desc="denoise", leave=False)
        for i, t in it:
            eps = self.guided_noise(latents, t, cond, uncond, control, guidance_scale,
                                    controlnet_conditioning_scale)
            latents = self.scheduler.step(eps, t, latents).prev_sample
            nxt = timesteps[i + 1] if i + 1 < len(timesteps) else None
            latents = self.keep_product(latents, z_product, noise, mask, nxt)
            if trace:
                out_trace.append((i, None if nxt is None else int(nxt), latents.clone()))
            if callback is not None:
                callback(i, t, latents)
        images = self.decode(latents)
        nonfinite = (~torch.isfinite(images)).flatten(1).any(1).tolist()
        images = torch.nan_to_num(images, nan=0.0)  # decode clamps, so only NaN is left; cast safely
        raw = [Image.fromarray((x.permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8))
               for x in images]
        return GenerationOutput(images=[placement.paste_back(r) for r in raw], raw=raw, seeds=seeds,
                                prompt=prompt, negative_prompt=negative_prompt,
                                seconds=time.time() - t0, trace=out_trace, nonfinite=nonfinite)
