"""Tests of the COCO listing: one class per image, its largest-area category."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from photostyle.data.coco import UNANNOTATED, coco_images


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def _instances() -> dict:
    return {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 20, "height": 20},
            {"id": 2, "file_name": "b.jpg"},
            {"id": 3, "file_name": "c.jpg"},
            {"id": 4, "file_name": "d.jpg"},  # no annotation
            {"id": 5, "file_name": "e.jpg"},
        ],
        "categories": [
            {"id": 18, "name": "dog"},
            {"id": 1, "name": "person"},
            {"id": 3, "name": "car"},
            {"id": 90, "name": "toothbrush"},  # nobody's largest: not a class
        ],
        "annotations": [
            # a: two small persons (30 + 30) beat one larger dog (50): total area per category
            {"image_id": 1, "category_id": 1, "area": 30.0},
            {"image_id": 1, "category_id": 1, "area": 30.0},
            {"image_id": 1, "category_id": 18, "area": 50.0},
            {"image_id": 1, "category_id": 90, "area": 5.0},
            {"image_id": 2, "category_id": 18, "area": 10.0},
            # c: a tie between car (3) and dog (18) goes to the smaller id
            {"image_id": 3, "category_id": 18, "area": 7.0},
            {"image_id": 3, "category_id": 3, "area": 7.0},
            {"image_id": 5, "category_id": 1, "area": 1.0},
        ],
    }


def test_classes_are_the_largest_area_category(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    ann = _write(tmp_path / "instances.json", _instances())
    with caplog.at_level(logging.INFO, logger="photostyle.data.coco"):
        images = coco_images(tmp_path, ann)
    labels = images.labels.tolist()
    named = {p.name: images.classes[c] for p, c in zip(images.paths, labels, strict=True)}
    assert named == {
        "a.jpg": "person",
        "b.jpg": "dog",
        "c.jpg": "car",
        "d.jpg": UNANNOTATED,
        "e.jpg": "person",
    }
    assert images.classes == ["person", "car", "dog", UNANNOTATED]  # category id order
    assert [p.name for p in images.paths] == ["a.jpg", "e.jpg", "c.jpg", "b.jpg", "d.jpg"]
    assert images.paths[0] == tmp_path / "a.jpg"
    assert "1 COCO images have no annotation" in caplog.text


def test_unannotated_images_can_be_skipped(tmp_path: Path):
    ann = _write(tmp_path / "instances.json", _instances())
    images = coco_images(tmp_path, ann, unannotated="skip")
    assert "d.jpg" not in [p.name for p in images.paths]
    assert UNANNOTATED not in images.classes
    assert len(images) == 4


def test_unknown_category_ids_get_a_name(tmp_path: Path):
    data = _instances()
    data["annotations"].append({"image_id": 4, "category_id": 77, "area": 3.0})
    images = coco_images(tmp_path, _write(tmp_path / "i.json", data))
    assert "category 77" in images.classes


@pytest.mark.parametrize(
    "content",
    ['{"images": [{"id": 1}]}', "not json", '{"annotations": []}', "[1, 2]", '{"images": "x"}'],
)
def test_bad_files_raise_value_error(tmp_path: Path, content: str):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match="not a COCO instances file"):
        coco_images(tmp_path, path)


def test_empty_and_missing(tmp_path: Path):
    empty = _write(tmp_path / "empty.json", {"images": [], "annotations": []})
    with pytest.raises(ValueError, match="no images"):
        coco_images(tmp_path, empty)
    only_unannotated = _write(tmp_path / "u.json", {"images": [{"id": 1, "file_name": "x.jpg"}]})
    with pytest.raises(ValueError, match="no annotated image"):
        coco_images(tmp_path, only_unannotated, unannotated="skip")
    with pytest.raises(FileNotFoundError):
        coco_images(tmp_path / "nope", empty)
    with pytest.raises(FileNotFoundError):
        coco_images(tmp_path, tmp_path / "nope.json")
