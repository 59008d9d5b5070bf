"""The RFFT objective's terms, each a direct transcription of its equation.

- eq. 5, the feedback: ``F_AC = CE(RFNet(decoded x0_hat), Available)``;
- eq. 6, the KL baseline, in epsilon space as DRaFT+ writes it: the squared distance between the
  trained model's and a frozen copy's noise predictions at the same x_t;
- eq. 7-8, Consistent Condition: the text-guidance direction of the trained ControlNet, in
  score form ``(eps(x_t, z, c) - eps(x_t, c)) / sqrt(1 - alphabar_t)`` (or in eps form, the
  first version), kept close to that of the frozen starting copy.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def feedback_loss(logits: torch.Tensor, available_index: int = 0) -> torch.Tensor:
    """Eq. 5: cross-entropy of RFNet's class scores (B, C) toward Available, batch mean."""
    target = torch.full((logits.shape[0],), available_index, dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits.float(), target)


def consistent_condition_loss(eps_text_control: torch.Tensor, eps_control: torch.Tensor,
                              ref_text_control: torch.Tensor, ref_control: torch.Tensor,
                              sigma: torch.Tensor | float | None = None) -> torch.Tensor:
    """Eq. 7-8: the text-guidance direction of the trained model against the frozen copy's,
    the L2 norm over each sample's latent (C, H, W), averaged over the batch. The reference
    terms come from the frozen copy and carry no gradient.

    With ``sigma`` = sqrt(1 - alphabar_t) (a scalar or one per sample), the directions are of the
    score, grad log p(z | x_t, c) = -eps / sigma, as the paper writes them: the norm of the eps
    difference divided by sigma. Without it, of eps itself (the first version here): the same
    direction, but each step weighted by sigma, which is small at the last steps of sampling
    where the gradient step is drawn, so beta there means a much weaker regularizer."""
    d = (eps_text_control - eps_control) - (ref_text_control - ref_control).detach()
    norm = d.float().flatten(1).norm(dim=1)
    if sigma is not None:
        norm = norm / torch.as_tensor(sigma, dtype=norm.dtype, device=norm.device).reshape(-1)
    return norm.mean()


def kl_loss(eps: torch.Tensor, ref_eps: torch.Tensor) -> torch.Tensor:
    """Eq. 6 in epsilon space (DRaFT+'s form): ``mean((eps_theta - eps_ref)^2)`` at the same
    x_t, t and conditions; for Gaussian steps of equal variance this is the KL divergence up to
    a constant factor."""
    return (eps.float() - ref_eps.detach().float()).pow(2).mean()
