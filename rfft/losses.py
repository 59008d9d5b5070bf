"""The RFFT objective's terms, each a direct transcription of its equation.

- eq. 5, the feedback: ``F_AC = CE(RFNet(decoded x0_hat), Available)``;
- eq. 6, the KL baseline, in epsilon space as DRaFT+ writes it: the squared distance between the
  trained model's and a frozen copy's noise predictions at the same x_t;
- eq. 7-8, Consistent Condition: the text-guidance direction of the trained ControlNet,
  ``eps(x_t, z, c) - eps(x_t, c)``, kept close to that of the frozen starting copy.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def feedback_loss(logits: torch.Tensor, available_index: int = 0) -> torch.Tensor:
    """Eq. 5: cross-entropy of RFNet's class scores (B, C) toward Available, batch mean."""
    target = torch.full((logits.shape[0],), available_index, dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits.float(), target)


def consistent_condition_loss(eps_text_control: torch.Tensor, eps_control: torch.Tensor,
                              ref_text_control: torch.Tensor, ref_control: torch.Tensor) -> torch.Tensor:
    """Eq. 8: ``|| (eps(x_t,z,c) - eps(x_t,c)) - (eps_ref(x_t,z,c) - eps_ref(x_t,c)) ||_2``, the
    L2 norm over each sample's latent (C, H, W), averaged over the batch. The reference terms
    come from the frozen copy and carry no gradient."""
    d = (eps_text_control - eps_control) - (ref_text_control - ref_control).detach()
    return d.float().flatten(1).norm(dim=1).mean()


def kl_loss(eps: torch.Tensor, ref_eps: torch.Tensor) -> torch.Tensor:
    """Eq. 6 in epsilon space (DRaFT+'s form): ``mean((eps_theta - eps_ref)^2)`` at the same
    x_t, t and conditions; for Gaussian steps of equal variance this is the KL divergence up to
    a constant factor."""
    return (eps.float() - ref_eps.detach().float()).pow(2).mean()
