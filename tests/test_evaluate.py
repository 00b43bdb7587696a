"""The training report's confusion matrix: an SVG written as text (no imaging library)."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from serving.evaluate import confusion_svg, write_report

SVG = "{http://www.w3.org/2000/svg}"


def cells(path: Path) -> tuple[list[ElementTree.Element], list[str], list[str]]:
    """The cells' rectangles, every text, and the counts written in cells (the only texts
    with a fill colour), in row order."""
    root = ElementTree.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    rects = root.findall(f"{SVG}rect")[1:]  # the first is the white background
    texts = root.findall(f"{SVG}text")
    counts = [t.text or "" for t in texts if t.get("fill")]
    return rects, [t.text or "" for t in texts], counts


def test_cells_counts_and_shades(tmp_path: Path) -> None:
    names = ["alt.atheism", "comp.graphics", "sci.space"]
    y_true = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    y_pred = np.array([0, 0, 1, 1, 1, 2, 2, 2, 0])
    rects, texts, counts = cells(confusion_svg(y_true, y_pred, names, tmp_path / "m.svg"))
    assert len(rects) == 9
    fills = [r.get("fill") for r in rects]
    assert fills[0] == "rgb(85,85,255)"  # row 0: 2 of 3 right
    assert fills[1] == "rgb(170,170,255)"  # 1 of 3
    assert fills[2] == "rgb(255,255,255)"  # none
    assert fills[4] == "rgb(0,0,255)"  # row 1: all right
    assert fills[6] == "rgb(191,191,255)"  # row 2: 1 of 4 predicted as class 0
    for name in names:
        assert name in texts
    # matrix [[2, 1, 0], [0, 2, 0], [1, 0, 3]]: non-zero counts in row order, zeros left blank
    assert counts == ["2", "1", "2", "1", "3"]


def test_names_are_escaped_and_empty_rows_do_not_divide_by_zero(tmp_path: Path) -> None:
    names = ["a<b & \"c\"", "d>e"]
    y = np.array([0, 0])
    rects, texts, _ = cells(confusion_svg(y, y, names, tmp_path / "m.svg"))
    assert names[0] in texts and names[1] in texts
    assert [r.get("fill") for r in rects] == ["rgb(0,0,255)", "rgb(255,255,255)",
                                              "rgb(255,255,255)", "rgb(255,255,255)"]


def test_write_report_files(tmp_path: Path) -> None:
    names = ["x", "y"]
    result = write_report(np.array([0, 1, 1]), np.array([0, 1, 0]), names, tmp_path / "ev")
    assert result["n_test"] == 3
    assert sorted(p.name for p in (tmp_path / "ev").iterdir()) == [
        "classification_report.txt", "confusion_matrix.svg", "metrics.json"]
