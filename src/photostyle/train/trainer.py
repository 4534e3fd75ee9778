"""Training loop: sampling, Eq. (8) optimisation, checkpoints that resume, logs and plots."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from photostyle.data.datasets import ImageList, TripletCrops, image_folder, random_crop
from photostyle.data.index import PerceptualIndex, pairwise_sq_distances, perceptual_features
from photostyle.data.sampler import TripletSampler
from photostyle.io import ImageError, load_image
from photostyle.models.encoder import VGG_CONFIGS, VGGEncoder
from photostyle.models.stylizer import ModelConfig
from photostyle.models.weights import (
    BUNDLED_VGG16_SHA256,
    STYLIZER_FORMAT,
    WeightsError,
    build_encoder,
    load_checkpoint,
    save_checkpoint,
)
from photostyle.train.config import TrainConfig
from photostyle.train.pipeline import LossSwitches, TwoStageModel
from photostyle.utils import atomic_path, resolve_device, sha256_file

logger = logging.getLogger(__name__)

TRAIN_FORMAT = "photostyle.train_state"
Progress = Callable[[int, dict[str, float]], None]


@dataclass
class TrainResult:
    """Where a finished (or time-limited) run left its files."""

    step: int  # steps completed so far (over all resumed sessions)
    checkpoint: Path  # resumable training state
    stylizer: Path  # exported stylizer U for inference
    losses: dict[str, float]  # last logged loss terms


def build_index(
    images: ImageList,
    encoder: VGGEncoder,
    size: int,
    device: torch.device,
    on_batch: Callable[[int], None] | None = None,
) -> PerceptualIndex:
    """Eq. (9) distances between all images of ``images``."""
    feats, bad = perceptual_features(
        images.paths, encoder, size=size, device=device, on_batch=on_batch
    )
    for i in bad:
        logger.warning("unreadable image in index (kept as grey): %s", images.paths[i])
    return PerceptualIndex(
        paths=[str(p) for p in images.paths],
        labels=images.labels,
        classes=images.classes,
        distances=pairwise_sq_distances(feats),
        size=size,
    )


def _subset(images: ImageList, per_class: int | None) -> ImageList:
    if per_class is None:
        return images
    keep = []
    for c in range(len(images.classes)):
        keep.extend((images.labels == c).nonzero().flatten()[:per_class].tolist())
    return ImageList([images.paths[i] for i in keep], images.labels[keep], images.classes)


class ContentCrops(Dataset[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]):
    """Reconstruction mode's data: item ``n`` is one random content crop, as a triplet.

    The training loop takes (I_c, I_s, I_t) triplets; here all three are the same crop (only I_c is
    used). Like :class:`~photostyle.data.datasets.TripletCrops`, item ``n`` has its own generator
    seeded from ``(seed, n)``, so a resumed run continues the same stream. No perceptual index is
    needed.

    Args:
        images: the training images.
        crop: side of the square crops.
        seed: base seed of the stream.
        length: number of items (e.g. steps * batch size).
    """

    def __init__(self, images: ImageList, crop: int, seed: int, length: int) -> None:
        self.images = images
        self.crop = crop
        self.seed = seed
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Shape: three references to one (3, crop, crop) crop."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + n)
        index = int(torch.randint(0, len(self.images), (), generator=g))
        try:
            img = load_image(self.images.paths[index])
        except ImageError as err:
            logger.warning("skipping unreadable training image: %s", err)
            img = torch.full((3, self.crop, self.crop), 0.5)
        crop = random_crop(img, self.crop, g)
        return crop, crop, crop


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors = {}
    for pid, state in sd["state"].items():
        for name, value in state.items():
            tensors[f"optim.{pid}.{name}"] = torch.as_tensor(value)
    return tensors, {"param_groups": sd["param_groups"]}


def _load_optimizer(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict
) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


class Trainer:
    """Trains U and V (paper Fig. 1) on an ImageFolder dataset.

    With ``config.reconstruction`` it trains U alone as a plain autoencoder (FA ``"none"``, Eq. (3)
    + SCP on content crops): no perceptual index is built and V and its SCP head are not optimised.

    Args:
        config: the run's settings.
        progress: called after every step with (step, logged losses) — e.g. to drive tqdm.
        on_index_batch: called while the perceptual index is being built (images done).
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        progress: Progress | None = None,
        on_index_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.config = config
        self.progress = progress
        self.out = Path(config.out_dir)
        self.device = resolve_device(config.device)
        torch.manual_seed(config.seed)
        vgg = VGG_CONFIGS[config.arch]
        self.encoder = build_encoder(config.encoder_weights, vgg).to(self.device)
        self.model = TwoStageModel(self.encoder, config.fa, residual=self.residual).to(self.device)
        trained = ("u.", "scp_u.") if config.reconstruction else ("u.", "v.", "scp_u.", "scp_v.")
        params = [p for n, p in self.model.named_parameters() if n.startswith(trained)]
        self.optimizer = torch.optim.Adam(params, lr=config.lr, betas=config.adam_betas)
        self.switches = LossSwitches(
            scp=config.use_scp,
            restyle=config.use_restyle,
            perceptual=config.use_perceptual,
            beta=config.beta,
            style_term=config.style_term,
            relative=config.relative_losses,
            reconstruction=config.reconstruction,
        )
        self.images = _subset(image_folder(config.data), config.max_images)
        self.index: PerceptualIndex | None = None  # not needed to reconstruct content crops
        self.sampler: TripletSampler | None = None
        if not config.reconstruction:
            self.index = self._load_or_build_index(on_index_batch)
            self.sampler = TripletSampler(self.index.distances, self.index.labels, config.sampling)
        self.step = 0
        self.history: list[dict[str, float]] = []
        if self.checkpoint_path.exists():
            self._resume()

    @property
    def residual(self) -> bool:
        """Residual decoders, except for a reconstruction autoencoder (which must decode)."""
        return self.config.residual and not self.config.reconstruction

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.safetensors"

    @property
    def stylizer_path(self) -> Path:
        return self.out / "stylizer.safetensors"

    def _load_or_build_index(self, on_batch: Callable[[int], None] | None) -> PerceptualIndex:
        path = self.out / "index.safetensors"
        paths = [str(p) for p in self.images.paths]
        if path.exists():
            index = PerceptualIndex.load(path)
            if index.paths == paths and index.size == self.config.index_size:
                return index
            logger.info("index at %s is for other images; rebuilding", path)
        index = build_index(
            self.images, self.encoder, self.config.index_size, self.device, on_batch
        )
        index.save(path)
        return index

    def model_config(self) -> ModelConfig:
        """The architecture of the exported stylizer."""
        weights = self.config.encoder_weights
        sha = BUNDLED_VGG16_SHA256 if weights is None else ""
        if weights is not None and Path(weights).is_file():
            sha = sha256_file(weights)
        return ModelConfig.for_arch(
            self.config.arch,
            convention=self.encoder.convention,
            fa=self.config.fa,
            encoder_sha256=sha,
            residual=self.residual,
        )

    def _resume(self) -> None:
        tensors, meta = load_checkpoint(self.checkpoint_path)
        if meta.get("format") != TRAIN_FORMAT:
            raise WeightsError(f"{self.checkpoint_path}: not a photostyle training checkpoint")
        saved = TrainConfig.from_dict(json.loads(meta["train_config"]))
        mine = (self.config.arch, self.config.fa, self.config.reconstruction)
        if (saved.arch, saved.fa, saved.reconstruction) != mine:
            what = ("", " (reconstruction)")
            raise WeightsError(
                f"{self.checkpoint_path}: checkpoint is {saved.arch}/{saved.fa}"
                f"{what[saved.reconstruction]}, config asks for {self.config.arch}/"
                f"{self.config.fa}{what[self.config.reconstruction]}"
            )
        model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
        missing, unexpected = self.model.load_state_dict(model_state, strict=False)
        if unexpected or any(not k.startswith("encoder.") for k in missing):
            raise WeightsError(f"{self.checkpoint_path}: weights do not fit this architecture")
        _load_optimizer(self.optimizer, tensors, json.loads(meta["optimizer"]))
        self.step = int(meta["step"])
        self.history = json.loads(meta.get("history", "[]"))
        logger.info("resumed from %s at step %d", self.checkpoint_path, self.step)

    def save(self) -> None:
        """Write the resumable state and the exported stylizer, both atomically."""
        trainable = {
            f"model.{k}": v
            for k, v in self.model.state_dict().items()
            if not k.startswith("encoder.")
        }
        opt_tensors, opt_meta = _optimizer_tensors(self.optimizer)
        save_checkpoint(
            self.checkpoint_path,
            {**trainable, **opt_tensors},
            {
                "format": TRAIN_FORMAT,
                "step": str(self.step),
                "train_config": self.config.to_dict(),
                "optimizer": opt_meta,
                "history": self.history,
            },
        )
        export_stylizer(self.stylizer_path, self.model, self.model_config(), self.config, self.step)

    def _save_before_failing(self) -> None:
        """Checkpoint the progress since the last save, unless the weights themselves diverged.

        Non-finite weights would overwrite the last good checkpoint and export a broken stylizer,
        so in that case the files on disk are left as they are.
        """
        if all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
            self.save()
        else:
            logger.error("weights are not finite; keeping the checkpoint of an earlier step")

    def _loader(self) -> DataLoader:
        b = self.config.batch_size
        total = self.config.steps * b
        dataset: Dataset[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
        if self.sampler is None:
            dataset = ContentCrops(self.images, self.config.crop, self.config.seed, length=total)
        else:
            dataset = TripletCrops(
                self.images, self.sampler, self.config.crop, self.config.seed, length=total
            )
        indices = list(range(self.step * b, total))  # resume: continue the same triplet stream
        return DataLoader(
            torch.utils.data.Subset(dataset, indices),
            batch_size=b,
            num_workers=self.config.workers,
            persistent_workers=False,
        )

    def train(self) -> TrainResult:
        """Run until ``config.steps`` (or the time limit); checkpoint along the way."""
        from photostyle.train.logging import RunLogger

        cfg = self.config
        start = time.monotonic()
        last: dict[str, float] = {}
        self.model.train()
        with RunLogger(self.out, enabled=True) as log:
            log.text("config", json.dumps(cfg.to_dict(), indent=2))
            for ic, is_, it in self._loader():
                ic, is_, it = (t.to(self.device) for t in (ic, is_, it))
                losses, images = self.model(ic, is_, it, self.switches)
                values = {k: float(v.detach()) for k, v in losses.items()}  # "total" has grad
                if not math.isfinite(values["total"]):
                    self._save_before_failing()
                    raise FloatingPointError(f"loss became {values['total']} at step {self.step}")
                self.optimizer.zero_grad(set_to_none=True)
                losses["total"].backward()
                self.optimizer.step()
                self.step += 1
                last = values
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    self.history.append({"step": self.step, **last})
                    log.scalars(self.step, last)
                if self.step % cfg.image_every == 0:
                    log.images(self.step, {"content": ic, "style": is_, "similar": it, **images})
                if self.progress is not None:
                    self.progress(self.step, last)
                timed_out = (
                    cfg.time_limit_s is not None and time.monotonic() - start > cfg.time_limit_s
                )
                if self.step % cfg.ckpt_every == 0 or timed_out:
                    self.save()
                if timed_out:
                    break
            self.save()
            log.plot_history(self.history, self.out / "loss_curves.png")
        return TrainResult(self.step, self.checkpoint_path, self.stylizer_path, last)


def export_stylizer(
    path: str | Path,
    model: TwoStageModel,
    config: ModelConfig,
    train_config: TrainConfig | None = None,
    step: int = 0,
) -> None:
    """Save stylizer U's decoder with its architecture, for :class:`photostyle.Stylizer`."""
    meta: dict[str, Any] = {
        "format": STYLIZER_FORMAT,
        "version": "1",
        "model_config": config.to_dict(),
        "step": str(step),
    }
    if train_config is not None:
        meta["train_config"] = train_config.to_dict()
    tensors = {f"decoder.{k}": v for k, v in model.u.state_dict().items()}
    save_checkpoint(path, tensors, meta)


__all__ = [
    "ContentCrops",
    "TrainResult",
    "Trainer",
    "atomic_path",
    "build_index",
    "export_stylizer",
]
