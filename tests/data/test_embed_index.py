"""Tests of the scalable index on disk: build, resume, shards, sources, thresholds, sampler."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from photostyle.data.embed_index import (
    DONE,
    PENDING,
    UNREADABLE,
    EmbeddingIndex,
    IndexConfig,
    IndexMismatchError,
    build_embedding_index,
)
from photostyle.data.sampler import SamplingConfig, TripletSampler
from photostyle.data.sources import DataSource
from photostyle.models.encoder import VGGEncoder

CONFIG = IndexConfig(size=16, dim=32, seed=0)
SAMPLING = SamplingConfig(0.5, 0.3)


@pytest.fixture
def folder(tmp_path: Path, write_png: Callable[..., Path]) -> Path:
    """ImageFolder: classes a (4), b (3), c (2) of random 20-24 px photos, and one broken file."""
    root = tmp_path / "photos"
    n = 0
    for name, count in (("a", 4), ("b", 3), ("c", 2)):
        for i in range(count):
            write_png(root / name / f"{i}.png", 20 + n % 5, 24, seed=n)
            n += 1
    (root / "b" / "broken.png").write_bytes(b"not an image")
    return root


def _build(out: Path, root: Path, encoder: VGGEncoder, **kwargs) -> EmbeddingIndex:
    kwargs.setdefault("batch_size", 3)
    return build_embedding_index(out, DataSource(str(root)), encoder, CONFIG, **kwargs)


def _brute_force_sets(index: EmbeddingIndex, config: SamplingConfig):
    """Brute-force TripletSampler on the exact distance matrix of the index's valid rows."""
    rows = np.flatnonzero(index.valid)
    e = np.asarray(index.embeddings)[rows].astype(np.int64)
    dist = torch.tensor(((e[:, None] - e[None]) ** 2).sum(-1), dtype=torch.float64)
    brute = TripletSampler(dist, torch.tensor(index.labels[rows]), config)
    similar = {int(c): set(rows[brute.similar_set(i).numpy()].tolist()) for i, c in enumerate(rows)}
    style = {int(c): set(rows[brute.style_set(i).numpy()].tolist()) for i, c in enumerate(rows)}
    return brute, rows, similar, style


def test_build_writes_a_complete_index(
    tmp_path: Path, folder: Path, tiny_encoder: VGGEncoder, caplog: pytest.LogCaptureFixture
):
    stages: list[tuple[str, int]] = []
    done: list[int] = []
    with caplog.at_level(logging.WARNING, logger="photostyle.data.embed_index"):
        index = _build(
            tmp_path / "index",
            folder,
            tiny_encoder,
            sampling=SAMPLING,
            on_stage=lambda name, n: stages.append((name, n)),
            on_advance=done.append,
        )
    assert "skipping unreadable image" in caplog.text and "broken.png" in caplog.text
    assert index.complete and len(index) == 10
    assert stages == [("embed", 10), ("thresholds", 9)]
    assert sum(done[:4]) == 10 and done[:4] == [3, 3, 3, 1]  # embedding batches of 3
    m = json.loads((tmp_path / "index" / "manifest.json").read_text())
    assert m["format"] == "photostyle.embedding_index" and m["complete"] is True
    assert m["paths"][:5] == ["a/0.png", "a/1.png", "a/2.png", "a/3.png", "b/0.png"]
    assert m["unreadable"] == ["b/broken.png"]
    assert m["classes"] == ["a", "b", "c"] and m["config"] == {"size": 16, "dim": 32, "seed": 0}
    assert len(m["encoder_sha256"]) == 64 and m["source"]["root"] == str(folder)
    broken = m["paths"].index("b/broken.png")
    assert index.status[broken] == UNREADABLE and not index.valid[broken]
    assert (np.delete(np.asarray(index.status), broken) == DONE).all()
    assert index.embeddings.dtype == np.int16 and index.embeddings.shape == (10, 32)
    assert not np.asarray(index.embeddings[broken]).any()
    assert np.abs(np.asarray(index.embeddings)).max() <= 4096  # the calibration bound
    cached = tmp_path / "index" / "thresholds-t1=0.5-t2=0.3.safetensors"
    assert cached.is_file()
    assert index.bytes_on_disk() == sum(p.stat().st_size for p in (tmp_path / "index").iterdir())
    images = index.image_list()
    assert images.paths[0] == folder / "a" / "0.png" and images.classes == ["a", "b", "c"]


def test_sampler_of_the_index_equals_brute_force(
    tmp_path: Path, folder: Path, tiny_encoder: VGGEncoder
):
    index = _build(tmp_path / "index", folder, tiny_encoder)
    for config in (SAMPLING, SamplingConfig(0.5, 0.1), SamplingConfig(1.0, 1.0)):
        sampler = index.sampler(config)
        brute, rows, similar, style = _brute_force_sets(index, config)
        thr = index.thresholds(config)
        assert torch.equal(thr.t1[rows], brute.t1) and torch.equal(thr.t2[rows], brute.t2)
        for c in rows.tolist():
            assert set(sampler.similar_set(c).tolist()) == similar[c]
            assert set(sampler.style_set(c).tolist()) == style[c]
        g = torch.Generator().manual_seed(0)
        for _ in range(300):
            c, s, t = sampler.draw(g)
            assert s in style[c] and (t in similar[c] or (t == c and not similar[c]))
    assert len(sampler) == 9  # the broken image is never drawn


