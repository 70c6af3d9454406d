"""Packing image folders into uint8 arrays: layouts, pixels, manifest, damage, errors, CLI.

Every test writes small real JPEG and PNG files with PIL under tmp_path and packs them
with the real code; the expected pixels come from the same PIL calls made by hand.
"""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from hybrid.data.layouts import PackingError, imagefolder_classes, list_images
from hybrid.data.packing import (
    load_packed,
    main,
    pack,
    read_manifest,
    verify,
)

S = 16
# (split, class, file, (width, height), mode): odd sizes, portrait and landscape, every mode
# the packer converts. JPEG holds L, RGB and CMYK; PNG the rest.
IMAGEFOLDER = [
    ("train", "cat", "a_known.png", (80, 45), "RGB"),
    ("train", "cat", "b.jpg", (37, 53), "L"),
    ("train", "cat", "c.png", (50, 50), "RGBA"),
    ("train", "cat", "d.png", (33, 61), "P"),
    ("train", "dog", "a.jpg", (80, 45), "CMYK"),
    ("train", "dog", "b.png", (40, 30), "I;16"),
    ("train", "dog", "c.jpg", (64, 64), "RGB"),
    ("train", "dog", "d.png", (45, 80), "LA"),
    ("train", "emu", "a_known.jpg", (37, 53), "RGB"),
    ("train", "emu", "b.jpg", (16, 16), "RGB"),
    ("train", "emu", "c.jpg", (100, 20), "L"),
    ("val", "cat", "a.jpg", (30, 40), "RGB"),
    ("val", "cat", "b.png", (41, 29), "P"),
    ("val", "dog", "a.jpg", (53, 37), "RGB"),
    ("val", "emu", "a.png", (24, 24), "RGBA"),
    ("val", "emu", "b.jpg", (70, 35), "CMYK"),
]
TRAIN_CONVERSIONS = {"CMYK": 1, "I;16": 1, "L": 2, "LA": 1, "P": 1, "RGBA": 1}
VAL_CONVERSIONS = {"CMYK": 1, "P": 1, "RGBA": 1}


def write_image(path, size, mode="RGB", seed=0):
    """A random image of `size` (width, height) in `mode`, saved in the format its suffix names."""
    rng = np.random.default_rng(seed)
    width, height = size
    rgb = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65536, (height, width), dtype=np.uint16))
    elif mode == "P":
        img = rgb.quantize(16)
    else:
        img = rgb.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def make_imagefolder(root):
    for seed, (split, cls, name, size, mode) in enumerate(IMAGEFOLDER):
        write_image(root / split / cls / name, size, mode, seed)
    return root


def by_hand(path, new_size, box):
    """The expected packed pixels: PIL's own calls, sizes and offsets worked out by hand."""
    with Image.open(path) as img:
        img = img.convert("RGB").resize(new_size, Image.Resampling.BICUBIC, reducing_gap=None).crop(box)
    return np.asarray(img).transpose(2, 0, 1)


@pytest.fixture
def imagefolder(tmp_path):
    return make_imagefolder(tmp_path / "imnet")


