"""Training of the affine colour head (:mod:`photostyle.models.affine`) along the quality frontier.

The head is trained on random (content, style) crop pairs of an image folder with the two axes on
which stylizers are compared, in differentiable form (:mod:`photostyle.losses.frontier`):

    L = mean_b log(G(out, s) / G(c, s))  +  w_ssim * (1 - SSIM(out, c))  +  w_tv * TV(grid)

The first term is the log of the geometric-mean Gram ratio (style matched), the second keeps the
content's structure, the third keeps the colour model smooth across cells and brightness bins.
``w_ssim`` chooses the point on the frontier.

Checkpoints (``checkpoint.safetensors``: head + Adam state; ``stylizer.safetensors``: the model for
:class:`photostyle.Stylizer`) are written atomically every ``checkpoint_every`` steps; running again
with the same ``out_dir`` resumes from the last one, continuing the same stream of pairs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from photostyle.data.datasets import ImageList, image_folder, load_training_image, random_crop
from photostyle.data.embed_index import EmbeddingIndex
from photostyle.data.looks import random_look
from photostyle.losses.frontier import gram_log_ratio, ssim_luma
from photostyle.models.affine import AffineHead, LearnedStep, merge_steps
from photostyle.models.checkpoint import read_stylizer, save_stylizer
from photostyle.models.encoder import EncoderOutput, VGGEncoder
from photostyle.models.refine import (
    FrontierObjective,
    RefineSettings,
    encoder_taps,
    refine_grade,
)
from photostyle.models.stylizer import ModelConfig, build_stylizer
from photostyle.models.weights import (
    BUNDLED_VGG16_SHA256,
    WeightsError,
    build_encoder,
    check_sha256,
    load_checkpoint,
    save_checkpoint,
    stylizer_file,
)
from photostyle.train.config import check_fields, top_level_keys
from photostyle.train.logging import RunLogger, plot_loss_curves, truncate_metrics
from photostyle.train.trainer import load_optimizer, optimizer_tensors
from photostyle.utils import remove_stale_temporaries, resolve_device

AFFINE_TRAIN_FORMAT = "photostyle.affine_train_state"
Progress = Callable[[int, dict[str, float]], None]


def _affine_model() -> ModelConfig:
    return ModelConfig.for_arch(
        "vgg16", head="affine", grid_residual="curves", encoder_sha256=BUNDLED_VGG16_SHA256
    )


@dataclass(frozen=True)
class AffineTrainConfig:
    """Settings of an affine-head training run (stored in its checkpoints).

    The architecture is a nested :class:`~photostyle.models.stylizer.ModelConfig` (``model``, the
    one the exported stylizer is saved with: an affine head on the bundled VGG16). The fields of it
    that a run sets are also top-level keys and flags, under names of their own (``bins``,
    ``hidden``, ``base_power``, ``residual``), as the flat configs of earlier releases stored them.
    """

    data: str  # ImageFolder root of the training photos
    out_dir: str  # run directory: checkpoints, metrics.jsonl, TensorBoard logs, plots
    steps: int = 2000  # total optimisation steps (over all resumed sessions)
    batch_size: int = 4  # (content, style) pairs per step
    crop: int = 128  # side of the square training crops
    lr: float = 1e-3  # Adam learning rate
    ssim_weight: float = 4.0  # w_ssim: weight of 1 - SSIM(out, content)
    tv_weight: float = 1.0  # w_tv: weight of the grid's total variation
    model: ModelConfig = field(  # architecture of the head, saved with the exported stylizer
        default_factory=_affine_model,  # VGG16, affine head, "curves" residual
        metadata={  # also top-level keys and flags: --bins, --hidden, --base-power, --residual
            "top_level": {
                "bins": "grid_bins",
                "hidden": "grid_hidden",
                "base_power": "base_power",
                "residual": "grid_residual",
                "steer_hidden": "steer_hidden",
                "refine_levels": "refine_levels",
            }
        },
    )
    same_class: float = 0.75  # share of pairs with a matched style (content's class, or neighbours)
    style_index: str | None = None  # perceptual index of --data (photostyle index --out DIR)
    style_neighbours: int = 0  # > 0: a matched style is one of the K nearest photos in style_index
    style_looks: float = 0.0  # share of style crops graded with a random look (data.looks)
    seed: int = 0  # seed of the initial weights and of the stream of pairs
    device: str = "auto"  # torch device
    amp: bool = False  # run the VGG passes under bfloat16 autocast (CPUs with bf16 units, GPUs)
    log_every: int = 10  # steps between log lines (metrics.jsonl, TensorBoard)
    checkpoint_every: int = 100  # steps between checkpoints
    max_images: int | None = None  # use only the first N images (tests, quick runs)
    init: str | None = None  # stylizer file or bundled name ("affine") whose head starts the run
    train_steer: bool = False  # train only the learned first refinement step (needs steer_hidden)
    distill_steps: int = 0  # > 0: fit the grade to where that many refinement steps take the base
    distill_extra_steps: tuple[int, ...] = ()  # further target phases: each one's plain steps
    distill_extra_ssim_weight: tuple[float, ...] = ()  # each further phase's w_ssim
    distill_pool: int = 2048  # distinct pairs of a distillation (their targets are computed once)
    distill_holdout: int = 0  # > 1: every Nth pool pair is kept out of the fit; its distance logged
    fits: int = 1  # learned steps fitted side by side (own initial weights); exported: their mean
    average_from: int | None = None  # from this step on, export the mean of the trained weights

    def __post_init__(self) -> None:
        for name, low in (
            ("steps", 0),
            ("batch_size", 1),
            ("crop", 32),
            ("distill_steps", 0),
            ("distill_pool", 1),
            ("distill_holdout", 0),
            ("fits", 1),
        ):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be at least {low}, got {getattr(self, name)}")
        for name, low in (("distill_extra_steps", 1), ("distill_extra_ssim_weight", 0)):
            values = tuple(getattr(self, name))  # a list from flags or a stored config
            object.__setattr__(self, name, values)
            if any(v < low for v in values):
                raise ValueError(f"{name} must all be at least {low}, got {list(values)}")
        if len(self.distill_extra_steps) != len(self.distill_extra_ssim_weight):
            raise ValueError(
                "distill_extra_ssim_weight must give one w_ssim per phase of extra steps "
                f"({len(self.distill_extra_steps)}), got {len(self.distill_extra_ssim_weight)}"
            )
        if self.distill_extra_steps and not self.distill_steps:
            raise ValueError("distill_extra_steps needs --distill-steps (the first phase)")
        if self.average_from is not None and self.average_from < 0:
            raise ValueError(f"average_from must be at least 0, got {self.average_from}")
        for name in ("same_class", "style_looks"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.distill_holdout == 1:
            raise ValueError("distill_holdout must be 0 (none) or at least 2, got 1")
        if self.style_neighbours < 0 or bool(self.style_neighbours) != bool(self.style_index):
            raise ValueError(
                "style_neighbours (> 0) and style_index go together, got "
                f"{self.style_neighbours} and {self.style_index!r}"
            )
        if self.distill_steps and self.model.grid_residual != "curves":
            raise ValueError("--distill-steps needs --residual curves")
        if self.fits > 1 and not (self.train_steer and self.distill_steps):
            raise ValueError("fits above 1 needs --train-steer and --distill-steps")
        if self.train_steer and not self.model.steer_hidden:
            raise ValueError("--train-steer needs --steer-hidden > 0 (the learned step's width)")
        if self.model.steer_hidden and self.model.grid_residual != "curves":
            raise ValueError("--steer-hidden needs --residual curves")
        if self.model.head != "affine" or self.model.arch != "vgg16":
            raise ValueError(
                "model must be an affine head on the bundled vgg16 encoder, got the "
                f"{self.model.head!r} head on {self.model.arch!r}"
            )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AffineTrainConfig:
        """Build a config from a stored one: nested (``model``) or flat (``bins``, ``hidden``,
        ``base_power``, ``residual``, as earlier releases stored them); unknown keys are ignored.

        Raises:
            ValueError: a value of the wrong type or an invalid one; the message names the key.
        """
        known = {*cls.__dataclass_fields__, *top_level_keys(cls)}
        values = {k: v for k, v in d.items() if k in known}
        steps = values.get("distill_extra_steps")
        if isinstance(steps, int) and not isinstance(steps, bool):  # 0.5.0: at most one phase
            weight = values.get("distill_extra_ssim_weight", 3.0)
            values["distill_extra_steps"] = [steps] if steps else []
            values["distill_extra_ssim_weight"] = [weight] if steps else []
        return cls(**check_fields(cls, values))


def total_variation(grid: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring cells along rows, columns and brightness bins.

    Shape: (B, C, L, gh, gw) -> ().
    """
    terms = [grid.diff(dim=d).pow(2).mean() for d in (2, 3, 4) if grid.shape[d] > 1]
    return torch.stack(terms).sum() if terms else grid.new_zeros(())


