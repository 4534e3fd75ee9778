"""InceptionV3 of pytorch-fid (the FID network), in plain torch, for the Fréchet Inception Distance.

This is the network of mseitzer/pytorch-fid (``fid_inception_v3``): torchvision's Inception3 layout
(no auxiliary classifier) with the blocks patched to match the TensorFlow graph of the original FID
code (``FIDInceptionA/C/E``: average pools that do not count padding, a max pool in ``Mixed_7c``).
Features are the 2048-d pool3 activations (global average pool after ``Mixed_7c``); inputs are RGB
in [0, 1], resized to 299 x 299 (bilinear) and scaled to [-1, 1], as pytorch-fid does.

State-dict keys are those of pytorch-fid's network (``Conv2d_1a_3x3.conv.weight``, ...,
``Mixed_7c.branch_pool.bn.running_var``), so its weights file
``pt_inception-2015-12-05-6726825d.pth`` loads with ``strict=True`` once its 1008-class ``fc``
classifier, unused for pool3 features, is dropped. Nothing is downloaded: the file comes from an
explicit path, the ``PHOTOSTYLE_INCEPTION_WEIGHTS`` environment variable, or the torch hub cache
where pytorch-fid keeps it (see :func:`find_inception_weights`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from photostyle.models.weights import WeightsError, read_tensors

INCEPTION_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
# Where pytorch-fid publishes the file (documentation only: this module never downloads).
INCEPTION_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    + INCEPTION_WEIGHTS_FILE
)
INCEPTION_WEIGHTS_ENV = "PHOTOSTYLE_INCEPTION_WEIGHTS"
FID_INPUT_SIZE = 299  # side of the network's input in FID
MIN_INPUT_SIZE = 75  # smallest input side the valid convolutions and poolings accept
FEATURE_DIM = 2048  # pool3 features
_UNUSED_PREFIXES = ("fc.", "AuxLogits.")  # classifier heads of the weights file, not used for pool3


class BasicConv2d(nn.Module):
    """Conv (no bias) + BatchNorm (eps 1e-3) + ReLU, torchvision's Inception building block."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Shape: (B, in_ch, H, W) -> (B, out_ch, H', W')."""
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: torch.Tensor) -> torch.Tensor:
    # The FID blocks' pool branch: 3x3 average that does not count the zero padding (as in TF).
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(nn.Module):
    """Mixed_5b/5c/5d (35 x 35). Shape: (B, in_ch, H, W) -> (B, 224 + pool_features, H, W)."""

    def __init__(self, in_ch: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_ch, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_ch, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_ch, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg_pool(x))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    """Mixed_6a, grid reduction 35 -> 17. Shape: (B, in_ch, H, W) -> (B, 480 + in_ch, H', W')."""

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_ch, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, bd, bp], 1)


class FIDInceptionC(nn.Module):
    """Mixed_6b..6e (17 x 17), factorised 7x7. Shape: (B, in_ch, H, W) -> (B, 768, H, W)."""

    def __init__(self, in_ch: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_ch, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_ch, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_ch, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_ch, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4):
            bd = layer(bd)
        bd = self.branch7x7dbl_5(bd)
        bp = self.branch_pool(_avg_pool(x))
        return torch.cat([b1, b7, bd, bp], 1)


class InceptionD(nn.Module):
    """Mixed_7a, grid reduction 17 -> 8. Shape: (B, in_ch, H, W) -> (B, 512 + in_ch, H', W')."""

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_ch, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_ch, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = layer(b7)
        bp = F.max_pool2d(x, kernel_size=3, stride=2)
        return torch.cat([b3, b7, bp], 1)


