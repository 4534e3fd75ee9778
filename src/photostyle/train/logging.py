"""Run logs: TensorBoard scalars and images, a JSON-lines log, and a loss-curve PNG."""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType
from typing import Any

import torch

from photostyle.utils import atomic_path


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

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(f"loss/{name}", value, step)

    def text(self, tag: str, value: str) -> None:
        if self.writer is not None:
            self.writer.add_text(tag, f"```\n{value}\n```")

    def images(self, step: int, batches: dict[str, torch.Tensor]) -> None:
        """One row per sample: the given images side by side. Shape: each (B, 3, H, W)."""
        if self.writer is None:
            return
        rows = torch.cat([b[:4].detach().clamp(0, 1).cpu() for b in batches.values()], dim=-1)
        self.writer.add_images("samples/" + "|".join(batches), rows, step)

    def plot_history(self, history: list[dict[str, float]], path: Path) -> None:
        """Loss curves (log scale), one line per term, as a PNG."""
        if not self.enabled or not history:
            return
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return
        fig, ax = plt.subplots(figsize=(8, 4.5))
        steps = [h["step"] for h in history]
        for key in history[-1]:
            if key != "step":
                ax.plot(steps, [h.get(key, float("nan")) for h in history], label=key)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss (mean squared feature error)")
        ax.legend(ncol=4, fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100)
        plt.close(fig)
