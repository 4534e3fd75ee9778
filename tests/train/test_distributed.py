"""Tests of multi-process training: the sharded stream, the torchrun context, a 2-process run.

The 2-process test launches ``python -m torch.distributed.run --nproc-per-node 2`` on the CPU with
the Gloo backend, as a user would launch a multi-GPU job (tests/train/ddp_worker.py is each rank).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from photostyle.models.weights import load_checkpoint
from photostyle.train.config import TrainConfig
from photostyle.train.distributed import (
    DistContext,
    StreamShard,
    distributed,
    shard_device,
    torchrun_shard,
)


def test_stream_shards_interleave_like_distributed_sampler():
    shards = [list(StreamShard(10, 2, 2, rank, 2)) for rank in range(2)]
    assert shards == [[10, 12, 14, 16], [11, 13, 15, 17]]
    assert list(StreamShard(10, 2, 3)) == list(range(10, 16))  # one process: the plain stream


@pytest.mark.parametrize(("world", "batch", "steps"), [(1, 4, 3), (2, 3, 4), (3, 2, 5)])
def test_stream_shards_are_disjoint_and_cover_each_step(world: int, batch: int, steps: int):
    first = 7
    shards = [StreamShard(first, steps, batch, rank, world) for rank in range(world)]
    items = [list(s) for s in shards]
    assert all(len(s) == len(i) == steps * batch for s, i in zip(shards, items, strict=True))
    for step in range(steps):  # each step's samples come from one contiguous block
        block = {x for i in items for x in i[step * batch : (step + 1) * batch]}
        start = first + step * batch * world
        assert block == set(range(start, start + batch * world))
    flat = [x for i in items for x in i]
    assert len(set(flat)) == len(flat) and shards[0].end == first + steps * batch * world


def test_stream_shard_refuses_bad_arguments():
    for args in [(-1, 1, 1, 0, 1), (0, 1, 0, 0, 1), (0, 1, 1, 2, 2), (0, -1, 1, 0, 1)]:
        with pytest.raises(ValueError, match="bad shard"):
            StreamShard(*args)


def test_single_process_context_needs_no_process_group(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with distributed("cpu") as ctx:
        assert ctx == DistContext() and ctx.is_main and not ctx.enabled
        assert ctx.device("cpu") == torch.device("cpu")
        x = torch.tensor([1.0, 2.0])
        assert ctx.mean(x) is x
        ctx.barrier()  # a no-op
    module = torch.nn.Linear(2, 2)
    assert ctx.wrap(module, torch.device("cpu")) is module


def test_torchrun_environment_is_checked(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    for name in ("LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    missing = "LOCAL_RANK, MASTER_ADDR, MASTER_PORT not set"
    with pytest.raises(ValueError, match=missing), distributed("cpu"):
        pass
    with pytest.raises(ValueError, match="bad rank 2 / world size 2"):
        DistContext(rank=2, world_size=2)


@pytest.mark.slow
def test_two_process_gloo_run_keeps_ranks_identical_on_disjoint_shards(
    make_config: Callable[..., TrainConfig], tmp_path: Path
):
    steps, batch = 3, 2
    cfg = make_config("ddp", steps=steps, batch_size=batch, ckpt_every=100, image_every=100)
    config = tmp_path / "run.yaml"
    config.write_text(cfg.to_yaml())
    results = tmp_path / "ranks"
    results.mkdir()
    worker = Path(__file__).with_name("ddp_worker.py")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", "2", str(worker), str(config), str(results)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    ranks = [load_checkpoint(results / f"rank{r}.safetensors")[0] for r in range(2)]
    shards = [r.pop("samples").tolist() for r in ranks]
    assert shards == [[0, 2, 4, 6, 8, 10], [1, 3, 5, 7, 9, 11]]  # disjoint, interleaved
    local = [r.pop("local_total") for r in ranks]
    assert not torch.equal(local[0], local[1])  # the ranks did see different data ...
    assert ranks[0].keys() == ranks[1].keys() and ranks[0]
    for k in ranks[0]:  # ... and DDP kept their weights identical
        torch.testing.assert_close(ranks[1][k], ranks[0][k], rtol=0, atol=0)

    out = Path(cfg.out_dir)  # rank 0 alone wrote the run's files
    tensors, meta = load_checkpoint(out / "checkpoint.safetensors")
    assert meta["step"] == str(steps) and meta["world_size"] == "2"
    assert meta["samples"] == str(steps * batch * 2)
    for k, v in ranks[0].items():
        torch.testing.assert_close(tensors[k], v, rtol=0, atol=0)
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in logged] == [1, 2, 3]
    mean = ((local[0] + local[1]) / 2).tolist()  # the loss logged is the mean over ranks
    assert [line["total"] for line in logged] == pytest.approx(mean, rel=1e-6)
    assert (out / "loss_curves.png").is_file() and (out / "config.yaml").is_file()
    assert TrainConfig.from_file(out / "config.yaml") == cfg
    assert done.stdout.count("step 3: checkpoint") == 1  # rank 0 alone reports


def test_torchrun_shard_and_device_come_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert torchrun_shard() == (0, 1)
    assert shard_device((0, 1), "cpu") == torch.device("cpu")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    assert torchrun_shard() == (2, 4)
    assert shard_device((2, 4), "cpu") == torch.device("cpu")  # no LOCAL_RANK: as given
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert shard_device((2, 4), "cpu") == torch.device("cpu")  # GPUs only are split per process
    if torch.cuda.is_available():
        assert shard_device((2, 4), "cuda") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match="tpu"):
        shard_device((2, 4), "tpu")
