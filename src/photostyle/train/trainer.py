"""Training loop: sampling, Eq. (8) optimisation, checkpoints that resume, logs and plots.

One process, or several under ``torchrun`` (:mod:`photostyle.train.distributed`): every rank runs
this loop on its own shard of the triplet stream, DDP averages the gradients, and rank 0 alone
writes checkpoints, logs and plots.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from photostyle.data.datasets import (
    ImageList,
    TripletCrops,
    image_folder,
    load_training_image,
    random_crop,
)
from photostyle.data.embed_index import (
    EmbeddingIndex,
    IndexConfig,
    IndexMismatchError,
    build_embedding_index,
)
from photostyle.data.index import PerceptualIndex, pairwise_sq_distances, perceptual_features
from photostyle.data.sampler import Sampler, TripletSampler
from photostyle.data.sources import DataSource
from photostyle.dtypes import dtype_spec
from photostyle.models.checkpoint import save_stylizer
from photostyle.models.encoder import VGGEncoder
from photostyle.models.stylizer import ModelConfig
from photostyle.models.weights import (
    BUNDLED_VGG16_SHA256,
    WeightsError,
    build_encoder,
    load_checkpoint,
    save_checkpoint,
)
from photostyle.train.config import TrainConfig, config_yaml
from photostyle.train.distributed import DistContext, StreamShard
from photostyle.train.logging import RunLogger, plot_loss_curves, truncate_metrics
from photostyle.train.pipeline import LossSwitches, TwoStageModel
from photostyle.utils import atomic_path, remove_stale_temporaries, sha256_file

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
    """Eq. (9) distances between the readable images of ``images``.

    Unreadable images are logged and left out (listed in the index's ``skipped``), so the sampler
    never draws them.
    """
    feats, bad = perceptual_features(
        images.paths, encoder, size=size, device=device, on_batch=on_batch
    )
    unreadable = set(bad)
    for i in bad:
        logger.warning("unreadable image, left out of training: %s", images.paths[i])
    keep = [i for i in range(len(images)) if i not in unreadable]
    return PerceptualIndex(
        paths=[str(images.paths[i]) for i in keep],
        labels=images.labels[keep],
        classes=images.classes,
        distances=pairwise_sq_distances(feats[keep]),
        size=size,
        skipped=[str(images.paths[i]) for i in bad],
    )


def _subset(images: ImageList, per_class: int | None) -> ImageList:
    if per_class is None:
        return images
    keep = []
    for c in range(len(images.classes)):
        keep.extend((images.labels == c).nonzero().flatten()[:per_class].tolist())
    return ImageList([images.paths[i] for i in keep], images.labels[keep], images.classes)


# Above this many images the trainer builds the scalable embedding index (RUN/index/) instead of
# the exact M x M one (whose float16 features take 240 kB per image at index_size 32).
EXACT_INDEX_MAX_IMAGES = 10_000


def training_images(config: TrainConfig) -> ImageList:
    """The ImageFolder at ``config.data``, or the images of the prebuilt ``config.index``."""
    if config.index is None:
        return _subset(image_folder(config.data), config.max_images)
    if config.max_images is not None:
        raise ValueError("max_images cannot be combined with a prebuilt index")
    return EmbeddingIndex.open(config.index).image_list()


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
        img = load_training_image(self.images.paths[index], self.crop)
        crop = random_crop(img, self.crop, g)
        return crop, crop, crop


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimizer's state as checkpoint tensors (``optim.<param>.<name>``) and JSON metadata."""
    sd = opt.state_dict()
    tensors = {}
    for pid, state in sd["state"].items():
        for name, value in state.items():
            tensors[f"optim.{pid}.{name}"] = torch.as_tensor(value)
    return tensors, {"param_groups": sd["param_groups"]}


def load_optimizer(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict
) -> None:
    """Restore what :func:`optimizer_tensors` saved."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def amp_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast type of a run, or None without mixed precision.

    Raises:
        ValueError: the device cannot run ``config.amp_dtype`` (float16 needs CUDA).
    """
    if not config.amp:
        return None
    spec = dtype_spec(config.amp_dtype)
    if device.type == "cuda":
        if spec.dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            raise ValueError("this GPU has no bfloat16 support; use amp_dtype 'float16'")
        return spec.dtype
    if device.type == "cpu" and not spec.cuda_only:
        return spec.dtype
    raise ValueError(f"amp_dtype {config.amp_dtype!r} is not supported on {device.type}")


class Trainer:
    """Trains U and V (paper Fig. 1) on an ImageFolder dataset.

    With ``config.reconstruction`` it trains U alone as a plain autoencoder (FA ``"none"``, Eq. (3)
    + SCP on content crops): no perceptual index is built and V and its SCP head are not optimised.

    Under ``torchrun`` pass the context of :func:`~photostyle.train.distributed.distributed`: every
    rank builds the same model from the same seed, trains it on its shard of the stream, and rank 0
    alone writes files (it builds the perceptual index first; the others then read it).

    Args:
        config: the run's settings.
        progress: called on rank 0 after every step with (step, losses averaged over ranks),
            e.g. to drive tqdm.
        on_index_batch: called while the perceptual index is being built (images done).
        dist: this process's place in a multi-process job; default: the initialised process group
            if any, else a single process.
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        progress: Progress | None = None,
        on_index_batch: Callable[[int], None] | None = None,
        dist: DistContext | None = None,
    ) -> None:
        self.config = config
        self.progress = progress
        self.dist = dist if dist is not None else DistContext.current()
        self.out = Path(config.out_dir)
        self.device = self.dist.device(config.device)
        self.amp_dtype = amp_dtype(config, self.device)
        self.memory_format = (
            torch.channels_last if config.channels_last else torch.contiguous_format
        )
        torch.manual_seed(config.seed)  # the same initial weights on every rank
        self.encoder = build_encoder(config.encoder_weights, config.model.vgg()).to(self.device)
        self.model_config = self._model_config()
        self.model = TwoStageModel(self.model_config, self.encoder).to(self.device)
        # 4-D weights in NHWC; Module.to's memory_format keyword is missing from torch's stubs.
        self.model.to(memory_format=self.memory_format)  # type: ignore[call-overload]
        trained = ("u.", "scp_u.") if config.reconstruction else ("u.", "v.", "scp_u.", "scp_v.")
        params = [p for n, p in self.model.named_parameters() if n.startswith(trained)]
        self.optimizer = torch.optim.Adam(params, lr=config.lr, betas=config.adam_betas)
        self.params = params
        used = self._used_parts()
        for name, p in self.model.named_parameters():  # DDP must not wait for unused parts
            p.requires_grad_(name.startswith(used))
        # float16 gradients need loss scaling; bfloat16 and float32 do not (scaler disabled).
        self.scaler = torch.amp.GradScaler(
            self.device.type, enabled=self.amp_dtype == torch.float16
        )
        self.switches = LossSwitches(
            scp=config.use_scp,
            restyle=config.use_restyle,
            perceptual=config.use_perceptual,
            beta=config.beta,
            style_term=config.style_term,
            relative=config.relative_losses,
            reconstruction=config.reconstruction,
        )
        self.images = training_images(config)
        self.index: PerceptualIndex | EmbeddingIndex | None = None  # none to reconstruct crops
        self.sampler: Sampler | None = None
        if not self.dist.is_main:
            self.dist.barrier()  # rank 0 builds and caches the perceptual index first
        if not config.reconstruction:
            self.index, self.sampler = self._load_or_build_index(on_index_batch)
        if isinstance(self.index, PerceptualIndex):  # its rows leave out unreadable images
            self.images = ImageList(
                [Path(p) for p in self.index.paths], self.index.labels, self.index.classes
            )
        if self.dist.is_main:
            self.dist.barrier()
        self.step = 0
        self.samples = 0  # samples of the numbered stream consumed by all ranks together
        self.history: list[dict[str, float]] = []
        if self.checkpoint_path.exists():
            self._resume()
        # DDP with several ranks. Without perceptual losses only the SCP terms (on Q^1..Q^3) reach
        # the decoders, and the layers after the last unpooling get no gradient.
        self.net = self.dist.wrap(self.model, self.device, find_unused=not config.use_perceptual)

    def _used_parts(self) -> tuple[str, ...]:
        """Name prefixes of the parameters the loss reaches (see ``TwoStageModel.forward``)."""
        cfg = self.config
        used = ["u."]
        if cfg.use_scp:
            used.append("scp_u.")
        if cfg.use_restyle and not cfg.reconstruction:
            used += ["v.", "scp_v."] if cfg.use_scp else ["v."]
        return tuple(used)

    @property
    def residual(self) -> bool:
        """Residual decoders, except for a reconstruction autoencoder (which must decode)."""
        return self.config.model.residual and not self.config.reconstruction

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.safetensors"

    @property
    def stylizer_path(self) -> Path:
        return self.out / "stylizer.safetensors"

    def _load_or_build_index(
        self, on_batch: Callable[[int], None] | None
    ) -> tuple[PerceptualIndex | EmbeddingIndex, Sampler]:
        """The perceptual index and its Eqs. (10)-(11) sampler.

        ``config.index`` (from ``photostyle index``) is used as it is; otherwise an index of the
        training images is cached in the run directory: the exact M x M one up to
        ``EXACT_INDEX_MAX_IMAGES`` images, the embedding index (resumable) above.
        """
        sampling = self.config.sampling
        if self.config.index is not None:
            prebuilt = EmbeddingIndex.open(self.config.index)
            return prebuilt, prebuilt.sampler(sampling, device=self.device, on_advance=on_batch)
        if len(self.images) > EXACT_INDEX_MAX_IMAGES:
            build = partial(
                build_embedding_index,
                self.out / "index",
                DataSource(self.config.data),
                self.encoder,
                IndexConfig(size=self.config.index_size),
                images=self.images,
                device=self.device,
                on_advance=on_batch,
            )
            try:
                built = build()
            except IndexMismatchError:
                logger.info("index at %s is for other images; rebuilding", self.out / "index")
                shutil.rmtree(self.out / "index")
                built = build()
            return built, built.sampler(sampling, device=self.device, on_advance=on_batch)
        path = self.out / "index.safetensors"
        paths = [str(p) for p in self.images.paths]
        index = PerceptualIndex.load(path) if path.exists() else None
        if index is not None:
            skipped = set(index.skipped)
            readable = [p for p in paths if p not in skipped]
            if index.paths != readable or index.size != self.config.index_size:
                logger.info("index at %s is for other images; rebuilding", path)
                index = None
        if index is None:
            index = build_index(
                self.images, self.encoder, self.config.index_size, self.device, on_batch
            )
            index.save(path)
        return index, TripletSampler(index.distances, index.labels, sampling)

    def _model_config(self) -> ModelConfig:
        """The architecture of U and V (and of the exported stylizer, U)."""
        weights = self.config.encoder_weights
        sha = BUNDLED_VGG16_SHA256 if weights is None else ""
        if weights is not None and Path(weights).is_file():
            sha = sha256_file(weights)
        return dataclasses.replace(
            self.config.model,
            convention=self.encoder.convention,
            encoder_sha256=sha,
            residual=self.residual,
        )

    def _resume(self) -> None:
        tensors, meta = load_checkpoint(self.checkpoint_path)
        if meta.get("format") != TRAIN_FORMAT:
            raise WeightsError(f"{self.checkpoint_path}: not a photostyle training checkpoint")
        saved = TrainConfig.from_dict(json.loads(meta["train_config"]))
        was, now = saved.model, self.config.model
        if (was.arch, was.fa, saved.reconstruction) != (
            now.arch,
            now.fa,
            self.config.reconstruction,
        ):
            what = ("", " (reconstruction)")
            raise WeightsError(
                f"{self.checkpoint_path}: checkpoint is {was.arch}/{was.fa}"
                f"{what[saved.reconstruction]}, config asks for {now.arch}/"
                f"{now.fa}{what[self.config.reconstruction]}"
            )
        model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
        missing, unexpected = self.model.load_state_dict(model_state, strict=False)
        if unexpected or any(not k.startswith("encoder.") for k in missing):
            raise WeightsError(f"{self.checkpoint_path}: weights do not fit this architecture")
        load_optimizer(self.optimizer, tensors, json.loads(meta["optimizer"]))
        self.step = int(meta["step"])
        # Checkpoints without "samples" were written by one process: batch_size samples a step.
        self.samples = int(meta.get("samples", self.step * saved.batch_size))
        scaler_state = json.loads(meta.get("grad_scaler", "{}"))
        if scaler_state and self.scaler.is_enabled():
            self.scaler.load_state_dict(scaler_state)
        self.history = json.loads(meta.get("history", "[]"))
        logger.info("resumed from %s at step %d", self.checkpoint_path, self.step)

    def save(self) -> None:
        """Write the resumable state, the exported stylizer and the loss curves, atomically.

        Only rank 0 writes; on the other ranks this does nothing.
        """
        if not self.dist.is_main:
            return
        trainable = {
            f"model.{k}": v
            for k, v in self.model.state_dict().items()
            if not k.startswith("encoder.")
        }
        opt_tensors, opt_meta = optimizer_tensors(self.optimizer)
        save_checkpoint(
            self.checkpoint_path,
            {**trainable, **opt_tensors},
            {
                "format": TRAIN_FORMAT,
                "step": str(self.step),
                "train_config": self.config.to_dict(),
                "optimizer": opt_meta,
                "history": self.history,
                "samples": str(self.samples),
                "world_size": str(self.dist.world_size),
                "grad_scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            },
        )
        save_stylizer(
            self.stylizer_path,
            self.model.u.state_dict(),
            self.model_config,
            {"step": str(self.step), "train_config": self.config.to_dict()},
        )
        plot_loss_curves(
            self.history, self.out / "loss_curves.png", ylabel="loss (mean squared feature error)"
        )

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
        """This rank's batches for the remaining steps: the stream continues at ``self.samples``."""
        cfg = self.config
        shard = StreamShard(
            self.samples,
            max(cfg.steps - self.step, 0),
            cfg.batch_size,
            self.dist.rank,
            self.dist.world_size,
        )
        dataset: Dataset[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
        if self.sampler is None:
            dataset = ContentCrops(self.images, cfg.crop, cfg.seed, length=shard.end)
        else:
            dataset = TripletCrops(self.images, self.sampler, cfg.crop, cfg.seed, length=shard.end)
        return DataLoader(
            dataset,
            batch_size=cfg.batch_size,
            sampler=shard,
            num_workers=cfg.workers,
            persistent_workers=False,
            pin_memory=self.device.type == "cuda",
        )

    def _autocast(self) -> contextlib.AbstractContextManager[object]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _reduce(self, losses: dict[str, torch.Tensor], stop: bool) -> tuple[dict[str, float], bool]:
        """Loss terms averaged over ranks, and whether any rank asks to stop (one collective)."""
        flag = torch.tensor(float(stop), device=self.device)
        vector = torch.stack([*(v.detach().float() for v in losses.values()), flag])
        *values, any_stop = self.dist.mean(vector).tolist()
        return dict(zip(losses, values, strict=True)), any_stop > 0

    def _fail(self, what: str, value: float, terms: dict[str, float] | None = None) -> None:
        """Stop with a one-line message; the progress so far is checkpointed if still finite."""
        self._save_before_failing()
        bad = [k for k, v in (terms or {}).items() if k != "total" and not math.isfinite(v)]
        detail = f" (non-finite terms: {', '.join(bad)})" if bad else ""
        raise FloatingPointError(
            f"{what} became {value} at step {self.step}{detail}; training stopped, "
            f"{self.checkpoint_path} holds the last finite state: lower lr, set grad_clip, "
            "or turn amp off"
        )

    def _optimizer_step(self) -> float:
        """Apply the gradients, clipped to ``grad_clip``; returns their norm before clipping.

        The norm is computed at every step (one reduction over the decoder's gradients, small
        beside the VGG passes), so a non-finite gradient stops training before it reaches the
        weights.
        """
        clip = self.config.grad_clip
        self.scaler.unscale_(self.optimizer)  # a no-op without float16 loss scaling
        with_grad = [p for p in self.params if p.grad is not None]
        if clip is not None:
            norm = float(torch.nn.utils.clip_grad_norm_(with_grad, clip))
        else:
            grads = [p.grad for p in with_grad if p.grad is not None]
            norm = float(torch.nn.utils.get_total_norm(grads))
        # With loss scaling an inf norm is expected now and then: the scaler skips that step.
        if not math.isfinite(norm) and not self.scaler.is_enabled():
            self._fail("gradient norm", norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return norm

    def train(self) -> TrainResult:
        """Run until ``config.steps`` (or the time limit); checkpoint along the way.

        Raises:
            FloatingPointError: the loss or the gradient norm became NaN or infinite; the progress
                up to the previous step is checkpointed first (unless the weights are not finite).
        """
        cfg = self.config
        start = time.monotonic()
        last: dict[str, float] = {}
        world = self.dist.world_size
        self.model.train()
        if self.dist.is_main:
            for name in (
                "checkpoint.safetensors",
                "stylizer.safetensors",
                "loss_curves.png",
                "config.yaml",
            ):
                remove_stale_temporaries(self.out / name)  # left by a run killed while writing
            truncate_metrics(self.out, self.step)  # steps after the checkpoint are logged again
            with atomic_path(self.out / "config.yaml") as tmp:
                tmp.write_text(config_yaml(cfg))
        with RunLogger(self.out, enabled=self.dist.is_main) as log:
            log.text("config", config_yaml(cfg))
            for batch in self._loader():
                ic, is_, it = (
                    t.to(self.device, memory_format=self.memory_format, non_blocking=True)
                    for t in batch
                )  # (B, 3, crop, crop) each
                with self._autocast():
                    losses, images = self.net(ic, is_, it, self.switches)
                out_of_time = (
                    cfg.time_limit_s is not None and time.monotonic() - start > cfg.time_limit_s
                )
                values, stop = self._reduce(losses, out_of_time)  # the same on every rank
                if not math.isfinite(values["total"]):
                    self._fail("loss", values["total"], values)
                log_now = (self.step + 1) % cfg.log_every == 0 or self.step + 1 == cfg.steps
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(losses["total"]).backward()
                grad_norm = self._optimizer_step()
                self.step += 1
                self.samples += cfg.batch_size * world
                last = values
                if log_now:
                    self.history.append({"step": self.step, **last})
                    log.scalars(self.step, last, {"grad_norm": grad_norm})
                if self.step % cfg.image_every == 0:
                    log.images(self.step, {"content": ic, "style": is_, "similar": it, **images})
                if self.progress is not None and self.dist.is_main:
                    self.progress(self.step, last)
                if self.step % cfg.ckpt_every == 0 or stop:
                    self.save()
                if stop:
                    break
            self.save()
        self.dist.barrier()  # the other ranks return once rank 0's files are written
        return TrainResult(self.step, self.checkpoint_path, self.stylizer_path, last)


__all__ = [
    "ContentCrops",
    "TrainResult",
    "Trainer",
    "atomic_path",
    "build_index",
]
