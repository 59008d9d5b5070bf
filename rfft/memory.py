"""Memory measures for RFFT at SD1.5 scale beyond diffusers' own gradient checkpointing.

diffusers checkpoints the VAE decoder one up block at a time; at 512 px the last blocks hold
three ResNet blocks at full resolution whose recomputed activations (GroupNorm runs in float32
under autocast) peak near 2 GB during backward. Checkpointing each ResNet block and attention
block on its own lowers that peak to one block's activations; the result and the gradients are
the same (recomputation is exact).

The judge (depth, salience, RFNet) holds its activations from the forward pass until backward
reaches it, on top of the decoder's; checkpointing each of its three networks keeps only their
inputs, so backward holds one network's activations at a time.
"""
from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint


def _recomputed(fn):
    """``fn`` recomputed in backward instead of keeping its activations, when gradients are
    being recorded; plainly called otherwise (inference pays nothing)."""
    def run(*args, **kwargs):
        if torch.is_grad_enabled():
            return checkpoint(fn, *args, use_reentrant=False, **kwargs)
        return fn(*args, **kwargs)
    return run


def checkpoint_each(modules) -> int:
    """Recompute each module's forward in backward instead of keeping its activations. Only
    when gradients are being recorded; returns how many modules were wrapped."""
    n = 0
    for m in modules:
        if getattr(m, "_rfft_checkpointed", False):
            continue
        m.forward = _recomputed(m.forward)
        m._rfft_checkpointed = True
        n += 1
    return n


def _fuse_norm_act(resnet) -> bool:
    """Inside a ResNet block, run each GroupNorm and the activation after it as one nested
    recomputed segment, so that the block's recomputation in backward keeps the activation's
    output (the conv needs it) but not the GroupNorm's (float32 under CUDA autocast). Only for
    blocks where the activation follows the norm directly: no time embedding, no resampling."""
    if getattr(resnet, "_rfft_norm_act_fused", False) or not hasattr(resnet, "nonlinearity"):
        return False
    if resnet.time_emb_proj is not None or resnet.upsample is not None or resnet.downsample is not None:
        return False
    act = resnet.nonlinearity
    for norm in (resnet.norm1, resnet.norm2):
        norm.forward = _recomputed(lambda x, _norm=norm.forward: act(_norm(x)))
    # forward() applies self.nonlinearity after each norm: it now passes through (the module
    # has no weights, so the state dict is unchanged)
    resnet.nonlinearity = torch.nn.Identity()
    resnet._rfft_norm_act_fused = True
    return True


def checkpoint_vae_decoder(vae) -> int:
    """Each ResNet and attention block of the decoder, in place of diffusers' per-up-block
    checkpointing (nesting both would recompute twice), and its full-resolution tail (GroupNorm,
    SiLU, conv_out) as one segment: kept, that tail holds three 512 x 512 maps, two in float32.
    Inside each ResNet block, each GroupNorm with its activation is a nested segment: at 512 px
    the full-resolution blocks set the backward peak of an RFFT step (docs/BENCHMARKS.md), and
    not keeping their GroupNorm outputs lowers it."""
    dec = vae.decoder
    dec.gradient_checkpointing = False
    blocks = [*dec.mid_block.resnets, *dec.mid_block.attentions]
    for up in dec.up_blocks:
        blocks += list(up.resnets) + list(getattr(up, "upsamplers", None) or [])
    for r in blocks:
        _fuse_norm_act(r)  # ResNet blocks only: the others have no nonlinearity and are left
    n = checkpoint_each(blocks)
    if not getattr(dec, "_rfft_tail_checkpointed", False):
        # Decoder.forward calls conv_norm_out, conv_act, conv_out in turn: the first runs all
        # three in one recomputed segment and the other two pass their input through. The
        # modules (and so the state dict) are unchanged.
        norm, act, conv = dec.conv_norm_out, dec.conv_act, dec.conv_out
        run_norm, run_act, run_conv = norm.forward, act.forward, conv.forward
        norm.forward = _recomputed(lambda x, *args: run_conv(run_act(run_norm(x, *args))))
        act.forward = conv.forward = lambda x: x
        dec._rfft_tail_checkpointed = True
        n += 1
    return n


def checkpoint_judge(judge) -> int:
    """Depth, salience and RFNet of a DifferentiableJudge, each as one recomputed segment."""
    return checkpoint_each([m for m in (judge.depth, judge.salience, judge.model) if m is not None])
