from pathlib import Path

import numpy as np
import pytest

from serving import recordio, shards
from tests.test_recordio import counts


def test_write_sparse_shards(tmp_path: Path) -> None:
    X = counts(103, 25, 0.2, seed=4)
    paths = shards.write_sparse_shards(X, tmp_path / "train", 4)
    assert [p.name for p in paths] == [f"train_part{i}.pbr" for i in range(4)]
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == [p.name for p in paths]
    sizes = [sum(1 for _ in recordio.read_records(p.read_bytes())) for p in paths]
    assert sum(sizes) == 103 and max(sizes) - min(sizes) <= 1
    Y = shards.read_sparse_shards(paths, n_cols=25)
    assert (Y != X).nnz == 0
    first = recordio.decode_matrix(paths[0].read_bytes())
    assert (first != X[: sizes[0]]).nnz == 0  # contiguous blocks, in order
    other = shards.write_sparse_shards(X[:2], tmp_path, 2, prefix="val", label=np.array([1, 2]))
    assert other[1].name == "val_part1.pbr"
    assert recordio.decode_tensor_rows(other[1].read_bytes(), "label", "values")[0].tolist() == [2]
    for n_parts in (0, 104):
        with pytest.raises(ValueError):
            shards.write_sparse_shards(X, tmp_path, n_parts)


def test_natural_shard_order() -> None:
    names = ["train_part10.pbr", "train_part2.pbr", "train_part0.pbr"]
    assert sorted(names, key=shards.shard_sort_key) == [
        "train_part0.pbr", "train_part2.pbr", "train_part10.pbr"]
