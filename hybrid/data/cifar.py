"""CIFAR-10 and CIFAR-100, read through torchvision from `root` (never downloaded here:
compute nodes have no internet; `python -m hybrid.data download NAME --root DIR` is the
separate step).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from hybrid.data.config import DataNotFoundError


def _fetch_command(name: str, root) -> str:
    return f"python -m hybrid.data download {name} --root {root}"


def load_cifar(name: str, root: str | os.PathLike) -> tuple[torch.Tensor, ...]:
    """(train images, train labels, test images, test labels) as uint8 NCHW / int64 tensors.

    DataNotFoundError naming the folder when it is missing, else each file that is missing
    or fails its md5."""
    from torchvision.datasets import CIFAR10, CIFAR100

    cls = {"cifar10": CIFAR10, "cifar100": CIFAR100}[name]
    try:  # torchvision checks every file's md5 before reading it
        parts = [cls(str(root), train=train, download=False) for train in (True, False)]
    except RuntimeError as error:
        folder = os.path.join(str(root), cls.base_folder)
        failing = _failing_files(cls, folder) if os.path.isdir(folder) else []
        if failing:  # name the files: a download interrupted, a disk error
            raise DataNotFoundError(
                f"{name} under data root {str(root)!r}: {'; '.join(failing)}. Delete {folder} and fetch it again "
                f"on a machine with internet: {_fetch_command(name, root)}") from error
        raise DataNotFoundError(
            f"{name} is missing or corrupted under data root {str(root)!r} (expected the md5-checked "
            f"files of {folder}). Fetch it on a machine with internet: {_fetch_command(name, root)}"
        ) from error
    tensors = []
    for part in parts:
        tensors.append(torch.from_numpy(np.ascontiguousarray(part.data.transpose(0, 3, 1, 2))))
        tensors.append(torch.tensor(part.targets, dtype=torch.int64))
    return tuple(tensors)


def _failing_files(cls, folder: str) -> list[str]:
    """'<path> is missing' or '<path> fails its md5 check' for each of the class's files
    (train_list, test_list, meta) that torchvision would refuse."""
    from torchvision.datasets.utils import check_integrity

    failing = []
    for filename, md5 in [*cls.train_list, *cls.test_list, (cls.meta["filename"], cls.meta["md5"])]:
        path = os.path.join(folder, filename)
        if not os.path.isfile(path):
            failing.append(f"{path} is missing")
        elif not check_integrity(path, md5):
            failing.append(f"{path} fails its md5 check (damaged or incomplete)")
    return failing
