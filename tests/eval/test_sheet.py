"""Tests of photostyle.eval.sheet: contact sheets of results."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from photostyle.eval.sheet import contact_sheet, write_sheet
from photostyle.io import ImageError, load_image


def test_sheet_tiles_rows_at_one_height_and_is_written_atomically(tmp_path: Path) -> None:
    rows = [[torch.rand(3, 40, 80), torch.rand(3, 20, 20)], [torch.rand(3, 10, 30)]]
    sheet = contact_sheet(rows, height=20, labels=["a", "b"], gap=2)
    assert sheet.size == (40 + 2 + 20, 16 + 20 + 2 + 20)  # widest row; label strip + 2 rows
    out = write_sheet(rows, tmp_path / "sheet.png", labels=["a", "b"])
    assert load_image(out).shape == (3, 16 + 160 + 4 + 160, 320 + 4 + 160)
    with pytest.raises(ImageError):
        write_sheet(rows, out, protect=[out])  # never onto a protected file
    with pytest.raises(ValueError, match="non-empty row"):
        contact_sheet([[]])
