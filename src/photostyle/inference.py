"""The one stylize path: working size -> network -> full size.

Every stylization of a photo takes the same three steps, here and nowhere else:

1. **Working size**: the content and the style are shrunk (area averaging, in float32) so that
   their longest side is at most ``max_size`` (:func:`working_size`, :func:`to_working_size`,
   :func:`working_style`); the network computes in its own dtype.
2. **Network**: a :class:`NetworkBackend` makes, at working size, either the stylized image
   (a pixel decoder) or a local affine colour model (the affine head, see
   :mod:`photostyle.models.affine`), as a :class:`NetworkOutput`. :class:`TorchBackend` runs a
   :class:`~photostyle.models.stylizer.PhotoStylizer`;
   :class:`photostyle.deploy.onnx.OnnxNetwork` runs its ONNX export with onnxruntime. The FA
   variant, strength and refinement are arguments of each call: no module is changed.
3. **Full size**: :func:`to_full_size` applies a colour model to the full-resolution content, or
   brings a working-size image back with a registered upsampler (:mod:`photostyle.upsample`).

:func:`stylize_photo` chains them for one photo (:meth:`photostyle.api.Stylizer.stylize`); video
(:mod:`photostyle.video.stable`) and the neural baselines (:mod:`photostyle.eval.neural_baselines`)
use the steps with networks of their own.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Protocol

import torch
import torch.nn.functional as F

from photostyle.models.affine import AffineHead
from photostyle.models.encoder import EncoderOutput
from photostyle.models.layers import FA_VARIANTS, FAVariant
from photostyle.models.refine import refine_grade
from photostyle.models.stylizer import ModelConfig, PhotoStylizer
from photostyle.upsample import (
    UPSAMPLE_METHODS,
    UpsampleMethod,
    apply_local_affine,
    upsample_stylized,
)
from photostyle.utils import resize_image

# Per-call timing hook: called with (stage, seconds) after each stage of a stylization:
# "resize", "style_encoding", "network", "full_resolution" (a stage may be reported more than
# once per call: add them up). See :func:`stylize_photo`.
StageHook = Callable[[str, float], None]
STAGES: tuple[str, ...] = ("resize", "style_encoding", "network", "full_resolution")


@dataclass(frozen=True)
class StylizeOptions:
    """Per-call settings of a stylization (:meth:`photostyle.api.Stylizer.stylize`)."""

    alpha: float = 1.0  # FA strength: 0 keeps the content features, 1 fully aggregates the style
    max_size: int | None = None  # longest side the network works at; None = the model's own
    fa: FAVariant | None = None  # FA variant; None = the stylizer's default
    upsample: UpsampleMethod = "guided"  # how a working-size result reaches full size
    refine: int | None = None  # curves head: per-photo refinement steps; None = the model's own

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.refine is not None and self.refine < 0:
            raise ValueError(f"refine must be >= 0, got {self.refine}")
        if self.max_size is not None and self.max_size < 16:
            raise ValueError(f"max_size must be at least 16, got {self.max_size}")
        if self.fa is not None and self.fa not in FA_VARIANTS:
            raise ValueError(f"unknown FA variant {self.fa!r}; choose from {FA_VARIANTS}")
        if self.upsample not in UPSAMPLE_METHODS:
            raise ValueError(
                f"unknown upsampling {self.upsample!r}; choose from {UPSAMPLE_METHODS}"
            )


def resolve_options(options: StylizeOptions | None, config: ModelConfig) -> StylizeOptions:
    """``options`` (default: all defaults) with every model default filled in from ``config``:
    the working size (``ModelConfig.working_size``), the FA variant and the refinement steps.

    Raises:
        ValueError: refinement asked of a model without the affine head's curves residual.
    """
    opts = options or StylizeOptions()
    if opts.refine and config.grid_residual != "curves":
        raise ValueError("refine needs a model with the affine head's curves residual")
    return replace(
        opts,
        max_size=opts.max_size if opts.max_size is not None else config.working_size,
        fa=opts.fa or config.fa,
        refine=opts.refine if opts.refine is not None else config.refine_steps,
    )


def working_size(h: int, w: int, max_size: int) -> tuple[int, int]:
    """Size (h, w) with the longest side at most ``max_size``, keeping the aspect ratio."""
    scale = min(1.0, max_size / max(h, w))
    return max(16, round(h * scale)), max(16, round(w * scale))


def to_working_size(
    image: torch.Tensor, max_size: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The image at full size and at working size, float32 on ``device``.

    Shape: (3, H, W) -> (1, 3, H, W) and (1, 3, h, w), ``(h, w) = working_size(H, W, max_size)``.
    """
    full = image[None].to(device, torch.float32)
    h, w = image.shape[-2:]
    return full, resize_image(full, working_size(h, w, max_size))


