"""``photostyle index`` and ``photostyle index-bench``: build the perceptual index of a dataset
(Eqs. (9)-(11)), or time it and measure its accuracy."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from photostyle.cli.args import SubParsers, add_device_arg
from photostyle.cli.errors import EXIT_OK
from photostyle.cli.outputs import check_output, write_json

if TYPE_CHECKING:
    import torch

    from photostyle.data.embed_index import IndexConfig
    from photostyle.data.sampler import SamplingConfig
    from photostyle.data.sources import DataSource
    from photostyle.models.encoder import VGGEncoder


def _add_index_data_args(p: argparse.ArgumentParser) -> None:
    from photostyle.data.embed_index import IndexConfig
    from photostyle.data.sampler import SamplingConfig
    from photostyle.models.encoder import VGG_CONFIGS
    from photostyle.models.stylizer import ModelConfig

    p.add_argument(
        "--data", required=True, help="image folder: ImageFolder root, or COCO images with --coco"
    )
    p.add_argument(
        "--coco", metavar="JSON", help="COCO instances json: class = largest-area category"
    )
    p.add_argument(
        "--size",
        type=int,
        default=IndexConfig.size,
        help=f"side images are resized to (default {IndexConfig.size})",
    )
    p.add_argument(
        "--dim",
        type=int,
        default=IndexConfig.dim,
        help=f"JL embedding dimensions (default {IndexConfig.dim})",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=IndexConfig.seed,
        help=f"projection / k-means seed (default {IndexConfig.seed})",
    )
    p.add_argument(
        "--arch",
        default=ModelConfig.arch,
        help=f"encoder: {' or '.join(VGG_CONFIGS)} (default {ModelConfig.arch})",
    )
    p.add_argument("--encoder-weights", help="VGG weights file or URL (default: bundled VGG16)")
    t1, t2 = SamplingConfig.t1, SamplingConfig.t2
    p.add_argument("--t1", type=float, default=t1, help=f"T1: top fraction inside the class ({t1})")
    p.add_argument("--t2", type=float, default=t2, help=f"T2: top fraction outside it ({t2})")
    p.add_argument("--batch-size", type=int, default=64, help="images per encoder call (64)")
    p.add_argument("--workers", type=int, default=0, help="image-decoding processes (default 0)")
    add_device_arg(p)


def register(sub: SubParsers) -> None:
    from photostyle.data.sources import DataSource

    ix = sub.add_parser(
        "index", help="build the perceptual index of a dataset (Eqs. (9)-(11)); resumable"
    )
    _add_index_data_args(ix)
    ix.add_argument("--out", type=Path, required=True, help="index directory (created/resumed)")
    ix.add_argument(
        "--unlabelled", action="store_true", help="no classes in --data: k-means on the embeddings"
    )
    clusters = DataSource.clusters
    ix.add_argument(
        "--clusters", type=int, default=clusters, help=f"k-means classes (default {clusters})"
    )
    ix.add_argument(
        "--skip-unannotated",
        action="store_true",
        help="with --coco: leave out images without annotations (default: their own class)",
    )
    ix.add_argument(
        "--shard",
        metavar="I/N",
        help="embed only the I-th of N row ranges (one process per GPU); default: torchrun's "
        "RANK/WORLD_SIZE, else 0/1",
    )
    ix.add_argument(
        "--max-mb", type=int, default=512, help="memory per block of threshold distances (512)"
    )
    ib = sub.add_parser(
        "index-bench", help="time the perceptual index, project its cost, measure its accuracy"
    )
    _add_index_data_args(ib)
    ib.add_argument("--sizes", default="500,1000,2000", help="subset sizes indexed and timed")
    ib.add_argument(
        "--threshold-sizes",
        default="4000,8000",
        help="sizes of random embeddings whose thresholds are timed too (default 4000,8000)",
    )
    ib.add_argument("--accuracy-images", type=int, default=300, help="0 skips the JL accuracy")
    ib.add_argument(
        "--dims", default="128,256,512,1024", help="JL dimensions compared for accuracy"
    )
    ib.add_argument("--runs", type=int, default=3, help="timed threshold runs (median; default 3)")
    ib.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    ix.set_defaults(handler=_cmd_index)
    ib.set_defaults(handler=_cmd_index_bench)


def _int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise ValueError(f"{what} must be positive integers, got {text!r}")
    return values


@dataclass(frozen=True)
class _IndexJob:
    """What the index commands build from their shared flags."""

    source: DataSource  # the images and their classes
    encoder: VGGEncoder  # on ``device``
    device: torch.device  # this process's device (its own GPU under torchrun)
    config: IndexConfig  # how embeddings are computed
    sampling: SamplingConfig  # T1, T2


def _index_job(args: argparse.Namespace, shard: tuple[int, int] = (0, 1)) -> _IndexJob:
    from photostyle.data.embed_index import IndexConfig
    from photostyle.data.sampler import SamplingConfig
    from photostyle.data.sources import DataSource
    from photostyle.models.encoder import VGG_CONFIGS
    from photostyle.models.weights import build_encoder
    from photostyle.train.distributed import shard_device

    if args.arch not in VGG_CONFIGS:
        raise ValueError(f"unknown --arch {args.arch!r}; choose from {sorted(VGG_CONFIGS)}")
    unlabelled = getattr(args, "unlabelled", False)
    if unlabelled and args.coco:
        raise ValueError("--unlabelled and --coco exclude each other")
    source = DataSource(
        root=args.data,
        kind="coco" if args.coco else "unlabelled" if unlabelled else "folder",
        annotations=args.coco,
        clusters=getattr(args, "clusters", DataSource.clusters),
        skip_unannotated=getattr(args, "skip_unannotated", False),
    )
    config = IndexConfig(size=args.size, dim=args.dim, seed=args.seed)
    sampling = SamplingConfig(t1=args.t1, t2=args.t2)
    if args.batch_size < 1 or args.workers < 0:
        raise ValueError("--batch-size must be >= 1 and --workers >= 0")
    device = shard_device(shard, args.device)  # torchrun: one GPU per process, as train
    encoder = build_encoder(args.encoder_weights, VGG_CONFIGS[args.arch]).to(device)
    return _IndexJob(source, encoder, device, config, sampling)


def _parse_shard(text: str | None) -> tuple[int, int]:
    from photostyle.train.distributed import torchrun_shard

    if text is None:
        return torchrun_shard()
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must be I/N (e.g. 0/4), got {text!r}") from None
    if not 0 <= i < n:
        raise ValueError(f"--shard I/N needs 0 <= I < N, got {text!r}")
    return i, n


def _cmd_index(args: argparse.Namespace) -> int:
    import logging

    from tqdm import tqdm

    from photostyle.data.embed_index import build_embedding_index

    shard = _parse_shard(args.shard)
    if args.max_mb < 1 or args.clusters < 1:
        raise ValueError("--max-mb and --clusters must be >= 1")
    check_output(args.out, folder=True)
    job = _index_job(args, shard)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    bars: list[tqdm] = []

    def on_stage(name: str, total: int) -> None:
        for bar in bars:
            bar.close()
        bars[:] = [tqdm(total=total, desc=name, unit="img", file=sys.stderr)]

    index = build_embedding_index(
        args.out,
        job.source,
        job.encoder,
        job.config,
        sampling=job.sampling,
        shard=shard,
        batch_size=args.batch_size,
        workers=args.workers,
        device=job.device,
        max_bytes=args.max_mb * 2**20,
        on_stage=on_stage,
        on_advance=lambda n: bars[0].update(n) if bars else None,
    )
    for bar in bars:
        bar.close()
    if not index.complete:
        pending = len(index.pending_rows())
        print(f"shard {shard[0]}/{shard[1]} done; {pending} images pending in other shards")
        return EXIT_OK
    bad = len(index.manifest.get("unreadable", []))
    classes = len(index.manifest["classes"])
    print(
        f"index {args.out}: {len(index)} images ({bad} unreadable, skipped), {classes} classes, "
        f"k={job.config.dim}, {index.bytes_on_disk():,} bytes; thresholds t1={job.sampling.t1}, "
        f"t2={job.sampling.t2} cached"
    )
    return EXIT_OK


def _cmd_index_bench(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from photostyle.data.index_bench import bench_json, bench_markdown, run_index_bench

    check_output(args.json)
    sizes = _int_list(args.sizes, "--sizes")
    threshold_sizes = (
        _int_list(args.threshold_sizes, "--threshold-sizes") if args.threshold_sizes else []
    )
    dims = _int_list(args.dims, "--dims")
    if args.runs < 1 or args.accuracy_images < 0:
        raise ValueError("--runs must be >= 1 and --accuracy-images >= 0")
    job = _index_job(args)
    with tqdm(desc="index-bench", file=sys.stderr, bar_format="{desc}") as bar:
        bench = run_index_bench(
            job.source,
            job.encoder,
            sizes=sizes,
            threshold_sizes=threshold_sizes,
            config=job.config,
            sampling=job.sampling,
            accuracy_images=args.accuracy_images,
            accuracy_dims=dims,
            runs=args.runs,
            batch_size=args.batch_size,
            workers=args.workers,
            device=job.device,
            on_step=lambda step: bar.set_description_str(f"index-bench: {step}"),
        )
    print(bench_markdown(bench), end="")
    write_json(args.json, bench_json(bench), "results")
    return EXIT_OK