def test_imagefolder_pixels_labels_and_manifest(imagefolder, tmp_path):
    dest = tmp_path / "packs" / "imnet16"
    manifest = pack("imagefolder", imagefolder, dest, S, workers=1)

    images, labels, classes, loaded = load_packed(dest, "train")
    assert isinstance(images, np.memmap) and images.dtype == np.uint8 and images.shape == (11, 3, S, S)
    assert classes == ["cat", "dog", "emu"] and loaded == manifest
    assert labels.dtype == np.int64 and labels.tolist() == [0] * 4 + [1] * 4 + [2] * 3
    # 80 x 45 -> 28 x 16 (int(16 * 80 / 45) = 28), crop from x = round(12 / 2) = 6
    assert np.array_equal(images[0], by_hand(imagefolder / "train/cat/a_known.png", (28, 16), (6, 0, 22, 16)))
    # 37 x 53 -> 16 x 22 (int(22.9) = 22), crop from y = round(6 / 2) = 3
    assert np.array_equal(images[8], by_hand(imagefolder / "train/emu/a_known.jpg", (16, 22), (0, 3, 16, 19)))
    # 16-bit greyscale is scaled to 8 bits, not clipped at 255
    with Image.open(imagefolder / "train/dog/b.png") as img:
        assert img.mode == "I;16"
        assert np.asarray(img).mean() > 20000
    assert 100 < images[5].mean() < 155

    val_images, val_labels, _, _ = load_packed(dest, "val", mmap=False)
    assert not isinstance(val_images, np.memmap) and val_images.shape == (5, 3, S, S)
    assert val_labels.tolist() == [0, 0, 1, 2, 2]

    assert manifest["format_version"] == 1 and manifest["kind"] == "imagefolder" and manifest["image_size"] == S
    assert manifest["source"] == str(imagefolder.resolve())
    assert manifest["splits"]["train"]["count"] == 11
    assert manifest["splits"]["train"]["per_class"] == {"cat": 4, "dog": 4, "emu": 3}
    assert manifest["splits"]["val"]["per_class"] == {"cat": 2, "dog": 1, "emu": 2}
    assert manifest["splits"]["train"]["conversions"] == TRAIN_CONVERSIONS
    assert manifest["splits"]["val"]["conversions"] == VAL_CONVERSIONS
    assert set(manifest["files"]) == {"train_images.npy", "train_labels.npy", "val_images.npy",
                                      "val_labels.npy", "classes.json"}
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((dest / name).read_bytes()).hexdigest() == digest
    assert json.loads((dest / "manifest.json").read_text()) == manifest
    assert verify(dest) == manifest
    assert [p.name for p in dest.parent.iterdir()] == ["imnet16"]  # no temporary folder left


def test_workers_give_the_same_arrays(imagefolder, tmp_path):
    one = pack("imagefolder", imagefolder, tmp_path / "one", S, workers=1)
    three = pack("imagefolder", imagefolder, tmp_path / "three", S, workers=3)
    assert one["files"] == three["files"] and one["content_hash"] == three["content_hash"]
    for split in ("train", "val"):
        assert np.array_equal(load_packed(tmp_path / "one", split)[0], load_packed(tmp_path / "three", split)[0])


def make_tiny_imagenet(root):
    """The official zip's layout, wnids.txt deliberately unsorted."""
    base = root / "tiny-imagenet-200"
    base.mkdir(parents=True)
    (base / "wnids.txt").write_text("n02000002\nn01000001\n")
    seed = 0
    for wnid in ("n01000001", "n02000002"):
        for i in range(3):
            write_image(base / "train" / wnid / "images" / f"{wnid}_{i}.JPEG", (64, 64), seed=seed)
            seed += 1
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
    annotations = {"val_0.JPEG": "n02000002", "val_1.JPEG": "n01000001", "val_2.JPEG": "n02000002"}
    for i, name in enumerate(annotations):
        write_image(base / "val" / "images" / name, (64, 64), "L" if i == 2 else "RGB", seed=seed + i)
    (base / "val" / "val_annotations.txt").write_text(
        "".join(f"{name}\t{wnid}\t0\t1\t60\t62\n" for name, wnid in annotations.items()))
    return root


def test_imagefolder_classes_are_the_listing_s_without_reading_an_image(imagefolder, tmp_path):
    (imagefolder / "train" / ".cache").mkdir()  # hidden: no class, as packing skips it
    (imagefolder / "train" / "notes.txt").write_text("not a class")
    assert imagefolder_classes(imagefolder) == list_images("imagefolder", imagefolder).classes == ("cat", "dog", "emu")
    with pytest.raises(PackingError, match=r"nowhere/train is not a folder: imagefolder expects ROOT/train/<class>"):
        imagefolder_classes(tmp_path / "nowhere")
    (tmp_path / "bare" / "train").mkdir(parents=True)
    with pytest.raises(PackingError, match=r"bare/train: no class folders"):
        imagefolder_classes(tmp_path / "bare")