class FIDInceptionE(nn.Module):
    """Mixed_7b (``pool="avg"``) and Mixed_7c (``pool="max"``), 8 x 8.

    Shape: (B, in_ch, H, W) -> (B, 2048, H, W).
    """

    def __init__(self, in_ch: int, pool: Literal["avg", "max"]) -> None:
        super().__init__()
        self.pool = pool  # pytorch-fid's FIDInceptionE_1 averages, FIDInceptionE_2 takes the max
        self.branch1x1 = BasicConv2d(in_ch, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_ch, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_ch, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        if self.pool == "avg":
            pooled = _avg_pool(x)
        else:  # TF's graph uses a max pool in the last block (a bug there that FID keeps)
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        bp = self.branch_pool(pooled)
        return torch.cat([b1, b3, bd, bp], 1)


class FIDInceptionV3(nn.Module):
    """pytorch-fid's InceptionV3 up to the 2048-d pool3 features; frozen, always in eval mode.

    Args:
        resize_input: resize inputs to 299 x 299 (bilinear, ``align_corners=False``) first, as
            pytorch-fid does; without it any side >= 75 is accepted.
    """

    def __init__(self, resize_input: bool = True) -> None:
        super().__init__()
        self.resize_input = resize_input
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, pool="avg")
        self.Mixed_7c = FIDInceptionE(2048, pool="max")
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> FIDInceptionV3:
        """FID uses the frozen network: BatchNorm always uses its running statistics."""
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool3 features of RGB images.

        Args:
            x: (B, 3, H, W) RGB in [0, 1]; H, W >= 75 unless ``resize_input``.

        Returns:
            (B, 2048) pool3 activations.
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) RGB, got {tuple(x.shape)}")
        if self.resize_input:
            size = (FID_INPUT_SIZE, FID_INPUT_SIZE)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        elif min(x.shape[-2:]) < MIN_INPUT_SIZE:
            raise ValueError(f"InceptionV3 needs sides >= {MIN_INPUT_SIZE}, got {tuple(x.shape)}")
        x = 2 * x - 1  # [0, 1] -> [-1, 1]
        x = self.Conv2d_1a_3x3(x)  # (B, 32, 149, 149) at 299
        x = self.Conv2d_2a_3x3(x)  # (B, 32, 147, 147)
        x = self.Conv2d_2b_3x3(x)  # (B, 64, 147, 147)
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (B, 64, 73, 73)
        x = self.Conv2d_3b_1x1(x)  # (B, 80, 73, 73)
        x = self.Conv2d_4a_3x3(x)  # (B, 192, 71, 71)
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (B, 192, 35, 35)
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))  # (B, 288, 35, 35)
        x = self.Mixed_6a(x)  # (B, 768, 17, 17)
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))  # (B, 768, 17, 17)
        x = self.Mixed_7a(x)  # (B, 1280, 8, 8)
        x = self.Mixed_7c(self.Mixed_7b(x))  # (B, 2048, 8, 8)
        return x.mean(dim=(2, 3))  # pool3: (B, 2048)


def find_inception_weights(path: str | Path | None = None) -> Path | None:
    """Locate the pytorch-fid weights file without downloading anything.

    Looks at, in order: ``path``; the ``PHOTOSTYLE_INCEPTION_WEIGHTS`` environment variable; the
    torch hub cache (``$TORCH_HOME/hub/checkpoints``, by default
    ``~/.cache/torch/hub/checkpoints``), where pytorch-fid stores the file it downloads.

    Returns:
        The file, or None when no path was given and nothing is in the hub cache.

    Raises:
        WeightsError: ``path`` or the environment variable names a file that does not exist.
    """
    given_paths = (
        (path, ""),
        (os.environ.get(INCEPTION_WEIGHTS_ENV), f" (${INCEPTION_WEIGHTS_ENV})"),
    )
    for given, origin in given_paths:
        if given:
            if not Path(given).is_file():
                raise WeightsError(f"{given}: no such InceptionV3 weights file{origin}")
            return Path(given)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE
    return cached if cached.is_file() else None


def load_inception(path: str | Path, device: str | torch.device = "cpu") -> FIDInceptionV3:
    """The FID InceptionV3 with weights from pytorch-fid's ``.pth`` file or a ``.safetensors`` copy.

    The ``.pth`` file is read with ``torch.load(weights_only=True)``. Its ``fc`` classifier (and an
    ``AuxLogits`` head, if any) is dropped; every other tensor must match (``strict=True``).

    Raises:
        WeightsError: the file is unreadable or holds another network's weights.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such InceptionV3 weights file")
    state = {k: v for k, v in read_tensors(path)[0].items() if not k.startswith(_UNUSED_PREFIXES)}
    model = FIDInceptionV3()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[:2]
        raise WeightsError(
            f"{path}: not pytorch-fid's InceptionV3 weights ({' '.join(first)})"
        ) from err
    return model.to(device)
