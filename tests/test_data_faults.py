"""Damaged data, as a run loads it: a real pack damaged by real file edits (a flipped pixel
bit, label or header bit, a truncated array, altered classes or statistics) and a damaged
CIFAR file each end in one error naming the file and the fix, or in a warning and a
recomputation; the pack's hashes are checked once per pack and host."""

import json
import logging
import os
import re
import shutil
import socket

import numpy as np
import pytest
import torchvision.datasets.cifar as tv_cifar
from fake_cifar import checksum_tables, write_fake_cifar10
from numpy.lib import format as npy_format
from PIL import Image

import hybrid.data.pack_check as pack_check
from hybrid.data import DataConfig, DataNotFoundError, load_splits, packed_dir
from hybrid.data.packing import pack, verify

CLASSES = ("ant", "bee", "cod")
FILES = 5  # the arrays of both splits and classes.json


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """ROOT/train/<class>/*.png, ROOT/val/<class>/*.png and its pack, never altered."""
    root = tmp_path_factory.mktemp("pristine") / "folder"
    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("val", 2)):
        for k, name in enumerate(CLASSES):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                pixels = rng.normal(60 + 60 * k, 30, (int(rng.integers(18, 30)), 24, 3))
                Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(root / split / name / f"{i}.png")
    config = DataConfig(name="imagefolder", root=str(root), image_size=16)
    pack("imagefolder", root, packed_dir(config), 16, workers=1)
    return root


@pytest.fixture
def config(pristine, tmp_path):
    """A copy of the folder and its pack, free to damage."""
    root = tmp_path / "folder"
    shutil.copytree(pristine, root)
    return DataConfig(name="imagefolder", root=str(root), image_size=16)


def load_error(config) -> str:
    """The one error loading `config` raises: one line naming the pack, `verify` and packing again."""
    with pytest.raises(DataNotFoundError) as caught:
        load_splits(config)
    message, dest = str(caught.value), packed_dir(config)
    assert "\n" not in message and caught.value.__cause__ is None
    assert f"python -m hybrid.data.packing verify {dest}" in message
    assert f"delete {dest} and run: python -m hybrid.data.packing pack imagefolder --source" in message
    return message


def data_offset(path) -> int:
    """Where the array's bytes start in a .npy file."""
    with open(path, "rb") as f:
        assert npy_format.read_magic(f) == (1, 0)
        npy_format.read_array_header_1_0(f)
        return f.tell()


def flip_bit(path, offset: int, bit: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))


def test_the_pristine_pack_loads(config):
    splits = load_splits(config)
    assert tuple(splits.train_images.shape) == (18, 3, 16, 16) and splits.num_classes == 3


def test_a_flipped_pixel_bit_is_caught_by_the_hashes(config):
    load_splits(config)  # verified once: the damage comes after, as an edit of the file
    path = packed_dir(config) / "train_images.npy"
    flip_bit(path, data_offset(path) + 1234, bit=3)
    message = load_error(config)
    assert f"{path}: SHA-256 differs from manifest.json" in message


@pytest.mark.parametrize("split,byte,bit,says", [
    ("train", 0, 3, r"label 8 at index 0 is not a class index \(0 to 2; 1 such labels\)"),  # ant (0) -> 8
    ("val", 7, 7, r"label -9223372036854775808 at index 0 is not a class index"),  # the sign bit
    # ant (0) -> bee (1): still a class index, but the counts change
    ("train", 0, 0, r"2 classes counted otherwise than in manifest.json \(first ant: 5 labels, manifest 6\)"),
])
def test_a_flipped_label_bit_is_one_error(config, split, byte, bit, says):
    path = packed_dir(config) / f"{split}_labels.npy"
    assert np.load(path)[0] == 0
    flip_bit(path, data_offset(path) + byte, bit)
    message = load_error(config)
    assert str(path) in message
    assert re.search(says, message), message


@pytest.mark.parametrize("name,find,bit,says", [
    # the bit flipped is in the first byte after `find` in the file's header
    ("train_images.npy", b"\x93", 1, "damaged or truncated .npy header"),  # \x93NUMPY -> \x93LUMPY, the magic string
    ("train_images.npy", b"(18, ", 2, r"its header says uint8 \(18, 7, 16, 16\), manifest.json uint8 \(18, 3, 16"),
    ("val_labels.npy", b"'descr': '", 1, r"its header says >i8 \(6,\), manifest.json int64 \(6,\)"),  # < -> >
    ("val_images.npy", b"'fortran_order': ", 0, "damaged or truncated .npy header"),  # False -> Galse
])
def test_a_damaged_npy_header_is_one_error(config, name, find, bit, says):
    path = packed_dir(config) / name
    flip_bit(path, path.read_bytes().index(find) + len(find), bit)
    message = load_error(config)
    assert str(path) in message
    assert re.search(says, message), message


@pytest.mark.parametrize("name,cut", [("train_images.npy", 100), ("val_labels.npy", 8), ("train_labels.npy", 200)])
def test_a_truncated_array_is_one_error(config, name, cut):
    path = packed_dir(config) / name
    size, offset = path.stat().st_size, data_offset(path)
    os.truncate(path, size - cut)
    message = load_error(config)
    if size - cut >= offset:
        assert f"{path}: {size - cut} bytes, but its header and manifest.json need {size} (truncated)" in message
    else:  # cut into the header
        assert f"{path}: damaged or truncated .npy header (EOF" in message


def test_a_class_added_to_classes_json_is_one_error_with_advice_a_folder_can_follow(config):
    path = packed_dir(config) / "classes.json"
    path.write_text(json.dumps([*CLASSES, "dog"]))
    message = load_error(config)
    assert f"{path}: 4 classes, manifest.json 3; not packed: dog (altered since packing)" in message
    assert "model.num_classes" not in message


