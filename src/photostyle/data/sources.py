"""Where training images come from: an ImageFolder, MS-COCO, or an unlabelled folder."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from photostyle.data.coco import coco_images
from photostyle.data.datasets import ImageList, image_folder, unlabelled_folder

SourceKind = Literal["folder", "coco", "unlabelled"]
SOURCE_KINDS: tuple[SourceKind, ...] = ("folder", "coco", "unlabelled")


@dataclass(frozen=True)
class DataSource:
    """A dataset root and how each image's class (``O(.)`` of Eqs. (10)-(11)) is found."""

    root: str  # image folder
    kind: SourceKind = "folder"  # folder: class = sub-folder; coco: largest-area category;
    # unlabelled: k-means on the perceptual embeddings
    annotations: str | None = None  # COCO instances json (kind "coco")
    clusters: int = 10  # number of k-means classes (kind "unlabelled")
    skip_unannotated: bool = False  # coco: leave out images without annotations (default: a class)

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise ValueError(f"unknown data kind {self.kind!r}; choose from {SOURCE_KINDS}")
        if (self.kind == "coco") != (self.annotations is not None):
            raise ValueError("COCO data needs an annotations file, and only COCO data takes one")
        if self.clusters < 1:
            raise ValueError(f"clusters must be >= 1, got {self.clusters}")

    def images(self) -> ImageList:
        """The image list (unlabelled: every label is -1).

        Raises:
            FileNotFoundError: the root (or annotations file) is missing or holds no images.
            ValueError: the annotations file is not a COCO instances file.
        """
        if self.kind == "coco":
            assert self.annotations is not None
            return coco_images(
                self.root,
                self.annotations,
                unannotated="skip" if self.skip_unannotated else "class",
            )
        if self.kind == "unlabelled":
            return unlabelled_folder(self.root)
        return image_folder(self.root)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataSource:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


__all__ = ["SOURCE_KINDS", "DataSource", "SourceKind"]
