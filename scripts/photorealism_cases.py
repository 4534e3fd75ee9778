"""Print the photorealism score of hand-made edits of the bundled demo photo (docs/metrics.md).

Each case edits ``photostyle/assets/demo_content.jpg`` (400x600, so no resizing) and scores it
with :func:`photostyle.eval.metrics.photorealism`: colour and tone changes should score high,
added noise and texture low. Run: ``python scripts/photorealism_cases.py`` (a few seconds).
"""

from __future__ import annotations

from importlib import resources

import torch

from photostyle.eval.metrics import photorealism
from photostyle.io import load_image
from photostyle.upsample import box_filter


def cases(content: torch.Tensor, style: torch.Tensor) -> dict[str, torch.Tensor]:
    """Edits of ``content`` (3, H, W) by name; ``style`` has the content's size."""
    g = torch.Generator().manual_seed(0)
    matrix = torch.tensor([[0.8, 0.1, 0.05], [0.1, 0.7, 0.1], [0.0, 0.2, 0.7]])
    h, w = content.shape[-2:]
    yy, xx = torch.meshgrid(torch.arange(float(h)), torch.arange(float(w)), indexing="ij")
    offset = torch.tensor([0.05, 0.0, 0.08])[:, None, None]
    return {
        "unchanged": content,
        "global 3x3 colour matrix + offset": torch.einsum("ij,jhw->ihw", matrix, content) + offset,
        "gamma 0.6": content**0.6,
        "30% of the style photo blended in": 0.7 * content + 0.3 * style,
        "the style's detail layer added (x - box5(x))": content
        + (style - box_filter(style[None], 2)[0]),
        "Gaussian noise, std 0.02": content + 0.02 * torch.randn(content.shape, generator=g),
        "Gaussian noise, std 0.05": content + 0.05 * torch.randn(content.shape, generator=g),
        "stripes, amplitude 0.08, period 5 px": content
        + 0.08 * torch.sin(2 * torch.pi * (xx + 0.5 * yy) / 5),
    }


def main() -> None:
    """Print one markdown table row per case."""
    assets = resources.files("photostyle") / "assets"
    content = load_image(assets / "demo_content.jpg")
    style = load_image(assets / "demo_style.jpg")
    style = torch.nn.functional.interpolate(style[None], size=content.shape[-2:], mode="area")[0]
    for name, out in cases(content, style).items():
        print(f"| {name} | {photorealism(out.clamp(0, 1), content):.1f} |")


if __name__ == "__main__":
    main()
