"""Evaluation report: metrics.json, a per-class report and a confusion-matrix SVG.

The SVG is written as text (no imaging library in the image: Pillow was ~21 MB for this one
picture); any browser or image viewer renders it, and it stays readable as text in a diff."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
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


def confusion_svg(y_true: np.ndarray, y_pred: np.ndarray, names: Sequence[str],
                  path: Path, cell: int = 28) -> Path:
    """A heat map of row-normalised counts, with counts in the cells and class names."""
    matrix = confusion_matrix(y_true, y_pred, labels=list(range(len(names))))
    n = len(names)
    margin = 12 + 7 * max((len(s) for s in names), default=1)
    width, height = margin + n * cell + 10, margin + n * cell + 30
    share = matrix / matrix.sum(axis=1, keepdims=True).clip(min=1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="monospace" font-size="11">',
        "<title>Confusion matrix: rows true class, columns predicted class</title>",
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    for i in range(n):
        y = margin + i * cell
        parts.append(f'<text x="4" y="{y + cell // 2 + 4}">{escape(str(names[i]))}</text>')
        for j in range(n):
            x = margin + j * cell
            shade = int(255 * (1 - share[i, j]))
            parts.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" '
                         f'fill="rgb({shade},{shade},255)" stroke="rgb(220,220,220)"/>')
            if matrix[i, j]:
                colour = "white" if share[i, j] > 0.5 else "black"
                parts.append(f'<text x="{x + cell // 2}" y="{y + cell // 2 + 4}" '
                             f'text-anchor="middle" fill="{colour}">{matrix[i, j]}</text>')
    # Column labels: the class index (names are on the rows, same order).
    for j in range(n):
        parts.append(f'<text x="{margin + j * cell + cell // 2}" y="{margin - 4}" '
                     f'text-anchor="middle">{j}</text>')
    parts.append(f'<text x="4" y="{height - 10}">rows: true class, columns: predicted class '
                 "(same order)</text>")
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


def write_report(y_true: np.ndarray, y_pred: np.ndarray, names: Sequence[str],
                 out_dir: Path) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    result = metrics(y_true, y_pred, names)
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=1) + "\n")
    text = classification_report(y_true, y_pred, labels=list(range(len(names))),
                                 target_names=list(names), digits=4, zero_division=0)
    (out_dir / "classification_report.txt").write_text(text)
    confusion_svg(y_true, y_pred, names, out_dir / "confusion_matrix.svg")
    return result