def test_tiny_imagenet_layout_from_either_root(tmp_path):
    root = make_tiny_imagenet(tmp_path / "tiny")
    listing = list_images("tiny-imagenet", root)
    assert listing == list_images("tiny-imagenet", root / "tiny-imagenet-200")
    assert listing.classes == ("n01000001", "n02000002")
    assert listing.splits["train"].labels == (0, 0, 0, 1, 1, 1)
    assert [p.name for p in listing.splits["val"].paths] == ["val_0.JPEG", "val_1.JPEG", "val_2.JPEG"]
    assert listing.splits["val"].labels == (1, 0, 1)

    manifest = pack("tiny-imagenet", root, tmp_path / "tiny8", 8, workers=2)
    assert manifest["splits"]["val"]["per_class"] == {"n01000001": 1, "n02000002": 2}
    assert manifest["splits"]["val"]["conversions"] == {"L": 1}
    images, labels, classes, _ = load_packed(tmp_path / "tiny8", "val")
    assert images.shape == (3, 3, 8, 8) and labels.tolist() == [1, 0, 1] and classes == list(listing.classes)
    # 64 x 64 -> 8 x 8: no crop, grey stays grey in all three channels
    expected = by_hand(root / "tiny-imagenet-200/val/images/val_2.JPEG", (8, 8), (0, 0, 8, 8))
    assert np.array_equal(images[2], expected) and np.array_equal(images[2][0], images[2][1])


def test_tiny_imagenet_val_class_unknown_to_train(tmp_path):
    root = make_tiny_imagenet(tmp_path / "tiny")
    annotations = root / "tiny-imagenet-200/val/val_annotations.txt"
    annotations.write_text(annotations.read_text().replace("val_1.JPEG\tn01000001", "val_1.JPEG\tn09999999"))
    with pytest.raises(PackingError, match=r"val_annotations.txt: classes n01000001 are in train but missing"):
        pack("tiny-imagenet", root, tmp_path / "out", 8, workers=1)


def test_imagenette_variant_folder(tmp_path):
    root = tmp_path / "nette"
    for seed, (split, wnid) in enumerate([("train", "n01440764"), ("train", "n02102040"),
                                          ("val", "n01440764"), ("val", "n02102040")]):
        write_image(root / "imagenette2-160" / split / wnid / f"{wnid}_{seed}.JPEG", (160, 213), seed=seed)
    manifest = pack("imagenette", root, tmp_path / "nette8", 8, size="160px", workers=1)
    assert manifest["size"] == "160px" and manifest["splits"]["train"]["per_class"] == {"n01440764": 1,
                                                                                        "n02102040": 1}
    assert list_images("imagenette", root / "imagenette2-160", size="160px").classes == ("n01440764", "n02102040")
    with pytest.raises(PackingError, match=r"imagenette2-320 not found"):
        pack("imagenette", root, tmp_path / "nette320", 8, size="320px")
    with pytest.raises(PackingError, match=r"--size chooses an Imagenette variant"):
        pack("imagefolder", root, tmp_path / "x", 8, size="160px")


def test_verify_catches_a_flipped_byte(imagefolder, tmp_path):
    dest = tmp_path / "pack"
    pack("imagefolder", imagefolder, dest, S, workers=1)
    data = bytearray((dest / "val_images.npy").read_bytes())
    data[-7] ^= 0x01
    (dest / "val_images.npy").write_bytes(bytes(data))
    with pytest.raises(PackingError, match=r"val_images.npy: SHA-256 differs"):
        verify(dest)


