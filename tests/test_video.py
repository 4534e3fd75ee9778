"""Tests of video stylization (photostyle.video), the flicker metric and ``stylize-video``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from photostyle import cli
from photostyle.api import StylizeOptions, Stylizer
from photostyle.eval.metrics import flicker_ratio, frame_change, luma
from photostyle.io import load_image
from photostyle.models.encoder import VGGEncoder
from photostyle.models.layers import FAVariant, fa_mean_std, fa_wct
from photostyle.models.stylizer import ModelConfig, PhotoStylizer
from photostyle.video import ClipOptions, ClipStylizer, VideoError, open_clip, stylize_video
from photostyle.video.frames import VideoWriter, check_output
from photostyle.video.stable import (
    content_stats,
    exposure_ratio,
    fa_with_stats,
    pool_stats,
    style_stats,
)

Capsys = pytest.CaptureFixture[str]
CHANGE = "change"  # upsampling that adds the change: exact at equal sizes, cheap
GUIDED = "guided"  # the default upsampling (a local affine model fitted at working size)


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _smooth(h: int, w: int, seed: int) -> torch.Tensor:
    small = _rand(1, 3, max(2, h // 6), max(2, w // 6), seed=seed)
    return F.interpolate(small, size=(h, w), mode="bilinear")[0] * 0.6 + 0.2  # (3, h, w)


def _flicker_clip(n: int = 6, size: int = 48, seed: int = 0) -> list[torch.Tensor]:
    """A 2 px/frame pan over a smooth scene, a dark object crossing it, exposure flicker, noise."""
    g = torch.Generator().manual_seed(seed)
    scene = _smooth(size, size + 2 * n, seed)
    gains = [1.0, 1.08, 0.94, 1.05, 0.97, 1.1, 0.95, 1.04]
    frames = []
    for t in range(n):
        f = scene[:, :, 2 * t : 2 * t + size].clone()
        x = 4 + 6 * t
        f[:, 10:30, x : x + 14] = torch.tensor([0.1, 0.15, 0.5])[:, None, None]
        frames.append(
            (f * gains[t % len(gains)] + 0.01 * torch.randn(f.shape, generator=g)).clamp(0, 1)
        )
    return frames


def _write_frames(folder: Path, frames: list[torch.Tensor], names: list[str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        name = names[i] if names else f"f{i:03d}.png"
        pixels = (f.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(folder / name)
    return folder


def _write_mp4(path: Path, frames: list[torch.Tensor], fps: int = 12) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = frames[0].shape[2], frames[0].shape[1]
        stream.pix_fmt = "yuv420p"
        for f in frames:
            pixels = (f.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture
def stylizer(tiny_stylizer_files: tuple[Path, Path]) -> Stylizer:
    weights, encoder = tiny_stylizer_files
    return Stylizer(weights, encoder_weights=encoder, device="cpu")


@pytest.fixture(scope="module")
def shipped() -> Stylizer:
    return Stylizer(device="cpu")


@pytest.fixture
def model_args(tiny_stylizer_files: tuple[Path, Path]) -> list[str]:
    weights, encoder = tiny_stylizer_files
    return ["--weights", str(weights), "--encoder-weights", str(encoder), "--device", "cpu"]


@pytest.fixture
def style_file(tmp_path: Path, write_png: Callable[..., Path]) -> Path:
    return write_png(tmp_path / "style.png", 24, 20, seed=5)


def _one_line_error(capsys: Capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line and not line.startswith("stylize-video")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ---------------------------------------------------------------------------------------------
# The flicker metric
# ---------------------------------------------------------------------------------------------


def test_flicker_ratio_hand_computed() -> None:
    # Input frames 0, 0.1, 0.3 change by 0.1 then 0.2; outputs 0.5, 0.5, 0.6 by 0 then 0.1.
    inputs = [torch.full((3, 2, 2), v) for v in (0.0, 0.1, 0.3)]
    outputs = [torch.full((3, 2, 2), v) for v in (0.5, 0.5, 0.6)]
    assert flicker_ratio(outputs, inputs) == pytest.approx(0.1 / 0.3)
    assert flicker_ratio(inputs, inputs) == pytest.approx(1.0)


def test_frame_change_is_the_mean_absolute_difference() -> None:
    a = torch.tensor([[[0.0, 1.0], [0.5, 0.25]]])  # (1, 2, 2)
    assert frame_change(a, torch.zeros(1, 2, 2)) == pytest.approx((0 + 1 + 0.5 + 0.25) / 4)
    assert frame_change(a, a) == 0.0
    with pytest.raises(ValueError, match="differ in shape"):
        frame_change(a, torch.zeros(1, 2, 3))


def test_flicker_ratio_rejects_bad_clips_and_is_nan_for_a_still_input() -> None:
    still = [torch.zeros(3, 2, 2)] * 3
    moving = [torch.full((3, 2, 2), v) for v in (0.0, 0.1, 0.2)]
    assert np.isnan(flicker_ratio(moving, still))
    with pytest.raises(ValueError, match="at least two"):
        flicker_ratio(moving[:1], moving[:1])
    with pytest.raises(ValueError, match="2 output frames for 3"):
        flicker_ratio(moving[:2], moving)


# ---------------------------------------------------------------------------------------------
# FA with given statistics
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("variant", "reference"), [("mean_std", fa_mean_std), ("wct", fa_wct)])
def test_fa_with_own_stats_equals_the_model_fa(variant: FAVariant, reference: Callable) -> None:
    x, y = _rand(5, 40, seed=1) * 3, _rand(5, 30, seed=2) + 1
    got = fa_with_stats(x, content_stats(x, variant), style_stats(y, variant), variant)
    assert torch.allclose(got, reference(x, y), atol=1e-5)


def test_pooled_stats_are_those_of_the_pixels_taken_together() -> None:
    a, b = _rand(4, 50, seed=3), _rand(4, 50, seed=4) * 2 + 1
    pooled = pool_stats(content_stats(a, "mean_std"), content_stats(b, "mean_std"), 0.5)
    together = content_stats(torch.cat([a, b], dim=1), "mean_std")
    assert torch.allclose(pooled[0], together[0], atol=1e-6)
    assert torch.allclose(pooled[1], together[1], atol=1e-5)
    # Hand case: N(0, 1) and N(2, 1) in equal parts have mean 1 and variance 1 + 1 = 2.
    mixed = pool_stats(
        (torch.zeros(1, 1), torch.ones(1, 1)), (torch.full((1, 1), 2.0), torch.ones(1, 1)), 0.5
    )
    assert float(mixed[0]) == 1.0 and float(mixed[1]) == 2.0
    frame = content_stats(b, "wct")
    assert pool_stats(content_stats(a, "wct"), frame, 0.0)[1].equal(frame[1])


def test_exposure_ratio_finds_a_global_gain_despite_motion() -> None:
    scene = _smooth(40, 48, seed=6)
    before, after = (
        scene[:, :, :40],
        scene[:, :, 3:43] * torch.tensor([1.1, 1.05, 0.9])[:, None, None],
    )
    assert torch.allclose(exposure_ratio(after, after / 1.2), torch.full((3,), 1.2), atol=1e-4)
    assert torch.allclose(exposure_ratio(after, before), torch.tensor([1.1, 1.05, 0.9]), atol=0.03)
    black = torch.zeros(3, 8, 8)
    assert exposure_ratio(black, black).equal(torch.ones(3))  # nothing usable: gain 1


# ---------------------------------------------------------------------------------------------
# ClipStylizer
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("variant", ["mean_std", "wct", "paper"])
def test_unsmoothed_clip_mode_equals_the_model(
    tiny_encoder: VGGEncoder, variant: FAVariant, residual: bool
) -> None:
    config = ModelConfig(
        arch="custom", widths=(4, 8, 8, 16), depths=(1, 1, 2, 1), fa=variant, residual=residual
    )
    torch.manual_seed(0)
    model = PhotoStylizer(config, tiny_encoder).eval()
    fake = SimpleNamespace(model=model, device=torch.device("cpu"), dtype=torch.float32)
    style = _rand(3, 24, 40, seed=7)
    bare = ClipStylizer(fake, style, ClipOptions(smoothing=0.0, deflicker=False, upsample=CHANGE))  # type: ignore[arg-type]
    for t, frame in enumerate(_flicker_clip(3, 32)):
        expected = model(frame[None], style[None]).image[0].clamp(0, 1)
        assert torch.allclose(bare(frame), expected, atol=1e-5), t


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_per_frame_mode_equals_stylizer_stylize(
    tiny_stylizer_files: tuple[Path, Path], dtype: torch.dtype
) -> None:
    weights, encoder = tiny_stylizer_files
    stylizer = Stylizer(weights, encoder_weights=encoder, device="cpu", dtype=dtype)
    style = _rand(3, 40, 30, seed=8)
    clip = ClipStylizer(stylizer, style, ClipOptions(per_frame=True, max_size=24, upsample=GUIDED))
    for frame in _flicker_clip(3, 32):
        expected = stylizer.stylize(
            frame, style, options=StylizeOptions(max_size=24, upsample=GUIDED)
        )
        out = clip(frame)
        assert out.shape == frame.shape and out.dtype == torch.float32
        assert torch.allclose(out, expected, atol=1e-6)  # bfloat16 too: resizing stays float32


@pytest.mark.parametrize("per_frame", [False, True])
def test_the_style_is_encoded_once_per_clip(stylizer: Stylizer, per_frame: bool) -> None:
    sizes: list[tuple[int, ...]] = []
    hook = stylizer.model.encoder.register_forward_hook(
        lambda _m, inputs, _out: sizes.append(tuple(inputs[0].shape))
    )
    try:
        style = _rand(3, 40, 30, seed=8)
        clip = ClipStylizer(stylizer, style, ClipOptions(per_frame=per_frame, upsample=CHANGE))
        for frame in _flicker_clip(4, 32):
            clip(frame)
    finally:
        hook.remove()
    assert sizes == [(1, 3, 40, 30)] + [(1, 3, 32, 32)] * 4  # the style once, then each frame


def test_clip_mode_flickers_less_than_per_frame(shipped: Stylizer) -> None:
    frames, style = _flicker_clip(6, 48), _smooth(40, 40, seed=9)

    def flicker(options: ClipOptions) -> float:
        clip = ClipStylizer(shipped, style, options)
        return flicker_ratio([clip(f) for f in frames], frames)

    per_frame = flicker(ClipOptions(per_frame=True, upsample=CHANGE))
    stable = flicker(ClipOptions(upsample=CHANGE))
    no_deflicker = flicker(ClipOptions(deflicker=False, upsample=CHANGE))
    assert stable < per_frame
    # Pooled statistics alone would let the exposure flicker through (per-frame ones cancel it).
    assert no_deflicker > per_frame


def test_smoothing_reaches_back_and_a_scene_cut_starts_afresh(stylizer: Stylizer) -> None:
    frames = _flicker_clip(4, 32)
    style = _rand(3, 24, 24, seed=10)
    other = 1.0 - frames[0]  # a different shot: mean change far above scene_cut

    def run(sequence: list[torch.Tensor]) -> torch.Tensor:
        clip = ClipStylizer(stylizer, style, ClipOptions(upsample=CHANGE))
        return [clip(f) for f in sequence][-1]

    assert not torch.allclose(run(frames[:3]), run(frames[2:3]), atol=1e-4)  # history matters
    assert torch.equal(run([*frames[:3], other]), run([other]))  # ...but not across a cut


def test_alpha_zero_returns_the_frames(tiny_encoder: VGGEncoder) -> None:
    config = ModelConfig(arch="custom", widths=(4, 8, 8, 16), depths=(1, 1, 2, 1), residual=True)
    fake = SimpleNamespace(
        model=PhotoStylizer(config, tiny_encoder).eval(),
        device=torch.device("cpu"),
        dtype=torch.float32,
    )
    clip = ClipStylizer(fake, _rand(3, 24, 24), ClipOptions(alpha=0.0, upsample=CHANGE))  # type: ignore[arg-type]
    for frame in _flicker_clip(3, 32):
        assert torch.allclose(clip(frame), frame, atol=1e-6)


def test_clip_stylizer_rejects_bad_frames_and_options(stylizer: Stylizer) -> None:
    clip = ClipStylizer(stylizer, _rand(3, 24, 24))
    clip(_rand(3, 32, 32))
    with pytest.raises(ValueError, match="frame 1 is 40x32 but the clip is 32x32"):
        clip(_rand(3, 32, 40))
    with pytest.raises(ValueError, match="float"):
        clip(torch.zeros(3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="style"):
        ClipStylizer(stylizer, _rand(1, 24, 24))
    for bad in (
        {"smoothing": 1.0},
        {"smoothing": -0.1},
        {"alpha": 2.0},
        {"max_size": 8},
        {"scene_cut": 0.0},
        {"upsample": "nearest"},
    ):
        with pytest.raises(ValueError):
            ClipOptions(**bad)  # type: ignore[arg-type]


def test_quantile_needs_per_frame_mode(tiny_stylizer_files: tuple[Path, Path]) -> None:
    weights, encoder = tiny_stylizer_files
    quantile = Stylizer(weights, encoder_weights=encoder, device="cpu", fa="quantile")
    with pytest.raises(ValueError, match="per-frame mode with FA 'quantile'"):
        ClipStylizer(quantile, _rand(3, 24, 24))
    out = ClipStylizer(quantile, _rand(3, 24, 24), ClipOptions(per_frame=True))(_rand(3, 32, 32))
    assert out.shape == (3, 32, 32)


# ---------------------------------------------------------------------------------------------
# Reading and writing clips
# ---------------------------------------------------------------------------------------------


def test_folder_round_trip_keeps_names_and_reports_flicker(
    tmp_path: Path, stylizer: Stylizer
) -> None:
    frames = _flicker_clip(5, 32)
    names = ["b.png", "a.jpg", "c.PNG", "d.bmp", "e.png"]
    src = _write_frames(tmp_path / "in", frames, names)
    (src / "notes.txt").write_text("not a frame")
    seen: list[tuple[int, int | None]] = []
    result = stylize_video(
        stylizer, src, tmp_path / "out", _rand(3, 24, 24), progress=lambda d, n: seen.append((d, n))
    )
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["a.png", "b.png", "c.png", "d.png", "e.png"]
    assert result.frames == 5 and seen[-1] == (5, 5)
    order = ["a.jpg", "b.png", "c.PNG", "d.bmp", "e.png"]  # sorted by name
    inputs = [load_image(src / n) for n in order]
    outputs = [load_image(tmp_path / "out" / (Path(n).stem + ".png")) for n in order]
    assert all(o.shape == i.shape for o, i in zip(outputs, inputs, strict=True))
    assert result.flicker == pytest.approx(flicker_ratio(outputs, inputs), rel=0.02)
    assert _leftovers(tmp_path) == []


def test_video_round_trip(tmp_path: Path, stylizer: Stylizer) -> None:
    frames = _flicker_clip(6, 32)
    src = _write_mp4(tmp_path / "in.mp4", frames, fps=12)
    clip = open_clip(src)
    assert clip.fps == 12 and clip.count in (None, 6)
    result = stylize_video(stylizer, src, tmp_path / "out.mp4", _rand(3, 24, 24))
    assert result.frames == 6
    with av.open(str(tmp_path / "out.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == 12
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(decoded) == 6 and decoded[0].shape == (32, 32, 3)
    clip_stylizer = ClipStylizer(stylizer, _rand(3, 24, 24))
    expected = [clip_stylizer(frame) for _, frame in open_clip(src).frames()]
    for want, got in zip(expected, decoded, strict=True):
        back = torch.from_numpy(got).permute(2, 0, 1).float() / 255
        assert frame_change(luma(want), luma(back)) < 0.02  # lossy codec; chroma is 4:2:0
    # video -> folder: numbered frames
    result = stylize_video(stylizer, src, tmp_path / "frames", _rand(3, 24, 24), fps=5)
    assert sorted(p.name for p in (tmp_path / "frames").iterdir())[:2] == [
        "000001.png",
        "000002.png",
    ]
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("codec", ["libx264", "mpeg4"])
def test_writer_round_trip_keeps_colours_and_frame_rate(tmp_path: Path, codec: str) -> None:
    frames = [_smooth(32, 48, seed=t) for t in range(3)]
    with VideoWriter(tmp_path / "a.mkv", Fraction(30000, 1001), codec) as writer:
        for frame in frames:
            writer.write("", frame)
    clip = open_clip(tmp_path / "a.mkv")
    assert clip.fps == Fraction(30000, 1001)
    decoded = [frame for _, frame in clip.frames()]
    assert len(decoded) == 3
    for frame, back in zip(frames, decoded, strict=True):
        assert frame_change(frame, back) < 0.02  # lossy codec, 4:2:0 chroma
        assert frame_change(frame, frame.flip(0)) > 0.05  # a channel mix-up would show


def test_writer_refuses_odd_sizes_and_leaves_nothing(tmp_path: Path) -> None:
    with (
        pytest.raises(VideoError, match="even width and height"),
        VideoWriter(tmp_path / "b.mp4", Fraction(25)) as writer,
    ):
        writer.write("", torch.zeros(3, 16, 15))
    assert not (tmp_path / "b.mp4").exists() and _leftovers(tmp_path) == []


def test_failure_mid_clip_leaves_no_output(tmp_path: Path, stylizer: Stylizer) -> None:
    frames = _flicker_clip(4, 32)
    src = _write_frames(tmp_path / "in", frames)
    (src / "f002.png").write_bytes(b"not a png")
    for out in (tmp_path / "out", tmp_path / "out.mp4"):
        with pytest.raises(VideoError, match=r"f002\.png"):
            stylize_video(stylizer, src, out, _rand(3, 24, 24))
        assert not out.exists()
    assert _leftovers(tmp_path) == []


def test_bad_inputs_and_outputs(tmp_path: Path, stylizer: Stylizer) -> None:
    style = _rand(3, 24, 24)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VideoError, match="no image frames"):
        open_clip(empty)
    with pytest.raises(VideoError, match="no such file"):
        open_clip(tmp_path / "missing.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(VideoError, match="not a readable video"):
        open_clip(tmp_path / "junk.mp4")
    clash = _write_frames(tmp_path / "clash", _flicker_clip(2, 32), ["a.png", "a.jpg"])
    with pytest.raises(VideoError, match="share a name"):
        open_clip(clash)
    sizes = _write_frames(tmp_path / "sizes", [_rand(3, 32, 32), _rand(3, 32, 40)])
    with pytest.raises(VideoError, match=r"f001\.png is 40x32, the clip started at 32x32"):
        stylize_video(stylizer, sizes, tmp_path / "o1", style)
    assert not (tmp_path / "o1").exists()
    clip = open_clip(sizes)
    with pytest.raises(VideoError, match="already exists"):
        check_output(clash, clip)
    with pytest.raises(VideoError, match="folder of frames or a video"):
        check_output(tmp_path / "out.png", clip)
    with pytest.raises(VideoError, match="overwrite an input"):
        check_output(
            tmp_path / "junk.mp4",
            open_clip(_write_mp4(tmp_path / "v.mp4", _flicker_clip(2, 32))),
            (tmp_path / "junk.mp4",),
        )


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def test_cli_folder_and_video(
    tmp_path: Path, model_args: list[str], style_file: Path, capsys: Capsys
) -> None:
    src = _write_frames(tmp_path / "in", _flicker_clip(4, 32))
    (tmp_path / "out").mkdir()  # an empty folder is fine
    code = cli.main(
        ["stylize-video", str(src), str(tmp_path / "out"), "--style", str(style_file), *model_args]
    )
    assert code == 0
    assert "wrote 4 frames" in capsys.readouterr().out
    assert len(list((tmp_path / "out").iterdir())) == 4
    argv = [
        "stylize-video",
        str(src),
        str(tmp_path / "o.mp4"),
        "--style",
        str(style_file),
        "--per-frame",
        "--fps",
        "10",
        *model_args,
    ]
    assert cli.main(argv) == 0
    assert "(per-frame); flicker" in capsys.readouterr().out
    assert open_clip(tmp_path / "o.mp4").fps == 10


def test_cli_bad_input_exits_2(
    tmp_path: Path, model_args: list[str], style_file: Path, capsys: Capsys
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "junk.mp4").write_bytes(b"junk")
    bad_frame = _write_frames(tmp_path / "bad", _flicker_clip(3, 32))
    (bad_frame / "f001.png").write_bytes(b"junk")
    sizes = _write_frames(tmp_path / "sizes", [_rand(3, 32, 32), _rand(3, 32, 40)])
    good = _write_frames(tmp_path / "good", _flicker_clip(2, 32))
    cases = {
        "no image frames": [str(empty), str(tmp_path / "o1")],
        "not a readable video": [str(tmp_path / "junk.mp4"), str(tmp_path / "o2.mp4")],
        "f001.png": [str(bad_frame), str(tmp_path / "o3")],
        "the clip started at": [str(sizes), str(tmp_path / "o4.mp4")],
        "already exists": [str(good), str(bad_frame)],
        "smoothing": [str(good), str(tmp_path / "o5"), "--smoothing", "1.5"],
        "--fps must be positive": [str(good), str(tmp_path / "o5"), "--fps", "0"],
    }
    for message, args in cases.items():
        assert cli.main(["stylize-video", *args, "--style", str(style_file), *model_args]) == 2, (
            message
        )
        assert message in _one_line_error(capsys)
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 6))
    assert not (tmp_path / "o2.mp4").exists() and not (tmp_path / "o4.mp4").exists()
    assert cli.main(["stylize-video", str(good), str(tmp_path / "o6")]) == 2  # no --style
    assert "--style" in capsys.readouterr().err


def test_video_files_without_pyav_are_a_one_line_error(
    tmp_path: Path,
    model_args: list[str],
    style_file: Path,
    capsys: Capsys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # import av raises ImportError
    (tmp_path / "clip.mp4").write_bytes(b"whatever")
    good = _write_frames(tmp_path / "good", _flicker_clip(2, 32))
    for args in ([tmp_path / "clip.mp4", tmp_path / "o1"], [good, tmp_path / "o2.mp4"]):
        argv = ["stylize-video", *map(str, args), "--style", str(style_file), *model_args]
        assert cli.main(argv) == 2
        assert "pip install 'photostyle[video]'" in _one_line_error(capsys)
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2.mp4").exists()
    assert (
        cli.main(
            [
                "stylize-video",
                str(good),
                str(tmp_path / "o3"),
                "--style",
                str(style_file),
                *model_args,
            ]
        )
        == 0
    )  # folders of frames need no PyAV


def test_frames_are_read_in_natural_order(tmp_path: Path) -> None:
    for i in (10, 2, 1):
        Image.fromarray(np.full((16, 16, 3), i * 20, np.uint8)).save(tmp_path / f"frame_{i}.png")
    clip = open_clip(tmp_path)
    assert [f.name for f in clip.files] == ["frame_1.png", "frame_2.png", "frame_10.png"]
