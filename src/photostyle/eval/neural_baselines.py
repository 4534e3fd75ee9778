"""Neural style-transfer baselines a user would pick instead of photostyle.

- ``adain``: Huang & Belongie 2017, adaptive instance normalisation at relu4_1: each channel of
  the content features takes the style's mean and standard deviation.
- ``wct``: Li et al. 2017, whitening-colouring transform at relu4_1: the content features take the
  style's channel mean and covariance.
- ``gatys``: Gatys et al. 2016, optimisation-based transfer: the image itself is optimised from the
  content photo towards the content's relu4_1 features and the style's Gram matrices at
  relu1_1..relu4_1. Slow, but the faithful reference of what the Gram statistics ask for.

AdaIN and WCT reuse photostyle's parameter-free FA transforms (``fa_mean_std``, ``fa_wct`` through
:func:`photostyle.models.layers.feature_aggregation`, so semantic masks work region by region) and
decode the transformed relu4_1 features with a *reconstruction decoder*: a stylizer checkpoint
trained with ``photostyle train --reconstruction`` (FA ``"none"``, i.e. a plain VGG autoencoder
with max-pool-index unpooling; one ships, see :func:`bundled_autoencoder`). Only relu4_1 is
transformed; the lower FA layers stay ``"none"``, and the decoder unpools with the content's pool
indices.

All three work at a reduced working size like :meth:`photostyle.api.Stylizer.stylize`, with the
steps of :mod:`photostyle.inference`: the change (output minus content) is brought back by the
``change`` upsampler (:mod:`photostyle.upsample`) and added to the full-resolution content, so the
outputs have the content's size and its full-resolution detail.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F

from photostyle.api import Stylizer
from photostyle.inference import (
    NetworkOutput,
    finish,
    to_full_size,
    to_working_size,
    working_style,
)
from photostyle.losses.losses import gram_matrix
from photostyle.models.encoder import VGGEncoder
from photostyle.models.layers import feature_aggregation
from photostyle.models.weights import (
    BUNDLED_AUTOENCODER,
    BUNDLED_AUTOENCODER_SHA256,
    bundled_path,
    check_sha256,
)

NeuralTransform = Literal["adain", "wct"]
NEURAL_TRANSFORMS: tuple[NeuralTransform, ...] = ("adain", "wct")

GATYS_MAX_SIZE = 512  # default working size of gatys: the Gram metric's size, and CPU-bearable
BACK_TO_FULL_SIZE = "change"  # upsampler of the baselines: the change, added at full size


def _check_images(content: torch.Tensor, style: torch.Tensor) -> None:
    for name, t in (("content", content), ("style", style)):
        if t.ndim != 3 or t.shape[0] != 3:
            raise ValueError(f"{name} must be (3, H, W) RGB, got {tuple(t.shape)}")
        if not t.is_floating_point():
            raise ValueError(f"{name} must be floating point in [0, 1], got {t.dtype}")


def adain(
    content: torch.Tensor,
    style: torch.Tensor,
    *,
    alpha: float = 1.0,
    content_labels: torch.Tensor | None = None,
    style_labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """AdaIN (Huang & Belongie 2017): the style's channel mean and std on the content features.

    ``AdaIN(x, y) = sigma(y) * (x - mu(x)) / sigma(x) + mu(y)`` per channel; this is photostyle's
    ``fa_mean_std``.

    Args:
        content: content features, (B, C, H, W).
        style: style features, (B, C, Hs, Ws).
        alpha: strength in [0, 1] (0 returns ``content``).
        content_labels: optional (B, H', W') int64 labels: statistics region by region.
        style_labels: optional (B, Hs', Ws') int64 labels; required with ``content_labels``.

    Returns:
        (B, C, H, W) transformed features.
    """
    return feature_aggregation(
        content, style, "mean_std", x_labels=content_labels, y_labels=style_labels, alpha=alpha
    )


def wct(
    content: torch.Tensor,
    style: torch.Tensor,
    *,
    alpha: float = 1.0,
    content_labels: torch.Tensor | None = None,
    style_labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """WCT (Li et al. 2017): whiten the content features, colour them with the style covariance.

    ``z = C_y^{1/2} C_x^{-1/2} (x - mu_x) + mu_y``; this is photostyle's ``fa_wct``.

    Args:
        content: content features, (B, C, H, W).
        style: style features, (B, C, Hs, Ws).
        alpha: strength in [0, 1] (0 returns ``content``).
        content_labels: optional (B, H', W') int64 labels: statistics region by region.
        style_labels: optional (B, Hs', Ws') int64 labels; required with ``content_labels``.

    Returns:
        (B, C, H, W) transformed features.
    """
    return feature_aggregation(
        content, style, "wct", x_labels=content_labels, y_labels=style_labels, alpha=alpha
    )


_TRANSFORM_FNS: dict[str, Callable[..., torch.Tensor]] = {"adain": adain, "wct": wct}


def check_autoencoder(autoencoder: Stylizer) -> None:
    """Refuse a stylizer that was not trained as a plain autoencoder (FA ``"none"``).

    Raises:
        ValueError: one line naming the file and how to train an autoencoder.
    """
    if autoencoder.config.fa != "none":
        raise ValueError(
            f"{autoencoder.path}: not an autoencoder (trained with FA {autoencoder.config.fa!r}); "
            "train one with photostyle train --reconstruction"
        )


def bundled_autoencoder(
    device: str | torch.device = "auto", dtype: torch.dtype = torch.float32
) -> Stylizer:
    """The shipped reconstruction decoder (``photostyle train --reconstruction``), sha256-checked.

    Raises:
        WeightsError: the file is missing or fails its checksum.
    """
    path = bundled_path(BUNDLED_AUTOENCODER)
    check_sha256(path, BUNDLED_AUTOENCODER_SHA256)
    autoencoder = Stylizer(path, device=device, dtype=dtype)
    check_autoencoder(autoencoder)
    return autoencoder


@torch.inference_mode()
def autoencoder_transfer(
    autoencoder: Stylizer,
    content: torch.Tensor,
    style: torch.Tensor,
    transform: NeuralTransform,
    *,
    alpha: float = 1.0,
    max_size: int = 1024,
    content_mask: torch.Tensor | None = None,
    style_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """AdaIN or WCT at relu4_1, decoded by a reconstruction decoder.

    Encode content and style with the autoencoder's encoder, transform the content's relu4_1
    features with ``transform``, and decode them with all FA layers ``"none"``, unpooling with the
    content's max-pool indices.

    Args:
        autoencoder: a stylizer trained with ``reconstruction=True`` (FA ``"none"``).
        content: (3, H, W) RGB in [0, 1].
        style: (3, Hs, Ws) RGB in [0, 1].
        transform: ``"adain"`` or ``"wct"``.
        alpha: strength of the feature transform in [0, 1].
        max_size: longest side the network works at; the change is brought back to full size.
        content_mask: optional (H, W) int64 labels: region-to-region transforms.
        style_mask: optional (Hs, Ws) int64 labels; required with ``content_mask``.

    Returns:
        (3, H, W) RGB in [0, 1].

    Raises:
        ValueError: unknown transform, not an autoencoder, bad images or masks.
    """
    if transform not in _TRANSFORM_FNS:
        raise ValueError(f"unknown transform {transform!r}; choose from {NEURAL_TRANSFORMS}")
    check_autoencoder(autoencoder)
    _check_images(content, style)
    if (content_mask is None) != (style_mask is None):
        raise ValueError("give both a content mask and a style mask, or neither")
    if max_size < 16:
        raise ValueError(f"max_size must be at least 16, got {max_size}")
    dev, dt = autoencoder.device, autoencoder.dtype
    c_full, c_small = to_working_size(content, max_size, dev)  # (1, 3, h, w) float32
    c, s = c_small.to(dt), working_style(style, max_size, dev, dt).image
    labels_c = labels_s = None
    if content_mask is not None and style_mask is not None:  # resized to relu4_1 by FA
        labels_c, labels_s = content_mask[None].to(dev), style_mask[None].to(dev)
    model = autoencoder.model
    enc_c, enc_s = model.encoder(c), model.encoder(s)
    z = _TRANSFORM_FNS[transform](
        enc_c.taps[3], enc_s.taps[3], alpha=alpha, content_labels=labels_c, style_labels=labels_s
    )  # relu4_1 (1, C4, h/8, w/8) with the style's statistics
    transformed = dataclasses.replace(enc_c, taps=[*enc_c.taps[:3], z])
    # FA "none" for this call: the transformed relu4_1 is decoded as it is.
    out = model(
        c, s, content_enc=transformed, style_enc=enc_s, variant="none"
    ).image  # (1, 3, h, w)
    return finish(to_full_size(c_full, c_small, NetworkOutput(image=out), BACK_TO_FULL_SIZE))


def gatys(
    content: torch.Tensor,
    style: torch.Tensor,
    encoder: VGGEncoder,
    *,
    steps: int = 200,
    lr: float = 0.02,
    style_weight: float = 1.0,
    max_size: int = GATYS_MAX_SIZE,
    on_step: Callable[[int, float], None] | None = None,
) -> torch.Tensor:
    """Optimisation-based style transfer (Gatys et al. 2016), started from the content photo.

    Minimises ``L(x) = ||phi_4(x) - phi_4(c)||^2 / E_c + style_weight * sum_i
    ||G(phi_i(x)) - G(phi_i(s))||^2 / E_i`` over the image ``x`` with Adam, clamping ``x`` to
    [0, 1] after every step; ``phi_i`` are relu1_1..relu4_1, ``G`` the Gram matrix
    (:func:`photostyle.eval.metrics.gram_matrix`) and ``E`` the mean squared value of each target
    (so the terms do not depend on the encoder's input convention).

    Args:
        content: (3, H, W) RGB in [0, 1]; also the starting point.
        style: (3, Hs, Ws) RGB in [0, 1].
        encoder: the VGG encoder whose features define the losses (frozen).
        steps: optimisation steps (the step limit); 0 returns the content.
        lr: Adam learning rate on pixel values.
        style_weight: weight of the Gram (style) term against the relu4_1 content term.
        max_size: longest side the image is optimised at; the change is brought back to full size.
        on_step: called with (step, objective before that step's update), e.g. for progress.

    Returns:
        (3, H, W) RGB in [0, 1].
    """
    _check_images(content, style)
    if steps < 0 or not lr > 0 or style_weight < 0 or max_size < 16:
        raise ValueError("gatys needs steps >= 0, lr > 0, style_weight >= 0 and max_size >= 16")
    dev = next(encoder.parameters()).device
    c_full, c = to_working_size(content, max_size, dev)  # float32
    s = working_style(style, max_size, dev, torch.float32).image
    with torch.no_grad():
        target_c = encoder(c).taps[3]  # relu4_1 of the content
        target_g = [gram_matrix(t) for t in encoder(s).taps]  # Gram of relu1_1..relu4_1
    energy_c = target_c.pow(2).mean().clamp_min(1e-8)
    energy_g = [g.pow(2).mean().clamp_min(1e-8) for g in target_g]
    x = c.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    with torch.enable_grad():
        for step in range(steps):
            taps = encoder(x).taps
            content_loss = F.mse_loss(taps[3], target_c) / energy_c
            style_loss = sum(
                (
                    F.mse_loss(gram_matrix(t), g) / e
                    for t, g, e in zip(taps, target_g, energy_g, strict=True)
                ),
                x.new_zeros(()),
            )
            loss = content_loss + style_weight * style_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                x.clamp_(0, 1)
            if on_step is not None:
                on_step(step, float(loss.detach()))
    return finish(to_full_size(c_full, c, NetworkOutput(image=x.detach()), BACK_TO_FULL_SIZE))
