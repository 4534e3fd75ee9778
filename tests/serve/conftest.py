"""Shared fixtures of the web-server tests: a fast fake stylizer and uploads as bytes."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from photostyle.api import StylizeOptions


class FakeStylizer:
    """Pulls the content's colours towards the style's mean; optionally blocks each call.

    Deterministic, so the server's answers can be compared exactly with a direct computation.
    """

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.device = torch.device("cpu")
        self.gate = gate  # when set, each call waits for it (to fill the queue)
        self.calls: list[StylizeOptions] = []
        self.lock = threading.Lock()
        self.running = 0  # calls in progress now
        self.most_running = 0  # largest number of calls in progress at once

    def stylize(
        self,
        content: torch.Tensor,
        style: torch.Tensor,
        *,
        content_mask: torch.Tensor | None = None,
        style_mask: torch.Tensor | None = None,
        options: StylizeOptions | None = None,
    ) -> torch.Tensor:
        with self.lock:
            self.calls.append(options or StylizeOptions())
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            if self.gate is not None:
                self.gate.wait(timeout=30)
            return expected_stylized(content, style)
        finally:
            with self.lock:
                self.running -= 1


def expected_stylized(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """What :class:`FakeStylizer` returns (at alpha = 1)."""
    mean = style.mean(dim=(1, 2), keepdim=True)
    return (0.4 * content + 0.6 * mean).clamp(0, 1)


def png_bytes(h: int = 40, w: int = 48, seed: int = 0, mode: str = "RGB", **save: object) -> bytes:
    """A random image of the given mode, encoded (PNG unless ``format`` is passed)."""
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(mode)
    buffer = io.BytesIO()
    img.save(buffer, format=str(save.pop("format", "PNG")), **save)
    return buffer.getvalue()


@pytest.fixture
def fake_stylizer() -> FakeStylizer:
    return FakeStylizer()


@pytest.fixture
def make_fake_stylizer() -> type[FakeStylizer]:
    return FakeStylizer


@pytest.fixture
def expected() -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The fake stylizer's function (at alpha = 1)."""
    return expected_stylized


@pytest.fixture
def make_png() -> Callable[..., bytes]:
    return png_bytes
