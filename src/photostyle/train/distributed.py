"""Multi-process training under ``torchrun``: process group, DDP wrapping, the sharded stream.

``torchrun`` starts one process per GPU (or per CPU slot) and describes the job in environment
variables: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``.
:func:`distributed` joins that job (NCCL on CUDA, Gloo on CPU) and yields a :class:`DistContext`;
without those variables it yields the single-process context and touches nothing.

Each training step draws ``batch_size * world_size`` numbered samples of the triplet stream;
:class:`StreamShard` gives every rank a disjoint, deterministic share of them, interleaved like
``torch.utils.data.DistributedSampler``. Sample ``n`` is drawn from a generator seeded by
``(seed, n)`` (:class:`~photostyle.data.datasets.TripletCrops`), so the data a run sees is a
function of the seed and the sample numbers only: a resumed run continues the stream exactly, and
there are no epochs to reshuffle (nothing like ``set_epoch`` is needed).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Sampler

from photostyle.utils import resolve_device

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly one-process) training job."""

    rank: int = 0  # global rank of this process
    world_size: int = 1  # number of processes
    local_rank: int = 0  # rank on this machine: the CUDA device index under torchrun

    def __post_init__(self) -> None:
        if not (0 <= self.rank < self.world_size and self.local_rank >= 0):
            raise ValueError(f"bad rank {self.rank} / world size {self.world_size}")

    @property
    def enabled(self) -> bool:
        """More than one process: gradients and logged losses are averaged over ranks."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, logs and plots."""
        return self.rank == 0

    @classmethod
    def current(cls) -> DistContext:
        """The context of the default process group if one is initialised, else one process."""
        if dist.is_available() and dist.is_initialized():
            local = int(os.environ.get("LOCAL_RANK", "0"))
            return cls(dist.get_rank(), dist.get_world_size(), local)
        return cls()

    def device(self, device: str) -> torch.device:
        """The device of this rank: ``"cuda"`` (or ``"auto"`` on a GPU machine) is cuda:LOCAL_RANK.

        Raises:
            ValueError: CUDA is not available, or several ranks were given one explicit GPU.
        """
        dev = resolve_device(device)
        if not self.enabled or dev.type != "cuda":
            return dev
        if dev.index is not None:
            raise ValueError(
                f"device {device!r} would put every rank on one GPU; under torchrun use "
                "'cuda' (each process takes cuda:LOCAL_RANK)"
            )
        return torch.device("cuda", self.local_rank)

    def wrap(self, module: nn.Module, device: torch.device, find_unused: bool = False) -> nn.Module:
        """``module`` in DistributedDataParallel when there are several ranks, else ``module``.

        Only parameters with ``requires_grad`` are synchronised. DDP waits for a gradient of each
        of them: freeze the parts the loss never reaches before wrapping, or pass ``find_unused``
        (an extra graph traversal per step) when some are left out only by the loss's terms.
        """
        if not self.enabled:
            return module
        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused)

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The element-wise mean of ``values`` over ranks (``values`` itself with one process)."""
        if not self.enabled:
            return values
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values / self.world_size

    def barrier(self) -> None:
        """Wait until every rank gets here (nothing to wait for with one process)."""
        if not self.enabled:
            return
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[self.local_rank])
        else:
            dist.barrier()


def torchrun_shard() -> tuple[int, int]:
    """``(RANK, WORLD_SIZE)`` of the torchrun job of this process; ``(0, 1)`` outside one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return (int(os.environ.get("RANK", "0")), world) if world > 1 else (0, 1)


def shard_device(shard: tuple[int, int], device: str) -> torch.device:
    """The device of shard ``(i, n)`` of a job split over processes.

    Under torchrun (``LOCAL_RANK`` set) with several shards each process takes its own GPU, as in
    training (:meth:`DistContext.device`); otherwise ``device`` itself.

    Raises:
        ValueError: an unknown device, or one explicit GPU for several torchrun processes.
    """
    if shard[1] > 1 and "LOCAL_RANK" in os.environ:
        return DistContext(shard[0], shard[1], int(os.environ["LOCAL_RANK"])).device(device)
    return resolve_device(device)


@contextlib.contextmanager
def distributed(device: str = "auto", timeout_s: float = 3600.0) -> Iterator[DistContext]:
    """Join the torchrun job described by the environment, for the duration of the block.

    With ``WORLD_SIZE`` unset or 1 this yields the one-process context. If a process group already
    exists (a caller set it up), its context is yielded and it is left open.

    Args:
        device: the training device setting; CUDA selects the NCCL backend, anything else Gloo.
        timeout_s: how long collective operations wait (rank 0 may build the perceptual index
            while the others wait).

    Raises:
        ValueError: torchrun variables are missing or inconsistent.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or (dist.is_available() and dist.is_initialized()):
        yield DistContext.current()
        return
    missing = [name for name in TORCHRUN_VARS if name not in os.environ]
    if missing:
        names = ", ".join(missing)
        raise ValueError(f"WORLD_SIZE={world} but {names} not set; launch with torchrun")
    ctx = DistContext(int(os.environ["RANK"]), world, int(os.environ["LOCAL_RANK"]))
    dev = ctx.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(
        "nccl" if dev.type == "cuda" else "gloo", timeout=timedelta(seconds=timeout_s)
    )
    try:
        yield ctx
    finally:
        dist.destroy_process_group()


class StreamShard(Sampler[int]):
    """This rank's sample numbers for ``steps`` steps of a numbered stream, like DistributedSampler.

    Step ``s`` consumes samples ``first + s*G`` to ``first + (s+1)*G - 1`` with
    ``G = batch_size * world_size``; rank ``r`` takes every ``world_size``-th of them starting at
    ``r``. The ranks' shards are disjoint and together cover the step; with one process the shard
    is ``first, first + 1, ...``, the single-process stream.

    Args:
        first: number of the first sample (samples consumed before, e.g. by a resumed run).
        steps: steps to cover.
        batch_size: samples per step and rank.
        rank: this process's rank.
        world_size: number of processes.
    """

    def __init__(
        self, first: int, steps: int, batch_size: int, rank: int = 0, world_size: int = 1
    ) -> None:
        if first < 0 or steps < 0 or batch_size < 1 or not 0 <= rank < world_size:
            raise ValueError(
                f"bad shard: first {first}, steps {steps}, batch {batch_size}, "
                f"rank {rank} of {world_size}"
            )
        self.first = first
        self.steps = steps
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size

    def __len__(self) -> int:
        return self.steps * self.batch_size

    def __iter__(self) -> Iterator[int]:
        per_step = self.batch_size * self.world_size
        for s in range(self.steps):
            base = self.first + s * per_step + self.rank
            yield from range(base, base + per_step, self.world_size)

    @property
    def end(self) -> int:
        """One past the last sample number any rank takes: the stream length needed."""
        return self.first + self.steps * self.batch_size * self.world_size
