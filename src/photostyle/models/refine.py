"""Per-photo refinement of the affine head's colour grade along the quality frontier.

The curves head (:mod:`photostyle.models.affine`, ``residual="curves"``) predicts an image-wide
colour grade of ``12 * bins`` numbers in one pass. A few descent steps on that photo's own
frontier loss, the loss the head is trained with,

    L = log(G(out, s) / G(c, s))  +  w_ssim * (1 - SSIM(out, c))  +  w_tv * TV_bins(grade)

move the grade to the photo: style statistics closer (Gram distance over VGG relu1_1..relu4_1)
while the content's structure is kept (SSIM on luma). Only the grade changes, never pixels, so
the result stays a locally affine colour change of the content: photorealistic by construction.

Each step moves the grade a fixed distance (``step``, Euclidean norm over all its coefficients)
down the gradient. Adam's per-coefficient normalisation moved every coefficient by about its
learning rate whatever its gradient, so coefficients that barely matter (a dark bin's blue
offset) moved as much as those that do: colour casts (a grey room turned magenta). A normalised
step spends its length where the loss is steep. Each step is one VGG pass and its backward pass
at working size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from photostyle.losses.frontier import gram_log_ratio_to, gram_target, ssim_luma
from photostyle.models.affine import AffineHead
from photostyle.models.encoder import VGGEncoder


@dataclass(frozen=True)
class RefineSettings:
    """How a colour grade is refined on one photo."""

    steps: int = 0  # descent steps (0: the head's prediction as it is)
    step: float = 0.1  # length of each step: Euclidean norm of the grade's change (12 * bins)
    ssim_weight: float = 3.0  # w_ssim, as in training (photostyle.train.affine)
    tv_weight: float = 1.0  # w_tv: smoothness of the grade across brightness bins

    def __post_init__(self) -> None:
        if self.steps < 0 or not self.step > 0 or self.ssim_weight < 0 or self.tv_weight < 0:
            raise ValueError(
                f"refine needs steps >= 0, step > 0 and non-negative weights, got {self}"
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
        settings: steps, step length, loss weights.
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
        target = gram_target(taps_c, taps_s)  # fixed over the steps: computed once
        g = grade.detach().float().clone()  # (B, 12, bins, 1, 1)
        for _ in range(settings.steps):
            g.requires_grad_(True)
            out = head.colour_model(c, b, g).image.clamp(0, 1)  # (B, 3, h, w)
            style_term = gram_log_ratio_to(taps(out), *target)  # (B,)
            structure = 1 - ssim_luma(out, c)  # (B,)
            smooth = g.diff(dim=2).pow(2).mean() if g.shape[2] > 1 else g.new_zeros(())
            loss = (style_term + settings.ssim_weight * structure).sum()
            loss = loss + settings.tv_weight * smooth
            (grad,) = torch.autograd.grad(loss, [g])
            norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1, 1)  # per photo
            g = (g - settings.step * grad / norm).detach()
    return g.detach().to(grade.dtype)


__all__ = ["RefineSettings", "refine_grade"]
