"""Per-photo refinement of the affine head's colour grade along the quality frontier.

The curves head (:mod:`photostyle.models.affine`, ``residual="curves"``) predicts an image-wide
colour grade of ``12 * bins`` numbers in one pass. A few Adam steps on that photo's own frontier
loss, the loss the head is trained with,

    L = log(G(out, s) / G(c, s))  +  w_ssim * (1 - SSIM(out, c))  +  w_tv * TV_bins(grade)

move the grade to the photo: style statistics closer (Gram distance over VGG relu1_1..relu4_1)
while the content's structure is kept (SSIM on luma). Only the grade changes, never pixels, so
the result stays a locally affine colour change of the content: photorealistic by construction.
Each step is one VGG pass and its backward pass at working size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from photostyle.losses.frontier import gram_log_ratio, ssim_luma
from photostyle.models.affine import AffineHead
from photostyle.models.encoder import VGGEncoder


@dataclass(frozen=True)
class RefineSettings:
    """How a colour grade is refined on one photo."""

    steps: int = 0  # Adam steps (0: the head's prediction as it is)
    lr: float = 0.05  # Adam learning rate: the first steps move each coefficient by about this
    ssim_weight: float = 3.0  # w_ssim, as in training (photostyle.train.affine)
    tv_weight: float = 1.0  # w_tv: smoothness of the grade across brightness bins

    def __post_init__(self) -> None:
        if self.steps < 0 or not self.lr > 0 or self.ssim_weight < 0 or self.tv_weight < 0:
            raise ValueError(
                f"refine needs steps >= 0, lr > 0 and non-negative weights, got {self}"
            )


def refine_grade(
    head: AffineHead,
    encoder: VGGEncoder,
    content: torch.Tensor,
    style: torch.Tensor,
    base: torch.Tensor,
    grade: torch.Tensor,
    settings: RefineSettings,
    content_taps: list[torch.Tensor] | None = None,
    style_taps: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Refine an image-wide colour grade on one photo (autograd on, whatever the caller's mode).

    Args:
        head: the affine head whose colour model is refined (its weights are not changed).
        encoder: the VGG encoder (frozen) that defines the style statistics.
        content: (B, 3, h, w) content in [0, 1].
        style: (B, 3, hs, ws) style in [0, 1].
        base: (B, 12, gh, gw) the head's base grid.
        grade: (B, 12, bins, 1, 1) the predicted grade, the starting point.
        settings: steps, learning rate, loss weights.
        content_taps: the content's VGG taps, if already computed (then not computed again).
        style_taps: likewise for the style.

    Returns:
        (B, 12, bins, 1, 1) the refined grade (detached), in ``grade``'s dtype.
    """
    if grade.ndim != 5 or grade.shape[-2:] != (1, 1):
        raise ValueError(f"expected an image-wide (B, 12, bins, 1, 1) grade, got {grade.shape}")
    if settings.steps == 0:
        return grade
    dtype = next(encoder.parameters()).dtype  # the encoder may run in bfloat16

    def taps(x: torch.Tensor) -> list[torch.Tensor]:
        return [t.float() for t in encoder(x.to(dtype)).taps]

    with torch.inference_mode(False), torch.enable_grad():
        # Copies made here are ordinary tensors: inference tensors cannot enter autograd.
        c = content.float().clone()
        b = base.detach().float().clone()
        taps_c = [t.float().clone() for t in (content_taps or taps(c))]
        taps_s = [t.float().clone() for t in (style_taps or taps(style.float()))]
        g = grade.detach().float().clone().requires_grad_(True)
        opt = torch.optim.Adam([g], lr=settings.lr)
        for _ in range(settings.steps):
            out = head.colour_model(c, b, g).image.clamp(0, 1)  # (B, 3, h, w)
            style = gram_log_ratio(taps(out), taps_c, taps_s).sum()
            structure = (1 - ssim_luma(out, c)).sum()
            smooth = g.diff(dim=2).pow(2).mean() if g.shape[2] > 1 else g.new_zeros(())
            loss = style + settings.ssim_weight * structure + settings.tv_weight * smooth
            (grad,) = torch.autograd.grad(loss, [g])
            g.grad = grad
            opt.step()
    return g.detach().to(grade.dtype)


__all__ = ["RefineSettings", "refine_grade"]
