"""Carry a stylization made at working resolution to the photo's full resolution.

The network runs at a working size (a few hundred thousand pixels); phone and camera photos have
12-48 MP. Three ways back up, all with structure from the full-resolution content except
``bicubic``:

- ``guided`` (default): a local affine colour model. At working size, fit per pixel
  ``out - content ~= A(x) @ content + b(x)`` (A: 3x3, b: 3) over a ``(2r+1)^2`` window with the
  colour guided filter's closed form (He, Sun, Tang, "Guided Image Filtering", TPAMI 2013,
  Eqs. (5)-(8) and (19)); upsample the smooth coefficient maps bilinearly and apply them to the
  full-resolution content, plus the content itself (the "fast guided filter", He & Sun 2015).
  Edges stay where the content has them: a colour change follows an edge that the working-size
  content resolves instead of being blurred across it.
- ``change``: add the bilinearly upsampled change (output - content, at working size) to the
  full-resolution content. Cheap; a change that differs on two sides of an edge is blurred
  across it by the upsampling.
- ``bicubic``: plain bicubic upsampling of the output (the baseline every tool has): all detail
  finer than the working size is lost.

Full resolution is processed in strips of rows, so the extra memory beyond the full-resolution
input and output buffers is bounded by ``strip_rows x W`` (not by the megapixels).

Each method is registered once, as an :class:`UpsamplerSpec` (its function and what it keeps:
the content's detail, its edges, bounded memory); :func:`upsampler` looks one up and
:data:`UPSAMPLE_METHODS` lists them. A new method is one :func:`register_upsampler` call.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Protocol, TypeAlias

import torch
import torch.nn.functional as F

from photostyle.registry import Registry

DEFAULT_RADIUS = 2  # window radius of the local affine fit, in working-size pixels
DEFAULT_EPS = 1e-4  # regulariser of the fit (a variance in [0, 1] intensity units)
DEFAULT_STRIP_ROWS = 1024  # full-resolution rows processed at once (fastest of 128-4096)
_TILE_PIXELS = 1 << 16  # output pixels per tile: its 4C coefficient planes stay in cache
_MIN_RUN = 4  # output rows (columns) per working one from which runs are broadcast


def box_filter(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a ``(2r+1) x (2r+1)`` window, averaging only the pixels inside the image.

    Shape: (B, C, H, W) -> (B, C, H, W).
    """
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    if radius == 0:
        return x
    k = 2 * radius + 1
    if min(x.shape[-2:]) < k:  # avg_pool2d needs the padded image to hold the window
        x = F.pad(x, (radius, radius, radius, radius), mode="constant")
        ones = F.pad(torch.ones_like(x[:, :1, radius:-radius, radius:-radius]), (radius,) * 4)
        return F.avg_pool2d(x, k, stride=1) / F.avg_pool2d(ones, k, stride=1)
    return F.avg_pool2d(x, k, stride=1, padding=radius, count_include_pad=False)


