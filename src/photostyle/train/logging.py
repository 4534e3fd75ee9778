"""Run logs: TensorBoard scalars and images, a JSON-lines log, and a loss-curve PNG."""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from pathlib import Path
from types import TracebackType
from typing import Any

import torch

from photostyle.utils import PlotUnavailable, atomic_path, pyplot


class RunLogger:
    """Writes to ``out_dir/tb`` (TensorBoard, if installed) and ``out_dir/metrics.jsonl``.

    Args:
        out_dir: the run directory.
        enabled: False makes every call a no-op (tests, ablation sweeps).
    """

    def __init__(self, out_dir: str | Path, enabled: bool = True) -> None:
        self.out = Path(out_dir)
        self.enabled = enabled
        self.writer: Any = None
        if enabled:
            self.out.mkdir(parents=True, exist_ok=True)
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is an optional extra
                self.writer = None
            else:
                self.writer = SummaryWriter(str(self.out / "tb"))

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.writer is not None:
            self.writer.close()

    def scalars(
        self, step: int, losses: dict[str, float], extra: dict[str, float] | None = None
    ) -> None:
        """One metrics line; TensorBoard ``loss/<term>`` for each loss, ``train/<name>`` for extras.

        Args:
            step: the optimisation step.
            losses: Eq. (8) terms and ``total``.
            extra: other per-step values (e.g. ``grad_norm``).
        """
        if not self.enabled:
            return
        extra = extra or {}
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": step, **losses, **extra}) + "\n")
        if self.writer is not None:
            for name, value in losses.items():
                self.writer.add_scalar(f"loss/{name}", value, step)
            for name, value in extra.items():
                self.writer.add_scalar(f"train/{name}", value, step)

    def text(self, tag: str, value: str) -> None:
        if self.writer is not None:
            self.writer.add_text(tag, f"```\n{value}\n```")

    def images(self, step: int, batches: dict[str, torch.Tensor], max_rows: int = 4) -> None:
        """One grid image: a row per sample (at most ``max_rows``), the batches side by side.

        The tag names the columns, e.g. ``samples/content|style|similar|u|v``.

        Shape: each batch (B, 3, H, W) -> one (3, min(B, max_rows) * H, len(batches) * W) image.
        """
        if self.writer is None:
            return
        cols = [b[:max_rows].detach().float().clamp(0, 1).cpu() for b in batches.values()]
        grid = torch.cat(list(torch.cat(cols, dim=-1)), dim=-2)  # rows stacked vertically
        self.writer.add_image("samples/" + "|".join(batches), grid, step)

    def plot_history(self, history: list[dict[str, float]], path: Path) -> None:
        """Loss curves (log scale), one line per term, as a PNG (nothing when disabled)."""
        if self.enabled:
            plot_loss_curves(history, path)


def truncate_metrics(out_dir: str | Path, step: int) -> None:
    """Keep the lines of ``out_dir/metrics.jsonl`` up to ``step``, before a run resumes there.

    A run killed after its last checkpoint logged steps that the resumed run logs again; those
    lines, and a line cut short by the kill, are dropped (the file is rewritten atomically).
    """
    metrics = Path(out_dir) / "metrics.jsonl"
    if not metrics.exists():
        return
    kept = []
    for line in metrics.read_text().splitlines(keepends=True):
        try:
            logged = json.loads(line)
        except json.JSONDecodeError:  # the line the kill cut short
            continue
        complete = line.endswith("\n") and isinstance(logged, dict)
        if complete and logged.get("step", step + 1) <= step:
            kept.append(line)
    with atomic_path(metrics) as tmp:
        tmp.write_text("".join(kept))


def plot_loss_curves(
    history: list[dict[str, float]],
    path: str | Path,
    exclude: Collection[str] = (),
    ylabel: str = "loss",
) -> None:
    """Write the loss curves of ``history`` (one line per term) as a PNG, atomically.

    Keys in ``exclude`` (per-step values that are not losses: elapsed seconds, counts) are left
    out. The y axis, labelled ``ylabel``, is logarithmic when every value drawn is positive, else
    linear (a log Gram ratio is negative). Does nothing for an empty history or without
    matplotlib (an optional extra).
    """
    if not history:
        return
    try:
        plt = pyplot()
    except PlotUnavailable:
        return
    fig, ax = plt.subplots(figsize=(8, 4.5))
    steps = [h["step"] for h in history]
    drawn: list[float] = []
    for key in history[-1]:
        if key != "step" and key not in exclude:
            values = [h.get(key, float("nan")) for h in history]
            ax.plot(steps, values, label=key)
            drawn += [v for v in values if math.isfinite(v)]
    ax.set_yscale("log" if all(v > 0 for v in drawn) else "linear")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.legend(ncol=4, fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
