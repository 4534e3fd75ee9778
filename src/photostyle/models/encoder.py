"""Fixed VGG encoder up to relu4_1 (paper Fig. 2, left half).

The encoder returns the four style taps relu1_1..relu4_1 used by the FA layers and the perceptual
losses (Eqs. (3)-(7), (9)), plus the outputs P^i of the three max-pool layers and their indices,
used by the decoder's Unpool layers and by the SCP loss (Eq. (2)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

InputConvention = Literal["caffe_bgr255", "torch_rgb"]
# Padding of the 3x3 convolutions; the values ``nn.Conv2d`` accepts.
PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]

# Caffe VGG (and Keras VGG16): BGR, 0..255, minus the per-channel mean, B first.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
MIN_SIDE = 16  # smallest image side: relu4_1 (1/8 scale) needs 2 px for reflection padding
# Caffe-convention VGG features are ~255 * 0.226 = 58x those of torchvision-convention VGG (inputs
# in 0..255 rather than standardised). The decoder works on features at torchvision scale, where
# default initialisation gives outputs near [0, 1]; FEATURE_SCALE brings each convention there.
FEATURE_SCALE: dict[str, float] = {"caffe_bgr255": 1.0 / (255.0 * 0.226), "torch_rgb": 1.0}
# torchvision VGG: RGB, 0..1, standardised with the ImageNet statistics.
TORCH_MEAN_RGB = (0.485, 0.456, 0.406)
TORCH_STD_RGB = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class VGGConfig:
    """Shape of a VGG encoder truncated at relu4_1."""

    name: str  # "vgg16", "vgg19", or a test name; recorded in checkpoints
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)  # channels of blocks 1..4
    depths: tuple[int, int, int, int] = (2, 2, 3, 1)  # convs per block up to relu4_1
    full_depths: tuple[int, ...] = (2, 2, 3, 3, 3)  # convs per block of the whole network (key map)

    def conv_names(self) -> list[str]:
        """Names of the conv layers up to relu4_1, e.g. ``["conv1_1", "conv1_2", ...]``."""
        return [f"conv{b + 1}_{i + 1}" for b, d in enumerate(self.depths) for i in range(d)]

    def torchvision_keys(self) -> dict[str, str]:
        """Map ``conv1_1`` -> ``features.0`` following torchvision's ``vgg*.features`` indexing."""
        mapping: dict[str, str] = {}
        index = 0
        for b, depth in enumerate(self.full_depths):
            for i in range(depth):
                mapping[f"conv{b + 1}_{i + 1}"] = f"features.{index}"
                index += 2  # conv, relu
            index += 1  # max-pool
        return {name: mapping[name] for name in self.conv_names()}


VGG16 = VGGConfig("vgg16", depths=(2, 2, 3, 1), full_depths=(2, 2, 3, 3, 3))
VGG19 = VGGConfig("vgg19", depths=(2, 2, 4, 1), full_depths=(2, 2, 4, 4, 4))
VGG_CONFIGS = {"vgg16": VGG16, "vgg19": VGG19}


@dataclass
class EncoderOutput:
    """What the encoder hands to the decoder and the losses.

    Attributes:
        taps: relu1_1..relu4_1; tap ``b`` is (B, widths[b], H / 2**b, W / 2**b).
        pooled: P^1..P^3, the max-pool outputs; P^i is (B, widths[i-1], H / 2**i, W / 2**i).
        indices: max-pool indices matching ``pooled``.
        sizes: spatial size before each pool, needed to unpool odd sizes exactly.
    """

    taps: list[torch.Tensor]
    pooled: list[torch.Tensor]
    indices: list[torch.Tensor]
    sizes: list[tuple[int, int]]


def normalize_input(x: torch.Tensor, convention: InputConvention) -> torch.Tensor:
    """Convert RGB in [0, 1] to the convention the encoder weights were trained with.

    Shape: (B, 3, H, W) -> (B, 3, H, W).
    """
    if convention == "caffe_bgr255":
        mean = x.new_tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1)
        return x.flip(1) * 255.0 - mean
    if convention == "torch_rgb":
        mean = x.new_tensor(TORCH_MEAN_RGB).view(1, 3, 1, 1)
        std = x.new_tensor(TORCH_STD_RGB).view(1, 3, 1, 1)
        return (x - mean) / std
    raise ValueError(f"unknown input convention {convention!r}")


class VGGEncoder(nn.Module):
    """VGG conv layers up to relu4_1 with max-pool indices; frozen (paper: "The encoder is fixed").

    Args:
        config: layer widths and depths (``VGG16`` or ``VGG19``).
        convention: input convention of the weights that will be loaded.
        padding_mode: ``"reflect"`` avoids the dark borders zero padding leaves in decoded images.
    """

    def __init__(
        self,
        config: VGGConfig = VGG16,
        convention: InputConvention = "caffe_bgr255",
        padding_mode: PaddingMode = "reflect",
    ) -> None:
        super().__init__()
        self.config = config
        self.convention: InputConvention = convention
        self.convs = nn.ModuleDict()
        in_ch = 3
        for b, depth in enumerate(config.depths):
            for i in range(depth):
                out_ch = config.widths[b]
                self.convs[f"conv{b + 1}_{i + 1}"] = nn.Conv2d(
                    in_ch, out_ch, 3, padding=1, padding_mode=padding_mode
                )
                in_ch = out_ch
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGEncoder:
        """The encoder has no train-time behaviour; stays in eval mode."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        """Encode an RGB image.

        Args:
            x: (B, 3, H, W) RGB in [0, 1]; H, W >= 16 (relu4_1 at 1/8 scale must be at least 2 px
                for reflection padding).

        Returns:
            EncoderOutput with taps relu1_1..relu4_1, P^1..P^3, pool indices and pre-pool sizes.
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) RGB, got {tuple(x.shape)}")
        if min(x.shape[-2:]) < MIN_SIDE:
            raise ValueError(f"image too small for 3 poolings: {tuple(x.shape[-2:])}")
        h = normalize_input(x, self.convention)
        out = EncoderOutput(taps=[], pooled=[], indices=[], sizes=[])
        for b, depth in enumerate(self.config.depths):
            for i in range(depth):
                h = F.relu(self.convs[f"conv{b + 1}_{i + 1}"](h))
                if i == 0:
                    out.taps.append(h)  # relu{b+1}_1
            if b < 3:
                out.sizes.append((h.shape[-2], h.shape[-1]))
                h, idx = F.max_pool2d(h, 2, 2, return_indices=True)
                out.pooled.append(h)  # P^{b+1}
                out.indices.append(idx)
        return out

    def first_taps(self, x: torch.Tensor, levels: int) -> list[torch.Tensor]:
        """relu1_1..relu{levels}_1, running only the layers they need (no pooling indices).

        Shape: (B, 3, H, W) -> ``levels`` maps.
        """
        if not 1 <= levels <= len(self.config.depths):
            raise ValueError(f"levels must be in [1, {len(self.config.depths)}], got {levels}")
        h = normalize_input(x, self.convention)
        taps: list[torch.Tensor] = []
        for b, depth in enumerate(self.config.depths):
            if b > 0:
                h = F.max_pool2d(h, 2, 2)
            for i in range(depth if b + 1 < levels else 1):
                h = F.relu(self.convs[f"conv{b + 1}_{i + 1}"](h))
                if i == 0:
                    taps.append(h)
            if len(taps) == levels:
                return taps
        return taps

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """relu1_1..relu4_1 only, for the perceptual losses. Shape: (B, 3, H, W) -> 4 maps."""
        return self.first_taps(x, len(self.config.depths))