def fit_local_affine(
    guide: torch.Tensor,
    target: torch.Tensor,
    radius: int = DEFAULT_RADIUS,
    eps: float = DEFAULT_EPS,
) -> torch.Tensor:
    """Per-pixel affine colour model ``target ~= A @ guide + b``, averaged over windows.

    Args:
        guide: (B, 3, h, w) the content at working size.
        target: (B, C, h, w) the stylized output at working size.
        radius: window radius r.
        eps: ridge regulariser; larger = smoother, closer to a global colour transform.

    Returns:
        (B, 3C + C, h, w) coefficients: ``A`` row-major as channels ``[k*3 + j]`` (output channel
        k, guide channel j), then ``b``; already window-averaged (the guided filter's mean of
        ``a`` and ``b``, Eq. (8)).

    Shape: guide (B, 3, h, w), target (B, C, h, w) -> (B, 4C, h, w).
    """
    if guide.ndim != 4 or guide.shape[1] != 3:
        raise ValueError(f"guide must be (B, 3, h, w), got {tuple(guide.shape)}")
    if target.ndim != 4 or target.shape[0] != guide.shape[0] or target.shape[2:] != guide.shape[2:]:
        raise ValueError(f"target {tuple(target.shape)} does not match guide {tuple(guide.shape)}")
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")
    b, c = guide.shape[0], target.shape[1]
    h, w = guide.shape[-2:]
    work = torch.float64 if guide.dtype == torch.float64 else torch.float32
    i, p = guide.to(work), target.to(work)
    mean_i = box_filter(i, radius)  # (B, 3, h, w)
    mean_p = box_filter(p, radius)  # (B, C, h, w)
    ii = (i[:, :, None] * i[:, None]).reshape(b, 9, h, w)
    cov_ii = box_filter(ii, radius).reshape(b, 3, 3, h, w) - mean_i[:, :, None] * mean_i[:, None]
    ip = (p[:, :, None] * i[:, None]).reshape(b, 3 * c, h, w)
    cov_pi = box_filter(ip, radius).reshape(b, c, 3, h, w) - mean_p[:, :, None] * mean_i[:, None]
    # He et al. Eq. (19): a = (Sigma + eps U)^-1 cov(I, p), per pixel and output channel.
    sigma = cov_ii.permute(0, 3, 4, 1, 2) + eps * torch.eye(3, dtype=work)  # (B, h, w, 3, 3)
    rhs = cov_pi.permute(0, 3, 4, 2, 1)  # (B, h, w, 3, C)
    a = torch.linalg.solve(sigma, rhs)  # (B, h, w, 3, C): Sigma symmetric, so a^T = cov^T Sigma^-1
    a = a.permute(0, 4, 3, 1, 2)  # (B, C, 3, h, w)
    bias = mean_p - (a * mean_i[:, None]).sum(2)  # Eq. (6): b = mean_p - a . mean_I
    coeffs = torch.cat([a.reshape(b, 3 * c, h, w), bias], 1)
    return box_filter(coeffs, radius).to(guide.dtype)  # Eq. (8): mean of a and b