def resize_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Semantic labels resized by nearest neighbour. Shape: (H, W) -> (1, *size), int64."""
    return F.interpolate(labels[None, None].float(), size=size, mode="nearest")[:, 0].long()


@dataclass(frozen=True)
class WorkingStyle:
    """The style as the network takes it: at working size, in the network's dtype."""

    image: torch.Tensor  # (1, 3, hs, ws) RGB in [0, 1]; its device and dtype are the network's
    labels: torch.Tensor | None = None  # (1, hs, ws) int64 semantic labels, or None
    encoding: EncoderOutput | None = None  # the encoder's output of ``image`` (None: per call)


def working_style(
    style: torch.Tensor,
    max_size: int,
    device: torch.device,
    dtype: torch.dtype,
    mask: torch.Tensor | None = None,
) -> WorkingStyle:
    """Shrink the style to working size (in float32), then cast it to the network's ``dtype``.

    Shape: style (3, Hs, Ws), mask (Hs, Ws) -> image (1, 3, hs, ws), labels (1, hs, ws).
    """
    _, small = to_working_size(style, max_size, device)
    labels = None
    if mask is not None:
        labels = resize_labels(mask, (small.shape[-2], small.shape[-1])).to(device)
    return WorkingStyle(image=small.to(dtype), labels=labels)


@dataclass(frozen=True)
class NetworkOutput:
    """What a network made at working size: an image, or a colour model for the full size."""

    image: torch.Tensor | None = None  # (1, 3, h, w) stylized RGB, unclamped (pixel decoder)
    coeffs: torch.Tensor | None = None  # (1, 12, h, w) local affine colour model (affine head)


class NetworkBackend(Protocol):
    """One network pass at working size; :class:`TorchBackend` and
    :class:`photostyle.deploy.onnx.OnnxNetwork` are the two."""

    @property
    def encodes_style(self) -> bool:
        """Whether :meth:`encode_style` does work (an encoding reused for many photos)."""
        ...

    @property
    def fixed_fa(self) -> FAVariant | None:
        """The FA variant built into the network (an export), or None: chosen per call."""
        ...

    def encode_style(self, style: WorkingStyle) -> WorkingStyle:
        """``style`` with its encoding, computed once for many photos (or ``style`` itself)."""
        ...

    def run(
        self,
        content: torch.Tensor,
        style: WorkingStyle,
        *,
        alpha: float,
        fa: FAVariant,
        refine: int = 0,
        content_labels: torch.Tensor | None = None,
    ) -> NetworkOutput:
        """Stylize ``content`` (1, 3, h, w, in the network's dtype) with ``style``.

        ``alpha``: FA strength; ``fa``: FA variant of this call; ``refine``: per-photo
        refinement steps (affine head with the curves residual); ``content_labels``: (1, h, w).
        """
        ...


class TorchBackend:
    """A :class:`~photostyle.models.stylizer.PhotoStylizer` run by PyTorch (the default backend).

    Args:
        model: the stylizer, on its device and in its dtype; it is never changed.
        memory_format: the layout its inputs are given in (``torch.channels_last`` when its
            weights are).
    """

    encodes_style = True
    fixed_fa = None  # the variant is an argument of each call

    def __init__(
        self, model: PhotoStylizer, *, memory_format: torch.memory_format = torch.contiguous_format
    ) -> None:
        self.model = model
        self.memory_format = memory_format

    def encode_style(self, style: WorkingStyle) -> WorkingStyle:
        """``style`` with the encoder's output of its image."""
        image = style.image.contiguous(memory_format=self.memory_format)
        return replace(style, encoding=self.model.encoder(image))

    def run(
        self,
        content: torch.Tensor,
        style: WorkingStyle,
        *,
        alpha: float,
        fa: FAVariant,
        refine: int = 0,
        content_labels: torch.Tensor | None = None,
    ) -> NetworkOutput:
        """See :class:`NetworkBackend`.

        Shape: content (1, 3, h, w) -> image (1, 3, h, w) or coeffs (1, 12, h, w).
        """
        fmt = self.memory_format
        if isinstance(self.model.decoder, AffineHead):
            coeffs = self._colour_model(content, style, alpha, fa, refine, content_labels)
            return NetworkOutput(coeffs=coeffs)
        image = self.model(
            content.contiguous(memory_format=fmt),
            style.image.contiguous(memory_format=fmt),
            alpha=alpha,
            content_labels=content_labels,
            style_labels=style.labels,
            style_enc=style.encoding,
            variant=fa,
        ).image
        return NetworkOutput(image=image)

    def _colour_model(
        self,
        content: torch.Tensor,
        style: WorkingStyle,
        alpha: float,
        fa: FAVariant,
        refine: int,
        content_labels: torch.Tensor | None,
    ) -> torch.Tensor:
        """The affine head's colour model at working size, its grade refined on this photo when
        ``refine`` steps are asked for (:mod:`photostyle.models.refine`; :func:`resolve_options`
        refuses them for a head without the curves residual).

        Shape: content (1, 3, h, w) -> (1, 12, h, w).
        """
        head = self.model.decoder
        assert isinstance(head, AffineHead)
        encoder = self.model.encoder
        enc_c = encoder(content.contiguous(memory_format=self.memory_format))
        enc_s = style.encoding if style.encoding is not None else self.encode_style(style).encoding
        assert enc_s is not None
        base, residual = head.grid(
            content,
            style.image,
            enc_c,
            enc_s,
            content_labels=content_labels,
            style_labels=style.labels,
            variant=fa,
        )
        if refine:
            settings = self.model.config.refinement(refine)
            residual = refine_grade(
                head,
                encoder,
                content,
                style.image,
                base,
                residual,
                settings,
                enc_c.taps,
                enc_s.taps,
            )
        return head.colour_model(content, base, residual, alpha=alpha).coeffs


