"""Decoder with FA layers and max-pool-index unpooling (paper Fig. 2, right half).

Layout for VGG16 widths (64, 128, 256, 512) and depths (2, 2, 3, 1)::

    relu4_1 (512, H/8) -> FA4 -> Conv_4_d1 (512->256) -> Conv_4_d2 (256->256)  = Q^3
    Unpool3 (content pool3 indices, -> H/4) -> FA3 -> 2x conv 256->256, conv 256->128 = Q^2
    Unpool2 (-> H/2) -> FA2 -> conv 128->128, conv 128->64                          = Q^1
    Unpool1 (-> H)   -> FA1 -> conv 64->64, conv 64->3                              = image

Conv_4_d2 has the shape of Conv_4_d1's output (paper III-A). Q^i has the shape of the encoder's
P^i so that the SCP loss (Eq. (2)) can compare them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from photostyle.models.encoder import EncoderOutput, PaddingMode, VGGConfig
from photostyle.models.layers import FAVariant, FeatureAggregation, fa_variant

Aggregate = Callable[[int, torch.Tensor], torch.Tensor]  # (level, features) -> FA output
Unpool = Callable[[torch.Tensor, torch.Tensor, tuple[int, int]], torch.Tensor]
ImageFA = Callable[[torch.Tensor], torch.Tensor]  # RGB pixels -> their image-level FA


def image_level_base(content: torch.Tensor, variant: FAVariant, image_fa: ImageFA) -> torch.Tensor:
    """A residual decoder's base: ``image_fa(content)`` clamped to [0, 1] when the FA variant
    has an image-level form (``FASpec.image_level``), else the content itself.

    Shape: (B, 3, H, W) -> (B, 3, H, W).
    """
    if not fa_variant(variant).image_level:
        return content
    return image_fa(content).clamp(0.0, 1.0)


def residual_tail(
    content: torch.Tensor,
    change: torch.Tensor,
    alpha: float | torch.Tensor,
    variant: FAVariant,
    image_fa: ImageFA,
) -> torch.Tensor:
    """A residual decoder's image: its base (:func:`image_level_base`) plus the decoded change.

    ``alpha`` (a number, or a 0-d tensor in an exported graph) scales the change too, so with an
    ``image_fa`` that blends by ``alpha`` as well, alpha = 0 returns the content exactly. The
    decoder, its ONNX export and the video path (pooled statistics) all end here.

    Shape: content (B, 3, H, W), change (B, 3, H, W) -> (B, 3, H, W).
    """
    return image_level_base(content, variant, image_fa) + alpha * change


def _max_unpool(h: torch.Tensor, indices: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.max_unpool2d(h, indices, (2, 2), (2, 2), output_size=size)


def _conv(in_ch: int, out_ch: int, padding_mode: PaddingMode) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, padding=1, padding_mode=padding_mode)


@dataclass
class DecoderOutput:
    """Decoded image and the Unpool inputs Q^1..Q^3 for the SCP loss.

    Attributes:
        image: (B, 3, H, W) RGB, nominally in [0, 1] (not clamped).
        q: Q^1..Q^3; Q^i has the shape of the encoder's P^i.
    """

    image: torch.Tensor
    q: list[torch.Tensor]


class Decoder(nn.Module):
    """Mirror of the VGG encoder with FA layers at relu4_1, relu3_1, relu2_1 and relu1_1 scales.

    Args:
        config: the encoder's configuration (widths and depths are mirrored).
        fa: default FA variant for all four FA layers.
        padding_mode: padding of the 3x3 convolutions.
        feature_scale: encoder features are multiplied by this on the way in, and Q^i divided by
            it on the way out (so Eq. (2) compares Q^i with P^i in the encoder's units); see
            ``photostyle.models.encoder.FEATURE_SCALE``. The FA variants are scale-equivariant.
        residual: the last convolution predicts a change instead of the image itself. The change
            is added to the content image after an image-level FA layer (the same parameter-free
            aggregation, on RGB pixels, see :meth:`image_base`); it starts at zero, so an untrained
            decoder returns that colour-transferred content.
    """

    def __init__(
        self,
        config: VGGConfig,
        fa: FAVariant = "mean_std",
        padding_mode: PaddingMode = "reflect",
        feature_scale: float = 1.0,
        residual: bool = False,
    ) -> None:
        super().__init__()
        if not feature_scale > 0:
            raise ValueError(f"feature_scale must be positive, got {feature_scale}")
        self.feature_scale = feature_scale
        self.residual = residual
        w1, w2, w3, w4 = config.widths
        self.fa = nn.ModuleList(FeatureAggregation(fa) for _ in range(4))  # FA1..FA4
        # Block 4: Conv_4_d1 then the extra Conv_4_d2 of the same output shape.
        self.block4 = nn.ModuleList([_conv(w4, w3, padding_mode), _conv(w3, w3, padding_mode)])
        blocks = []
        outs = {3: w2, 2: w1, 1: 3}
        for b, width in ((3, w3), (2, w2), (1, w1)):
            depth = config.depths[b - 1]
            convs = [_conv(width, width, padding_mode) for _ in range(depth - 1)]
            convs.append(_conv(width, outs[b], padding_mode))
            blocks.append(nn.ModuleList(convs))
        self.block3, self.block2, self.block1 = blocks
        if residual:
            last = cast(nn.Conv2d, self.block1[-1])
            nn.init.zeros_(last.weight)
            assert last.bias is not None  # bias=True in _conv
            nn.init.zeros_(last.bias)

    def image_base(
        self,
        content: torch.Tensor,
        style: torch.Tensor,
        content_labels: torch.Tensor | None = None,
        style_labels: torch.Tensor | None = None,
        alpha: float = 1.0,
        variant: FAVariant | None = None,
    ) -> torch.Tensor:
        """Image-level FA: an FA variant (default: the decoder's) applied to RGB pixels, clamped
        to [0, 1].

        ``mean_std`` is an RGB Reinhard transfer, ``wct`` a 3x3 colour transform, ``quantile``
        histogram matching; with labels, region by region. A variant without an image-level form
        (``FASpec.image_level``: Eq. (1) literally, ``paper``, would only double the pixels, and
        ``none``) keeps the content.

        Shape: content (B, 3, H, W), style (B, 3, Hs, Ws) -> (B, 3, H, W).
        """
        image_fa = self._image_fa(style, content_labels, style_labels, alpha, variant)
        return image_level_base(content, variant or self.variant, image_fa)

    def _image_fa(
        self,
        style: torch.Tensor,
        content_labels: torch.Tensor | None,
        style_labels: torch.Tensor | None,
        alpha: float,
        variant: FAVariant | None,
    ) -> ImageFA:
        """FA of RGB pixels towards the ``style`` image (the first FA layer's, with its variant
        or ``variant``)."""

        def image_fa(x: torch.Tensor) -> torch.Tensor:
            return self.fa_layers[0](
                x,
                style,
                x_labels=content_labels,
                y_labels=style_labels,
                alpha=alpha,
                variant=variant,
            )

        return image_fa

    @property
    def fa_layers(self) -> list[FeatureAggregation]:
        """FA1..FA4, typed (``nn.ModuleList`` is not generic: its items are plain ``Module``)."""
        return [cast(FeatureAggregation, layer) for layer in self.fa]

    @property
    def variant(self) -> FAVariant:
        return self.fa_layers[0].variant

    def decode(
        self, content: EncoderOutput, aggregate: Aggregate, unpool: Unpool = _max_unpool
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The decoder's layers, with the FA layers and the unpooling supplied by the caller.

        :meth:`forward` passes its FA layers; the video path (pooled statistics) and the ONNX
        export (a tensor ``alpha``, unpooling as a scatter) pass their own, so all three share
        one layer sequence.

        Args:
            content: encoder output of the content image (B, 3, H, W).
            aggregate: ``aggregate(level, h)`` is FA at ``level`` (3: relu4_1 ... 0: relu1_1) of
                the decoder features ``h``, already in the decoder's units (``feature_scale``).
            unpool: ``unpool(h, indices, size)``, by default ``F.max_unpool2d`` with 2x2 windows.

        Returns:
            The (B, 3, H, W) decoded image (or change, for a residual decoder) and Q^1..Q^3.
        """
        k = self.feature_scale
        q: list[torch.Tensor] = [torch.empty(0)] * 3
        h = aggregate(3, content.taps[3] * k if k != 1.0 else content.taps[3])  # (B, w4, H/8, W/8)
        for conv in self.block4:
            h = F.relu(conv(h))
        q[2] = h / k  # Q^3: (B, w3, H/8, W/8), in the encoder's units
        for level, block in ((2, self.block3), (1, self.block2), (0, self.block1)):
            # (B, w, 2h, 2w) with values at the content's max locations
            h = unpool(h, content.indices[level], content.sizes[level])
            h = aggregate(level, h)
            for i, conv in enumerate(block):
                h = conv(h)
                if level > 0 or i < len(block) - 1:
                    h = F.relu(h)
            if level > 0:
                q[level - 1] = h / k  # Q^{level}, in the encoder's units
        return h, q

    def forward(
        self,
        content: EncoderOutput,
        style: EncoderOutput,
        *,
        alpha: float = 1.0,
        content_labels: torch.Tensor | None = None,
        style_labels: torch.Tensor | None = None,
        base: torch.Tensor | None = None,
        base_style: torch.Tensor | None = None,
        variant: FAVariant | None = None,
    ) -> DecoderOutput:
        """Decode content features while aggregating style features at every scale.

        Args:
            content: encoder output of the content image (B, 3, H, W).
            style: encoder output of the style image (B, 3, Hs, Ws).
            alpha: FA strength in [0, 1].
            content_labels: optional (B, H, W) int64 semantic labels of the content.
            style_labels: optional (B, Hs, Ws) int64 semantic labels of the style.
            base: (B, 3, H, W) the content image; required by a residual decoder.
            base_style: (B, 3, Hs, Ws) the style image; required by a residual decoder.
            variant: FA variant of this call (default: the decoder's); the decoder is not changed.

        Returns:
            DecoderOutput with the (B, 3, H, W) image and Q^1..Q^3.
        """
        if content.taps[0].shape[0] != style.taps[0].shape[0]:
            raise ValueError("content and style batches differ in size")
        if self.residual and (base is None or base_style is None):
            raise ValueError("a residual decoder needs the content and style images (base)")

        k = self.feature_scale

        def aggregate(level: int, h: torch.Tensor) -> torch.Tensor:
            y = style.taps[level] * k if k != 1.0 else style.taps[level]
            return self.fa[level](
                h, y, x_labels=content_labels, y_labels=style_labels, alpha=alpha, variant=variant
            )

        h, q = self.decode(content, aggregate)
        if self.residual and base is not None and base_style is not None:
            # (B, 3, H, W): colour-transferred content plus the decoded change.
            image_fa = self._image_fa(base_style, content_labels, style_labels, alpha, variant)
            h = residual_tail(base, h, alpha, variant or self.variant, image_fa)
        return DecoderOutput(image=h, q=q)