class _PairStream:
    """Item ``n`` is a (content, style) crop pair drawn with a generator seeded by ``(seed, n)``.

    With probability ``same_class`` the style is matched to the content, as in the DPST pairs the
    model is judged on: drawn from the content's class (a street for a street), or with
    ``neighbours`` ((M, K) rows of each image's nearest photos, -1 for none) from those; otherwise
    from any class. With probability ``looks`` the style crop is graded with a random look
    (:func:`random_look`).
    """

    def __init__(
        self,
        images: ImageList,
        crop: int,
        seed: int,
        same_class: float,
        looks: float = 0.0,
        neighbours: torch.Tensor | None = None,
    ) -> None:
        self.images = images
        self.crop = crop
        self.seed = seed
        self.same_class = same_class
        self.looks = looks
        self.neighbours = neighbours
        self.cache: dict[int, torch.Tensor] = {}
        labels = torch.as_tensor(images.labels)
        self.members = {int(k): torch.nonzero(labels == k)[:, 0] for k in labels.unique()}

    def _image(self, index: int) -> torch.Tensor:
        if index not in self.cache:
            img = load_training_image(self.images.paths[index], self.crop)
            self.cache[index] = (img * 255).round().to(torch.uint8)
        return self.cache[index].float() / 255

    def pair(self, n: int) -> tuple[int, int, torch.Generator]:
        """Content and style image indices of item ``n``, and the generator of its crops."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + n)
        n_images = len(self.images)
        i, j = torch.randint(0, n_images, (2,), generator=g).tolist()
        if float(torch.rand((), generator=g)) < self.same_class:
            pool = self._matches(i)
            j = int(pool[torch.randint(0, len(pool), (), generator=g)])
        if j == i:
            j = (i + 1) % n_images
        return i, j, g

    def _matches(self, i: int) -> torch.Tensor:
        """The styles a matched draw picks from for content ``i``: its neighbours in this list,
        else the other photos of its class."""
        if self.neighbours is not None:
            near = self.neighbours[i]
            near = near[(near >= 0) & (near < len(self.images))]
            if len(near):
                return near
        pool = self.members[int(self.images.labels[i])]
        return pool[pool != i] if len(pool) > 1 else pool

    def batch(
        self, start: int, size: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Items ``start .. start + size - 1``: see :meth:`items`."""
        return self.items(range(start, start + size))

    def items(
        self, indices: Iterable[int]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Content and style crops with label maps of the items ``indices``.

        Half of the pairs get two regions per image, above and below a random row (sky and
        ground, the commonest semantic split), so that the head also learns on region-wise bases
        as it meets them with masks; the others one region.

        Shape: -> two (B, 3, crop, crop) batches and two (B, crop, crop) int64 label maps.
        """
        contents: list[torch.Tensor] = []
        styles: list[torch.Tensor] = []
        labels_c: list[torch.Tensor] = []
        labels_s: list[torch.Tensor] = []
        rows = torch.arange(self.crop)[:, None].expand(self.crop, self.crop)
        for n in indices:
            i, j, g = self.pair(n)
            contents.append(random_crop(self._image(i), self.crop, g))
            style = random_crop(self._image(j), self.crop, g)
            if self.looks > 0 and float(torch.rand((), generator=g)) < self.looks:
                style = random_look(style, g)
            styles.append(style)
            split = bool(torch.rand((), generator=g) < 0.5)
            for out in (labels_c, labels_s):
                cut = int(torch.randint(self.crop // 4, 3 * self.crop // 4, (), generator=g))
                out.append((rows >= cut).long() if split else torch.zeros_like(rows))
        return (
            torch.stack(contents),
            torch.stack(styles),
            torch.stack(labels_c),
            torch.stack(labels_s),
        )


def _load_init(head: AffineHead, init: str, *, train_steer: bool = False) -> None:
    """Start ``head`` from the head of the stylizer ``init`` (a file or a bundled name); a learned
    step it lacks keeps its initial (plain-step) weights, and so does one of another width when
    the run trains its step (``train_steer``: the file's is not the run's starting point then).

    Raises:
        WeightsError: unreadable file, or a head of another shape (the message names the file).
    """
    path, sha256 = stylizer_file(init)
    check_sha256(path, sha256)
    saved = read_stylizer(path)
    own = head.state_dict()
    if train_steer and any(
        k.startswith("steer.") and k in own and v.shape != own[k].shape
        for k, v in saved.state.items()
    ):
        saved = replace(
            saved, state={k: v for k, v in saved.state.items() if not k.startswith("steer.")}
        )
    wrong = [  # in the head's own (module) order
        f"size mismatch for {k}: {tuple(saved.state[k].shape)} in the file, {tuple(v.shape)} here"
        for k, v in own.items()
        if k in saved.state and saved.state[k].shape != v.shape
    ]
    wrong += [f"unexpected {k}" for k in saved.state if k not in own]
    wrong += [f"missing {k}" for k in own if k not in saved.state and not k.startswith("steer.")]
    if wrong:
        raise WeightsError(
            f"{path}: does not fit this run's architecture ({wrong[0]}); give the same --bins, "
            "--hidden, --base-power and --residual"
        )
    head.load_state_dict(saved.state, strict=False)  # only a learned step may be missing


def _steer_loss(
    head: AffineHead,
    taps: Callable[[torch.Tensor], list[torch.Tensor]],
    c: torch.Tensor,
    s: torch.Tensor,
    enc_c: EncoderOutput,
    enc_s: EncoderOutput,
    lc: torch.Tensor,
    ls: torch.Tensor,
    config: AffineTrainConfig,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The frontier loss after the head's learned step from its (frozen) prediction: the style
    term, 1 - SSIM, the grade's smoothness term (means over the batch) and the total.

    The step sees the gradient of the refinement's own loss (the model's w_ssim and style levels,
    as at inference); it is trained on the loss of this run (``ssim_weight``, ``tv_weight``),
    which may sit elsewhere on the frontier.
    """
    with torch.no_grad():
        base, grade = head.grid(c, s, enc_c, enc_s, content_labels=lc, style_labels=ls)
    settings = config.model.refinement(1)
    objective = FrontierObjective(head, taps, c, base, enc_c.taps, enc_s.taps, settings)
    stepped = grade + objective.step(grade, head.steer)  # (B, 12, bins, 1, 1)
    style, dissimilarity, smooth = objective.terms(stepped)
    total = (style + config.ssim_weight * dissimilarity + config.tv_weight * smooth).mean()
    return style.mean(), dissimilarity.mean(), smooth.mean(), total


def distill_targets(
    head: AffineHead,
    encoder: VGGEncoder,
    c: torch.Tensor,
    s: torch.Tensor,
    enc_c: EncoderOutput,
    enc_s: EncoderOutput,
    lc: torch.Tensor,
    ls: torch.Tensor,
    phases: Sequence[RefineSettings],
    *,
    steer: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and distillation targets for a batch of pairs.

    The targets are the grades that plain refinement steps reach from the base (a zero residual),
    ``phases`` one after the other (their steps and w_ssim): the photo's own optimum as far as
    the untrained architecture's refinement finds it. The inputs are what the trained part sees:
    the curves MLP's (:meth:`AffineHead.curve_inputs`), or with ``steer`` the learned step's at
    the head's prediction (grade, style and structure gradients, loss values, concatenated; with
    ``phases[0]``'s w_ssim and levels, which must be the model's refinement settings). A head or
    step that predicts the targets lets the refinement start where a long refinement ends.

    Shape: -> (B, stats) and (B, 12, bins, 1, 1), float32.
    """
    with torch.no_grad():
        base, grade = head.grid(c, s, enc_c, enc_s, content_labels=lc, style_labels=ls)
        if steer:
            taps = encoder_taps(encoder, phases[0].levels)
            objective = FrontierObjective(head, taps, c, base, enc_c.taps, enc_s.taps, phases[0])
            inputs = torch.cat([grade.flatten(1), *objective.gradients(grade)], 1)
        else:
            inputs = head.curve_inputs(c, s, enc_c, enc_s, base)
    start = torch.zeros_like(grade).float()  # (B, 12, bins, 1, 1)
    return inputs, _plain_steps(head, encoder, c, s, base, enc_c, enc_s, phases, start)


def continue_targets(
    head: AffineHead,
    encoder: VGGEncoder,
    c: torch.Tensor,
    s: torch.Tensor,
    enc_c: EncoderOutput,
    enc_s: EncoderOutput,
    lc: torch.Tensor,
    ls: torch.Tensor,
    phases: Sequence[RefineSettings],
    start: torch.Tensor,
) -> torch.Tensor:
    """Distillation targets taken further: ``phases`` more plain steps from targets ``start``.

    Plain steps keep no state between them, so targets of phases ``P`` continued by ``Q`` equal
    :func:`distill_targets`' of ``P`` then ``Q``: a pool is moved along the frontier without
    computing its first steps again.

    Shape: (B, 12, bins, 1, 1) -> (B, 12, bins, 1, 1), float32.
    """
    with torch.no_grad():
        base, _ = head.grid(c, s, enc_c, enc_s, content_labels=lc, style_labels=ls)
    return _plain_steps(head, encoder, c, s, base, enc_c, enc_s, phases, start.float())


def _plain_steps(
    head: AffineHead,
    encoder: VGGEncoder,
    c: torch.Tensor,
    s: torch.Tensor,
    base: torch.Tensor,
    enc_c: EncoderOutput,
    enc_s: EncoderOutput,
    phases: Sequence[RefineSettings],
    target: torch.Tensor,
) -> torch.Tensor:
    for phase in phases:
        target = refine_grade(  # plain steps: the untrained architecture's refinement
            head, encoder, c, s, base, target, phase, enc_c.taps, enc_s.taps, learned=False
        )
    return target


def _one_step_each(phases: Sequence[RefineSettings]) -> list[RefineSettings]:
    """The plain steps of ``phases``, one phase of one step each."""
    return [replace(p, steps=1) for p in phases for _ in range(p.steps)]


def _merged(steps: Sequence[RefineSettings]) -> list[RefineSettings]:
    """Consecutive equal one-step phases merged (the inverse of :func:`_one_step_each`)."""
    phases: list[RefineSettings] = []
    for one in steps:
        if phases and replace(phases[-1], steps=1) == one:
            phases[-1] = replace(phases[-1], steps=phases[-1].steps + 1)
        else:
            phases.append(one)
    return phases


# What a distillation pool's pairs and targets depend on, besides the refinement steps.
_POOL_SETTINGS = (
    "max_images",
    "crop",
    "seed",
    "same_class",
    "style_looks",
    "init",
    "train_steer",
)


class _DistillPool:
    """Pairs ``0 .. size - 1`` of the stream with their distillation inputs and targets
    (:func:`distill_targets`), computed on first use by ``compute`` and kept for later epochs;
    saved beside the checkpoint, so a resumed run does not compute them again.

    ``settings`` are what the targets depend on (crops, stream, frozen head) and ``phases`` the
    plain steps they take; both are saved with the pool. A pool saved with other settings is
    refused; one whose steps are the first of ``phases`` is taken further by ``extend``
    (:func:`continue_targets`) as its pairs come, each pair's step count saved with it. With
    ``holdout`` N > 1, every Nth pair (``n % N == 0``) is kept out of the fit, to measure it on.

    Raises:
        ValueError: the saved pool's settings differ, or its steps are not the first of
            ``phases`` (the message names the file and the setting).
    """

    def __init__(
        self,
        path: Path,
        size: int,
        compute: Callable[[list[int]], tuple[torch.Tensor, torch.Tensor]],
        extend: Callable[[list[int], torch.Tensor, list[RefineSettings]], torch.Tensor],
        settings: dict[str, Any],
        phases: Sequence[RefineSettings],
        holdout: int = 0,
    ) -> None:
        self.path = path
        self.size = size
        self.compute = compute
        self.extend = extend
        self.plan = _one_step_each(phases)
        self.settings = settings | {"steps": [asdict(p) for p in self.plan]}
        self.holdout = holdout
        self.fitted = [n for n in range(size) if holdout < 2 or n % holdout]
        self.rows: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.done: dict[int, int] = {}  # plain steps each pair's target has taken
        self.dirty = False  # rows added or moved since the file was written
        if path.exists():
            self._load(path)
        self.reached = max(self.rows, default=-1) + 1  # the stream's pairs below this have come

    def _load(self, path: Path) -> None:
        tensors, meta = load_checkpoint(path)
        saved = json.loads(meta.get("settings", "{}"))  # pools of 0.5.0 carry none
        self.dirty = not saved  # written again with its settings
        # Steps as settings: fields added to RefineSettings since the pool was saved take defaults.
        steps = [asdict(RefineSettings(**p)) for p in saved.pop("steps", self.settings["steps"])]
        unset = sorted(self.settings.keys() - saved.keys() - {"steps"}) if saved else []
        if unset:  # a setting this pool's release did not have, on in this run
            raise ValueError(
                f"{path}: targets were computed without {unset[0]}, this run has "
                f"{self.settings[unset[0]]!r}; keep the settings or use another --out-dir"
            )
        for key, value in saved.items():
            if self.settings.get(key) != value:
                raise ValueError(
                    f"{path}: targets were computed with {key}={value!r}, this run has "
                    f"{self.settings.get(key)!r}; keep the settings or use another --out-dir"
                )
        if self.settings["steps"][: len(steps)] != steps:
            raise ValueError(
                f"{path}: targets took {len(steps)} refinement steps that this run's "
                f"{len(self.plan)} do not begin with; keep the distillation steps and w_ssim "
                "(more extra steps continue them) or use another --out-dir"
            )
        done = tensors.get("steps", torch.full_like(tensors["index"], len(steps)))
        index, inputs, targets = tensors["index"].tolist(), tensors["inputs"], tensors["targets"]
        for n, x, y, k in zip(index, inputs, targets, done.tolist(), strict=True):
            self.rows[int(n)] = (x, y)
            self.done[int(n)] = int(k)

    def fit_rows(self, first: int, size: int) -> list[int]:
        """The pairs of fit positions ``first .. first + size - 1``, cycling over the pool."""
        rows = [self.fitted[(first + k) % len(self.fitted)] for k in range(size)]
        self.reached = max(self.reached, max(rows) + 1)
        return rows

    def held_out_rows(self) -> list[int]:
        """The held-out pairs whose turn in the stream has come (so they fill with the pool)."""
        return list(range(0, self.reached, self.holdout)) if self.holdout > 1 else []

    def batch(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets of the pairs ``indices``, computing those not yet in the pool and
        taking those of fewer steps further."""
        missing = [n for n in indices if n not in self.rows]
        if missing:
            inputs, targets = self.compute(missing)
            for n, x, y in zip(missing, inputs.cpu(), targets.cpu(), strict=True):
                self.rows[n] = (x, y)
                self.done[n] = len(self.plan)
            self.dirty = True
        behind = [n for n in indices if self.done[n] < len(self.plan)]
        for k in sorted({self.done[n] for n in behind}):
            group = sorted({n for n in behind if self.done[n] == k})
            start = torch.stack([self.rows[n][1] for n in group])
            moved = self.extend(group, start, _merged(self.plan[k:]))
            for n, y in zip(group, moved.cpu(), strict=True):
                self.rows[n] = (self.rows[n][0], y)
                self.done[n] = len(self.plan)
            self.dirty = True
        return (
            torch.stack([self.rows[n][0] for n in indices]),
            torch.stack([self.rows[n][1] for n in indices]),
        )

    def save(self) -> None:
        """Write the pool, unless nothing changed since it was written (or read)."""
        if not self.dirty:
            return
        index = sorted(self.rows)
        tensors = {
            "index": torch.tensor(index),
            "inputs": torch.stack([self.rows[n][0] for n in index]),
            "targets": torch.stack([self.rows[n][1] for n in index]),
            "steps": torch.tensor([self.done[n] for n in index]),
        }
        meta = {"format": "photostyle.distill_targets", "settings": json.dumps(self.settings)}
        save_checkpoint(self.path, tensors, meta)
        self.dirty = False


def _distill_loss(
    trained: nn.Module, x: torch.Tensor, y: torch.Tensor, step: float | None
) -> torch.Tensor:
    """Mean squared distance (over the grade's coefficients) from the trained part's grade to the
    targets ``y`` of pool inputs ``x``: with a ``step`` length, ``trained`` is the learned step and
    the grade the one after it, else ``trained`` is the head and the grade its curves MLP's. Steps
    fitted side by side (an ``nn.ModuleList``) give the mean of their distances, so that each one's
    gradient is that of its own (the list's Adam moves them as separate fits would)."""
    if isinstance(trained, nn.ModuleList):
        return torch.stack([_distill_loss(fit, x, y, step) for fit in trained]).mean()
    if step is not None:
        n = y[0].numel()
        grade, grad_s, grad_q, losses = x.split([n, n, n, 2], 1)
        prediction = (grade + trained(grade, grad_s, grad_q, losses, step)).view_as(y)
    else:
        prediction = cast(AffineHead, trained).curves_from(x)
    return (prediction - y).pow(2).flatten(1).sum(1).mean()


def _style_neighbours(config: AffineTrainConfig, images: ImageList) -> torch.Tensor:
    """The (M, K) nearest photos of each training photo in ``config.style_index``.

    Raises:
        ValueError: the index is missing or broken, or lists other photos than ``config.data``.
    """
    assert config.style_index is not None  # __post_init__: style_neighbours needs it
    try:
        index = EmbeddingIndex.open(config.style_index)
    except FileNotFoundError as err:
        raise ValueError(str(err)) from err
    indexed = [Path(p).resolve() for p in index.image_list().paths]
    if indexed[: len(images)] != [Path(p).resolve() for p in images.paths]:
        raise ValueError(
            f"{config.style_index}: an index of other photos than {config.data}; build one with "
            f"photostyle index --data {config.data} --out DIR"
        )
    return index.neighbours(config.style_neighbours)


def _matching_settings(config: AffineTrainConfig) -> dict[str, Any]:
    """How matched styles are drawn, for a pool's settings: nothing when by class (so pools of
    earlier releases still match), else the index and K."""
    if not config.style_neighbours:
        return {}
    assert config.style_index is not None
    index = str(Path(config.style_index).resolve())
    return {"style_index": index, "style_neighbours": config.style_neighbours}


def _merge_fits(fits: nn.ModuleList) -> LearnedStep:
    """The learned steps fitted side by side, as one step (:func:`merge_steps`)."""
    return merge_steps([cast(LearnedStep, fit) for fit in fits])


def train_affine(config: AffineTrainConfig, *, progress: Progress | None = None) -> Path:
    """Train (or resume) an affine head; returns the path of the exported stylizer.

    Raises:
        ValueError: bad settings.
        FloatingPointError: a non-finite loss (the last checkpoint is kept).
    """
    device = resolve_device(config.device)
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    architecture = config.model
    encoder = build_encoder(None, architecture.vgg()).to(device).eval()
    encoder.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    for p in encoder.parameters():
        p.requires_grad_(False)
    model = build_stylizer(architecture, encoder).to(device)
    head = model.decoder
    assert isinstance(head, AffineHead)
    if config.init is not None:
        _load_init(head, config.init, train_steer=config.train_steer)
    trained: nn.Module | None = head.steer if config.train_steer else head
    assert trained is not None  # __post_init__: train_steer needs steer_hidden
    if config.fits > 1:  # steps of their own initial weights (exported merged, as head.steer)
        own = cast(LearnedStep, trained)  # __post_init__: fits > 1 needs train_steer
        trained = nn.ModuleList([LearnedStep(own.size, own.hidden) for _ in range(config.fits)])
    for p in head.parameters():
        p.requires_grad_(False)
    for p in trained.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(trained.parameters(), lr=config.lr)
    images = image_folder(config.data)
    if config.max_images is not None:
        images = ImageList(
            images.paths[: config.max_images], images.labels[: config.max_images], images.classes
        )
    neighbours = _style_neighbours(config, images) if config.style_neighbours else None
    stream = _PairStream(
        images, config.crop, config.seed, config.same_class, config.style_looks, neighbours
    )
    ckpt = out / "checkpoint.safetensors"
    step = 0
    # Stochastic weight averaging: the exported weights are the mean of the trained part's weights
    # after every step from average_from on (a flatter, better-generalising point than the last).
    averaged = AveragedModel(trained) if config.average_from is not None else None
    if ckpt.exists():
        tensors, meta = load_checkpoint(ckpt)
        if meta.get("format") != AFFINE_TRAIN_FORMAT:
            raise ValueError(f"{ckpt}: not an affine-head training checkpoint")
        head.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("head.")})
        if config.fits > 1:
            trained.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("fits.")})
        load_optimizer(opt, tensors, json.loads(meta["optimizer"]))
        step = int(meta["step"])
        kept = {k[8:]: v for k, v in tensors.items() if k.startswith("average.")}
        if averaged is not None and kept:
            averaged.load_state_dict(kept)
    for name in ("checkpoint.safetensors", "stylizer.safetensors", "loss_curves.png"):
        remove_stale_temporaries(out / name)  # left by a run killed while writing
    truncate_metrics(out, step)  # steps after the checkpoint are logged again
    metrics = out / "metrics.jsonl"
    history = (
        [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.exists() else []
    )

    def exported() -> tuple[dict[str, torch.Tensor], ModelConfig]:
        """The exported stylizer's weights and architecture (steps fitted side by side merged
        into one step as wide as all of them)."""
        state = head.state_dict()
        fitted = trained
        if averaged is not None and int(averaged.n_averaged) > 0:
            fitted = averaged.module
        if isinstance(fitted, nn.ModuleList):
            merged = _merge_fits(fitted)
            state |= {f"steer.{k}": v for k, v in merged.state_dict().items()}
            return state, replace(model.config, steer_hidden=merged.hidden)
        if fitted is not trained:
            prefix = "steer." if config.train_steer else ""
            state |= {prefix + k: v for k, v in fitted.state_dict().items()}
        return state, model.config

    def save() -> None:
        opt_tensors, opt_meta = optimizer_tensors(opt)
        tensors = {f"head.{k}": v for k, v in head.state_dict().items()} | opt_tensors
        if averaged is not None:
            tensors |= {f"average.{k}": v for k, v in averaged.state_dict().items()}
        if isinstance(trained, nn.ModuleList):
            tensors |= {f"fits.{k}": v for k, v in trained.state_dict().items()}
        meta = {"format": AFFINE_TRAIN_FORMAT, "step": str(step), "optimizer": json.dumps(opt_meta)}
        save_checkpoint(ckpt, tensors, meta | {"config": json.dumps(asdict(config))})
        save_stylizer(
            out / "stylizer.safetensors",
            *exported(),
            {"train_config": asdict(config), "step": str(step)},
        )

    # As at inference, but one w_ssim per phase: the targets' schedule is their phases.
    refinement = replace(architecture.refinement(config.distill_steps), later_ssim_weight=None)
    phases = [refinement] + [
        replace(refinement, steps=n, ssim_weight=w)
        for n, w in zip(config.distill_extra_steps, config.distill_extra_ssim_weight, strict=True)
    ]

    def encode(x: torch.Tensor) -> EncoderOutput:
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, torch.bfloat16, enabled=config.amp):
            out = encoder(x)
        return replace(out, taps=[t.float() for t in out.taps])

    def targets(indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        c, s, lc, ls = (t.to(device) for t in stream.items(indices))
        with torch.no_grad():
            enc_c, enc_s = encode(c), encode(s)
        return distill_targets(
            head, encoder, c, s, enc_c, enc_s, lc, ls, phases, steer=config.train_steer
        )

    def extended(
        indices: list[int], start: torch.Tensor, more: list[RefineSettings]
    ) -> torch.Tensor:
        c, s, lc, ls = (t.to(device) for t in stream.items(indices))
        with torch.no_grad():
            enc_c, enc_s = encode(c), encode(s)
        return continue_targets(head, encoder, c, s, enc_c, enc_s, lc, ls, more, start.to(device))

    pool = (
        _DistillPool(
            out / "distill_targets.safetensors",
            config.distill_pool,
            targets,
            extended,
            {
                **{k: getattr(config, k) for k in _POOL_SETTINGS},
                "data": str(Path(config.data).resolve()),
                **_matching_settings(config),
            },
            phases,
            config.distill_holdout,
        )
        if config.distill_steps
        else None
    )
    step_length = refinement.step if config.train_steer else None  # what _distill_loss fits
    ylabel = (
        "squared distance to the distillation targets"
        if pool is not None
        else "frontier loss: log Gram ratio + w_ssim (1 - SSIM) + w_tv TV"
    )
    with RunLogger(out) as log:
        started = time.perf_counter()
        while step < config.steps:
            first = step * config.batch_size
            if pool is not None:
                x, y = (t.to(device) for t in pool.batch(pool.fit_rows(first, config.batch_size)))
                loss = _distill_loss(trained, x, y, step_length)
                terms = {"total": loss.item()}
            else:
                c, s, lc, ls = stream.batch(first, config.batch_size)
                c, s, lc, ls = c.to(device), s.to(device), lc.to(device), ls.to(device)
                with torch.no_grad():
                    enc_c, enc_s = encode(c), encode(s)
                if config.train_steer:
                    style, structure, tv, loss = _steer_loss(
                        head, lambda x: encode(x).taps, c, s, enc_c, enc_s, lc, ls, config
                    )
                else:
                    res = head(c, s, enc_c, enc_s, content_labels=lc, style_labels=ls)
                    image = res.image.clamp(0, 1)
                    enc_o = encode(image)
                    style = gram_log_ratio(enc_o.taps, enc_c.taps, enc_s.taps).mean()
                    structure = 1 - ssim_luma(image, c).mean()
                    tv = total_variation(res.residual)
                    loss = style + config.ssim_weight * structure + config.tv_weight * tv
                terms = {
                    "total": loss.item(),
                    "log_gram_ratio": style.item(),
                    "ssim": 1 - structure.item(),
                    "tv": tv.item(),
                }
            pool_size = {"pool": float(len(pool.rows))} if pool is not None else {}
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss at step {step}; last checkpoint kept")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if averaged is not None and step >= cast(int, config.average_from):
                averaged.update_parameters(trained)
            if step % config.log_every == 0 or step == config.steps:
                held = pool.held_out_rows() if pool is not None else []
                if pool is not None and held:
                    x, y = (t.to(device) for t in pool.batch(held))
                    fits: dict[str, nn.Module] = {"held_out": trained}
                    if averaged is not None and int(averaged.n_averaged) > 0:
                        fits["held_out_average"] = averaged.module
                    for name, fit in list(fits.items()):  # side by side: also their mean step
                        if isinstance(fit, nn.ModuleList):
                            fits[name + "_merged"] = _merge_fits(fit)
                    with torch.no_grad():
                        for name, fit in fits.items():
                            terms[name] = _distill_loss(fit, x, y, step_length).item()
                extras = {"seconds": time.perf_counter() - started} | pool_size
                history.append({"step": step, **terms, **extras})
                log.scalars(step, terms, extras)  # metrics.jsonl and TensorBoard
            if progress is not None:
                progress(step, terms | pool_size)
            if step % config.checkpoint_every == 0 or step == config.steps:
                save()
                if pool is not None:
                    pool.save()
                plot_loss_curves(history, out / "loss_curves.png", ("seconds", "pool"), ylabel)
    if not (out / "stylizer.safetensors").exists():
        save()
    return out / "stylizer.safetensors"


__all__ = [
    "AffineTrainConfig",
    "continue_targets",
    "distill_targets",
    "total_variation",
    "train_affine",
]
