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

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from photostyle.losses.frontier import gram_log_ratio_to, gram_target, ssim_luma
from photostyle.models.affine import AffineHead, LearnedStep
from photostyle.models.encoder import VGGEncoder


@dataclass(frozen=True)
class RefineSettings:
    """How a colour grade is refined on one photo."""

    steps: int = 0  # descent steps (0: the head's prediction as it is)
    step: float = 0.1  # length of each step: Euclidean norm of the grade's change (12 * bins)
    ssim_weight: float = 3.0  # w_ssim, as in training (photostyle.train.affine)
    later_ssim_weight: float | None = None  # w_ssim of the steps after the first (None: the same)
    tv_weight: float = 1.0  # w_tv: smoothness of the grade across brightness bins
    levels: int = 4  # VGG levels of the style term: relu1_1..relu{levels}_1 (3: no conv3_2..4_1)

    def __post_init__(self) -> None:
        later = 0.0 if self.later_ssim_weight is None else self.later_ssim_weight
        if self.steps < 0 or not self.step > 0 or min(self.ssim_weight, later, self.tv_weight) < 0:
            raise ValueError(
                f"refine needs steps >= 0, step > 0 and non-negative weights, got {self}"
            )
        if not 1 <= self.levels <= 4:
            raise ValueError(f"refine levels must be in [1, 4], got {self.levels}")

    def later(self) -> RefineSettings:
        """The steps after the first, at one w_ssim: ``later_ssim_weight`` where it is set."""
        weight = self.ssim_weight if self.later_ssim_weight is None else self.later_ssim_weight
        return replace(
            self, steps=max(self.steps - 1, 0), ssim_weight=weight, later_ssim_weight=None
        )


