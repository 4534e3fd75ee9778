"""Feature Aggregation (FA) layers (paper Sec. III-B) and their parameter-free variants.

An FA layer takes decoder features F (content side, x_m at location m) and encoder style features G
(y_j at location j) and aggregates the style distribution into every content location. It has no
learnable parameters.

Eq. (1) of the paper, taken literally, does not carry the style: since mu_G is the mean of the y_j,
``mean_j (y_j - mu_G) = 0`` and Eq. (1) reduces to ``z_m = 2 x_m``. It is kept as the ``"paper"``
variant. The other variants aggregate the style distribution in the paper's stated spirit:

- ``"mean_std"``: per-channel first and second moments (scaling + shifting).
- ``"wct"``: full channel covariance (whitening then colouring).
- ``"quantile"``: the whole per-channel distribution (sorted / quantile matching).
- ``"none"``: no aggregation, ``z = x``; the style is ignored and the decoder becomes a plain
  unpooling VGG autoencoder (the reconstruction decoder of the AdaIN/WCT baselines,
  ``photostyle.eval.neural_baselines``).

All variants accept semantic label maps: statistics are then computed region by region, label to
label; content regions whose label has too few style pixels use the whole style.

Every variant is registered once, as an :class:`FASpec` (its transform and what the rest of the
library asks of it: the statistics it matches, whether it exports to ONNX, has an image-level
form, runs under mixed precision); :func:`fa_variant` looks one up, :data:`FA_VARIANTS` lists
them. A new variant is one :func:`register_fa` call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal, TypeAlias

import torch
import torch.nn.functional as F
from torch import nn

from photostyle.registry import Registry

# What a variant matches of the style: nothing ("none": the output does not depend on it), the
# per-channel mean ("mean"), mean and standard deviation ("moments", as ``fa_mean_std``), mean
# and channel covariance ("covariance", as ``fa_wct``), or the whole per-channel distribution
# ("quantiles"). Video smoothing recomputes "moments" and "covariance" variants from pooled
# statistics (photostyle.video.stable), so those two kinds promise those transforms.
FAStatistics = Literal["none", "mean", "moments", "covariance", "quantiles"]
FATransform = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (C, N), (C, M) -> (C, N)


@dataclass(frozen=True)
class FASpec:
    """One FA variant: its transform and the capabilities the rest of the library asks about."""

    name: str  # the variant's name (--fa, ModelConfig.fa, checkpoints)
    transform: FATransform  # x (C, N), y (C, M) -> (C, N), for one image or one label region
    statistics: FAStatistics  # what it matches of the style (see FAStatistics)
    exportable: bool  # has an ONNX graph (photostyle.deploy.onnx): only ops ONNX translates
    image_level: bool  # meaningful on RGB pixels: a residual decoder's base (Decoder.image_base)
    amp_safe: bool  # trains under 16-bit autocast (amp); False if it needs float32 precision


FA_REGISTRY: Registry[FASpec] = Registry("FA variant")  # name -> spec, in registration order


def register_fa(spec: FASpec) -> FASpec:
    """Add an FA variant to the registry; it is then accepted wherever a variant is named.

    Raises:
        ValueError: a variant of that name is registered already.
    """
    return FA_REGISTRY.register(spec.name, spec)


def fa_variant(name: str) -> FASpec:
    """The registered FA variant ``name``.

    Raises:
        ValueError: no such variant (the message names the choices).
    """
    return FA_REGISTRY.get(name)


def fa_names(where: Callable[[FASpec], bool] | None = None) -> Sequence[str]:
    """Names of the registered variants that ``where`` accepts (None: all), in registration
    order; a live tuple that follows later registrations.
    """
    return FA_REGISTRY.names(where)


FA_VARIANTS: Sequence[str] = fa_names()  # names of all registered variants, in order
# The name of a registered FA variant; the metadata lists the choices (typed config files).
FAVariant: TypeAlias = Annotated[str, FA_VARIANTS]


def fa_none(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """No aggregation: the content features unchanged. Shape: x (C, N), y (C, M) -> (C, N)."""
    return x


def fa_paper(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Eq. (1) literally. Shape: x (C, N), y (C, M) -> (C, N); equals 2x."""
    mu_g = y.mean(dim=1, keepdim=True)
    # Eq. (1): z_m = x_m + 1/(HW) * sum_j (x_m - (y_j - mu_G))
    return x + (x - (y - mu_g).mean(dim=1, keepdim=True))


