"""Tiny CIFAR-10 / CIFAR-100 copies in the real on-disk format, for tests without the data.

The real files are Python 2 pickles of dicts whose keys are Python 2 `str`s: read with
`encoding="latin1"` (as torchvision reads them) the keys are `str`, read with
`encoding="bytes"` (as the CIFAR page's recipe reads them) they are `bytes`. The writer
below emits those keys as Python 2 strings (SHORT_BINSTRING) so that both readings give
what they give on the real files. `b"data"` is an (N, 3072) uint8 array, each row the
red, green and blue 32x32 planes in row-major order; labels are lists of ints.

Only the md5 sums differ from the real files: `checksum_tables` gives the values of
torchvision's `train_list`, `test_list` and `meta` class attributes for the fake files.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class Py2Str(bytes):
    """A Python 2 `str`."""


class _Py2Pickler(pickle._Pickler):
    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj):
        self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + bytes(obj))
        self.memoize(obj)

    dispatch[Py2Str] = _save_py2_str


def _py2(value):
    if isinstance(value, str):
        return Py2Str(value.encode("latin1"))
    if isinstance(value, dict):
        return {_py2(k): _py2(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_py2(v) for v in value]
    return value


def _dump(path: Path, entry: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        _Py2Pickler(f, protocol=2).dump(_py2(entry))


@dataclass
class FakeCifar:
    folder: Path
    train_data: np.ndarray  # (N, 3072) uint8, the rows as written
    train_labels: np.ndarray
    test_data: np.ndarray
    test_labels: np.ndarray


def _rows(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def write_fake_cifar10(root, n_train_per_batch: int = 20, n_test: int = 20, seed: int = 0) -> FakeCifar:
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    train_data, train_labels = [], []
    for b in range(1, 6):
        data, labels = _rows(rng, n_train_per_batch), rng.integers(0, 10, n_train_per_batch)
        _dump(folder / f"data_batch_{b}", {
            "batch_label": f"training batch {b} of 5", "labels": labels.tolist(), "data": data,
            "filenames": [f"image_{b}_{i}.png" for i in range(n_train_per_batch)],
        })
        train_data.append(data)
        train_labels.append(labels)
    test_data, test_labels = _rows(rng, n_test), rng.integers(0, 10, n_test)
    _dump(folder / "test_batch", {
        "batch_label": "testing batch 1 of 1", "labels": test_labels.tolist(), "data": test_data,
        "filenames": [f"test_{i}.png" for i in range(n_test)],
    })
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    _dump(folder / "batches.meta", {"num_cases_per_batch": n_train_per_batch, "label_names": names, "num_vis": 3072})
    return FakeCifar(folder, np.vstack(train_data), np.concatenate(train_labels), test_data, test_labels)


def write_fake_cifar100(root, n_train: int = 40, n_test: int = 20, seed: int = 0) -> FakeCifar:
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-100-python"
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        data, fine = _rows(rng, n), rng.integers(0, 100, n)
        _dump(folder / split, {
            "filenames": [f"{split}_{i}.png" for i in range(n)], "batch_label": f"{split}ing batch 1 of 1",
            "fine_labels": fine.tolist(), "coarse_labels": (fine // 5).tolist(), "data": data,
        })
        arrays[split] = (data, fine)
    _dump(folder / "meta", {
        "fine_label_names": [f"fine_{i}" for i in range(100)],
        "coarse_label_names": [f"coarse_{i}" for i in range(20)],
    })
    return FakeCifar(folder, *arrays["train"], *arrays["test"])


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def checksum_tables(dataset_cls, root) -> dict:
    """`train_list`, `test_list` and `meta` of `dataset_cls` with the md5 of the files under root."""
    folder = Path(root) / dataset_cls.base_folder
    return {
        "train_list": [[name, _md5(folder / name)] for name, _ in dataset_cls.train_list],
        "test_list": [[name, _md5(folder / name)] for name, _ in dataset_cls.test_list],
        "meta": {**dataset_cls.meta, "md5": _md5(folder / dataset_cls.meta["filename"])},
    }
