"""The photorealistic stylizer U(Ic, Is) of paper Fig. 2: fixed encoder + FA decoder."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, TypeAlias

import torch
from torch import nn

from photostyle.models.affine import RESIDUALS, AffineHead, Residual
from photostyle.models.decoder import Decoder, DecoderOutput
from photostyle.models.encoder import (
    FEATURE_SCALE,
    VGG_CONFIGS,
    EncoderOutput,
    InputConvention,
    PaddingMode,
    VGGConfig,
    VGGEncoder,
)
from photostyle.models.layers import FAVariant, fa_variant
from photostyle.models.refine import RefineSettings
from photostyle.registry import Registry


@dataclass(frozen=True)
class HeadSpec:
    """One output head of the stylizer: how it is built, and what the rest of the library asks
    of it."""

    name: str  # its name in ModelConfig.head and checkpoints
    build: Callable[[ModelConfig], Decoder | AffineHead]  # the head of an architecture, new
    label: str  # how messages name its stylizers ("affine-head stylizers")
    auto_bfloat16: bool  # may run in bfloat16 under dtype "auto" (photostyle.utils.auto_dtype)


HEAD_REGISTRY: Registry[HeadSpec] = Registry("head")  # name -> spec, in registration order
HEADS: Sequence[str] = HEAD_REGISTRY.names()  # names of all registered heads, in order
# The name of a registered head; the metadata lists the choices (typed config files).
Head: TypeAlias = Annotated[str, HEADS]


def head_spec(name: str) -> HeadSpec:
    """The registered head ``name``.

    Raises:
        ValueError: no such head (the message names the choices).
    """
    return HEAD_REGISTRY.get(name)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a stylizer; stored in every checkpoint."""

    arch: str = "vgg16"  # encoder family: "vgg16" or "vgg19" (or "custom" with explicit widths)
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)  # channels of encoder blocks 1..4
    depths: tuple[int, int, int, int] = (2, 2, 3, 1)  # encoder convs per block up to relu4_1
    convention: InputConvention = "caffe_bgr255"  # input convention of the encoder weights
    fa: FAVariant = "mean_std"  # FA variant used in training (others can be chosen at inference)
    padding_mode: PaddingMode = "reflect"  # padding of all 3x3 convolutions
    encoder_sha256: str = ""  # sha256 of the encoder weights file the decoder was trained with
    residual: bool = False  # the decoder predicts the change to the content image (see Decoder)
    head: Head = "decoder"  # "decoder": pixels (paper Fig. 2); "affine": colour models (affine.py)
    grid_bins: int = 8  # affine head: brightness bins of its bilateral grid
    grid_hidden: int = 64  # affine head: channels of its convolutions
    base_power: float = 1.0  # affine head: exponent of its base's MKL maps (affine.mkl_map)
    grid_residual: Residual = "spatial"  # affine head: learned part, "curves" or "spatial" grid
    working_size: int = 1024  # default longest side the network works at (StylizeOptions)
    refine_steps: int = 0  # curves head: default per-photo refinement steps (models.refine)
    refine_ssim_weight: float = 3.0  # curves head: w_ssim of the refinement, its frontier point
    refine_later_ssim_weight: float | None = None  # curves head: w_ssim after its first step
    refine_levels: int = 4  # curves head: VGG levels of the refinement's style term (1..4)
    steer_hidden: int = 0  # curves head: width of its learned first refinement step (0: plain)
    extra: dict[str, str] = field(default_factory=dict)  # free-form provenance notes

    @classmethod
    def for_arch(cls, arch: str, **kwargs: Any) -> ModelConfig:
        """Config with the widths/depths of a named VGG (``vgg16`` or ``vgg19``)."""
        if arch not in VGG_CONFIGS:
            raise ValueError(f"unknown arch {arch!r}; choose from {sorted(VGG_CONFIGS)}")
        vgg = VGG_CONFIGS[arch]
        return cls(arch=arch, widths=vgg.widths, depths=vgg.depths, **kwargs)

    def vgg(self) -> VGGConfig:
        """The encoder's layer layout."""
        base = VGG_CONFIGS.get(self.arch)
        full = base.full_depths if base else (*self.depths[:3], self.depths[2], self.depths[2])
        return VGGConfig(self.arch, self.widths, self.depths, full)

    def refinement(self, steps: int) -> RefineSettings:
        """The model's own per-photo refinement (its w_ssim and style levels), ``steps`` steps."""
        return RefineSettings(
            steps=steps,
            ssim_weight=self.refine_ssim_weight,
            later_ssim_weight=self.refine_later_ssim_weight,
            levels=self.refine_levels,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for key in ("widths", "depths"):
            if key in known:
                known[key] = tuple(int(v) for v in known[key])
        fa_variant(known.get("fa", "mean_std"))  # raises for an unknown variant
        if known.get("grid_residual", "spatial") not in RESIDUALS:
            raise ValueError(f"unknown grid_residual {known.get('grid_residual')!r}")
        head_spec(known.get("head", "decoder"))  # raises for an unknown head
        config = cls(**known)
        if len(config.widths) != 4 or len(config.depths) != 4:
            raise ValueError("widths and depths need 4 entries")
        if min(config.widths) < 1 or min(config.depths) < 1:
            raise ValueError("widths and depths must be positive")
        return config


@dataclass
class StylizerOutput:
    """Everything the training losses need from one stylizer pass."""

    image: torch.Tensor  # (B, 3, H, W) stylized image
    q: list[torch.Tensor]  # Q^1..Q^3, decoder Unpool inputs (empty for the affine head)
    content: EncoderOutput  # encoding of the content image (P^i, taps)
    style: EncoderOutput  # encoding of the style image (taps)
    coeffs: torch.Tensor | None = None  # affine head: (B, 12, H, W) colour model (affine.py)


def build_head(config: ModelConfig) -> Decoder | AffineHead:
    """The trainable part of a stylizer of architecture ``config``, freshly initialised.

    The one place that turns ``config.head`` into a module (by its registered builder):
    inference (:class:`PhotoStylizer`) and training
    (:class:`photostyle.train.pipeline.TwoStageModel`) both build it here.
    """
    return head_spec(config.head).build(config)


def _pixel_decoder(config: ModelConfig) -> Decoder:
    return Decoder(
        config.vgg(),
        config.fa,
        config.padding_mode,
        FEATURE_SCALE[config.convention],
        config.residual,
    )


def _affine_head(config: ModelConfig) -> AffineHead:
    return AffineHead(
        config.widths,
        bins=config.grid_bins,
        hidden=config.grid_hidden,
        feature_scale=FEATURE_SCALE[config.convention],
        base_power=config.base_power,
        residual=config.grid_residual,
        steer_hidden=config.steer_hidden,
    )


def _register_builtins() -> None:
    for spec in (
        # bfloat16 moves the pixel decoder's outputs by up to 0.1: float32 under "auto".
        HeadSpec("decoder", _pixel_decoder, label="pixel-decoder", auto_bfloat16=False),
        # Measured faster in bfloat16 at the same quality (docs/speed.md, "bfloat16").
        HeadSpec("affine", _affine_head, label="affine-head", auto_bfloat16=True),
    ):
        HEAD_REGISTRY.register(spec.name, spec)


_register_builtins()


def build_stylizer(config: ModelConfig, encoder: VGGEncoder | None = None) -> PhotoStylizer:
    """A stylizer of architecture ``config`` (head freshly initialised).

    Args:
        config: architecture.
        encoder: an existing encoder to share (training shares one between U and V); a new one
            of ``config``'s layout (random weights) if None.
    """
    return PhotoStylizer(config, encoder)


class PhotoStylizer(nn.Module):
    """Encoder (fixed) + decoder with FA layers.

    Build one with :func:`build_stylizer`; load a saved one with
    :func:`photostyle.models.checkpoint.load_stylizer`.

    Args:
        config: architecture.
        encoder: an existing encoder to share (U and V share one in training); built if None.
    """

    def __init__(self, config: ModelConfig, encoder: VGGEncoder | None = None) -> None:
        super().__init__()
        self.config = config
        self.encoder = encoder or VGGEncoder(config.vgg(), config.convention, config.padding_mode)
        self.decoder: Decoder | AffineHead = build_head(config)

    @property
    def pixel_decoder(self) -> Decoder:
        """The pixel decoder (paper Fig. 2).

        Raises:
            ValueError: this stylizer has another head (the affine head has no pixel decoder).
        """
        if not isinstance(self.decoder, Decoder):
            raise ValueError(f"this stylizer has the {self.config.head} head, not a pixel decoder")
        return self.decoder

    def forward(
        self,
        content: torch.Tensor,
        style: torch.Tensor,
        *,
        alpha: float = 1.0,
        content_labels: torch.Tensor | None = None,
        style_labels: torch.Tensor | None = None,
        content_enc: EncoderOutput | None = None,
        style_enc: EncoderOutput | None = None,
        variant: FAVariant | None = None,
    ) -> StylizerOutput:
        """Stylize ``content`` with ``style``.

        Args:
            content: (B, 3, H, W) RGB in [0, 1].
            style: (B, 3, Hs, Ws) RGB in [0, 1].
            alpha: FA strength in [0, 1].
            content_labels: optional (B, H, W) int64 semantic labels.
            style_labels: optional (B, Hs, Ws) int64 semantic labels.
            content_enc: precomputed encoding of ``content`` (skips the encoder).
            style_enc: precomputed encoding of ``style``.
            variant: FA variant of this call (default: the model's); nothing is changed.

        Returns:
            StylizerOutput; ``image`` is (B, 3, H, W), unclamped.
        """
        if content.ndim != 4 or style.ndim != 4:
            raise ValueError(
                f"expected 4-D batches, got {tuple(content.shape)}, {tuple(style.shape)}"
            )
        c = content_enc if content_enc is not None else self.encoder(content)
        s = style_enc if style_enc is not None else self.encoder(style)
        if isinstance(self.decoder, AffineHead):
            colour = self.decoder(
                content,
                style,
                c,
                s,
                alpha=alpha,
                content_labels=content_labels,
                style_labels=style_labels,
                variant=variant or self.config.fa,
            )
            return StylizerOutput(
                image=colour.image, q=[], content=c, style=s, coeffs=colour.coeffs
            )
        out: DecoderOutput = self.decoder(
            c,
            s,
            alpha=alpha,
            content_labels=content_labels,
            style_labels=style_labels,
            base=content,
            base_style=style,
            variant=variant,
        )
        return StylizerOutput(image=out.image, q=out.q, content=c, style=s)
