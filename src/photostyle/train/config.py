"""Typed training configuration (paper Sec. III-E/F and IV)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from photostyle.data.sampler import SamplingConfig
from photostyle.models.encoder import VGG_CONFIGS
from photostyle.models.layers import FA_VARIANTS, FAVariant
from photostyle.train.pipeline import StyleTerm


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved in every checkpoint.

    ``reconstruction=True`` trains the reconstruction decoder of the AdaIN/WCT baselines
    (:mod:`photostyle.eval.neural_baselines`): stylizer U alone, with FA ``"none"``, on content
    crops, with the content perceptual loss Eq. (3) and the SCP loss Eq. (2); the style terms, V and
    ``use_restyle``/``style_term`` are ignored. It is refused with any other ``fa`` (no silent
    override: the checkpoint's config says what was trained).
    """

    data: str = ""  # ImageFolder root (class = sub-folder)
    out_dir: str = "runs/photostyle"  # checkpoints, TensorBoard logs, plots, exported stylizer
    arch: str = "vgg16"  # encoder: "vgg16" or "vgg19"
    encoder_weights: str | None = None  # VGG weights file/URL; None = bundled ImageNet VGG16
    fa: FAVariant = "mean_std"  # FA variant used while training
    crop: int = 128  # side of the square training crops
    batch_size: int = 4  # triplets per step
    steps: int = 1000  # total optimisation steps
    lr: float = 1e-4  # Adam learning rate (paper: 1e-4)
    adam_betas: tuple[float, float] = (0.5, 0.999)  # Adam (beta1, beta2) (paper: 0.5, 0.999)
    beta: float = 1.0  # Eq. (8) weight of the perceptual losses (paper: 1)
    style_term: StyleTerm = "stats"  # Eqs. (4),(6): "stats" (channel mean/std) or literal "feature"
    residual: bool = True  # decoders predict the change to their input image (README: departures)
    relative_losses: bool = True  # squared errors relative to their target's energy (losses.py)
    use_scp: bool = True  # ablation switch: SCP losses L_r (Eq. (2))
    use_restyle: bool = True  # ablation switch: re-stylization stage V (Fig. 1)
    use_perceptual: bool = True  # ablation switch: perceptual losses L_p (Eqs. (3)-(7))
    reconstruction: bool = False  # train a plain autoencoder: U only, FA "none", Eq. (3) + SCP
    sampling: SamplingConfig = field(default_factory=SamplingConfig)  # T1/T2 fractions
    index_size: int = 32  # image side for the perceptual distances of Eq. (9)
    max_images: int | None = None  # use only the first N images per class (quick runs)
    seed: int = 0  # seeds weights init and the triplet stream
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    workers: int = 1  # DataLoader worker processes
    log_every: int = 10  # steps between scalar logs
    image_every: int = 200  # steps between sample images in TensorBoard
    ckpt_every: int = 50  # steps between checkpoints (atomic, resumable)
    time_limit_s: float | None = None  # stop (after checkpointing) once this much time has passed

    def __post_init__(self) -> None:
        if self.fa not in FA_VARIANTS:
            raise ValueError(f"unknown FA variant {self.fa!r}; choose from {FA_VARIANTS}")
        if self.crop < 16 or self.batch_size < 1 or self.steps < 0:
            raise ValueError("crop must be >= 16, batch_size >= 1, steps >= 0")
        if not (self.use_scp or self.use_perceptual):
            raise ValueError("at least one of the SCP and perceptual losses must be on")
        if self.reconstruction and self.fa != "none":
            raise ValueError(
                f"reconstruction trains a plain autoencoder and needs fa='none', got {self.fa!r}"
            )
        if self.style_term not in ("stats", "feature"):
            raise ValueError(f"style_term must be 'stats' or 'feature', got {self.style_term!r}")
        if self.arch not in VGG_CONFIGS:
            raise ValueError(f"unknown arch {self.arch!r}; choose from {sorted(VGG_CONFIGS)}")
        if not (self.lr > 0 and self.beta >= 0 and all(0 <= b < 1 for b in self.adam_betas)):
            raise ValueError("lr must be > 0, beta >= 0 and both Adam betas in [0, 1)")
        if min(self.log_every, self.image_every, self.ckpt_every) < 1 or self.workers < 0:
            raise ValueError("log_every, image_every, ckpt_every must be >= 1 and workers >= 0")
        if self.index_size < 16 or (self.max_images is not None and self.max_images < 1):
            raise ValueError("index_size must be >= 16 and max_images >= 1")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if isinstance(d.get("sampling"), dict):
            d["sampling"] = SamplingConfig(**d["sampling"])
        if "adam_betas" in d:
            d["adam_betas"] = tuple(d["adam_betas"])
        return cls(**d)

    @classmethod
    def from_json(cls, path: str | Path) -> TrainConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))