def test_neighbours_are_the_nearest_valid_rows_by_brute_force(
    tmp_path: Path, folder: Path, tiny_encoder: VGGEncoder
):
    index = _build(tmp_path / "index", folder, tiny_encoder)
    rows = np.flatnonzero(index.valid)
    e = np.asarray(index.embeddings).astype(np.int64)
    for k in (1, 3, len(rows) - 1):
        near = index.neighbours(k, chunk=4)  # chunks smaller than the index
        assert near.shape == (len(index), k)
        for r in range(len(index)):
            if r not in rows:
                assert (near[r] == -1).all()  # the broken image has none and is none's
                continue
            others = [o for o in rows.tolist() if o != r]
            d = {o: int(((e[r] - e[o]) ** 2).sum()) for o in others}
            expected = sorted(others, key=lambda o: (d[o], o))[:k]  # ties: the lower row
            assert near[r].tolist() == expected
    with pytest.raises(ValueError, match="k in \\[1, 8\\]"):
        index.neighbours(len(rows))


def test_interrupted_build_resumes_to_the_same_index(
    tmp_path: Path, folder: Path, tiny_encoder: VGGEncoder
):
    whole = _build(tmp_path / "whole", folder, tiny_encoder)

    def stop_after_first_batch(n: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _build(tmp_path / "split", folder, tiny_encoder, on_advance=stop_after_first_batch)
    partial = EmbeddingIndex.open(tmp_path / "split")
    assert not partial.complete
    assert (np.asarray(partial.status) == DONE).sum() == 3  # the first batch was kept
    assert partial.pending_rows().tolist() == list(range(3, 10))
    with pytest.raises(ValueError, match="incomplete"):
        partial.sampler(SAMPLING)
    # a kill between writing rows and marking them done: those rows are embedded again
    status = np.lib.format.open_memmap(tmp_path / "split" / "status.npy", mode="r+")
    status[1] = PENDING
    status.flush()
    del status
    done: list[int] = []
    resumed = _build(tmp_path / "split", folder, tiny_encoder, on_advance=done.append)
    assert sum(done) == 8  # rows 1 and 3..9
    assert resumed.complete
    assert np.array_equal(np.asarray(resumed.embeddings), np.asarray(whole.embeddings))
    assert np.array_equal(np.asarray(resumed.status), np.asarray(whole.status))


def test_shards_fill_one_index(tmp_path: Path, folder: Path, tiny_encoder: VGGEncoder):
    whole = _build(tmp_path / "whole", folder, tiny_encoder)
    first = _build(tmp_path / "sharded", folder, tiny_encoder, shard=(1, 2), sampling=SAMPLING)
    assert not first.complete and first.pending_rows().tolist() == [0, 1, 2, 3, 4]
    assert first.pending_rows((1, 2)).size == 0
    assert not (tmp_path / "sharded" / "thresholds-t1=0.5-t2=0.3.safetensors").exists()
    last = _build(tmp_path / "sharded", folder, tiny_encoder, shard=(0, 2), sampling=SAMPLING)
    assert last.complete  # the shard that finishes the index finalises it
    assert np.array_equal(np.asarray(last.embeddings), np.asarray(whole.embeddings))
    assert (tmp_path / "sharded" / "thresholds-t1=0.5-t2=0.3.safetensors").exists()
    with pytest.raises(ValueError, match="shard"):
        last.pending_rows((2, 2))


def test_an_index_of_other_images_or_settings_is_refused(
    tmp_path: Path,
    folder: Path,
    make_encoder: Callable[..., VGGEncoder],
    write_png: Callable[..., Path],
):
    out = tmp_path / "index"
    _build(out, folder, make_encoder(0))
    source = DataSource(str(folder))
    with pytest.raises(IndexMismatchError, match="config"):
        build_embedding_index(out, source, make_encoder(0), IndexConfig(16, 16, 0))
    with pytest.raises(IndexMismatchError, match="encoder"):
        _build(out, folder, make_encoder(1))
    write_png(folder / "c" / "new.png", 20, 20)
    with pytest.raises(IndexMismatchError, match="paths"):
        _build(out, folder, make_encoder(0))
    assert EmbeddingIndex.open(out).complete  # untouched


def test_thresholds_are_cached_and_recomputed_when_stale(
    tmp_path: Path, folder: Path, tiny_encoder: VGGEncoder, monkeypatch: pytest.MonkeyPatch
):
    index = _build(tmp_path / "index", folder, tiny_encoder, sampling=SAMPLING)
    first = index.thresholds(SAMPLING)

    def fail(*args, **kwargs):
        raise AssertionError("thresholds recomputed")

    monkeypatch.setattr("photostyle.data.embed_index.chunked_thresholds", fail)
    again = EmbeddingIndex.open(tmp_path / "index").thresholds(SAMPLING)  # read from the file
    assert all(
        torch.equal(a, b)
        for a, b in zip(first.tensors().values(), again.tensors().values(), strict=True)
    )
    index.manifest["labels"][0] = 2  # other labels: the cached file no longer applies
    with pytest.raises(AssertionError, match="recomputed"):
        index.thresholds(SAMPLING)


def test_open_errors(tmp_path: Path, folder: Path, tiny_encoder: VGGEncoder):
    with pytest.raises(FileNotFoundError, match="no perceptual index"):
        EmbeddingIndex.open(tmp_path / "nothing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not a photostyle embedding index"):
        EmbeddingIndex.open(tmp_path / "bad")
    (tmp_path / "bad" / "manifest.json").write_text("{broken")
    with pytest.raises(ValueError, match="not a photostyle index"):
        EmbeddingIndex.open(tmp_path / "bad")
    _build(tmp_path / "index", folder, tiny_encoder)
    (tmp_path / "index" / "embeddings.npy").unlink()
    with pytest.raises(ValueError, match="broken index"):
        EmbeddingIndex.open(tmp_path / "index")


def test_unlabelled_folder_gets_k_means_classes(tmp_path: Path, tiny_encoder: VGGEncoder):
    root = tmp_path / "flat"
    root.mkdir()
    rng = np.random.default_rng(0)
    dark = []
    for i in range(10):  # dark and bright noisy photos: two clearly separated clusters
        level = 30 if i % 2 else 220
        pixels = np.clip(level + rng.normal(0, 8, (20, 20, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / f"{i:02d}.png")
        if i % 2:
            dark.append(f"{i:02d}.png")
    source = DataSource(str(root), kind="unlabelled", clusters=2)
    index = build_embedding_index(
        tmp_path / "index", source, tiny_encoder, CONFIG, sampling=SAMPLING
    )
    assert index.manifest["classes"] == ["cluster_0", "cluster_1"]
    labels = index.labels
    is_dark = np.array([p in dark for p in index.manifest["paths"]])
    assert len(set(labels[is_dark])) == 1 and len(set(labels[~is_dark])) == 1
    assert labels[is_dark][0] != labels[~is_dark][0]
    assert index.manifest["kmeans"]["k"] == 2
    c, _, t = index.sampler(SAMPLING).draw(torch.Generator().manual_seed(0))
    assert labels[t] == labels[c]
    # reopening an unlabelled index does not compare its k-means labels with the listing's
    again = build_embedding_index(tmp_path / "index", source, tiny_encoder, CONFIG)
    assert again.manifest["classes"] == ["cluster_0", "cluster_1"]


def test_coco_source_with_a_missing_file(
    tmp_path: Path, tiny_encoder: VGGEncoder, write_png: Callable[..., Path]
):
    images_dir = tmp_path / "train2014"
    for i, name in enumerate(("a.jpg", "b.jpg", "c.jpg")):
        write_png(images_dir / name, 20, 22, seed=i)
    ann = tmp_path / "instances.json"
    ann.write_text(
        json.dumps(
            {
                "images": [
                    {"id": i, "file_name": n}
                    for i, n in enumerate(("a.jpg", "b.jpg", "c.jpg", "gone.jpg"))
                ],
                "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "bicycle"}],
                "annotations": [
                    {"image_id": 0, "category_id": 2, "area": 9.0},
                    {"image_id": 1, "category_id": 1, "area": 9.0},
                    {"image_id": 3, "category_id": 1, "area": 9.0},
                ],
            }
        )
    )
    source = DataSource(str(images_dir), kind="coco", annotations=str(ann))
    index = build_embedding_index(
        tmp_path / "index", source, tiny_encoder, CONFIG, sampling=SAMPLING
    )
    assert index.complete
    assert index.manifest["classes"] == ["person", "bicycle", "(no annotation)"]
    assert index.manifest["paths"] == ["b.jpg", "gone.jpg", "a.jpg", "c.jpg"]
    assert index.manifest["unreadable"] == ["gone.jpg"]
    assert index.valid.tolist() == [True, False, True, True]


def test_decoding_in_worker_processes_gives_the_same_embeddings(
    tmp_path: Path, folder: Path, tiny_encoder: VGGEncoder
):
    a = _build(tmp_path / "a", folder, tiny_encoder, workers=0)
    b = _build(tmp_path / "b", folder, tiny_encoder, workers=1)
    assert np.array_equal(np.asarray(a.embeddings), np.asarray(b.embeddings))


def test_data_source_validation():
    with pytest.raises(ValueError, match="unknown data kind"):
        DataSource("x", kind="other")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="annotations"):
        DataSource("x", kind="coco")
    with pytest.raises(ValueError, match="annotations"):
        DataSource("x", annotations="a.json")
    with pytest.raises(ValueError, match="clusters"):
        DataSource("x", kind="unlabelled", clusters=0)
    with pytest.raises(ValueError, match="dim"):
        IndexConfig(dim=0)
