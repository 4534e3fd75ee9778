"""Random photographic looks: style photos beyond the training set's daylight scenes.

The training photos are mostly neutral daylight scenes, while the styles users bring (and the DPST
pairs the model is judged on) are sunsets, night shots, foggy mornings and graded film looks. A
head trained only on the former learns small moves. :func:`random_look` grades a style photo with
a random global look, the kind a photographer makes in a raw developer, so that the head meets
strong colour casts, exposures and contrasts during training:

    out = mix(luma, x', saturation),  x' = (gain * 2^ev * x) ^ gamma + split_tone(luma)

Every step is a global, smooth, monotone colour change, so the result is still a photograph.
"""

from __future__ import annotations

import torch

from photostyle.models.affine import luma


def _uniform(low: float, high: float, generator: torch.Generator) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def random_look(image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Grade a photo with a random global look: exposure, white balance, gamma, saturation and a
    split tone (one tint in the shadows, another in the highlights).

    Args:
        image: (3, H, W) RGB in [0, 1].
        generator: the source of the look's random parameters.

    Returns:
        (3, H, W) graded RGB in [0, 1].
    """
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) image, got {tuple(image.shape)}")
    ev = _uniform(-2.0, 0.7, generator)  # exposure in stops: night to bright
    gain = torch.exp(0.2 * torch.randn(3, generator=generator)).view(3, 1, 1)  # white balance
    gamma = 2.0 ** _uniform(-0.6, 0.6, generator)  # contrast of the tone curve
    saturation = _uniform(0.4, 1.4, generator)
    shadows = 0.08 * torch.randn(3, generator=generator).view(3, 1, 1)  # split-tone tints
    highlights = 0.05 * torch.randn(3, generator=generator).view(3, 1, 1)
    x = (image * gain * 2.0**ev).clamp(0, 1) ** gamma  # (3, H, W)
    y = luma(x[None])[0]  # (1, H, W)
    x = x + shadows * (1 - y) ** 2 + highlights * y**2
    y = luma(x[None])[0]
    return (y + saturation * (x - y)).clamp(0, 1)


__all__ = ["random_look"]
