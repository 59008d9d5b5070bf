"""The generator's parts, SD1.5's structure at two sizes, built from config with random weights.

A generator is a diffusers-layout folder: ``unet/``, ``controlnet/``, ``vae/``,
``text_encoder/``, ``tokenizer/``, ``scheduler/``. The "sd15" configs are Stable Diffusion 1.5
and the canny ControlNet as published (860M UNet, 123M CLIP ViT-L text encoder, 84M VAE), so
the code that runs the tiny embedded generator is the code that runs a user's real weights;
tests and benchmarks build them here with random weights. The "tiny" configs keep every class
and block type and shrink widths and depths so that the whole generator trains on RF-Synth on a
CPU.
"""
from __future__ import annotations

import torch

# Stable Diffusion 1.5 (runwayml/stable-diffusion-v1-5 and lllyasviel/sd-controlnet-canny).
SD15 = {
    "unet": dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280, 1280), attention_head_dim=8,
                 cross_attention_dim=768,
                 down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                   "CrossAttnDownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                                 "CrossAttnUpBlock2D")),
    "controlnet": dict(conditioning_embedding_out_channels=(16, 32, 96, 256)),
    "vae": dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
                block_out_channels=(128, 256, 512, 512), sample_size=512, scaling_factor=0.18215,
                down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4),
    "text_encoder": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                         num_attention_heads=12, max_position_embeddings=77, vocab_size=49408,
                         hidden_act="quick_gelu", projection_dim=768),
    "resolution": 512,
}

# The embedded generator: 64 px images, 16 x 16 latents (the VAE downsamples 4x, not 8x, so a
# product of 20 px still covers 5 latent cells).
TINY = {
    "unet": dict(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
                 block_out_channels=(32, 64, 128), attention_head_dim=8, cross_attention_dim=64,
                 norm_num_groups=16,
                 down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D")),
    "controlnet": dict(conditioning_embedding_out_channels=(16, 32, 64)),
    "vae": dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1,
                block_out_channels=(32, 64, 64), sample_size=64, norm_num_groups=16,
                scaling_factor=1.0,  # replaced by 1/std of the training latents
                down_block_types=("DownEncoderBlock2D",) * 3,
                up_block_types=("UpDecoderBlock2D",) * 3),
    "text_encoder": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=48, hidden_act="quick_gelu",
                         projection_dim=64),
    "resolution": 64,
}

SIZES = {"sd15": SD15, "tiny": TINY}

# SD1.5's training schedule; DDIM with these betas is the paper's sampler.
SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                 beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                 steps_offset=1, prediction_type="epsilon")


def build_unet(size: str = "tiny"):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**SIZES[size]["unet"])


def build_controlnet(unet, size: str = "tiny"):
    """A ControlNet copied from ``unet``, as the ControlNet paper initialises it (and with
    zero convolutions, so that a fresh ControlNet leaves the UNet's output unchanged)."""
    from diffusers import ControlNetModel

    return ControlNetModel.from_unet(unet, **SIZES[size]["controlnet"])


def build_vae(size: str = "tiny"):
    from diffusers import AutoencoderKL

    return AutoencoderKL(**SIZES[size]["vae"])


def build_text_encoder(size: str = "tiny", vocab_size: int | None = None, pad_token_id: int = 0,
                       eos_token_id: int = 2):
    from transformers import CLIPTextConfig, CLIPTextModel

    cfg = dict(SIZES[size]["text_encoder"])
    if vocab_size is not None:
        cfg["vocab_size"] = vocab_size
    if size == "sd15":
        pad_token_id, eos_token_id = 1, 49407  # CLIP's own
    return CLIPTextModel(CLIPTextConfig(**cfg, pad_token_id=pad_token_id, eos_token_id=eos_token_id,
                                        bos_token_id=eos_token_id - 1 if eos_token_id else 0))


def build_scheduler(name: str = "DDIMScheduler"):
    import diffusers

    return getattr(diffusers, name)(**_scheduler_kwargs(name))


def _scheduler_kwargs(name: str) -> dict:
    import inspect

    import diffusers

    params = inspect.signature(getattr(diffusers, name).__init__).parameters
    return {k: v for k, v in SCHEDULER.items() if k in params}


def random_generator(size: str = "sd15", seed: int = 0, tokenizer=None):
    """All parts at ``size`` with random weights (for tests and benchmarks). A tokenizer is
    optional: without one the pipeline takes prompt ids or embeddings only."""
    torch.manual_seed(seed)
    unet = build_unet(size)
    vocab = len(tokenizer) if tokenizer is not None else None
    if size == "tiny" and vocab is None:
        vocab = 512
    parts = dict(unet=unet, controlnet=build_controlnet(unet, size), vae=build_vae(size),
                 text_encoder=build_text_encoder(size, vocab_size=vocab), tokenizer=tokenizer,
                 scheduler=build_scheduler())
    for k in ("unet", "controlnet", "vae", "text_encoder"):
        parts[k].eval().requires_grad_(False)
    return parts


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
