"""photostyle.train.logging: the loss plot."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from photostyle.train.logging import plot_loss_curves


def test_loss_plot_draws_the_losses_and_leaves_out_the_excluded_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matplotlib.axes import Axes

    labels: list[str] = []
    scales: list[str] = []
    real, real_scale = Axes.plot, Axes.set_yscale

    def recording(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        labels.append(kwargs["label"])
        return real(self, *args, **kwargs)

    def scale(self, value, **kwargs):  # type: ignore[no-untyped-def]
        scales.append(value)
        return real_scale(self, value, **kwargs)

    monkeypatch.setattr(Axes, "plot", recording)
    monkeypatch.setattr(Axes, "set_yscale", scale)
    history = [
        {"step": 1, "total": 0.5, "seconds": 3.0, "pool": 8.0},
        {"step": 2, "total": 0.4, "held_out": 0.6, "seconds": 6.0, "pool": 16.0},
    ]
    plot_loss_curves(history, tmp_path / "curves.png", exclude=("seconds", "pool"))
    assert labels == ["total", "held_out"] and scales == ["log"]
    with Image.open(tmp_path / "curves.png") as png:
        assert png.format == "PNG"
    # A negative term (a log Gram ratio) is drawn on a linear axis, not dropped by a log one.
    plot_loss_curves([{"step": 1, "log_gram_ratio": -0.7, "ssim": 0.9}], tmp_path / "f.png")
    assert scales == ["log", "linear"]
