"""Write a diffusers UNet, VAE and CLIP text encoder as one checkpoint in the original (LDM)
layout that single-file SD1.5 downloads use (model.diffusion_model.*, first_stage_model.*,
cond_stage_model.transformer.*), so that the single-file loader can be tested without
downloading one. Written from the layout of the LDM code (openaimodel.py, autoencoder.py),
for SD1.x-style configs of any width and depth.
"""
from __future__ import annotations

import torch

_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
           "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _rename(key: str, pairs: list[tuple[str, str]]) -> str:
    for old, new in pairs:
        if key.startswith(old):
            return new + key[len(old):]
    raise KeyError(key)


def _resnet_inside(rest: str) -> str:
    part, _, tail = rest.partition(".")
    return f"{_RESNET[part]}.{tail}"


def unet_to_ldm(unet) -> dict[str, torch.Tensor]:
    cfg = unet.config
    n, levels = cfg.layers_per_block, len(cfg.block_out_channels)
    prefix: list[tuple[str, str]] = [("conv_in.", "input_blocks.0.0."), ("time_embedding.linear_1.", "time_embed.0."),
                                     ("time_embedding.linear_2.", "time_embed.2."), ("conv_norm_out.", "out.0."),
                                     ("conv_out.", "out.2."), ("mid_block.resnets.0.", "middle_block.0."),
                                     ("mid_block.attentions.0.", "middle_block.1."), ("mid_block.resnets.1.", "middle_block.2.")]
    for i in range(levels):
        for j in range(n):
            k = 1 + i * (n + 1) + j
            prefix += [(f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{k}.0."),
                       (f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{k}.1.")]
        prefix.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{(i + 1) * (n + 1)}.0.op."))
        has_attn = "CrossAttn" in cfg.up_block_types[i]
        for j in range(n + 1):
            k = i * (n + 1) + j
            prefix += [(f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{k}.0."),
                       (f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{k}.1.")]
        prefix.append((f"up_blocks.{i}.upsamplers.0.", f"output_blocks.{i * (n + 1) + n}.{2 if has_attn else 1}."))
    out = {}
    for key, v in unet.state_dict().items():
        new = _rename(key, prefix)
        if ".resnets." in key:  # the block's own layers have other names too
            inside = key.split(".resnets.", 1)[1].split(".", 1)[1]
            new = new[: -len(inside)] + _resnet_inside(inside)
        out["model.diffusion_model." + new] = v
    return out


def vae_to_ldm(vae) -> dict[str, torch.Tensor]:
    levels = len(vae.config.block_out_channels)
    out = {}
    for key, v in vae.state_dict().items():
        new = key.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
        new = new.replace("mid_block.resnets.0.", "mid.block_1.").replace("mid_block.resnets.1.", "mid.block_2.")
        if "mid_block.attentions.0." in new:
            part = new.split("mid_block.attentions.0.")[1].rsplit(".", 1)[0]
            new = new.replace(f"mid_block.attentions.0.{part}", f"mid.attn_1.{_VAE_ATTN[part]}")
            if v.dim() == 2:  # LDM's attention projections are 1x1 convolutions
                v = v[:, :, None, None]
        for i in range(levels):
            new = new.replace(f"encoder.down_blocks.{i}.resnets.", f"encoder.down.{i}.block.")
            new = new.replace(f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample.")
            # the decoder's up blocks run in the opposite order in LDM's numbering
            new = new.replace(f"decoder.up_blocks.{i}.resnets.", f"decoder.up.{levels - 1 - i}.block.")
            new = new.replace(f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{levels - 1 - i}.upsample.")
        out["first_stage_model." + new] = v
    return out


def text_encoder_to_ldm(text_encoder) -> dict[str, torch.Tensor]:
    return {"cond_stage_model.transformer." + k: v for k, v in text_encoder.state_dict().items()}


def to_ldm_checkpoint(unet, vae, text_encoder) -> dict[str, torch.Tensor]:
    sd = {**unet_to_ldm(unet), **vae_to_ldm(vae), **text_encoder_to_ldm(text_encoder)}
    return {k: v.detach().contiguous().clone() for k, v in sd.items()}
