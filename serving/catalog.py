"""The document catalog: training-document index → id, title and newsgroup.

k-NN is trained with labels = row indices of the NTM training data, so its neighbour labels
index this catalog directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from serving import jsondoc


@dataclass
class Catalog:
    ids: list[str]
    titles: list[str]
    newsgroups: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def valid(self, indices: np.ndarray) -> np.ndarray:
        """Mask of indices that name a catalog document."""
        return (indices >= 0) & (indices < len(self.ids))

    def save(self, path: Path) -> Path:
        with path.open("wb") as fh:
            for index, (doc_id, title, group) in enumerate(
                zip(self.ids, self.titles, self.newsgroups, strict=True)
            ):
                fh.write(orjson.dumps({"index": index, "id": doc_id, "title": title,
                                       "newsgroup": group}) + b"\n")
        return path

    @classmethod
    def load(cls, path: Path) -> Catalog:
        ids: list[str] = []
        titles: list[str] = []
        groups: list[str] = []
        with path.open("rb") as fh:
            for number, line in enumerate(fh):
                row = jsondoc.loads(line, f"{path} line {number + 1}")
                if row["index"] != number:
                    raise ValueError(f"{path}:{number + 1}: index {row['index']} out of order")
                ids.append(row["id"])
                titles.append(row["title"])
                groups.append(row["newsgroup"])
        return cls(ids, titles, groups)

    @classmethod
    def from_corpus(cls, ids: Sequence[str], titles: Sequence[str],
                    newsgroups: Sequence[str]) -> Catalog:
        return cls(list(ids), [t[:300] for t in titles], list(newsgroups))
