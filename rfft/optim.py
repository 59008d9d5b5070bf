"""A low-memory AdamW for training a ControlNet on one consumer GPU (or a CPU).

A float32 SD1.5 ControlNet holds 1.45 GB of weights; torch's AdamW adds 2.9 GB of moments and
the gradients another 1.45 GB. This optimizer keeps the moments in bfloat16 (optional) and can
step each parameter as soon as its gradient is complete during backward, freeing that gradient
at once, so the gradients never all exist together. The update is AdamW's (decoupled weight
decay, bias correction), computed in float32.
"""
from __future__ import annotations

import torch


class LowMemoryAdamW(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-5, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
                 state_dtype: torch.dtype = torch.bfloat16, step_in_backward: bool = False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.state_dtype = state_dtype
        self.step_in_backward = step_in_backward
        self._hooks = []
        if step_in_backward:
            for group in self.param_groups:
                for p in group["params"]:
                    if p.requires_grad:
                        self._hooks.append(p.register_post_accumulate_grad_hook(self._hook(group)))

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
        st = self.state[p]
        if not st:
            st["step"] = torch.zeros((), dtype=torch.float32)
            st["exp_avg"] = torch.zeros_like(p, dtype=self.state_dtype)
            st["exp_avg_sq"] = torch.zeros_like(p, dtype=self.state_dtype)
        b1, b2 = group["betas"]
        st["step"] += 1
        t = float(st["step"])
        g = g.float()
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
