"""Saving and loading a stylizer: the one path between a :class:`ModelConfig` and its weights file.

A stylizer file is a safetensors file holding the trained head's tensors (``decoder.<name>``; the
fixed encoder is not stored, only the sha256 of its weights file) and, in its metadata, the
``format`` tag, a ``version`` and the ``model_config`` (JSON) it was built from, plus whatever the
writer adds (``step``, ``train_config``...). Training (:mod:`photostyle.train`) writes them with
:func:`save_stylizer`; the API, the evaluation and the shipping script read them with
:func:`read_stylizer` / :func:`load_stylizer`, which rebuild the model with
:func:`~photostyle.models.stylizer.build_stylizer`. A new architecture is a new ``ModelConfig``
value: it is saved and loaded here without changes to the trainer or the API.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from photostyle.models.layers import FA_VARIANTS
from photostyle.models.stylizer import ModelConfig, PhotoStylizer, build_stylizer
from photostyle.models.weights import (
    BUNDLED_VGG16_SHA256,
    WeightsError,
    build_encoder,
    load_checkpoint,
    save_checkpoint,
)

STYLIZER_FORMAT = "photostyle.stylizer"  # the ``format`` metadata of a stylizer file
STYLIZER_VERSION = "1"  # its ``version`` metadata
_PREFIX = "decoder."  # key prefix of the head's tensors in the file


@dataclass(frozen=True)
class StylizerCheckpoint:
    """A stylizer file's contents, read but not built."""

    config: ModelConfig  # the architecture it was saved with
    state: dict[str, torch.Tensor]  # the head's state dict (keys without the file's prefix)
    meta: dict[str, str]  # the file's raw metadata (format, version, model_config, step...)


def save_stylizer(
    path: str | Path,
    state: Mapping[str, torch.Tensor],
    config: ModelConfig,
    meta: Mapping[str, Any] | None = None,
) -> None:
    """Write a stylizer file atomically: the head's ``state`` and its architecture ``config``.

    Args:
        path: the ``.safetensors`` file to write.
        state: the head's state dict (``PhotoStylizer.decoder``, or a training pipeline's U).
        config: the architecture the head was built from (:func:`build_stylizer`).
        meta: more JSON-serialisable metadata (``step``, ``train_config``...); ``format``,
            ``version`` and ``model_config`` are set here.
    """
    header = {"format": STYLIZER_FORMAT, "version": STYLIZER_VERSION}
    tensors = {_PREFIX + k: v for k, v in state.items()}
    save_checkpoint(path, tensors, {**(meta or {}), **header, "model_config": config.to_dict()})


def read_stylizer(path: str | Path) -> StylizerCheckpoint:
    """The tensors, architecture and metadata of a stylizer file.

    Raises:
        WeightsError: the file is missing, unreadable, not a stylizer file, or its
            ``model_config`` is unreadable (one line naming the file).
    """
    path = Path(path)
    tensors, meta = load_checkpoint(path)
    if meta.get("format") != STYLIZER_FORMAT or "model_config" not in meta:
        raise WeightsError(f"{path}: not a photostyle stylizer checkpoint")
    try:
        raw = json.loads(meta["model_config"])
        if not isinstance(raw, dict):
            raise TypeError(f"expected a JSON object, got {type(raw).__name__}")
        config = ModelConfig.from_dict(raw)
    except (ValueError, TypeError) as err:
        raise WeightsError(f"{path}: unreadable model config ({err})") from err
    state = {k[len(_PREFIX) :]: v for k, v in tensors.items() if k.startswith(_PREFIX)}
    return StylizerCheckpoint(config, state, meta)


def load_stylizer(
    path: str | Path,
    *,
    encoder_weights: str | Path | None = None,
    fa: str | None = None,
) -> tuple[PhotoStylizer, StylizerCheckpoint]:
    """Build the stylizer saved at ``path`` with its encoder (on the CPU, float32).

    Args:
        path: a stylizer file (:func:`save_stylizer`).
        encoder_weights: the VGG weights it was trained with; None = the bundled ImageNet VGG16
            (checked against the sha256 in its config).
        fa: FA variant to build it with; None = the one in its config.

    Returns:
        (the model, what was read from the file); the model's ``config`` has ``fa`` applied,
        the file's (``StylizerCheckpoint.config``) is as saved.

    Raises:
        WeightsError: unreadable file or config, other encoder weights than the bundled ones
            without ``encoder_weights``, or weights that do not fit the architecture (one line
            naming the file).
        ValueError: unknown ``fa`` variant.
    """
    path = Path(path)
    saved = read_stylizer(path)
    config = saved.config
    if fa is not None:
        if fa not in FA_VARIANTS:
            raise ValueError(f"unknown FA variant {fa!r}; choose from {FA_VARIANTS}")
        config = ModelConfig.from_dict({**config.to_dict(), "fa": fa})
    sha = None
    if encoder_weights is None and config.encoder_sha256:
        sha = config.encoder_sha256
        if sha != BUNDLED_VGG16_SHA256:
            raise WeightsError(
                f"{path}: trained with other encoder weights; pass them with encoder_weights"
            )
    try:
        encoder = build_encoder(
            encoder_weights, config.vgg(), sha256=sha, padding_mode=config.padding_mode
        )
    except WeightsError as err:
        which = encoder_weights if encoder_weights is not None else "bundled VGG16"
        first = str(err).strip().splitlines()[0]
        raise WeightsError(
            f"{path}: encoder weights ({which}) do not fit this {config.arch} stylizer: {first}"
        ) from err
    model = build_stylizer(config, encoder)
    try:
        model.decoder.load_state_dict(saved.state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise WeightsError(
            f"{path}: weights do not fit a {config.arch} stylizer ({first})"
        ) from err
    return model, saved


__all__ = [
    "STYLIZER_FORMAT",
    "StylizerCheckpoint",
    "load_stylizer",
    "read_stylizer",
    "save_stylizer",
]