def _moments(t: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    mu = t.mean(dim=1, keepdim=True)
    sd = (t.var(dim=1, keepdim=True, unbiased=False) + eps).sqrt()
    return mu, sd


def fa_mean_std(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Match each channel's mean and standard deviation. Shape: x (C, N), y (C, M) -> (C, N)."""
    mu_x, sd_x = _moments(x, eps)
    mu_y, sd_y = _moments(y, eps)
    return (x - mu_x) / sd_x * sd_y + mu_y


def _sym_power(cov: torch.Tensor, power: float, eps: float) -> torch.Tensor:
    evals, evecs = torch.linalg.eigh(cov)
    evals = evals.clamp_min(eps)
    return (evecs * evals.pow(power)) @ evecs.T


def fa_wct(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Whitening-colouring: the output's channel covariance and mean are the style's.

    The whitening and colouring matrices are computed in float64 without gradient, so the layer is
    linear in ``x`` for back-propagation (eigen-decomposition gradients are unstable for the
    near-degenerate spectra of VGG features).

    Shape: x (C, N), y (C, M) -> (C, N).
    """
    mu_x = x.mean(dim=1, keepdim=True)
    mu_y = y.mean(dim=1, keepdim=True)
    xc = x - mu_x
    with torch.no_grad():
        xd = xc.double()
        yd = (y - mu_y).double()
        eye = torch.eye(x.shape[0], dtype=torch.float64, device=x.device)
        cov_x = xd @ xd.T / max(x.shape[1] - 1, 1) + eps * eye
        cov_y = yd @ yd.T / max(y.shape[1] - 1, 1) + eps * eye
        transform = (_sym_power(cov_y, 0.5, eps) @ _sym_power(cov_x, -0.5, eps)).to(x.dtype)
    return transform @ xc + mu_y


def _quantile_targets(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Value of y's distribution at the quantile of each x. Shape: (C, N), (C, M) -> (C, N)."""
    n, m = x.shape[1], y.shape[1]
    ranks = x.argsort(dim=1).argsort(dim=1).to(x.dtype)  # 0..N-1 per channel
    y_sorted = y.sort(dim=1).values
    # Position of quantile (r + 0.5) / N among the M sorted style values (centre convention).
    pos = ((ranks + 0.5) * (m / n) - 0.5).clamp(0, m - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp_max(m - 1)
    frac = pos - lo.to(x.dtype)
    return torch.gather(y_sorted, 1, lo) * (1 - frac) + torch.gather(y_sorted, 1, hi) * frac


def fa_quantile(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-channel quantile (histogram) matching: each channel takes the style's distribution.

    Sorting is piecewise constant in ``x``, so the gradient is taken from ``fa_mean_std``
    (straight-through): the value is the quantile match, the derivative that of moment matching.

    Shape: x (C, N), y (C, M) -> (C, N).
    """
    smooth = fa_mean_std(x, y, eps)
    return smooth + (_quantile_targets(x, y) - smooth).detach()


# The built-in variants, in the order the CLI lists them.
register_fa(FASpec("paper", fa_paper, "none", exportable=True, image_level=False, amp_safe=True))
register_fa(
    FASpec("mean_std", fa_mean_std, "moments", exportable=True, image_level=True, amp_safe=True)
)
# Not exportable: ONNX has no eigendecomposition operator.
register_fa(FASpec("wct", fa_wct, "covariance", exportable=False, image_level=True, amp_safe=True))
# Not exportable: tied features (most unpooled values are 0) are ranked by PyTorch's argsort,
# which is not stable, and by ONNX TopK in index order, so the results differ. Not AMP-safe: its
# per-channel ranks (up to H*W) would be rounded in 16-bit floats.
register_fa(
    FASpec("quantile", fa_quantile, "quantiles", exportable=False, image_level=True, amp_safe=False)
)
register_fa(FASpec("none", fa_none, "none", exportable=True, image_level=False, amp_safe=True))


def resize_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of label maps. Shape: (B, H, W) int64 -> (B, h, w) int64."""
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels
    resized = F.interpolate(labels[:, None].float(), size=size, mode="nearest")
    return resized[:, 0].long()


def feature_aggregation(
    x: torch.Tensor,
    y: torch.Tensor,
    variant: FAVariant = "mean_std",
    *,
    x_labels: torch.Tensor | None = None,
    y_labels: torch.Tensor | None = None,
    alpha: float = 1.0,
    min_pixels: int = 4,
) -> torch.Tensor:
    """Aggregate the style features ``y`` into the content features ``x``.

    Args:
        x: content-side features, (B, C, H, W).
        y: style features, (B, C, Hs, Ws); the spatial size may differ from ``x``.
        variant: which aggregation (see module docstring).
        x_labels: optional content label map (B, H', W') int64; resized to (H, W). Label -1 means
            "unlabelled" and such pixels use the whole style.
        y_labels: optional style label map (B, Hs', Ws') int64; required with ``x_labels``.
        alpha: strength in [0, 1]; 0 returns ``x``, 1 the fully aggregated features.
        min_pixels: a style region smaller than this is treated as missing (whole style used).

    Returns:
        (B, C, H, W) aggregated features.
    """
    if x.ndim != 4 or y.ndim != 4 or x.shape[:2] != y.shape[:2]:
        raise ValueError(
            f"FA expects (B, C, H, W) inputs with equal B, C; got {x.shape}, {y.shape}"
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if (x_labels is None) != (y_labels is None):
        raise ValueError("content and style label maps must be given together")
    transform = fa_variant(variant).transform
    if transform is fa_none:
        return x  # the identity, whatever the labels and alpha
    b, c, h, w = x.shape
    xf = x.reshape(b, c, h * w)  # (B, C, N)
    yf = y.reshape(b, c, -1)  # (B, C, M)
    out = []
    for i in range(b):
        if x_labels is None or y_labels is None:
            out.append(transform(xf[i], yf[i]))
            continue
        xl = resize_labels(x_labels[i : i + 1], (h, w)).reshape(-1)  # (N,)
        yl = resize_labels(y_labels[i : i + 1], (y.shape[-2], y.shape[-1])).reshape(-1)  # (M,)
        z = torch.empty_like(xf[i])
        for label in xl.unique().tolist():
            xs = xl == label
            ys = yl == label
            style = yf[i][:, ys] if label >= 0 and int(ys.sum()) >= min_pixels else yf[i]
            z[:, xs] = transform(xf[i][:, xs], style)
        out.append(z)
    z = torch.stack(out).reshape(b, c, h, w)
    return z if alpha == 1.0 else alpha * z + (1.0 - alpha) * x


class FeatureAggregation(nn.Module):
    """Parameter-free FA layer; thin module around :func:`feature_aggregation`.

    Args:
        variant: default aggregation; can be overridden per call.
    """

    def __init__(self, variant: FAVariant = "mean_std") -> None:
        super().__init__()
        fa_variant(variant)  # raises for an unknown variant
        self.variant: FAVariant = variant

    def forward(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        x_labels: torch.Tensor | None = None,
        y_labels: torch.Tensor | None = None,
        alpha: float = 1.0,
        variant: FAVariant | None = None,
    ) -> torch.Tensor:
        """Shape: x (B, C, H, W), y (B, C, Hs, Ws) -> (B, C, H, W)."""
        return feature_aggregation(
            x,
            y,
            variant or self.variant,
            x_labels=x_labels,
            y_labels=y_labels,
            alpha=alpha,
        )

    def extra_repr(self) -> str:
        return f"variant={self.variant!r}"