def test_a_class_folder_added_after_packing_asks_for_a_new_pack(config):
    new = packed_dir(config).parent.parent / "train" / "dog"
    new.mkdir()
    shutil.copy(new.parent / "ant" / "0.png", new / "0.png")
    with pytest.raises(DataNotFoundError) as caught:
        load_splits(config)
    message = str(caught.value)
    assert f"{packed_dir(config)} was packed from 3 classes, but " in message
    assert "now has 4 class folders (added dog)" in message
    assert f"delete {packed_dir(config)} and run: python -m hybrid.data.packing pack imagefolder" in message
    assert "leave model.num_classes out" not in message


@pytest.mark.parametrize("edit,says", [
    (lambda m: m.pop("splits"), "'splits' must hold train and val"),
    (lambda m: m["splits"]["train"].update(count=17),
     "split 'train': its count and per-class counts disagree or are missing"),
    (lambda m: m["files"].update({"classes.json": "0" * 64}), "its content hash does not match its file hashes"),
])
def test_a_damaged_manifest_is_one_error(config, edit, says):
    path = packed_dir(config) / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(DataNotFoundError) as caught:
        load_splits(config)
    message = str(caught.value)
    assert f"{path}: {says}; delete {packed_dir(config)} and run: python -m hybrid.data.packing pack" in message


@pytest.mark.parametrize("bad", [
    {"std": [0.0, 0.2, 0.2]}, {"std": [float("nan"), 0.2, 0.2]}, {"std": [2.0, 0.2, 0.2]},
    {"mean": [-0.1, 0.5, 0.5]}, {"mean": [0.5, 0.5]}, {"mean": "grey"},
])
def test_unusable_cached_statistics_are_recomputed_with_one_warning(config, caplog, bad):
    good = load_splits(config)
    path = packed_dir(config) / "stats.json"
    cached = json.loads(path.read_text())
    path.write_text(json.dumps({**cached, **bad}))
    with caplog.at_level(logging.WARNING, logger="hybrid.data"):
        splits = load_splits(config)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and str(path) in warnings[0].getMessage() and "recomputing" in warnings[0].getMessage()
    assert splits.std.tolist() == good.std.tolist() and splits.mean.tolist() == good.mean.tolist()
    assert json.loads(path.read_text()) == cached  # the cache repaired
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hybrid.data"):
        load_splits(config)
    assert not caplog.records


def test_the_hashes_are_checked_once_per_pack_and_host(config, monkeypatch):
    dest, calls = packed_dir(config), []
    real = pack_check.file_sha256
    monkeypatch.setattr(pack_check, "file_sha256", lambda path: calls.append(path.name) or real(path))
    load_splits(config)
    assert len(calls) == FILES
    cache = dest / "verified" / f"{socket.gethostname()}.json"
    assert pack_check.cache_path(dest) == cache and cache.is_file()
    record = json.loads(cache.read_text())
    assert record["content_hash"] == json.loads((dest / "manifest.json").read_text())["content_hash"]
    assert set(record["files"]) == {"classes.json", "manifest.json", "train_images.npy", "train_labels.npy",
                                    "val_images.npy", "val_labels.npy"}

    load_splits(config)  # the second load skips the hashing
    assert len(calls) == FILES
    os.utime(dest / "val_images.npy")  # a file written since: hashed again
    load_splits(config)
    assert len(calls) == 2 * FILES
    load_splits(config)
    assert len(calls) == 2 * FILES
    monkeypatch.setattr(socket, "gethostname", lambda: "another-node")  # another host: its own check
    load_splits(config)
    assert len(calls) == 3 * FILES and (dest / "verified" / "another-node.json").is_file()
    verify(dest)  # the command always recomputes
    assert len(calls) == 4 * FILES


def test_verify_records_the_check_for_the_next_load(config, monkeypatch):
    verify(packed_dir(config))
    monkeypatch.setattr(pack_check, "file_sha256", lambda path: pytest.fail(f"hashed {path} again"))
    load_splits(config)


@pytest.fixture
def fake_cifar10(tmp_path, monkeypatch):
    """A fake CIFAR-10 copy with torchvision's md5 table pointed at it (as tests/test_data.py's fixture)."""
    fake = write_fake_cifar10(tmp_path)
    for attribute, value in checksum_tables(tv_cifar.CIFAR10, tmp_path).items():
        monkeypatch.setattr(tv_cifar.CIFAR10, attribute, value)
    return fake


@pytest.mark.parametrize("file", ["data_batch_3", "test_batch", "batches.meta"])
def test_a_corrupt_cifar_file_is_named(fake_cifar10, tmp_path, file):
    path = fake_cifar10.folder / file
    flip_bit(path, path.stat().st_size // 2)
    with pytest.raises(DataNotFoundError) as caught:
        load_splits(DataConfig("cifar10", str(tmp_path)))
    message = str(caught.value)
    assert f"{path} fails its md5 check" in message and "\n" not in message
    assert message.count("fails its md5") == 1 and "is missing" not in message
    assert f"Delete {fake_cifar10.folder} and fetch it again" in message
    assert f"python -m hybrid.data download cifar10 --root {tmp_path}" in message


def test_a_missing_cifar_file_is_named(fake_cifar10, tmp_path):
    (fake_cifar10.folder / "data_batch_2").unlink()
    with pytest.raises(DataNotFoundError, match=r"cifar-10-batches-py/data_batch_2 is missing\. Delete"):
        load_splits(DataConfig("cifar10", str(tmp_path)))
