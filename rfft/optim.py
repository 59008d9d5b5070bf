"""A low-memory AdamW for training a ControlNet on one consumer GPU (or a CPU).

A float32 SD1.5 ControlNet holds 1.45 GB of weights; torch's AdamW adds 2.9 GB of moments and
the gradients another 1.45 GB. This optimizer keeps the moments in bfloat16 (optional), or in
8 bits (``state_dtype="float8"``: float8 e4m3 with one float32 scale per block of 2048 values;
the second moment is kept as its square root, which halves the exponent range it needs), and
can step each parameter as soon as its gradient is complete during backward, freeing that
gradient at once, so the gradients never all exist together. The update is AdamW's (decoupled
weight decay, bias correction), computed in float32.
"""
from __future__ import annotations

import torch

BLOCK = 2048
F8 = torch.float8_e4m3fn
F8_MAX = 448.0  # the largest finite e4m3fn value


def quantize_f8(x: torch.Tensor) -> dict:
    """A float tensor as float8 e4m3 values scaled per block of BLOCK (the block's largest
    magnitude maps to 448), and the per-block float32 scales."""
    flat = x.detach().float().flatten()
    pad = (-flat.numel()) % BLOCK
    blocks = torch.nn.functional.pad(flat, (0, pad)).view(-1, BLOCK)
    scale = (blocks.abs().amax(1) / F8_MAX).clamp_min(1e-30)
    return {"q": (blocks / scale[:, None]).to(F8), "scale": scale}


def dequantize_f8(state: dict, like: torch.Tensor) -> torch.Tensor:
    return (state["q"].float() * state["scale"][:, None]).flatten()[:like.numel()].view_as(like)


class LowMemoryAdamW(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-5, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
                 state_dtype: torch.dtype | str = torch.bfloat16, step_in_backward: bool = False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        if not (state_dtype == "float8" or isinstance(state_dtype, torch.dtype)):
            raise ValueError(f"state_dtype must be a torch dtype or 'float8', not {state_dtype!r}")
        self.state_dtype = state_dtype
        self.step_in_backward = step_in_backward
        self._hooks = []
        if step_in_backward:
            for group in self.param_groups:
                for p in group["params"]:
                    if p.requires_grad:
                        self._hooks.append(p.register_post_accumulate_grad_hook(self._hook(group)))

    @torch.no_grad()
    def init_state(self) -> None:
        """Allocate every moment now rather than at the first step, so the memory a training
        run will hold from its second step on is held from the start (and measured)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.requires_grad and not self.state[p]:
                    self._init(p)

    def _init(self, p) -> None:
        st = self.state[p]
        st["step"] = torch.zeros((), dtype=torch.float32)
        if self.state_dtype == "float8":
            st["exp_avg"], st["exp_avg_sq_sqrt"] = quantize_f8(torch.zeros_like(p)), quantize_f8(torch.zeros_like(p))
        else:
            st["exp_avg"] = torch.zeros_like(p, dtype=self.state_dtype)
            st["exp_avg_sq"] = torch.zeros_like(p, dtype=self.state_dtype)

    def _hook(self, group):
        def run(p):
            self._update(p, group)
            p.grad = None  # freed now: the point of stepping in backward

        return run

    @torch.no_grad()
    def _update(self, p: torch.Tensor, group: dict) -> None:
        g = p.grad
        if g is None:
            return
        if not self.state[p]:
            self._init(p)
        st = self.state[p]
        f8 = self.state_dtype == "float8"
        b1, b2 = group["betas"]
        st["step"] += 1
        t = float(st["step"])
        g = g.float()
        if f8:
            m = dequantize_f8(st["exp_avg"], p).mul_(b1).add_(g, alpha=1 - b1)
            v = dequantize_f8(st["exp_avg_sq_sqrt"], p).square_().mul_(b2).addcmul_(g, g, value=1 - b2)
            st["exp_avg"], st["exp_avg_sq_sqrt"] = quantize_f8(m), quantize_f8(v.sqrt())
        else:
            m = st["exp_avg"].float().mul_(b1).add_(g, alpha=1 - b1)
            v = st["exp_avg_sq"].float().mul_(b2).addcmul_(g, g, value=1 - b2)
            st["exp_avg"].copy_(m)
            st["exp_avg_sq"].copy_(v)
        p.mul_(1 - group["lr"] * group["weight_decay"])
        denom = (v / (1 - b2 ** t)).sqrt_().add_(group["eps"])
        p.addcdiv_(m, denom, value=-group["lr"] / (1 - b1 ** t))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        if self.step_in_backward:
            return loss  # every parameter stepped in backward already
        for group in self.param_groups:
            for p in group["params"]:
                self._update(p, group)
        return loss
