"""MS-COCO as a labelled image list (the paper trains on COCO 2014 train, Sec. IV).

Eqs. (10)-(11) need one class per image; a COCO image has many annotated objects, so its class is
the category covering the largest total area in the instances file (the sum of the ``area`` of its
annotations of that category; ties go to the smaller category id). Images without any annotation
(about 1% of train2014) get the class ``UNANNOTATED`` or are left out (``unannotated="skip"``).
The annotations file is read with the standard library only.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Literal

import torch

from photostyle.data.datasets import ImageList

logger = logging.getLogger(__name__)

UNANNOTATED = "(no annotation)"  # class of images without annotations
Unannotated = Literal["class", "skip"]


def coco_images(
    images_dir: str | Path, annotations: str | Path, *, unannotated: Unannotated = "class"
) -> ImageList:
    """List the images of a COCO instances file with one class each (largest-area category).

    Args:
        images_dir: folder of the images (e.g. ``train2014/``); ``file_name`` is relative to it.
        annotations: instances json (e.g. ``annotations/instances_train2014.json``).
        unannotated: ``"class"`` puts images without annotations in the class ``UNANNOTATED``;
            ``"skip"`` leaves them out.

    Returns:
        Paths sorted by class (category id order, ``UNANNOTATED`` last) then file name; classes
        are the category names that are some image's class. Files are not opened here: a listed
        file that is missing or unreadable is skipped (and logged) when the index is built.

    Raises:
        FileNotFoundError: ``images_dir`` or ``annotations`` does not exist.
        ValueError: the json is not a COCO instances file, or lists no image.
    """
    images_dir, annotations = Path(images_dir), Path(annotations)
    if not images_dir.is_dir():
        raise FileNotFoundError(f"{images_dir}: not a directory")
    if not annotations.is_file():
        raise FileNotFoundError(f"{annotations}: no such file")
    try:
        data = json.loads(annotations.read_text(encoding="utf-8"))
        images = {int(im["id"]): str(im["file_name"]) for im in data["images"]}
        names = {int(cat["id"]): str(cat["name"]) for cat in data.get("categories", [])}
        area: dict[int, dict[int, float]] = {}  # image id -> category id -> total area
        for ann in data.get("annotations", []):
            per_image = area.setdefault(int(ann["image_id"]), {})
            cat = int(ann["category_id"])
            per_image[cat] = per_image.get(cat, 0.0) + float(ann.get("area", 0.0))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{annotations}: not a COCO instances file ({err!r})") from err
    if not images:
        raise ValueError(f"{annotations}: lists no images")
    unknown = {c for per_image in area.values() for c in per_image} - names.keys()
    names.update({c: f"category {c}" for c in unknown})
    groups: dict[int, list[str]] = {}  # category id (-1: unannotated) -> file names
    for image_id, file_name in images.items():
        per_image = area.get(image_id, {})
        if per_image:
            largest = min(per_image, key=lambda c: (-per_image[c], c))  # ties: smaller id
            groups.setdefault(largest, []).append(file_name)
        elif unannotated == "class":
            groups.setdefault(-1, []).append(file_name)
    skipped = sum(1 for i in images if not area.get(i))
    if skipped:
        what = "left out" if unannotated == "skip" else f"in class {UNANNOTATED!r}"
        logger.info("%d COCO images have no annotation: %s", skipped, what)
    order = sorted(c for c in groups if c >= 0) + ([-1] if -1 in groups else [])
    paths: list[Path] = []
    labels: list[int] = []
    classes: list[str] = []
    for cat in order:
        classes.append(names[cat] if cat >= 0 else UNANNOTATED)
        files = sorted(groups[cat])
        paths.extend(images_dir / f for f in files)
        labels.extend([len(classes) - 1] * len(files))
    if not paths:
        raise ValueError(f"{annotations}: no annotated image (and unannotated='skip')")
    return ImageList(paths, torch.tensor(labels, dtype=torch.long), classes)


__all__ = ["UNANNOTATED", "coco_images"]
