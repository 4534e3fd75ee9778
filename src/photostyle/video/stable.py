"""Temporally stable stylization of a clip: one style encoding, smoothed content statistics.

Stylizing every frame on its own (``per_frame``, the baseline) normalises each frame by its own
feature statistics at every FA layer (and, in a residual decoder, at the image-level base). When a
frame's statistics move slightly (the camera pans over a bright window, an object enters), the
colour transfer of the *whole* frame moves with them: unchanged regions change colour from frame to
frame. :class:`ClipStylizer` keeps the transfer stable:

- the style image is resized and encoded once per clip, and its statistics at every FA layer
  (mean and standard deviation, or mean and covariance square root for ``wct``) are computed once;
- the content side of every FA layer uses statistics pooled over the recent frames: an exponential
  moving average of each frame's mean and (co)variance, pooled as a mixture (Eq. (1)'s ``mu`` and
  the spread around it, averaged over time instead of taken from the frame alone);
- optionally (``deflicker``), a global exposure change between consecutive frames (a per-channel
  gain, estimated robustly from co-located pixels) is divided out before stylization. Per-frame
  statistics cancel such a gain by themselves; pooled statistics would otherwise let it through;
- a frame that differs from the previous one by more than ``scene_cut`` (mean absolute change at
  working size) starts a new shot: the pooled statistics and the exposure start afresh.

The decoder's layers run through ``photostyle.models.decoder.Decoder.decode`` with FA layers that
use the pooled statistics; with ``smoothing=0`` and ``deflicker=False`` the
result equals the model's own forward pass (a test checks this).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Final

import torch

from photostyle.api import Stylizer
from photostyle.inference import (
    NetworkOutput,
    StylizeOptions,
    TorchBackend,
    WorkingStyle,
    finish,
    to_full_size,
    to_working_size,
    working_style,
)
from photostyle.models.affine import AffineHead
from photostyle.models.decoder import residual_tail
from photostyle.models.encoder import EncoderOutput
from photostyle.models.layers import FAVariant, fa_names, fa_variant, feature_aggregation
from photostyle.models.stylizer import PhotoStylizer
from photostyle.upsample import UpsampleMethod

# FA variants whose content statistics are pooled: those matching moments (as ``mean_std``) or
# the covariance (as ``wct``), recomputed here from pooled statistics.
SMOOTHED_VARIANTS: Final = fa_names(lambda spec: spec.statistics in ("moments", "covariance"))
# No statistics: run as in the model.
STATELESS_VARIANTS: Final = fa_names(lambda spec: spec.statistics == "none")
_EPS: Final = 1e-5  # the FA layers' eps (photostyle.models.layers)
_DARK, _BRIGHT = 0.02, 0.98  # pixels outside this range are ignored by the exposure estimate

# Content statistics of one FA layer: mean (C, 1) and variance (C, 1) for ``mean_std``, or mean
# (C, 1) and covariance (C, C) in float64 for ``wct``.
Stats = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class ClipOptions:
    """Settings of :class:`ClipStylizer`."""

    alpha: float = 1.0  # FA strength: 0 returns the frames, 1 fully aggregates the style
    max_size: int | None = None  # longest side the network works at; None = the model's own
    per_frame: bool = False  # stylize every frame independently (the baseline; flickers more)
    smoothing: float = 0.9  # weight of the running statistics in each frame's FA statistics
    deflicker: bool = True  # divide out global exposure changes between consecutive frames
    scene_cut: float = 0.18  # mean |change| of consecutive frames (0..1) that starts a new shot
    upsample: UpsampleMethod = "guided"  # how a working-size result reaches full size

    def __post_init__(self) -> None:
        StylizeOptions(alpha=self.alpha, max_size=self.max_size, upsample=self.upsample)  # checks
        if not 0.0 <= self.smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {self.smoothing}")
        if not self.scene_cut > 0:
            raise ValueError(f"scene_cut must be positive, got {self.scene_cut}")


# --------------------------------------------------------------------------------------------
# FA with given statistics (pure functions)
# --------------------------------------------------------------------------------------------


def _sym_power(cov: torch.Tensor, power: float) -> torch.Tensor:
    """``cov ** power`` of a symmetric matrix, eigenvalues clamped at eps (as in ``fa_wct``)."""
    evals, evecs = torch.linalg.eigh(cov)
    return (evecs * evals.clamp_min(_EPS).pow(power)) @ evecs.T


def content_stats(x: torch.Tensor, variant: FAVariant) -> Stats:
    """Statistics the FA layer ``variant`` takes from content features.

    Args:
        x: (C, N) features.
        variant: one matching ``moments`` (``mean_std``) or the ``covariance`` (``wct``).

    Returns:
        mean (C, 1) and variance (C, 1) (``moments``) or covariance (C, C) float64
        (``covariance``).
    """
    mu = x.mean(dim=1, keepdim=True)
    statistics = fa_variant(variant).statistics
    if statistics == "moments":
        return mu, x.var(dim=1, keepdim=True, unbiased=False)
    if statistics == "covariance":
        xc = (x - mu).double()
        return mu, xc @ xc.T / max(x.shape[1] - 1, 1)
    raise ValueError(f"no content statistics for FA variant {variant!r}")


def style_stats(y: torch.Tensor, variant: FAVariant) -> Stats:
    """What FA needs from the style, computed once per clip.

    Shape: y (C, M) -> mean (C, 1) and standard deviation (C, 1) (``mean_std``) or the
    covariance square root (C, C) float64 (``wct``).
    """
    mu, spread = content_stats(y, variant)
    if fa_variant(variant).statistics == "moments":
        return mu, (spread + _EPS).sqrt()
    eye = torch.eye(y.shape[0], dtype=torch.float64, device=y.device)
    return mu, _sym_power(spread + _EPS * eye, 0.5)


def pool_stats(running: Stats, frame: Stats, smoothing: float) -> Stats:
    """Statistics of a mixture: ``smoothing`` of the running population, the rest this frame.

    The mixture's (co)variance includes the spread between the two means, so pooling frames gives
    the statistics of the frames' pixels taken together. ``smoothing = 0`` returns ``frame``.

    Shape: each mean (C, 1), each spread (C, 1) or (C, C) -> the same.
    """
    w = smoothing
    mu_r, s_r = running
    mu_f, s_f = frame
    d = mu_r - mu_f  # (C, 1)
    between = d * d if s_f.shape[1] == 1 else (d.double() @ d.double().T)
    return w * mu_r + (1 - w) * mu_f, w * s_r + (1 - w) * s_f + w * (1 - w) * between


def fa_with_stats(
    x: torch.Tensor, x_stats: Stats, y_stats: Stats, variant: FAVariant
) -> torch.Tensor:
    """FA (``mean_std`` or ``wct``) of ``x`` with the given content and style statistics.

    With ``x_stats = content_stats(x)`` and ``y_stats = style_stats(y)`` this equals
    ``photostyle.models.layers.fa_mean_std`` / ``fa_wct`` of ``x`` and ``y``.

    Shape: x (C, N) -> (C, N).
    """
    mu_x, spread_x = x_stats
    mu_y, spread_y = y_stats
    if fa_variant(variant).statistics == "moments":
        return (x - mu_x) / (spread_x + _EPS).sqrt() * spread_y + mu_y
    eye = torch.eye(x.shape[0], dtype=torch.float64, device=x.device)
    transform = (spread_y @ _sym_power(spread_x + _EPS * eye, -0.5)).to(x.dtype)
    return transform @ (x - mu_x) + mu_y


def exposure_ratio(frame: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    """Per-channel gain from ``previous`` to ``frame``: the median ratio of co-located pixels.

    Motion moves pixel values both ways, a global exposure change scales all of them, so the
    median of the log ratio picks the exposure change. Near-black and clipped pixels are ignored;
    a channel with fewer than 1% usable pixels gets gain 1.

    Shape: frame (3, H, W), previous (3, H, W) -> (3,).
    """
    if frame.shape != previous.shape:
        raise ValueError(f"frames differ in shape: {tuple(frame.shape)}, {tuple(previous.shape)}")
    a, b = previous.flatten(1).float(), frame.flatten(1).float()  # (3, N)
    usable = (a > _DARK) & (a < _BRIGHT) & (b > _DARK) & (b < _BRIGHT)
    log_ratio = (b.clamp_min(_DARK) / a.clamp_min(_DARK)).log()
    gains = []
    for c in range(a.shape[0]):
        values = log_ratio[c][usable[c]]
        enough = values.numel() >= max(1, a.shape[1] // 100)
        gains.append(values.median().exp() if enough else log_ratio.new_ones(()))
    return torch.stack(gains)


# --------------------------------------------------------------------------------------------
# The clip stylizer
# --------------------------------------------------------------------------------------------


class ClipStylizer:
    """Stylizes the frames of one clip in order, with one style photo.

    Args:
        stylizer: a loaded :class:`~photostyle.api.Stylizer` (its FA variant is used).
        style: (3, Hs, Ws) RGB in [0, 1].
        options: strength, working size, per-frame or smoothed statistics.

    Raises:
        ValueError: bad style tensor, or smoothed statistics asked for an FA variant without them
            (``quantile``: use ``per_frame``).

    Example:
        >>> clip = ClipStylizer(Stylizer(), style)  # doctest: +SKIP
        >>> outputs = [clip(frame) for frame in frames]  # each (3, H, W)  # doctest: +SKIP
    """

    def __init__(
        self, stylizer: Stylizer, style: torch.Tensor, options: ClipOptions | None = None
    ) -> None:
        if style.ndim != 3 or style.shape[0] != 3 or not style.is_floating_point():
            raise ValueError(f"style must be a float (3, H, W) image, got {tuple(style.shape)}")
        self.options = opts = options or ClipOptions()
        self.model: PhotoStylizer = stylizer.model
        head = self.model.decoder
        # The affine head's colour model is smoothed itself, whatever its FA variant.
        self.affine = isinstance(head, AffineHead)
        self.variant: FAVariant = (
            stylizer.config.fa if isinstance(head, AffineHead) else head.variant
        )
        smoothable = (*SMOOTHED_VARIANTS, *STATELESS_VARIANTS)
        if not opts.per_frame and not self.affine and self.variant not in smoothable:
            raise ValueError(
                f"smoothed statistics support FA {', '.join(SMOOTHED_VARIANTS)}; "
                f"use per-frame mode with FA {self.variant!r}"
            )
        self.device, self.dtype = stylizer.device, stylizer.dtype
        model_size = self.model.config.working_size
        self.max_size = opts.max_size if opts.max_size is not None else model_size
        # Per-frame mode runs the model as the API does (photostyle.inference).
        self.network = TorchBackend(self.model)
        with torch.inference_mode():
            # As in Stylizer.stylize: resizing in float32, only the network in ``dtype``.
            self.working_style: WorkingStyle = self.network.encode_style(
                working_style(style, self.max_size, self.device, self.dtype)
            )
            self.style = self.working_style.image  # (1, 3, hs, ws)
            assert self.working_style.encoding is not None
            self.style_enc: EncoderOutput = self.working_style.encoding
            k = self.model.decoder.feature_scale
            self.style_taps = [t * k if k != 1.0 else t for t in self.style_enc.taps]
            self._style_stats: dict[int, Stats] = {}
            if self.variant in SMOOTHED_VARIANTS and not opts.per_frame and not self.affine:
                for site, y in enumerate([self.style[0], *(t[0] for t in self.style_taps)]):
                    self._style_stats[site] = style_stats(y.flatten(1), self.variant)
        self.reset()

    def reset(self) -> None:
        """Forget the running statistics (start a new clip with the same style)."""
        self._running: dict[int, Stats] = {}
        self._log_gain: torch.Tensor | None = None  # (3,) log of the exposure divided out
        self._previous: torch.Tensor | None = None  # (1, 3, h, w) last frame at working size
        # Affine head: running colour-model grid (base, learned part).
        self._grid: tuple[torch.Tensor, torch.Tensor] | None = None
        self._size: tuple[int, int] | None = None  # (H, W) of the clip's frames
        self.frames = 0  # frames stylized since the last reset

    @torch.inference_mode()
    def __call__(self, frame: torch.Tensor) -> torch.Tensor:
        """Stylize the next frame of the clip.

        Args:
            frame: (3, H, W) RGB in [0, 1]; every frame of a clip has the same size.

        Returns:
            (3, H, W) RGB in [0, 1], float32 on the CPU.
        """
        if frame.ndim != 3 or frame.shape[0] != 3 or not frame.is_floating_point():
            raise ValueError(f"frame must be a float (3, H, W) image, got {tuple(frame.shape)}")
        if self._size is not None and self._size != tuple(frame.shape[-2:]):
            h, w = self._size
            got = f"{frame.shape[-1]}x{frame.shape[-2]}"
            raise ValueError(f"frame {self.frames} is {got} but the clip is {w}x{h}")
        opts = self.options
        h, w = frame.shape[-2:]
        # (1, 3, H, W) and (1, 3, h, w), float32 like stylize
        full, small = to_working_size(frame, self.max_size, self.device)
        out: NetworkOutput
        if opts.per_frame:
            if self.affine:
                out = self._colour_model(small, smooth=False)
            else:
                out = self.network.run(
                    small.to(self.dtype), self.working_style, alpha=opts.alpha, fa=self.variant
                )
        else:
            previous, self._previous = self._previous, small
            if previous is not None and float((small - previous).abs().mean()) > opts.scene_cut:
                previous = None  # a new shot: statistics of the old one do not apply
                self._running.clear()
                self._grid = None
            if opts.deflicker:
                gain = self._exposure(small, previous)  # (1, 3, 1, 1)
                full, small = full / gain, small / gain
            if self.affine:
                out = self._colour_model(small, smooth=True)
            else:
                out = NetworkOutput(image=self._stable_forward(small.to(self.dtype)))
        self._size = (int(h), int(w))
        self.frames += 1
        return finish(to_full_size(full, small, out, opts.upsample))  # (3, H, W)

    def _colour_model(self, small: torch.Tensor, *, smooth: bool) -> NetworkOutput:
        """Affine head: the colour model of this frame, at working size.

        With ``smooth`` the colour model's grid (base and learned part, before it is read at the
        frame's brightness) is an exponential moving average over the frames (reset at a scene
        cut), so the look changes no faster than the scene. The per-photo refinement of
        :meth:`Stylizer.stylize` is not run on video: the one-pass grade, smoothed, is steadier.

        Shape: small (1, 3, h, w) -> coeffs (1, 12, h, w), float32.
        """
        opts = self.options
        head = self.model.decoder
        assert isinstance(head, AffineHead)
        content = small.to(self.dtype)
        base, residual = head.grid(
            content, self.style, self.model.encoder(content), self.style_enc, variant=self.variant
        )
        grid = (base.float(), residual.float())  # (1, 12, gh, gw), (1, 12, bins, gh|1, gw|1)
        if smooth:
            old = self._grid
            if old is not None and all(a.shape == b.shape for a, b in zip(old, grid, strict=True)):
                k = opts.smoothing
                grid = (k * old[0] + (1 - k) * grid[0], k * old[1] + (1 - k) * grid[1])
            self._grid = grid
        coeffs = head.colour_model(content.float(), *grid, alpha=opts.alpha).coeffs
        return NetworkOutput(coeffs=coeffs)  # applied at full size by to_full_size

    def _exposure(self, small: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        """Gain to divide this frame by, (1, 3, 1, 1); updates the exposure state."""
        if previous is None or self._log_gain is None:
            self._log_gain = small.new_zeros(3, dtype=torch.float32)
        else:
            step = exposure_ratio(small[0], previous[0]).log()
            # Jumps are divided out at once and relax back with the statistics' time constant,
            # so a lasting change of exposure reaches the output as a fade, not a step.
            self._log_gain = self.options.smoothing * self._log_gain + step
        gain = (self._log_gain * self.options.alpha).exp()  # alpha 0: the frames as they are
        return gain.to(small.dtype).view(1, 3, 1, 1)

    def _aggregate(self, site: int, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """FA at ``site`` (0: image base, 1..4: FA1..FA4) with pooled content statistics.

        Shape: x (1, C, H, W), style (1, C, Hs, Ws) -> (1, C, H, W).
        """
        alpha = self.options.alpha
        if self.variant not in SMOOTHED_VARIANTS:
            return feature_aggregation(x, style, self.variant, alpha=alpha)
        xf = x[0].flatten(1)  # (C, N)
        stats = content_stats(xf, self.variant)
        if site in self._running:
            stats = pool_stats(self._running[site], stats, self.options.smoothing)
        self._running[site] = stats
        z = fa_with_stats(xf, stats, self._style_stats[site], self.variant).reshape(x.shape)
        return z if alpha == 1.0 else alpha * z + (1.0 - alpha) * x

    def _stable_forward(self, content: torch.Tensor) -> torch.Tensor:
        """The model's forward pass with pooled FA statistics (``Decoder.decode`` with our FA).

        Shape: (1, 3, h, w) -> (1, 3, h, w), unclamped.
        """
        decoder = self.model.pixel_decoder
        taps = self.style_taps
        h, _ = decoder.decode(
            self.model.encoder(content), lambda level, x: self._aggregate(level + 1, x, taps[level])
        )
        if decoder.residual:  # as the decoder, with the pooled statistics at the image level
            image_fa = partial(self._aggregate, 0, style=self.style)  # site 0: the pixels
            h = residual_tail(content, h, self.options.alpha, self.variant, image_fa)
        return h
