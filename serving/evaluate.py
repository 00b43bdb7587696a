"""Evaluation report: metrics.json, a per-class report and a confusion-matrix PNG (Pillow)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score


def metrics(y_true: np.ndarray, y_pred: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    labels = list(range(len(names)))
    report = classification_report(
        y_true, y_pred, labels=labels, target_names=list(names), output_dict=True,
        zero_division=0,
    )
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro",
                                   zero_division=0)),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=labels, average="weighted",
                                      zero_division=0)),
        "n_test": len(y_true),
        "per_class": {name: report[name] for name in names},
    }


def confusion_png(y_true: np.ndarray, y_pred: np.ndarray, names: Sequence[str],
                  path: Path, cell: int = 28) -> Path:
    """A heat map of row-normalised counts, with counts in the cells and class names."""
    matrix = confusion_matrix(y_true, y_pred, labels=list(range(len(names))))
    n = len(names)
    font = ImageFont.load_default()
    margin = 8 + 7 * max(len(s) for s in names)
    size = (margin + n * cell + 10, margin + n * cell + 30)
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    rows = matrix.sum(axis=1, keepdims=True).clip(min=1)
    share = matrix / rows
    for i in range(n):
        draw.text((4, margin + i * cell + cell // 3), names[i], fill="black", font=font)
        for j in range(n):
            shade = int(255 * (1 - share[i, j]))
            x, y = margin + j * cell, margin + i * cell
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=(shade, shade, 255),
                           outline=(220, 220, 220))
            if matrix[i, j]:
                colour = "white" if share[i, j] > 0.5 else "black"
                draw.text((x + 3, y + cell // 3), str(matrix[i, j]), fill=colour, font=font)
    # Column labels: the class index (names are on the rows, same order).
    for j in range(n):
        draw.text((margin + j * cell + 8, margin - 14), str(j), fill="black", font=font)
    draw.text((4, size[1] - 20), "rows: true class, columns: predicted class (same order)",
              fill="black", font=font)
    image.save(path, format="PNG")
    return path


def write_report(y_true: np.ndarray, y_pred: np.ndarray, names: Sequence[str],
                 out_dir: Path) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    result = metrics(y_true, y_pred, names)
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=1) + "\n")
    text = classification_report(y_true, y_pred, labels=list(range(len(names))),
                                 target_names=list(names), digits=4, zero_division=0)
    (out_dir / "classification_report.txt").write_text(text)
    confusion_png(y_true, y_pred, names, out_dir / "confusion_matrix.png")
    return result
