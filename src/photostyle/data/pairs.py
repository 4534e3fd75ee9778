"""Folders of (content, style) pairs in the Deep Photo Style Transfer (DPST) layout.

The layout is::

    root/content/in1.png       content photos
    root/style/in1.png         style photo of each content photo, same file name
    root/content_mask/in1.png  optional DPST colour masks of the content photos
    root/style_mask/in1.png    optional DPST colour masks of the style photos
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pair:
    """One (content, style) pair of a DPST folder; file existence is checked only for masks."""

    name: str  # stem of the content file, e.g. "in1"; used to name outputs
    content: Path  # the content photo
    style: Path  # the style photo with the content's file name (may be missing)
    content_mask: Path | None  # content mask, None when masks are off or incomplete
    style_mask: Path | None  # style mask, None when masks are off or incomplete


def find_pairs(root: str | Path, use_masks: bool = True) -> list[Pair]:
    """List the pairs of a DPST folder, sorted by content file name.

    Every non-hidden file in ``root/content`` makes a pair with the file of the same name in
    ``root/style``; a style file that is missing or unreadable surfaces when the pair is loaded,
    so one bad pair does not stop a whole folder. Masks are used only when both
    ``content_mask/NAME`` and ``style_mask/NAME`` exist.

    Args:
        root: the folder holding ``content/`` and ``style/``.
        use_masks: False ignores ``content_mask/`` and ``style_mask/``.

    Returns:
        The pairs, at least one.

    Raises:
        ValueError: ``root`` lacks ``content/`` or ``style/``, ``content/`` holds no file, or two
            content files share a stem (``in1.jpg`` and ``in1.png``: their outputs would clash).
    """
    root = Path(root)
    content_dir, style_dir = root / "content", root / "style"
    if not content_dir.is_dir() or not style_dir.is_dir():
        raise ValueError(f"{root}: expected sub-folders content/ and style/")
    pairs: list[Pair] = []
    seen: dict[str, Path] = {}
    for content in sorted(p for p in content_dir.iterdir() if p.is_file()):
        if content.name.startswith("."):
            continue
        if content.stem in seen:
            raise ValueError(
                f"{content_dir}: {seen[content.stem].name} and {content.name} share the name "
                f"{content.stem!r}; rename one"
            )
        seen[content.stem] = content
        cm, sm = root / "content_mask" / content.name, root / "style_mask" / content.name
        has_masks = use_masks and cm.is_file() and sm.is_file()
        pairs.append(
            Pair(
                name=content.stem,
                content=content,
                style=style_dir / content.name,
                content_mask=cm if has_masks else None,
                style_mask=sm if has_masks else None,
            )
        )
    if not pairs:
        raise ValueError(f"{content_dir}: no content photos")
    return pairs


__all__ = ["Pair", "find_pairs"]
