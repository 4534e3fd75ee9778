"""Quality metrics of photorealistic style transfer: SSIM to the content, Gram distance to style,
photorealism.

- SSIM (Wang et al. 2004) between output and content, on luma, at the content's size: structure kept
  (1 = identical structure). Computed with scikit-image's reference implementation (Gaussian window,
  sigma 1.5, the paper's constants).
- Gram distance between output and style on VGG relu1_1..relu4_1 (the style statistics of Gatys et
  al.), and its ratio to the content-vs-style distance: 1.0 = no transfer, 0 = style matched.
- Photorealism: PSNR (dB) of the output against the best *local affine colour model* of the
  content, ``out ~= A(x) content + b(x)`` (A 3x3, b 3) fitted over 5x5 windows with the colour
  guided filter's closed form (He et al., eps 1e-4 on [0, 1] data), the window coefficients
  averaged and applied to the content; both images at short side 512. This is DPST's
  matting-Laplacian criterion (Luan et al. 2017) in PSNR form: a global colour matrix scores
  about 50 dB or more, a strong tone curve (gamma 0.6) about 44 dB, while new edges, textures,
  halos and blotches that the content does not have score low (noise of std 0.05: about 27 dB;
  ``scripts/photorealism_cases.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch
import torch.nn.functional as F

from photostyle.losses.losses import gram_distance as gram_distance  # re-exported
from photostyle.losses.losses import gram_distance_to
from photostyle.losses.losses import gram_matrix as gram_matrix  # re-exported
from photostyle.measure import frame_change
from photostyle.models.affine import luma as batch_luma
from photostyle.models.encoder import VGG16, VGGEncoder
from photostyle.models.weights import build_encoder
from photostyle.upsample import apply_local_affine, fit_local_affine


def luma(image: torch.Tensor) -> torch.Tensor:
    """Grey level (ITU-R BT.601) of an RGB image. Shape: (3, H, W) -> (H, W)."""
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) RGB image, got {tuple(image.shape)}")
    return batch_luma(image[None])[0, 0]


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Structural similarity of two RGB images in [0, 1], on luma.

    Args:
        a: (3, H, W) RGB in [0, 1].
        b: (3, H, W) RGB in [0, 1], same size.

    Returns:
        SSIM in [-1, 1]; 1 for identical images.
    """
    from skimage.metrics import structural_similarity

    if a.shape != b.shape:
        raise ValueError(f"SSIM needs equal sizes, got {tuple(a.shape)} and {tuple(b.shape)}")
    ga = luma(a.detach().double().cpu()).numpy()
    gb = luma(b.detach().double().cpu()).numpy()
    value = structural_similarity(
        ga, gb, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    return float(np.asarray(value))


@dataclass(frozen=True)
class PairScores:
    """Metrics of one stylized output."""

    ssim: float  # SSIM(output, content) on luma at the content's size
    gram: float  # Gram distance(output, style), VGG relu1_1..relu4_1
    gram_ratio: float  # gram / Gram distance(content, style): 1 = no transfer, 0 = matched
    photorealism: float  # PSNR (dB) to the content's best local affine colour model, short side 512


def _encode_for_gram(encoder: VGGEncoder, image: torch.Tensor, size: int) -> list[torch.Tensor]:
    h, w = image.shape[-2:]
    scale = min(1.0, size / max(h, w))
    x = image[None].to(next(encoder.parameters()).device, torch.float32)
    if scale < 1.0:
        x = F.interpolate(
            x, size=(max(16, round(h * scale)), max(16, round(w * scale))), mode="area"
        )
    return encoder(x).taps


class PairScorer:
    """Scores outputs of one content/style pair: the content and style go through VGG once.

    Args:
        content: (3, H, W) content image in [0, 1].
        style: (3, Hs, Ws) style image in [0, 1].
        encoder: VGG encoder whose taps define the Gram statistics.
        gram_size: images are shrunk so their longest side is at most this for the Gram term.
    """

    @torch.inference_mode()
    def __init__(
        self,
        content: torch.Tensor,
        style: torch.Tensor,
        encoder: VGGEncoder,
        *,
        gram_size: int = 512,
    ) -> None:
        self.content = content
        self.encoder = encoder
        self.gram_size = gram_size
        # The style's Gram matrices, once for every output scored against it.
        self.style_grams = [gram_matrix(t) for t in _encode_for_gram(encoder, style, gram_size)]
        taps_c = _encode_for_gram(encoder, content, gram_size)
        self.baseline = float(gram_distance_to(taps_c, self.style_grams)[0])  # content vs style

    @torch.inference_mode()
    def __call__(self, output: torch.Tensor) -> PairScores:
        """Score one output. Shape: (3, H, W), the content's size."""
        taps_o = _encode_for_gram(self.encoder, output, self.gram_size)
        gram = float(gram_distance_to(taps_o, self.style_grams)[0])
        ratio = gram / self.baseline if self.baseline > 0 else float("nan")
        return PairScores(
            ssim=ssim(output, self.content),
            gram=gram,
            gram_ratio=ratio,
            photorealism=photorealism(output, self.content),
        )


def score_pair(
    output: torch.Tensor,
    content: torch.Tensor,
    style: torch.Tensor,
    encoder: VGGEncoder,
    *,
    gram_size: int = 512,
) -> PairScores:
    """SSIM to the content, Gram distance (and ratio) to the style and photorealism of one output.

    Args:
        output: (3, H, W) stylized image in [0, 1].
        content: (3, H, W) content image in [0, 1].
        style: (3, Hs, Ws) style image in [0, 1].
        encoder: VGG encoder whose taps define the Gram statistics.
        gram_size: images are shrunk so their longest side is at most this for the Gram term.

    Returns:
        PairScores. Several outputs of one pair: :class:`PairScorer` encodes content and style once.
    """
    return PairScorer(content, style, encoder, gram_size=gram_size)(output)


PHOTOREALISM_SIZE = 512  # short side both images are shrunk to before the fit
PHOTOREALISM_RADIUS = 2  # window radius of the local affine fit: 5x5 windows
PHOTOREALISM_EPS = 1e-4  # ridge regulariser of the fit (a variance in [0, 1] units), as He et al.


def local_affine_model(
    output: torch.Tensor,
    content: torch.Tensor,
    *,
    radius: int = PHOTOREALISM_RADIUS,
    eps: float = PHOTOREALISM_EPS,
) -> torch.Tensor:
    """The content through the best local affine colour model of the output, in float64.

    Fits ``output ~= A(x) content + b(x)`` (A 3x3, b 3) over ``(2r+1)^2`` windows with the colour
    guided filter's closed form, averages the coefficients of the windows covering each pixel and
    applies them to the content (:func:`photostyle.upsample.fit_local_affine` and
    :func:`photostyle.upsample.apply_local_affine`, at the content's own size).

    Args:
        output: (3, H, W) stylized image in [0, 1].
        content: (3, H, W) content image in [0, 1].
        radius: window radius r.
        eps: ridge regulariser of the fit.

    Returns:
        (3, H, W) float64, not clamped.

    Shape: output, content (3, H, W) -> (3, H, W).
    """
    if content.ndim != 3 or content.shape[0] != 3 or output.shape != content.shape:
        raise ValueError(
            f"expected output and content of equal (3, H, W) shape, got {tuple(output.shape)} "
            f"and {tuple(content.shape)}"
        )
    guide = content.detach().to("cpu", torch.float64)[None]  # (1, 3, H, W)
    target = output.detach().to("cpu", torch.float64)[None]
    coeffs = fit_local_affine(guide, target, radius, eps)  # (1, 12, H, W), window-averaged
    return apply_local_affine(coeffs, guide)[0]


def photorealism(
    output: torch.Tensor,
    content: torch.Tensor,
    *,
    size: int = PHOTOREALISM_SIZE,
    radius: int = PHOTOREALISM_RADIUS,
    eps: float = PHOTOREALISM_EPS,
) -> float:
    """Photorealism of a stylized output: PSNR (dB) to its best local affine colour model.

    Both images are first shrunk (area averaging) so that their short side is ``size``; smaller
    images are used as they are. Then :func:`local_affine_model` explains the output by a smoothly
    varying colour matrix applied to the content, and the PSNR measures what it cannot explain:
    edges, textures, halos or blotches the content does not have. A global colour matrix scores
    about 50 dB (the ridge keeps even an unchanged image finite, about 51 dB on a photo), noise of
    std 0.05 about 27 dB.

    Args:
        output: (3, H, W) stylized image in [0, 1].
        content: (3, H, W) content image in [0, 1].
        size: short side of the comparison.
        radius: window radius of the fit (2: 5x5 windows).
        eps: ridge regulariser of the fit.

    Returns:
        PSNR in dB (higher: more photorealistic).

    Shape: output, content (3, H, W) -> scalar.
    """
    if size < 2 * radius + 1:
        raise ValueError(f"size must be at least one window ({2 * radius + 1}), got {size}")
    if output.shape != content.shape:
        raise ValueError(
            f"output {tuple(output.shape)} and content {tuple(content.shape)} differ in size"
        )
    both = torch.stack([output, content]).detach().to("cpu", torch.float64)  # (2, 3, H, W)
    h, w = both.shape[-2:]
    scale = size / min(h, w)
    if scale < 1.0:
        both = F.interpolate(both, size=(round(h * scale), round(w * scale)), mode="area")
    model = local_affine_model(both[0], both[1], radius=radius, eps=eps)
    return psnr(model, both[0])


def flicker_ratio(outputs: Sequence[torch.Tensor], inputs: Sequence[torch.Tensor]) -> float:
    """Temporal flicker of a processed clip relative to its input.

    The mean absolute change between consecutive output frames divided by that of the input
    frames: 1.0 = the output changes as much as the input moves, below 1 = steadier than the
    input, above 1 = flickers more. NaN when the input does not change.

    Args:
        outputs: the processed frames, each (3, H, W) (or any shape, all equal).
        inputs: the input frames, as many as ``outputs``, each of the input's shape.

    Returns:
        The ratio (>= 0) or NaN.

    Raises:
        ValueError: fewer than two frames, or the two clips differ in length.
    """
    if len(outputs) != len(inputs):
        raise ValueError(f"got {len(outputs)} output frames for {len(inputs)} input frames")
    if len(inputs) < 2:
        raise ValueError("flicker needs at least two frames")
    change_out = sum(frame_change(b, a) for a, b in pairwise(outputs))
    change_in = sum(frame_change(b, a) for a, b in pairwise(inputs))
    return change_out / change_in if change_in > 0 else float("nan")


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of two images in [0, 1] (clamped); inf when identical.

    Shape: x, y (3, H, W), the same size.
    """
    if x.shape != y.shape:
        raise ValueError(f"images differ in size: {tuple(x.shape)} vs {tuple(y.shape)}")
    mse = float((x.float().clamp(0, 1) - y.float().clamp(0, 1)).pow(2).mean())
    return math.inf if mse == 0.0 else -10.0 * math.log10(mse)


def metric_encoder(device: str | torch.device = "cpu") -> VGGEncoder:
    """The bundled ImageNet VGG16: the fixed yardstick of the Gram metric, whatever the model."""
    return build_encoder(None, VGG16).to(device)
