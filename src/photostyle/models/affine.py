"""Affine colour head: the decoder predicts a local affine colour model instead of pixels.

The network never draws pixels. It predicts, per location and per content brightness, a 3x4 colour
matrix ``[A | b]`` that is applied to the content photo (``out = A(x, g) @ content(x) + b(x, g)``,
``g`` the content's luma): a bilateral grid in the spirit of HDRnet (Gharbi et al. 2017). A locally
affine change of colours cannot create edges, textures or halos that the content does not have, so
the result is photorealistic by construction, and applying it to a full-resolution photo costs a
few multiply-adds per pixel whatever the working size of the network.

The grid is the sum of two parts:

- a parameter-free **base**: for every semantic region, the Monge-Kantorovich linear map (MKL,
  Pitie & Kokaram 2007) that carries the content's RGB mean and covariance to the style's, blended
  between regions with feathered masks (no seam at a region border). This is the image-level FA
  layer in a decorrelated colour space; the untrained head returns it.
- a learned **residual**, zero at initialisation, with ``bins`` brightness bins. Two forms
  (``residual=``):

  - ``"curves"``: one set of brightness-dependent colour matrices for the whole image (a colour
    grade: per brightness bin a 3x4 matrix, interpolated between bins), predicted by a small MLP
    from the content's and style's VGG feature statistics (channel mean and standard deviation at
    relu1_1..relu4_1) and their colour statistics per brightness bin. It has no spatial freedom,
    so it cannot paint blotches; locality comes from the base's regions.
  - ``"spatial"``: a grid decoded from the FA-aggregated VGG features (FA layers at relu3_1 and
    relu4_1, paper Sec. III-B) with a value per grid cell.

Coefficient layout, shared with :mod:`photostyle.upsample`: channel ``3k + j`` is ``A[k, j]``,
channel ``9 + k`` is ``b[k]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast, get_args

import torch
import torch.nn.functional as F
from torch import nn

from photostyle.models.encoder import EncoderOutput
from photostyle.models.layers import FAVariant, feature_aggregation
from photostyle.upsample import identity_coeffs

COEFFS = 12  # 3x3 matrix + 3 offsets per location
Residual = Literal["curves", "spatial"]  # forms of the learned residual (module docstring)
RESIDUALS: tuple[str, ...] = get_args(Residual)
_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as in most SSIM reports and PIL's "L" mode


def _sym_power(cov: torch.Tensor, power: float) -> torch.Tensor:
    evals, evecs = torch.linalg.eigh(cov)
    return (evecs * evals.clamp_min(1e-10).pow(power).unsqueeze(-2)) @ evecs.transpose(-1, -2)


def mkl_map(
    content: torch.Tensor, style: torch.Tensor, eps: float = 1e-4, power: float = 1.0
) -> torch.Tensor:
    """Monge-Kantorovich linear colour map from the content's pixels to the style's.

    ``A = C_c^{-1/2} (C_c^{1/2} C_s C_c^{1/2})^{1/2} C_c^{-1/2}`` carries the content's RGB
    covariance ``C_c`` to the style's ``C_s`` with the least mean squared displacement of colours;
    ``b = mu_s - A mu_c`` matches the means. ``power`` < 1 takes ``A ** power`` (A is symmetric
    positive definite) and still matches the means: the colour cast moves fully, contrast and
    saturation only part of the way, which keeps more of the content's structure. Computed in
    float64.

    Args:
        content: (3, N) content pixels.
        style: (3, M) style pixels.
        eps: added to the covariances' diagonals (a variance in [0, 1] units).
        power: exponent of the linear part in [0, 1] (0: a pure shift of the mean colour).

    Returns:
        (3, 4) ``[A | b]``.
    """
    if content.ndim != 2 or style.ndim != 2 or content.shape[0] != 3 or style.shape[0] != 3:
        raise ValueError(
            f"expected (3, N) pixels, got {tuple(content.shape)}, {tuple(style.shape)}"
        )
    x, y = content.double(), style.double()
    mu_x, mu_y = x.mean(1, keepdim=True), y.mean(1, keepdim=True)
    eye = torch.eye(3, dtype=torch.float64, device=x.device)
    cov_x = (x - mu_x) @ (x - mu_x).T / x.shape[1] + eps * eye
    cov_y = (y - mu_y) @ (y - mu_y).T / y.shape[1] + eps * eye
    root, inv_root = _sym_power(cov_x, 0.5), _sym_power(cov_x, -0.5)
    a = inv_root @ _sym_power(root @ cov_y @ root, 0.5) @ inv_root
    if power != 1.0:
        a = _sym_power((a + a.T) / 2, power)
    return torch.cat([a, mu_y - a @ mu_x], dim=1)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with replicated borders. Shape: (B, C, H, W) -> same."""
    radius = max(1, int(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    g = torch.exp(-(t**2) / (2 * sigma**2))
    g = g / g.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def region_colour_grid(
    content: torch.Tensor,
    style: torch.Tensor,
    size: tuple[int, int],
    *,
    content_labels: torch.Tensor | None = None,
    style_labels: torch.Tensor | None = None,
    feather: float = 1.5,
    min_pixels: int = 64,
    power: float = 1.0,
) -> torch.Tensor:
    """The base grid: per-region MKL colour maps blended with feathered region masks.

    Each content region (label) gets the MKL map to the style's region of the same label, or to
    the whole style when either side has fewer than ``min_pixels`` pixels (or the label is -1).
    Region weights are the masks averaged to the grid's size and blurred by ``feather`` grid cells,
    so neighbouring regions blend smoothly; without labels every cell holds the global map.

    Args:
        content: (B, 3, H, W) in [0, 1].
        style: (B, 3, Hs, Ws) in [0, 1].
        size: (gh, gw) grid size.
        content_labels: optional (B, H, W) int64 labels.
        style_labels: optional (B, Hs, Ws) int64 labels; required with ``content_labels``.
        feather: blur of the region weights, in grid cells.
        min_pixels: smallest region that gets its own map.
        power: exponent of each map's linear part (see :func:`mkl_map`).

    Returns:
        (B, 12, gh, gw) coefficients, in the content's dtype.
    """
    if (content_labels is None) != (style_labels is None):
        raise ValueError("content and style label maps must be given together")
    out = []
    for i in range(content.shape[0]):
        c = content[i].reshape(3, -1)
        s = style[i].reshape(3, -1)
        whole = mkl_map(c, s, power=power)  # (3, 4)
        if content_labels is None or style_labels is None:
            grid = whole.reshape(COEFFS, 1, 1).expand(COEFFS, *size)
            out.append(_to_layout(grid))
            continue
        lc, ls = content_labels[i].reshape(-1), style_labels[i].reshape(-1)
        maps, weights = [], []
        for label in lc.unique().tolist():
            xs, ys = lc == label, ls == label
            if label >= 0 and int(xs.sum()) >= min_pixels and int(ys.sum()) >= min_pixels:
                maps.append(mkl_map(c[:, xs], s[:, ys], power=power))
            else:
                maps.append(whole)
            mask = (content_labels[i] == label).double()[None, None]  # (1, 1, H, W)
            weights.append(F.interpolate(mask, size=size, mode="area"))
        w = torch.cat(weights, 1)  # (1, K, gh, gw)
        if feather > 0:
            w = _gaussian_blur(w, feather)
        w = w / w.sum(1, keepdim=True).clamp_min(1e-12)
        grid = torch.einsum("kij,kyx->ijyx", torch.stack(maps), w[0])  # (3, 4, gh, gw)
        out.append(_to_layout(grid.reshape(COEFFS, *size)))
    return torch.stack(out).to(content.dtype)


def _to_layout(grid: torch.Tensor) -> torch.Tensor:
    """Rows ``[a_k0, a_k1, a_k2, b_k]`` (k = 0..2) -> the layout ``A`` row-major then ``b``."""
    rows = grid.reshape(3, 4, *grid.shape[-2:])
    return torch.cat([rows[:, :3].reshape(9, *grid.shape[-2:]), rows[:, 3]], 0)


def slice_grid(grid: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
    """Read a bilateral grid at every pixel: trilinear in (row, column, guide value).

    Args:
        grid: (B, C, L, gh, gw), ``L`` bins over the guide's range [0, 1].
        guide: (B, 1, h, w) guide values in [0, 1] (the content's luma).

    Returns:
        (B, C, h, w).
    """
    if grid.ndim != 5 or guide.ndim != 4 or guide.shape[1] != 1:
        raise ValueError(
            f"expected (B, C, L, gh, gw) and (B, 1, h, w), got {grid.shape}, {guide.shape}"
        )
    b, _, h, w = guide.shape
    ys = torch.linspace(-1, 1, h, dtype=guide.dtype, device=guide.device)
    xs = torch.linspace(-1, 1, w, dtype=guide.dtype, device=guide.device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")  # (h, w)
    z = guide[:, 0].clamp(0, 1) * 2 - 1  # (B, h, w)
    coords = torch.stack([gx.expand(b, h, w), gy.expand(b, h, w), z], dim=-1)  # (B, h, w, 3)
    # align_corners=True: the grid's first and last cells sit on the image's borders.
    return F.grid_sample(
        grid, coords[:, None], mode="bilinear", align_corners=True, padding_mode="border"
    )[:, :, 0]


def luma(image: torch.Tensor) -> torch.Tensor:
    """BT.601 luma. Shape: (B, 3, H, W) -> (B, 1, H, W)."""
    w = image.new_tensor(_LUMA).reshape(1, 3, 1, 1)
    return (image * w).sum(1, keepdim=True)


def apply_coeffs(coeffs: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """``A(x) @ image(x) + b(x)`` at equal sizes (differentiable).

    Shape: coeffs (B, 12, h, w), image (B, 3, h, w) -> (B, 3, h, w).
    """
    a = coeffs[:, :9].reshape(coeffs.shape[0], 3, 3, *coeffs.shape[-2:])
    return torch.einsum("bkjyx,bjyx->bkyx", a, image) + coeffs[:, 9:]


def brightness_bins(image: torch.Tensor, bins: int) -> torch.Tensor:
    """Colour statistics per brightness bin: each bin's share of the pixels and mean colour.

    Pixels are shared between the two nearest bins with the weights of :func:`slice_grid`'s
    linear interpolation along brightness (bin centres at ``k / (bins - 1)``).

    Shape: (B, 3, H, W) -> (B, 4 * bins): ``bins`` shares, then ``bins`` mean RGB triplets.
    """
    g = luma(image).clamp(0, 1).flatten(1)  # (B, N)
    centres = torch.linspace(0, 1, bins, dtype=image.dtype, device=image.device)
    spacing = 1.0 / max(1, bins - 1)
    w = (1 - (g[:, None] - centres[None, :, None]).abs() / spacing).clamp_min(0)  # (B, bins, N)
    mass = w.sum(-1)  # (B, bins)
    mean = torch.einsum("bkn,bcn->bkc", w, image.flatten(2)) / mass[..., None].clamp_min(1e-6)
    return torch.cat([mass / g.shape[1], mean.flatten(1)], 1)


def feature_moments(taps: list[torch.Tensor], scale: float) -> torch.Tensor:
    """Channel means and standard deviations of VGG feature maps.

    Shape: taps (B, C_i, H_i, W_i) -> (B, 2 * sum C_i).
    """
    parts = []
    for t in taps:
        x = t.float().flatten(2) * scale
        parts += [x.mean(-1), (x.var(-1, unbiased=False) + 1e-8).sqrt()]
    return torch.cat(parts, 1)


def zero_start_mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    """LayerNorm, then three linear layers with ReLUs between; the last layer starts at zero, so
    the MLP outputs zero until trained. Shape: (B, inputs) -> (B, outputs)."""
    mlp = nn.Sequential(
        nn.LayerNorm(inputs),
        nn.Linear(inputs, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, outputs),
    )
    last = cast(nn.Linear, mlp[-1])
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return mlp


class LearnedStep(nn.Module):
    """A learned first refinement step of a curves grade (:mod:`photostyle.models.refine`).

    A plain step moves the grade a fixed distance down the normalised gradient of the photo's
    frontier loss. This module sees that gradient split into its two terms (style: log Gram
    ratio; structure: SSIM and smoothness), their sizes, the loss values and the grade itself,
    and adds a learned correction to the plain step. Its last layer starts at zero, so the
    untrained module takes exactly the plain step.

    Args:
        size: coefficients of the grade (``12 * bins``).
        hidden: width of the MLP.
    """

    def __init__(self, size: int, hidden: int) -> None:
        super().__init__()
        if size < 1 or hidden < 1:
            raise ValueError(f"size and hidden must be positive, got {size}, {hidden}")
        self.size, self.hidden = size, hidden
        inputs = 3 * size + 4  # grade, both directions, their log sizes, both loss values
        self.mlp = zero_start_mlp(inputs, hidden, size)

    def forward(
        self,
        grade: torch.Tensor,
        grad_style: torch.Tensor,
        grad_structure: torch.Tensor,
        losses: torch.Tensor,
        step: float,
    ) -> torch.Tensor:
        """The change of the grade.

        Args:
            grade: (B, N) the grade before the step.
            grad_style: (B, N) gradient of the style term.
            grad_structure: (B, N) gradient of the structure terms (weighted as in the loss).
            losses: (B, 2) the style term and 1 - SSIM.
            step: length of the plain step.

        Returns:
            (B, N) the change: ``-step * g / |g|`` (``g`` the sum of both gradients) plus the
            learned correction.
        """
        if (
            grade.ndim != 2
            or grad_style.shape != grade.shape
            or grad_structure.shape != grade.shape
        ):
            raise ValueError(
                f"expected equal (B, N) grade and gradients, got {tuple(grade.shape)}, "
                f"{tuple(grad_style.shape)}, {tuple(grad_structure.shape)}"
            )
        total = grad_style + grad_structure
        plain = -step * total / total.norm(dim=1, keepdim=True).clamp_min(1e-12)
        ns = grad_style.norm(dim=1, keepdim=True).clamp_min(1e-12)
        nq = grad_structure.norm(dim=1, keepdim=True).clamp_min(1e-12)
        x = torch.cat([grade, grad_style / ns, grad_structure / nq, ns.log(), nq.log(), losses], 1)
        return plain + self.mlp(x)  # (B, N)


def merge_steps(steps: Sequence[LearnedStep]) -> LearnedStep:
    """One learned step whose change is the mean of ``steps``' changes, exactly.

    The ``K`` MLPs (same size and width ``h``) are folded into one of width ``K h``: each input
    LayerNorm's scale and shift move into its first layer (the merged LayerNorm has none), the
    middle layers sit side by side as a block-diagonal matrix, and the last layers are concatenated
    and divided by ``K``. The plain step does not depend on the MLP, so it is unchanged. An
    ensemble of steps fitted from different initial weights thus ships as one step.

    Raises:
        ValueError: no steps, or steps of different sizes.
    """
    if not steps:
        raise ValueError("merge_steps needs at least one step")
    if len({(step.size, step.hidden) for step in steps}) != 1:
        raise ValueError("merge_steps needs steps of one size and width")
    k = len(steps)
    first = cast(nn.Linear, steps[0].mlp[1])
    merged = LearnedStep(steps[0].size, k * steps[0].hidden).to(first.weight)  # its dtype, device
    norms = [cast(nn.LayerNorm, step.mlp[0]) for step in steps]
    firsts, middles, lasts = ([cast(nn.Linear, step.mlp[i]) for step in steps] for i in (1, 3, 5))
    with torch.no_grad():
        layers = (  # (index in the MLP, weight, bias)
            (  # W (g * x + b) + c = (W g) x + (W b + c): the LayerNorm's affine moved into W
                1,
                torch.cat([f.weight * n.weight for f, n in zip(firsts, norms, strict=True)]),
                torch.cat([f.weight @ n.bias + f.bias for f, n in zip(firsts, norms, strict=True)]),
            ),
            (
                3,
                torch.block_diag(*[m.weight for m in middles]),
                torch.cat([m.bias for m in middles]),
            ),
            (
                5,
                torch.cat([m.weight for m in lasts], 1) / k,
                torch.stack([m.bias for m in lasts]).mean(0),
            ),
        )
        norm = cast(nn.LayerNorm, merged.mlp[0])
        norm.weight.fill_(1.0)
        norm.bias.zero_()
        for index, weight, bias in layers:
            layer = cast(nn.Linear, merged.mlp[index])
            layer.weight.copy_(weight)
            layer.bias.copy_(bias)
    return merged


@dataclass
class AffineOutput:
    """Output of :class:`AffineHead`: the colour model and the image it makes at working size."""

    coeffs: torch.Tensor  # (B, 12, h, w) per-pixel [A | b] at the working size
    image: torch.Tensor  # (B, 3, h, w) the coefficients applied to the content, not clamped
    residual: torch.Tensor  # (B, 12, bins, gh, gw) the learned part (gh = gw = 1: curves)
    base: torch.Tensor  # (B, 12, gh, gw) the parameter-free base grid


class AffineHead(nn.Module):
    """Predicts a bilateral grid of affine colour models from FA-aggregated VGG features.

    Args:
        widths: encoder channels at relu1_1..relu4_1.
        bins: brightness bins of the grid (1 = a plain spatial grid).
        hidden: channels of the head's convolutions.
        feature_scale: encoder features are multiplied by this on the way in.
        cell: grid cell size in working-size pixels (8 = the relu4_1 resolution).
        base_power: exponent of the base's MKL maps (see :func:`mkl_map`).
        residual: form of the learned residual, ``"curves"`` or ``"spatial"`` (module docstring).
        steer_hidden: width of a :class:`LearnedStep` for the grade's first refinement step
            (``"curves"`` only); 0 = none, every step plain.
    """

    def __init__(
        self,
        widths: tuple[int, int, int, int],
        *,
        bins: int = 8,
        hidden: int = 64,
        feature_scale: float = 1.0,
        cell: int = 8,
        base_power: float = 1.0,
        residual: Residual = "spatial",
        steer_hidden: int = 0,
    ) -> None:
        super().__init__()
        if residual not in RESIDUALS:
            raise ValueError(f"unknown residual {residual!r}; choose from {RESIDUALS}")
        if bins < 1 or hidden < 1 or cell < 1:
            raise ValueError(
                f"bins, hidden and cell must be positive, got {bins}, {hidden}, {cell}"
            )
        if not 0.0 <= base_power <= 1.0:
            raise ValueError(f"base_power must be in [0, 1], got {base_power}")
        self.bins = bins
        self.cell = cell
        self.base_power = base_power
        self.feature_scale = feature_scale
        self.residual = residual
        if steer_hidden < 0 or (steer_hidden and residual != "curves"):
            raise ValueError(
                "steer_hidden must be >= 0, and only the curves residual has a learned step, "
                f"got {steer_hidden}"
            )
        self.steer = LearnedStep(COEFFS * bins, steer_hidden) if steer_hidden else None
        if residual == "curves":
            stats = 2 * (2 * sum(widths) + 4 * bins) + COEFFS  # both images' moments, the base
            # Starts at zero: the untrained head returns the base exactly.
            self.curves = zero_start_mlp(stats, hidden, COEFFS * bins)
            return
        w3, w4 = widths[2], widths[3]
        self.reduce = nn.Conv2d(2 * (w3 + w4) + COEFFS, hidden, 1)
        self.local = nn.Sequential(
            nn.Conv2d(hidden, hidden, 3, padding=1, padding_mode="replicate"),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1, padding_mode="replicate"),
        )
        self.glob = nn.Linear(hidden, hidden)  # image-wide context (HDRnet's global path)
        self.out = nn.Conv2d(hidden, COEFFS * bins, 1)
        nn.init.zeros_(self.out.weight)  # the untrained head returns the base exactly
        nn.init.zeros_(cast(torch.Tensor, self.out.bias))

    def residual_grid(
        self,
        content: EncoderOutput,
        style: EncoderOutput,
        base: torch.Tensor,
        *,
        content_labels: torch.Tensor | None = None,
        style_labels: torch.Tensor | None = None,
        variant: FAVariant = "mean_std",
    ) -> torch.Tensor:
        """The learned part, given the base grid (B, 12, gh, gw). Returns (B, 12, bins, gh, gw)."""
        k = self.feature_scale
        size = (base.shape[-2], base.shape[-1])
        parts = [base]
        for level in (2, 3):  # relu3_1, relu4_1
            x = content.taps[level] * k
            z = feature_aggregation(
                x,
                style.taps[level] * k,
                variant,
                x_labels=content_labels,
                y_labels=style_labels,
            )
            parts += [F.adaptive_avg_pool2d(x, size), F.adaptive_avg_pool2d(z, size)]
        h = F.relu(self.reduce(torch.cat(parts, 1)))  # (B, hidden, gh, gw)
        h = F.relu(self.local(h) + self.glob(h.mean(dim=(2, 3)))[:, :, None, None])
        b = h.shape[0]
        return self.out(h).reshape(b, COEFFS, self.bins, *size)

    def curve_inputs(
        self,
        content_image: torch.Tensor,
        style_image: torch.Tensor,
        content: EncoderOutput,
        style: EncoderOutput,
        base: torch.Tensor,
    ) -> torch.Tensor:
        """What the curves MLP sees: both images' VGG channel moments and per-brightness colour
        statistics, and the base's mean coefficients. Shape: -> (B, stats), float32."""
        k = self.feature_scale
        return torch.cat(
            [
                feature_moments(content.taps, k),
                feature_moments(style.taps, k),
                brightness_bins(content_image.float(), self.bins),
                brightness_bins(style_image.float(), self.bins),
                base.float().mean(dim=(2, 3)),
            ],
            1,
        )

    def curves_from(self, inputs: torch.Tensor) -> torch.Tensor:
        """The image-wide colour grade from :meth:`curve_inputs`. Shape: (B, stats) ->
        (B, 12, bins, 1, 1)."""
        out = self.curves(inputs)  # (B, 12 * bins)
        return out.reshape(out.shape[0], COEFFS, self.bins, 1, 1)

    def residual_curves(
        self,
        content_image: torch.Tensor,
        style_image: torch.Tensor,
        content: EncoderOutput,
        style: EncoderOutput,
        base: torch.Tensor,
    ) -> torch.Tensor:
        """The learned image-wide colour grade. Returns (B, 12, bins, 1, 1)."""
        inputs = self.curve_inputs(content_image, style_image, content, style, base)
        return self.curves_from(inputs.to(base.dtype))

    def grid_size(self, h: int, w: int) -> tuple[int, int]:
        """Grid cells for a (h, w) working image."""
        return max(2, round(h / self.cell)), max(2, round(w / self.cell))

    def grid(
        self,
        content_image: torch.Tensor,
        style_image: torch.Tensor,
        content: EncoderOutput,
        style: EncoderOutput,
        *,
        content_labels: torch.Tensor | None = None,
        style_labels: torch.Tensor | None = None,
        variant: FAVariant = "mean_std",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The colour model's two parts before they are read at the content's brightness:
        the (B, 12, gh, gw) base and the (B, 12, bins, gh, gw) learned residual (``gh = gw = 1``
        for ``"curves"``). :meth:`forward` is :meth:`colour_model` of these.
        """
        if content_image.ndim != 4 or content_image.shape[1] != 3:
            raise ValueError(f"content must be (B, 3, H, W), got {tuple(content_image.shape)}")
        size = self.grid_size(*content_image.shape[-2:])
        with torch.no_grad():
            base = region_colour_grid(
                content_image.float(),
                style_image.float(),
                size,
                content_labels=content_labels,
                style_labels=style_labels,
                power=self.base_power,
            ).to(content_image.dtype)  # (B, 12, gh, gw)
        if self.residual == "curves":
            return base, self.residual_curves(content_image, style_image, content, style, base)
        residual = self.residual_grid(
            content,
            style,
            base,
            content_labels=content_labels,
            style_labels=style_labels,
            variant=variant,
        )  # (B, 12, bins, gh, gw)
        return base, residual

    def forward(
        self,
        content_image: torch.Tensor,
        style_image: torch.Tensor,
        content: EncoderOutput,
        style: EncoderOutput,
        *,
        alpha: float = 1.0,
        content_labels: torch.Tensor | None = None,
        style_labels: torch.Tensor | None = None,
        variant: FAVariant = "mean_std",
    ) -> AffineOutput:
        """Colour model of the content in the style's look, at working size.

        Args:
            content_image: (B, 3, h, w) content in [0, 1] (the encoder's input).
            style_image: (B, 3, hs, ws) style in [0, 1].
            content: its encoding.
            style: the style's encoding.
            alpha: strength in [0, 1]: the model moves linearly from the identity (0) to the full
                colour model (1), so the output is exactly linear in ``alpha``.
            content_labels: optional (B, h, w) int64 labels.
            style_labels: optional (B, hs, ws) int64 labels.
            variant: the FA variant of the head's FA layers (trained with ``mean_std``).

        Returns:
            AffineOutput with (B, 12, h, w) coefficients and the (B, 3, h, w) image.
        """
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        base, residual = self.grid(
            content_image,
            style_image,
            content,
            style,
            content_labels=content_labels,
            style_labels=style_labels,
            variant=variant,
        )
        return self.colour_model(content_image, base, residual, alpha=alpha)

    def colour_model(
        self,
        content_image: torch.Tensor,
        base: torch.Tensor,
        residual: torch.Tensor,
        *,
        alpha: float = 1.0,
    ) -> AffineOutput:
        """The base plus a residual (``(B, 12, bins, gh, gw)``, or ``gh = gw = 1`` for the whole
        image) sliced at the content's brightness and blended towards the identity by ``alpha``."""
        b, _, h, w = content_image.shape
        grid = base[:, :, None] + residual.expand(-1, -1, -1, *base.shape[-2:])
        coeffs = slice_grid(grid, luma(content_image))  # (B, 12, h, w)
        if alpha != 1.0:
            eye = identity_coeffs(b, (h, w), coeffs)
            coeffs = eye + alpha * (coeffs - eye)
        image = apply_coeffs(coeffs, content_image)
        return AffineOutput(coeffs=coeffs, image=image, residual=residual, base=base)
