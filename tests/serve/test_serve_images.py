"""Upload decoding, the alpha blend and result encoding of the web server."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from photostyle.io import ImageError
from photostyle.serve.images import OUTPUT_FORMATS, blend, decode_inputs, encode_image, preview


def test_decode_names_the_field_and_cleans_its_folder(
    tmp_path: Path, make_png: Callable[..., bytes]
) -> None:
    uploads = {"content": make_png(), "style": b"not an image at all"}
    with pytest.raises(ImageError) as err:
        decode_inputs(uploads, max_pixels=10**6, temp_dir=tmp_path)
    assert str(err.value) == "style: not a recognised image file"
    assert list(tmp_path.iterdir()) == []  # the request's temporary folder is gone


def test_decode_reads_photos_and_masks(tmp_path: Path, make_png: Callable[..., bytes]) -> None:
    mask = Image.new("RGB", (48, 40), (0, 0, 255))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    uploads = {
        "content": make_png(),
        "style": make_png(20, 30, seed=1),
        "content_mask": buffer.getvalue(),
        "style_mask": make_png(20, 30, seed=2),
    }
    inputs = decode_inputs(uploads, max_pixels=10**6, temp_dir=tmp_path)
    assert inputs.content.shape == (3, 40, 48) and inputs.style.shape == (3, 20, 30)
    assert inputs.content_mask is not None and inputs.style_mask is not None
    assert inputs.content_mask.shape == (40, 48) and bool((inputs.content_mask == 0).all())
    assert inputs.style_mask.shape == (20, 30)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("uploads", "message"),
    [
        ({"style": b"x"}, "content: missing"),
        ({"content": b"x", "style": b"x", "style_mask": b"x"}, "give both content_mask"),
    ],
)
def test_decode_refuses_incomplete_uploads(uploads: dict[str, bytes], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_inputs(uploads, max_pixels=10**6)


def test_decode_checks_the_pixel_limit_from_the_header(make_png: Callable[..., bytes]) -> None:
    with pytest.raises(ImageError, match=r"^content: image is 48x40 \(1,920 pixels\), more than"):
        decode_inputs({"content": make_png(), "style": make_png()}, max_pixels=1000)


def test_blend_ends_are_exact_and_the_middle_is_linear() -> None:
    torch.manual_seed(0)
    content, stylized = torch.rand(3, 8, 9), torch.rand(3, 8, 9)
    assert torch.equal(blend(content, stylized, 0.0), content)
    assert torch.equal(blend(content, stylized, 1.0), stylized)
    half = blend(content, stylized, 0.5)
    torch.testing.assert_close(half, (content + stylized) / 2)
    with pytest.raises(ValueError, match="alpha"):
        blend(content, stylized, 1.5)
    with pytest.raises(ValueError, match="shape"):
        blend(content, stylized[:, :4], 0.5)


def test_preview_of_blend_is_blend_of_previews() -> None:
    torch.manual_seed(1)
    content, stylized = torch.rand(3, 300, 200), torch.rand(3, 300, 200)
    small = preview(content, 64)
    assert small.shape == (3, 64, 43)
    torch.testing.assert_close(
        preview(blend(content, stylized, 0.3), 64),
        blend(small, preview(stylized, 64), 0.3),
    )
    assert preview(content, 1000).shape == content.shape


@pytest.mark.parametrize("fmt", list(OUTPUT_FORMATS))
def test_encode_formats_carry_no_metadata(fmt: str) -> None:
    data = encode_image(torch.rand(3, 20, 24), fmt)
    img = Image.open(io.BytesIO(data))
    assert img.format == OUTPUT_FORMATS[fmt].pillow and img.size == (24, 20)
    assert len(img.getexif()) == 0


def test_encode_png_is_lossless() -> None:
    image = torch.randint(0, 256, (3, 10, 12)).float() / 255
    data = encode_image(image, "png")
    back = torch.from_numpy(np.array(Image.open(io.BytesIO(data)))).permute(2, 0, 1)
    assert torch.equal(back.float() / 255, image)
    with pytest.raises(ValueError, match="format: unknown 'gif'"):
        encode_image(image, "gif")


def test_blend_is_the_default_models_alpha_except_where_clamped() -> None:
    """The server's strength (blend of the alpha-1 result) against ``stylize(alpha=a)``.

    The default model is linear in alpha before its clamp, and the guided upsampler carries the
    change linearly, so the two differ only where the alpha-1 result was clamped to [0, 1].
    """
    from importlib import resources

    from photostyle.api import StylizeOptions, Stylizer
    from photostyle.io import load_image

    assets = resources.files("photostyle") / "assets"
    content = load_image(str(assets / "demo_content.jpg"))[:, ::4, ::4].contiguous()  # 100x150
    style = load_image(str(assets / "demo_style.jpg"))
    model = Stylizer(device="cpu")
    with torch.no_grad():
        one = model.stylize(content, style, options=StylizeOptions(max_size=64))
        clamped = ((one <= 0) | (one >= 1)).any(dim=0)
        assert 0 < clamped.float().mean() < 0.5  # the comparison below covers both kinds
        for alpha in (0.25, 0.5, 0.75):
            direct = model.stylize(content, style, options=StylizeOptions(alpha=alpha, max_size=64))
            diff = (blend(content, one, alpha) - direct).abs().amax(dim=0) * 255
            assert diff[~clamped].max() <= 1.0, alpha