class FrontierObjective:
    """One batch of photos' frontier loss as a function of their image-wide grades.

    The style's Gram matrices and the content's Gram distance to them are computed once, here.

    Args:
        head: the affine head whose colour model the grades feed.
        taps: VGG taps of an image, as float32 (at least ``settings.levels`` of them; the first
            ``levels`` are used, so any tap function will do: :func:`encoder_taps` runs no more).
        content: (B, 3, h, w) content in [0, 1].
        base: (B, 12, gh, gw) the head's base grid.
        content_taps: the content's taps (again at least ``settings.levels``).
        style_taps: the style's taps.
        settings: the loss weights.
    """

    def __init__(
        self,
        head: AffineHead,
        taps: Callable[[torch.Tensor], list[torch.Tensor]],
        content: torch.Tensor,
        base: torch.Tensor,
        content_taps: list[torch.Tensor],
        style_taps: list[torch.Tensor],
        settings: RefineSettings,
    ) -> None:
        self.head = head
        self.taps = taps
        self.content = content
        self.base = base
        self.settings = settings
        self.target = gram_target(content_taps[: settings.levels], style_taps[: settings.levels])

    def later(self) -> FrontierObjective:
        """The same photos' loss for the steps after the first (:meth:`RefineSettings.later`);
        the style targets are shared, not computed again."""
        other = copy.copy(self)
        other.settings = self.settings.later()
        return other

    def terms(self, grade: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per photo: the style term (log Gram ratio), 1 - SSIM, and the grade's smoothness
        across brightness bins. Shape: (B, 12, bins, 1, 1) -> 3 x (B,).
        """
        out = self.head.colour_model(self.content, self.base, grade).image.clamp(0, 1)
        style = gram_log_ratio_to(self.taps(out)[: self.settings.levels], *self.target)  # (B,)
        dissimilarity = 1 - ssim_luma(out, self.content)  # (B,)
        if grade.shape[2] > 1:
            smooth = grade.diff(dim=2).pow(2).flatten(1).mean(1)
        else:
            smooth = torch.zeros_like(style)
        return style, dissimilarity, smooth

    def structure(self, dissimilarity: torch.Tensor, smooth: torch.Tensor) -> torch.Tensor:
        """The loss's structure part, ``w_ssim * (1 - SSIM) + w_tv * TV_bins``. Shape: (B,)."""
        return self.settings.ssim_weight * dissimilarity + self.settings.tv_weight * smooth

    def gradients(self, grade: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What a :class:`~photostyle.models.affine.LearnedStep` sees at ``grade``: the style
        term's gradient, the structure terms' gradient and the (B, 2) loss values (style term,
        1 - SSIM), all detached. Shape: (B, 12, bins, 1, 1) -> (B, N), (B, N), (B, 2).
        """
        g = grade.detach().requires_grad_(True)
        with torch.enable_grad():
            style, dissimilarity, smooth = self.terms(g)
            structure = self.structure(dissimilarity, smooth)
            (grad_s,) = torch.autograd.grad(style.sum(), [g], retain_graph=True)
            (grad_q,) = torch.autograd.grad(structure.sum(), [g])
        losses = torch.stack([style, dissimilarity], 1).detach()
        return grad_s.flatten(1), grad_q.flatten(1), losses

    def step(self, grade: torch.Tensor, steer: LearnedStep | None = None) -> torch.Tensor:
        """The change of one step from ``grade`` (detached): plain, or ``steer``'s (then with a
        graph into its weights when autograd records).

        Shape: (B, 12, bins, 1, 1) -> (B, 12, bins, 1, 1).
        """
        if steer is not None:
            dtype = next(steer.parameters()).dtype  # the head may run in bfloat16, refinement not
            inputs = [grade.detach().flatten(1), *self.gradients(grade)]
            delta = steer(*(t.to(dtype) for t in inputs), self.settings.step)
            return delta.view_as(grade).to(grade.dtype)
        g = grade.detach().requires_grad_(True)
        with torch.enable_grad():
            style, dissimilarity, smooth = self.terms(g)
            (grad,) = torch.autograd.grad(
                (style + self.structure(dissimilarity, smooth)).sum(), [g]
            )
        norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1, 1)
        return -self.settings.step * grad / norm


def encoder_taps(encoder: VGGEncoder, levels: int) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    """The style term's taps of an image: relu1_1..relu{levels}_1 as float32, running only the
    layers they need, in the encoder's own dtype (it may run in bfloat16)."""
    dtype = next(encoder.parameters()).dtype

    def taps(x: torch.Tensor) -> list[torch.Tensor]:
        return [t.float() for t in encoder.first_taps(x.to(dtype), levels)]

    return taps


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
    *,
    learned: bool = True,
) -> torch.Tensor:
    """Refine an image-wide colour grade on one photo (autograd on, whatever the caller's mode).

    The first step is the head's :class:`~photostyle.models.affine.LearnedStep` where it has one
    and ``learned`` is true, the others plain. The steps after the first take
    ``settings.later_ssim_weight`` where it is set: once the first step has moved the grade
    towards the photo's optimum, the later ones may give structure less weight.

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
        learned: take the head's learned first step (False: plain steps only, as the untrained
            architecture and the distillation targets do).

    Returns:
        (B, 12, bins, 1, 1) the refined grade (detached), in ``grade``'s dtype.
    """
    if grade.ndim != 5 or grade.shape[-2:] != (1, 1):
        raise ValueError(f"expected an image-wide (B, 12, bins, 1, 1) grade, got {grade.shape}")
    if settings.steps == 0:
        return grade
    taps = encoder_taps(encoder, settings.levels)
    with torch.inference_mode(False), torch.no_grad():
        # Copies made here are ordinary tensors: inference tensors cannot enter autograd.
        c = content.float().clone()
        taps_c = [t.float().clone() for t in (content_taps or taps(c))]
        taps_s = [t.float().clone() for t in (style_taps or taps(style.float()))]
        objective = FrontierObjective(
            head, taps, c, base.detach().float().clone(), taps_c, taps_s, settings
        )
        later = objective.later()
        g = grade.detach().float().clone()  # (B, 12, bins, 1, 1)
        g = g + objective.step(g, head.steer if learned else None)
        for _ in range(later.settings.steps):
            g = g + later.step(g)
    return g.detach().to(grade.dtype)


__all__ = ["FrontierObjective", "RefineSettings", "encoder_taps", "refine_grade"]