def to_full_size(
    content: torch.Tensor,
    content_small: torch.Tensor,
    out: NetworkOutput,
    upsample: UpsampleMethod = "guided",
) -> torch.Tensor:
    """The network's output at the content's full size, in float32.

    A colour model is applied to the full-resolution content; an image is brought back by the
    upsampler ``upsample`` (:func:`photostyle.upsample.upsample_stylized`).

    Shape: content (1, 3, H, W), content_small (1, 3, h, w) -> (1, 3, H, W) in [0, 1].
    """
    if out.coeffs is not None:  # clamped in the same pass
        return apply_local_affine(out.coeffs.float(), content, clamp=True)
    if out.image is None:
        raise ValueError("the network output holds neither an image nor a colour model")
    # A fresh buffer: clamped in place.
    return upsample_stylized(content, content_small, out.image.float(), upsample).clamp_(0, 1)


def finish(out: torch.Tensor) -> torch.Tensor:
    """The result as returned to the user. Shape: (1, 3, H, W) -> (3, H, W), on the CPU."""
    return out[0].cpu()


@contextlib.contextmanager
def timed_stage(hook: StageHook | None, name: str, device: torch.device) -> Iterator[None]:
    """Time the enclosed work as stage ``name`` when a hook is given (else nothing); on CUDA the
    device is synchronised around it."""
    if hook is None:
        yield
        return
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    yield
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    hook(name, time.perf_counter() - start)


def stylize_photo(
    network: NetworkBackend,
    content: torch.Tensor,
    style: WorkingStyle,
    options: StylizeOptions,
    *,
    content_mask: torch.Tensor | None = None,
    on_stage: StageHook | None = None,
) -> torch.Tensor:
    """Working size -> network -> full size for one photo.

    Args:
        network: the backend that runs the network.
        content: (3, H, W) RGB in [0, 1], on any device.
        style: the style at working size (:func:`working_style`), on the network's device and
            in its dtype.
        options: resolved options (:func:`resolve_options`: ``max_size`` and ``fa`` set).
        content_mask: optional (H, W) int64 labels; ``style.labels`` are then needed too.
        on_stage: optional timing hook (:data:`StageHook`).

    Returns:
        (3, H, W) RGB in [0, 1], float32 on the CPU.
    """
    if options.max_size is None or options.fa is None:
        raise ValueError("resolve the options first (photostyle.inference.resolve_options)")
    device, dtype = style.image.device, style.image.dtype
    with timed_stage(on_stage, "resize", device):
        full, small = to_working_size(content, options.max_size, device)
    labels = None
    if content_mask is not None:
        labels = resize_labels(content_mask, (small.shape[-2], small.shape[-1])).to(device)
    with timed_stage(on_stage, "network", device):
        out = network.run(
            small.to(dtype),
            style,
            alpha=options.alpha,
            fa=options.fa,
            refine=options.refine or 0,
            content_labels=labels,
        )
    with timed_stage(on_stage, "full_resolution", device):
        return finish(to_full_size(full, small, out, options.upsample))


__all__ = [
    "STAGES",
    "NetworkBackend",
    "NetworkOutput",
    "StageHook",
    "StylizeOptions",
    "TorchBackend",
    "WorkingStyle",
    "finish",
    "resize_labels",
    "resolve_options",
    "stylize_photo",
    "timed_stage",
    "to_full_size",
    "to_working_size",
    "working_size",
    "working_style",
]