@pytest.mark.parametrize("workers", [1, 2])
def test_truncated_jpeg_stops_packing_and_leaves_no_dest(imagefolder, tmp_path, workers):
    broken = imagefolder / "train/dog/c.jpg"
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])
    dest = tmp_path / "packs" / "out"
    with pytest.raises(PackingError) as caught:
        pack("imagefolder", imagefolder, dest, S, workers=workers)
    assert str(broken) in str(caught.value) and "\n" not in str(caught.value)
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_empty_class_folder(imagefolder, tmp_path):
    (imagefolder / "val" / "yak").mkdir()
    with pytest.raises(PackingError, match=r"val/yak: empty class folder"):
        pack("imagefolder", imagefolder, tmp_path / "out", S)
    assert not (tmp_path / "out").exists()


def test_class_sets_must_agree(imagefolder, tmp_path):
    for path in (imagefolder / "val" / "emu").iterdir():
        path.unlink()
    (imagefolder / "val" / "emu").rmdir()
    with pytest.raises(PackingError, match=r"classes emu are in train but missing from val"):
        pack("imagefolder", imagefolder, tmp_path / "out", S)
    write_image(imagefolder / "val" / "emu" / "a.jpg", (20, 20))
    write_image(imagefolder / "val" / "yak" / "a.jpg", (20, 20))
    with pytest.raises(PackingError, match=r"classes yak are in val but not in train"):
        pack("imagefolder", imagefolder, tmp_path / "out", S)


def test_argument_and_source_errors(imagefolder, tmp_path):
    with pytest.raises(PackingError, match=r"does not exist: imagefolder expects ROOT/train/<class>"):
        pack("imagefolder", tmp_path / "nowhere", tmp_path / "out", S)
    (tmp_path / "bare" / "train").mkdir(parents=True)
    with pytest.raises(PackingError, match=r"train: no class folders with images"):
        pack("imagefolder", tmp_path / "bare", tmp_path / "out", S)
    with pytest.raises(PackingError, match=r"image size must be a positive integer"):
        pack("imagefolder", imagefolder, tmp_path / "out", 0)
    with pytest.raises(PackingError, match=r"unknown kind 'cifar'"):
        pack("cifar", imagefolder, tmp_path / "out", S)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("")
    with pytest.raises(PackingError, match=r"taken already exists; delete it"):
        pack("imagefolder", imagefolder, tmp_path / "taken", S)


def test_missing_or_incomplete_pack_names_the_command(imagefolder, tmp_path):
    with pytest.raises(PackingError, match=r"no pack at .*python -m hybrid.data.packing pack KIND"):
        load_packed(tmp_path / "nothing", "train")
    dest = tmp_path / "pack"
    pack("imagefolder", imagefolder, dest, S, workers=1)
    (dest / "train_labels.npy").unlink()
    with pytest.raises(PackingError, match=r"not a complete pack \(missing train_labels.npy\).*hybrid.data.packing pack"):
        read_manifest(dest)
    (dest / "manifest.json").unlink()
    with pytest.raises(PackingError, match=r"no manifest.json"):
        verify(dest)


def test_cli_pack_verify_and_user_errors(imagefolder, tmp_path, capsys):
    dest = tmp_path / "cli"
    assert main(["pack", "imagefolder", "--source", str(imagefolder), "--dest", str(dest),
                 "--image-size", "8", "--workers", "1"]) == 0
    assert "11 train and 5 val images, 3 classes" in capsys.readouterr().out
    assert main(["verify", str(dest)]) == 0
    capsys.readouterr()
    assert main(["pack", "imagefolder", "--source", str(imagefolder), "--dest", str(dest),
                 "--image-size", "8"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "already exists" in err and err.count("\n") == 1

    # the module run as a program: exit status 2, one line, no traceback
    result = subprocess.run([sys.executable, "-m", "hybrid.data.packing", "verify", str(tmp_path / "absent")],
                            check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "python -m hybrid.data.packing pack" in result.stderr
