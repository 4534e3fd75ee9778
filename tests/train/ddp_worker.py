"""One rank of the torchrun test (tests/train/test_distributed.py): ``photostyle train``, tiny VGG.

Usage: ``torchrun --nproc-per-node 2 ddp_worker.py CONFIG.yaml RESULTS_DIR``. Registers the tiny
layout of tests/conftest.py as arch "tiny", runs the CLI as a user would, and writes what the test
checks to ``RESULTS_DIR/rank<RANK>.safetensors``: this rank's trained weights (``model.*``), the
stream sample numbers it drew (``samples``) and its own per-step total loss before averaging
(``local_total``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from photostyle.cli import main
from photostyle.data.datasets import TripletCrops
from photostyle.models.encoder import VGG_CONFIGS
from photostyle.train import trainer as trainer_module

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from conftest import TINY  # tests/conftest.py, found through the path above

VGG_CONFIGS["tiny"] = TINY
samples: list[int] = []
local_total: list[float] = []
weights: dict[str, torch.Tensor] = {}


class RecordingCrops(TripletCrops):
    def __getitem__(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        samples.append(n)
        return super().__getitem__(n)


class RecordingTrainer(trainer_module.Trainer):
    def _reduce(self, losses: dict[str, torch.Tensor], stop: bool) -> tuple[dict[str, float], bool]:
        local_total.append(float(losses["total"].detach()))
        return super()._reduce(losses, stop)

    def train(self) -> trainer_module.TrainResult:
        result = super().train()
        for k, v in self.model.state_dict().items():
            if not k.startswith("encoder."):
                weights[f"model.{k}"] = v.detach().clone()
        return result


trainer_module.TripletCrops = RecordingCrops  # type: ignore[misc]
trainer_module.Trainer = RecordingTrainer  # type: ignore[misc]
code = main(["train", "--config", sys.argv[1]])
results = Path(sys.argv[2])
save_file(
    {
        **weights,
        "samples": torch.tensor(samples),
        "local_total": torch.tensor(local_total, dtype=torch.float64),
    },
    str(results / f"rank{os.environ['RANK']}.safetensors"),
)
sys.exit(code)
