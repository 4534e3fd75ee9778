"""Tests of photostyle.lut: .cube files checked by an independent reader, trilinear application
checked against an independent implementation and ffmpeg's lut3d filter, fitting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from photostyle.lut import (
    Lut3D,
    LutError,
    apply_lut,
    cube_text,
    fit_lut,
    identity_lut,
    neutral_reference,
    read_cube,
    write_cube,
)


def _warm_lut(size: int = 9) -> Lut3D:
    """A smooth, clearly non-identity look (warm, contrasty)."""
    x = identity_lut(size).table
    y = torch.stack([x[..., 0] ** 0.8, x[..., 1] ** 1.1, 0.9 * x[..., 2] ** 1.3], dim=-1)
    return Lut3D(y, title="warm")


def _parse_cube(path: Path) -> tuple[int, np.ndarray]:
    """An independent minimal .cube reader: (size, table[r, g, b, 3]); red is fastest in files."""
    size, rows = 0, []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("LUT_3D_SIZE"):
            size = int(line.split()[1])
        elif line[0].isdigit() or line[0] in "-.":
            rows.append([float(v) for v in line.split()])
    data = np.array(rows).reshape(size, size, size, 3)  # [b, g, r] since red changes fastest
    return size, data.transpose(2, 1, 0, 3)  # -> [r, g, b]


def _trilinear(rgb: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Independent trilinear interpolation; rgb (P, 3) in [0, 1], table [r, g, b, 3]."""
    n = table.shape[0]
    pos = np.clip(rgb, 0, 1) * (n - 1)
    i0 = np.minimum(np.floor(pos).astype(int), n - 2)
    f = pos - i0
    out = np.zeros_like(rgb)
    for dr in (0, 1):
        for dg in (0, 1):
            for db in (0, 1):
                w = (
                    (f[:, 0] if dr else 1 - f[:, 0])
                    * (f[:, 1] if dg else 1 - f[:, 1])
                    * (f[:, 2] if db else 1 - f[:, 2])
                )
                out += w[:, None] * table[i0[:, 0] + dr, i0[:, 1] + dg, i0[:, 2] + db]
    return out


def test_cube_round_trip_read_by_an_independent_parser(tmp_path: Path) -> None:
    lut = _warm_lut(9)
    path = write_cube(lut, tmp_path / "warm.cube")
    text = path.read_text()
    assert text == cube_text(lut)  # the server sends this text without a file
    assert 'TITLE "warm"' in text and "LUT_3D_SIZE 9" in text
    size, table = _parse_cube(path)
    assert size == 9
    # file order: red fastest; check two lattice points by their input colour
    x = identity_lut(9).table  # [b, g, r, 3] holding (r, g, b)
    np.testing.assert_allclose(table[8, 0, 0], lut.table[0, 0, 8].numpy(), atol=1e-6)
    np.testing.assert_allclose(table[2, 5, 7], lut.table[7, 5, 2].numpy(), atol=1e-6)
    assert torch.equal(x[7, 5, 2], torch.tensor([2 / 8, 5 / 8, 7 / 8]))
    back = read_cube(path)
    assert back.title == "warm" and back.size == 9
    assert torch.allclose(back.table, lut.table, atol=1e-6)


def test_apply_is_trilinear_interpolation(tmp_path: Path) -> None:
    lut = _warm_lut(5)
    _, table = _parse_cube(write_cube(lut, tmp_path / "w.cube"))
    rgb = torch.rand(3, 17, 23, generator=torch.Generator().manual_seed(0))
    got = apply_lut(rgb, lut).permute(1, 2, 0).reshape(-1, 3).numpy()
    want = _trilinear(rgb.permute(1, 2, 0).reshape(-1, 3).double().numpy(), table)
    np.testing.assert_allclose(got, want, atol=2e-6)
    # batches, identity, and lattice points map exactly
    batch = torch.stack([rgb, rgb.flip(-1)])
    assert torch.allclose(apply_lut(batch, lut)[1], apply_lut(rgb.flip(-1), lut))
    assert torch.allclose(apply_lut(rgb, identity_lut(3)), rgb, atol=1e-6)


def test_domain_is_honoured(tmp_path: Path) -> None:
    path = tmp_path / "d.cube"
    rows = "\n".join(f"{r} {g} {b}" for b in (0, 2) for g in (0, 2) for r in (0, 2))
    path.write_text(f"LUT_3D_SIZE 2\nDOMAIN_MIN 0 0 0\nDOMAIN_MAX 2 2 2\n{rows}\n")
    lut = read_cube(path)
    x = torch.full((3, 2, 2), 0.25)
    assert torch.allclose(apply_lut(x, lut), x, atol=1e-6)  # identity over [0, 2]


def test_matches_ffmpeg_lut3d(tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    if "lut3d" not in av.filter.filters_available:
        pytest.skip("PyAV's FFmpeg has no lut3d filter")
    lut = _warm_lut(17)
    path = write_cube(lut, tmp_path / "warm.cube")
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    graph = av.filter.Graph()
    src = graph.add_buffer(width=48, height=32, format="rgb24", time_base=1)
    f = graph.add("lut3d", f"file={path}:interp=trilinear")
    sink = graph.add("buffersink")
    src.link_to(f)
    f.link_to(sink)
    graph.configure()
    frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
    frame.pts = 0
    graph.push(frame)
    ffmpeg = graph.pull().to_ndarray(format="rgb24").astype(int)
    ours = apply_lut(torch.from_numpy(pixels).permute(2, 0, 1).float() / 255, lut)
    ours8 = (ours.permute(1, 2, 0).numpy() * 255).round().astype(int)
    assert np.abs(ffmpeg - ours8).max() <= 1


def test_fit_recovers_a_global_look() -> None:
    lut = _warm_lut(33)
    x = neutral_reference(128)
    y = apply_lut(x, lut)
    fitted = fit_lut(x, y, size=17)
    err = (apply_lut(x, fitted) - y).abs()
    assert err.mean() < 2e-3 and err.max() < 0.03
    other = torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(1)) * 0.9 + 0.05
    assert (apply_lut(other, fitted) - apply_lut(other, lut)).abs().mean() < 0.01


def test_fit_of_identity_is_identity() -> None:
    x = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))
    fitted = fit_lut(x, x, size=9)
    assert torch.allclose(fitted.table, identity_lut(9).table, atol=1e-4)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "not a text file"),
        ("hello world\n", "line 1"),
        ("LUT_1D_SIZE 4\n0 0 0\n", "1D LUT"),
        ("LUT_3D_SIZE 2\n0 0 0\n1 1 1\n", "2 rows"),
        ('TITLE "x"\n', "no LUT_3D_SIZE"),
        ("LUT_3D_SIZE 2\n" + "0 0 nan\n" * 8, "line 2"),
    ],
)
def test_a_file_that_is_not_a_lut(tmp_path: Path, content: str | bytes, message: str) -> None:
    path = tmp_path / "bad.cube"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(LutError, match=message) as err:
        read_cube(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(LutError, match="no such file"):
        read_cube(tmp_path / "missing.cube")