def _linear_taps(n_out: int, n_in: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Indices and weights of 1-D linear interpolation, ``align_corners=False`` convention."""
    pos = (torch.arange(n_out, device=device, dtype=torch.float64) + 0.5) * (n_in / n_out) - 0.5
    pos = pos.clamp(0, n_in - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=n_in - 1)
    return lo, hi, pos - lo


def _runs(lo: torch.Tensor) -> list[tuple[int, int, int]]:
    """Runs ``(start, stop, lo)`` of consecutive output positions that read the same input
    positions (``hi`` is a function of ``lo``), from :func:`_linear_taps`' ``lo``."""
    starts = [0, *(torch.nonzero(lo[1:] != lo[:-1]).flatten() + 1).tolist()]
    stops = [*starts[1:], lo.numel()]
    return list(zip(starts, stops, lo[starts].tolist(), strict=True))


def _split(runs: list[tuple[int, int, int]], most: int) -> list[tuple[int, int, int]]:
    """The runs cut into near-equal pieces of at most ``most`` positions."""
    out = []
    for start, stop, lo in runs:
        pieces = -(-(stop - start) // most)
        bounds = [start + (stop - start) * i // pieces for i in range(pieces + 1)]
        out += [(a, b, lo) for a, b in itertools.pairwise(bounds)]
    return out


def apply_local_affine(
    coeffs: torch.Tensor,
    guide: torch.Tensor,
    *,
    strip_rows: int = DEFAULT_STRIP_ROWS,
    out: torch.Tensor | None = None,
    clamp: bool = False,
) -> torch.Tensor:
    """Upsample the coefficient maps bilinearly to the guide's size and apply them, strip by strip.

    The work is memory-bound, so each pass stays in cache. Per strip of ``strip_rows`` output
    rows, the working rows the strip reads are interpolated along the columns once (one broadcast
    ``lerp`` per run of columns between two working columns), into a buffer reused from strip to
    strip. Then each tile of output rows between the same two working rows (at most
    :data:`_TILE_PIXELS` pixels) gets its coefficients in one broadcast ``lerp`` and the affine
    map in three fused multiply-adds written straight into ``out``. Where the factor is small
    (fewer than :data:`_MIN_RUN` output rows or columns per working one) rows or columns are
    gathered instead. The ops are large enough for torch's intra-op threads. On a GPU, where
    kernel launches cost more than memory traffic, whole strips are gathered (a few kernels per
    strip). The result is a per-pixel ``lerp`` of ``lerp``'s, the same arithmetic either way.

    Args:
        coeffs: (B, 4C, h, w) from :func:`fit_local_affine`.
        guide: (B, 3, H, W) the full-resolution content.
        strip_rows: rows of the output computed at once (bounds the extra memory to about
            ``4C x strip_rows / (H / h) x W`` values).
        out: optional (B, C, H, W) buffer to write into.
        clamp: clamp the result to [0, 1] (while it is in cache, instead of another pass).

    Returns:
        (B, C, H, W) ``A(x) @ guide(x) + b(x)`` with bilinearly upsampled ``A`` and ``b``.

    Shape: coeffs (B, 4C, h, w), guide (B, 3, H, W) -> (B, C, H, W).
    """
    if strip_rows < 1:
        raise ValueError(f"strip_rows must be positive, got {strip_rows}")
    b, n, h, w = coeffs.shape
    c = n // 4
    if n != 4 * c or guide.ndim != 4 or guide.shape[:2] != (b, 3):
        raise ValueError(f"coeffs {tuple(coeffs.shape)} do not fit guide {tuple(guide.shape)}")
    height, width = guide.shape[-2:]
    if out is None:
        out = guide.new_empty(b, c, height, width)
    elif out.shape != (b, c, height, width):
        raise ValueError(f"out {tuple(out.shape)} is not {(b, c, height, width)}")
    dev = coeffs.device
    rows_lo, rows_hi, wy = _linear_taps(height, h, dev)
    cols_lo, cols_hi, wx = _linear_taps(width, w, dev)
    wy, wx = wy.to(coeffs.dtype), wx.to(coeffs.dtype)
    # A CPU is bound by memory traffic: small tiles in cache, broadcast runs. A GPU is bound by
    # kernel launches: a few large gathers per strip.
    cpu = dev.type == "cpu"
    col_runs = _runs(cols_lo) if cpu and width >= _MIN_RUN * w else None
    row_bands = cpu and height >= _MIN_RUN * h
    tile_rows = max(1, min(strip_rows, _TILE_PIXELS // width)) if cpu else strip_rows
    strips = [(y0, min(height, y0 + strip_rows)) for y0 in range(0, height, strip_rows)]
    reads = [(int(rows_lo[y0]), int(rows_hi[y1 - 1]) + 1) for y0, y1 in strips]
    cols = coeffs.new_empty(b, n, max(r1 - r0 for r0, r1 in reads), width)
    tile = coeffs.new_empty(b, n, tile_rows, width)
    for (y0, y1), (r0, r1) in zip(strips, reads, strict=True):
        block, k = coeffs[:, :, r0:r1], cols[:, :, : r1 - r0]
        if col_runs is None:  # few columns per working one: gather them
            torch.lerp(block.index_select(3, cols_lo), block.index_select(3, cols_hi), wx, out=k)
        else:  # one broadcast lerp per run of columns between two working columns
            for x0, x1, lo in col_runs:
                hi = min(lo + 1, w - 1)
                torch.lerp(
                    block[..., lo : lo + 1], block[..., hi : hi + 1], wx[x0:x1], out=k[..., x0:x1]
                )
        if row_bands:
            tiles = _split(_runs(rows_lo[y0:y1]), tile_rows)
        else:
            tiles = [(t, min(y1 - y0, t + tile_rows), -1) for t in range(0, y1 - y0, tile_rows)]
        for t0, t1, lo in tiles:
            ya, yb = y0 + t0, y0 + t1
            cf = tile[:, :, : t1 - t0]
            if lo >= 0:  # rows between the same two working rows: one broadcast lerp
                hi = min(lo + 1, h - 1) - r0
                torch.lerp(k[:, :, lo - r0, None], k[:, :, hi, None], wy[ya:yb, None], out=cf)
            else:
                lo_rows = k.index_select(2, rows_lo[ya:yb] - r0)
                hi_rows = k.index_select(2, rows_hi[ya:yb] - r0)
                torch.lerp(lo_rows, hi_rows, wy[ya:yb, None], out=cf)
            g, o = guide[:, :, ya:yb], out[:, :, ya:yb]
            # out_k = A_k0 g_0 + A_k1 g_1 + A_k2 g_2 + b_k for all k at once: A_kj is channel
            # 3k + j, so A_:j is every third channel from j.
            torch.addcmul(cf[:, 3 * c :], cf[:, 0 : 3 * c : 3], g[:, 0:1], out=o)
            o.addcmul_(cf[:, 1 : 3 * c : 3], g[:, 1:2]).addcmul_(cf[:, 2 : 3 * c : 3], g[:, 2:3])
            if clamp:
                o.clamp_(0, 1)
    return out


class Upsampler(Protocol):
    """Brings a working-size stylization to full size (see :func:`upsample_stylized`).

    Shape: content (B, 3, H, W), content_small (B, 3, h, w), stylized_small (B, 3, h, w)
    -> (B, 3, H, W), not clamped.
    """

    def __call__(
        self,
        content: torch.Tensor,
        content_small: torch.Tensor,
        stylized_small: torch.Tensor,
        *,
        radius: int,
        eps: float,
        strip_rows: int,
    ) -> torch.Tensor: ...


@dataclass(frozen=True)
class UpsamplerSpec:
    """One way back to full size: its function and what it keeps."""

    name: str  # the method's name (--upsample, StylizeOptions.upsample)
    upsample: Upsampler  # (content, content_small, stylized_small, radius/eps/strip_rows) -> full
    content_detail: bool  # detail finer than the working size comes from the full-size content
    edge_aware: bool  # a change follows the content's edges instead of being blurred across them
    strips: bool  # full resolution in strips: extra memory bounded by strip_rows x W


UPSAMPLER_REGISTRY: Registry[UpsamplerSpec] = Registry("upsampling")  # name -> spec


def register_upsampler(spec: UpsamplerSpec) -> UpsamplerSpec:
    """Add an upsampling method; it is then accepted wherever one is named.

    Raises:
        ValueError: a method of that name is registered already.
    """
    return UPSAMPLER_REGISTRY.register(spec.name, spec)


def upsampler(name: str) -> UpsamplerSpec:
    """The registered upsampling method ``name``.

    Raises:
        ValueError: no such method (the message names the choices).
    """
    return UPSAMPLER_REGISTRY.get(name)


UPSAMPLE_METHODS: Sequence[str] = UPSAMPLER_REGISTRY.names()  # registered names, in order
# The name of a registered upsampling method; the metadata lists the choices (config files).
UpsampleMethod: TypeAlias = Annotated[str, UPSAMPLE_METHODS]


def _bicubic(
    content: torch.Tensor,
    content_small: torch.Tensor,
    stylized_small: torch.Tensor,
    *,
    radius: int,
    eps: float,
    strip_rows: int,
) -> torch.Tensor:
    """Plain bicubic upsampling of the output. Shape: see :class:`Upsampler`."""
    size = (content.shape[-2], content.shape[-1])
    return F.interpolate(stylized_small, size=size, mode="bicubic", align_corners=False)


def _change(
    content: torch.Tensor,
    content_small: torch.Tensor,
    stylized_small: torch.Tensor,
    *,
    radius: int,
    eps: float,
    strip_rows: int,
) -> torch.Tensor:
    """The content plus the bilinearly upsampled change. Shape: see :class:`Upsampler`."""
    out = content.new_empty(content.shape)
    coeffs = torch.cat([_identity_a(content_small), stylized_small - content_small], 1)
    return apply_local_affine(coeffs, content, strip_rows=strip_rows, out=out)


def _guided(
    content: torch.Tensor,
    content_small: torch.Tensor,
    stylized_small: torch.Tensor,
    *,
    radius: int,
    eps: float,
    strip_rows: int,
) -> torch.Tensor:
    """The local affine colour model applied at full size. Shape: see :class:`Upsampler`."""
    # Fit the change, not the output: the ridge then shrinks towards a locally constant
    # change (the "change" method) rather than towards a flat colour, and an output equal
    # to its input (alpha = 0) comes back exactly.
    coeffs = fit_local_affine(content_small, stylized_small - content_small, radius, eps)
    coeffs[:, :9] += _identity_a(content_small)  # out = (A + I) content + b
    return apply_local_affine(coeffs, content, strip_rows=strip_rows)


def upsample_stylized(
    content: torch.Tensor,
    content_small: torch.Tensor,
    stylized_small: torch.Tensor,
    method: UpsampleMethod = "guided",
    *,
    radius: int = DEFAULT_RADIUS,
    eps: float = DEFAULT_EPS,
    strip_rows: int = DEFAULT_STRIP_ROWS,
) -> torch.Tensor:
    """Bring a working-size stylization to the content's full size.

    Args:
        content: (B, 3, H, W) the full-resolution content.
        content_small: (B, 3, h, w) the content at working size (the network's input).
        stylized_small: (B, 3, h, w) the network's output.
        method: a registered method: ``guided``, ``change`` or ``bicubic`` (see the module
            docstring).
        radius: window radius of ``guided``, in working-size pixels.
        eps: regulariser of ``guided``.
        strip_rows: full-resolution rows processed at once.

    Returns:
        (B, 3, H, W), not clamped. When (h, w) == (H, W) the output is ``stylized_small``.
    """
    if content_small.shape != stylized_small.shape:
        raise ValueError(
            f"stylized {tuple(stylized_small.shape)} differs from content "
            f"{tuple(content_small.shape)}"
        )
    spec = upsampler(method)
    if content_small.shape[-2:] == content.shape[-2:]:
        return stylized_small
    return spec.upsample(
        content, content_small, stylized_small, radius=radius, eps=eps, strip_rows=strip_rows
    )


def identity_coeffs(batch: int, size: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
    """Coefficients ``[A | b]`` of the identity colour map (A = I, b = 0), in ``like``'s dtype.

    Shape: -> (B, 12, h, w) with (h, w) = ``size``.
    """
    eye = torch.zeros(12, dtype=like.dtype, device=like.device)
    eye[[0, 4, 8]] = 1.0
    return eye.reshape(1, 12, 1, 1).expand(batch, 12, *size)


def _identity_a(x: torch.Tensor) -> torch.Tensor:
    """Coefficients A = I (B, 9, h, w), so that applying ``[A, change]`` adds the change."""
    return identity_coeffs(x.shape[0], (x.shape[-2], x.shape[-1]), x)[:, :9]


# The built-in methods, in the order the CLI lists them (the default first).
register_upsampler(
    UpsamplerSpec("guided", _guided, content_detail=True, edge_aware=True, strips=True)
)
register_upsampler(
    UpsamplerSpec("change", _change, content_detail=True, edge_aware=False, strips=True)
)
register_upsampler(
    UpsamplerSpec("bicubic", _bicubic, content_detail=False, edge_aware=False, strips=False)
)


__all__ = [
    "UPSAMPLER_REGISTRY",
    "UPSAMPLE_METHODS",
    "UpsampleMethod",
    "Upsampler",
    "UpsamplerSpec",
    "apply_local_affine",
    "box_filter",
    "fit_local_affine",
    "identity_coeffs",
    "register_upsampler",
    "upsample_stylized",
    "upsampler",
]
