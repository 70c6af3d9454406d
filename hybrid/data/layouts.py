"""The image-folder data sets as they arrive: each kind's layout listed into classes and
splits (`list_images`), checked before anything is decoded, and `fetch`, which downloads
Tiny ImageNet and Imagenette where there is internet (never on compute nodes).

Any problem (a missing folder, an empty class, class sets that differ) is a `PackingError`
naming the file or folder and the fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

KINDS = ("imagefolder", "tiny-imagenet", "imagenette")
SPLITS = ("train", "val")
# torchvision.datasets.folder.IMG_EXTENSIONS, compared case-insensitively.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# torchvision.datasets.Imagenette: the folder is the archive's stem, per size variant.
IMAGENETTE_FOLDERS = {"full": "imagenette2", "320px": "imagenette2-320", "160px": "imagenette2-160"}
TINY_IMAGENET_FOLDER = "tiny-imagenet-200"
TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
# Not published by Stanford; the md5 every data set library that ships this archive uses
# (e.g. avalanche's TinyImagenet, lvyilin/pytorch-fgvc-dataset's TinyImageNet), and
# reported with its size, 248,100,043 bytes, by people who downloaded it.
TINY_IMAGENET_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"


LAYOUTS = {
    "imagefolder": "ROOT/train/<class>/<images>, ROOT/val/<class>/<images>",
    "tiny-imagenet": f"ROOT/{TINY_IMAGENET_FOLDER}/{{wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG, "
                     f"val/val_annotations.txt}} (ROOT may be {TINY_IMAGENET_FOLDER} itself)",
    "imagenette": "ROOT/imagenette2[-320|-160]/{train,val}/<wnid>/*.JPEG (torchvision's Imagenette)",
}


class PackingError(ValueError):
    """A source, pack or argument that cannot be packed or read; the message names the fix."""


@dataclass(frozen=True)
class Split:
    """One split's images, in packing order, and their class indices."""

    paths: tuple[Path, ...]
    labels: tuple[int, ...]


@dataclass(frozen=True)
class Listing:
    """What a layout function finds: the class names (index order) and both splits."""

    classes: tuple[str, ...]
    splits: dict[str, Split]


# --- layouts ------------------------------------------------------------------------


def _images_in(folder: Path) -> list[Path]:
    """The image files directly in `folder`, sorted by name; hidden files skipped."""
    with os.scandir(folder) as entries:  # no stat per file: ImageNet's train split has 1.28M
        return sorted(Path(e.path) for e in entries
                      if not e.name.startswith(".") and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS
                      and e.is_file())


def _need_dir(folder: Path, kind: str) -> None:
    if not folder.is_dir():
        raise PackingError(f"{folder} is not a folder: {kind} expects {LAYOUTS[kind]}")


def _check_class_sets(reference: set[str], other: set[str], where: Path,
                      names: tuple[str, str] = ("train", "val")) -> None:
    """`other` (validation, by default) must hold exactly the `reference` (training) classes."""
    if missing := sorted(reference - other):
        raise PackingError(f"{where}: classes {', '.join(missing)} are in {names[0]} but missing from {names[1]}; "
                           f"add them to {names[1]} or remove them from {names[0]}")
    if unknown := sorted(other - reference):
        raise PackingError(f"{where}: classes {', '.join(unknown)} are in {names[1]} but not in {names[0]}; "
                           f"remove them from {names[1]} or add them to {names[0]}")


def _class_folders(split_dir: Path) -> list[Path]:
    """The class folders directly in split_dir, sorted by name; hidden ones skipped."""
    return sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def _class_tree(split_dir: Path, kind: str) -> dict[str, list[Path]]:
    """{class folder name: its images} under split_dir/<class>/; an empty class is an error."""
    _need_dir(split_dir, kind)
    classes = {}
    for folder in _class_folders(split_dir):
        if not (images := _images_in(folder)):
            raise PackingError(f"{folder}: empty class folder (no {'/'.join(IMAGE_EXTENSIONS)} files); "
                               "add its images or delete the folder")
        classes[folder.name] = images
    if not classes:
        raise PackingError(f"{split_dir}: no class folders with images; {kind} expects {LAYOUTS[kind]}")
    return classes


def _listing(classes: list[str], per_split: dict[str, list[tuple[Path, str]]]) -> Listing:
    index = {name: i for i, name in enumerate(classes)}
    return Listing(tuple(classes), {split: Split(tuple(p for p, _ in items), tuple(index[c] for _, c in items))
                                    for split, items in per_split.items()})


def list_imagefolder(root: Path, kind: str = "imagefolder") -> Listing:
    """ROOT/train/<class>/* and ROOT/val/<class>/* (ImageNet as usually prepared)."""
    root = Path(root)
    _need_dir(root, kind)
    trees = {split: _class_tree(root / split, kind) for split in SPLITS}
    _check_class_sets(set(trees["train"]), set(trees["val"]), root / "val")
    classes = sorted(trees["train"])
    return _listing(classes, {split: [(p, c) for c in classes for p in trees[split][c]] for split in SPLITS})


def imagefolder_classes(root: Path) -> tuple[str, ...]:
    """An image folder's class names in index order, as `list_imagefolder` takes them (the
    folders of ROOT/train/), read without listing a single image: a run's `model.num_classes`
    when the run leaves it out (hybrid.train.config). Packing checks the rest (empty classes, val)."""
    train = Path(root) / "train"
    _need_dir(train, "imagefolder")
    if not (folders := _class_folders(train)):
        raise PackingError(f"{train}: no class folders; imagefolder expects {LAYOUTS['imagefolder']}")
    return tuple(folder.name for folder in folders)


def list_tiny_imagenet(root: Path) -> Listing:
    """The official zip's layout; its labelled validation split is our validation (test) set.

    Classes are the sorted lines of wnids.txt; each needs train/<wnid>/images/*.JPEG, and
    val/val_annotations.txt (tab-separated: file name, wnid, 4 box ints) labels every image
    in val/images.
    """
    root = Path(root)
    base = root / TINY_IMAGENET_FOLDER if (root / TINY_IMAGENET_FOLDER).is_dir() else root
    wnids_file = base / "wnids.txt"
    if not wnids_file.is_file():
        raise PackingError(f"{wnids_file} not found: tiny-imagenet expects {LAYOUTS['tiny-imagenet']}; "
                           f"get it with python -m hybrid.data.packing fetch tiny-imagenet --root {root}")
    classes = sorted({line.strip() for line in wnids_file.read_text().splitlines() if line.strip()})
    _need_dir(base / "train", "tiny-imagenet")
    train_folders = {p.name for p in (base / "train").iterdir() if p.is_dir()}
    _check_class_sets(set(classes), train_folders, base / "train", ("wnids.txt", "train"))
    train = []
    for wnid in classes:
        folder = base / "train" / wnid / "images"
        _need_dir(folder, "tiny-imagenet")
        if not (images := _images_in(folder)):
            raise PackingError(f"{folder}: empty class folder; restore its images from {TINY_IMAGENET_URL}")
        train += [(p, wnid) for p in images]

    annotations_file = base / "val" / "val_annotations.txt"
    if not annotations_file.is_file():
        raise PackingError(f"{annotations_file} not found: tiny-imagenet expects {LAYOUTS['tiny-imagenet']}")
    labels = {}
    for number, line in enumerate(annotations_file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise PackingError(f"{annotations_file} line {number}: expected 'file<TAB>wnid<TAB>box', got {line!r}")
        labels[fields[0]] = fields[1]
    images = _images_in(base / "val" / "images") if (base / "val" / "images").is_dir() else []
    if unlabelled := [p.name for p in images if p.name not in labels]:
        raise PackingError(f"{base / 'val' / 'images'}: {len(unlabelled)} images without a line in "
                           f"{annotations_file.name} (first {unlabelled[0]}); restore the file from the zip")
    if absent := sorted(set(labels) - {p.name for p in images}):
        raise PackingError(f"{annotations_file}: {len(absent)} listed images are missing from "
                           f"{base / 'val' / 'images'} (first {absent[0]}); unpack the zip again")
    _check_class_sets(set(classes), set(labels.values()), annotations_file)
    return _listing(classes, {"train": train, "val": [(p, labels[p.name]) for p in images]})


def list_imagenette(root: Path, size: str = "full") -> Listing:
    """torchvision's Imagenette layout, ROOT/<imagenette2[-320|-160]>/{train,val}/<wnid>/*.JPEG."""
    if size not in IMAGENETTE_FOLDERS:
        raise PackingError(f"imagenette size {size!r} unknown; use one of {', '.join(IMAGENETTE_FOLDERS)}")
    root = Path(root)
    folder = IMAGENETTE_FOLDERS[size]
    base = root if root.name == folder else root / folder
    if not base.is_dir():
        raise PackingError(f"{base} not found: imagenette --size {size} expects {LAYOUTS['imagenette']}; get it with "
                           f"python -m hybrid.data.packing fetch imagenette --root {root} --size {size}")
    return list_imagefolder(base, "imagenette")


def list_images(kind: str, source: Path, *, size: str | None = None) -> Listing:
    """The listing of `source` under `kind`'s layout; `size` is Imagenette's variant only."""
    if kind not in KINDS:
        raise PackingError(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    if size is not None and kind != "imagenette":
        raise PackingError(f"--size chooses an Imagenette variant; {kind} has none, leave it out")
    source = Path(source)
    if not source.is_dir():
        raise PackingError(f"source folder {source} does not exist: {kind} expects {LAYOUTS[kind]}")
    if kind == "imagefolder":
        return list_imagefolder(source)
    if kind == "tiny-imagenet":
        return list_tiny_imagenet(source)
    return list_imagenette(source, size or "full")


def fetch(kind: str, root: Path, *, size: str | None = None) -> Path:
    """Downloads `kind` into `root` (md5-checked), unless already there; returns the folder
    to pass to `pack --source`. ImageNet (imagefolder) needs an account: never fetched."""
    root = Path(root)
    if kind == "tiny-imagenet":
        if size is not None:
            raise PackingError("--size chooses an Imagenette variant; tiny-imagenet has none, leave it out")
        if not (root / TINY_IMAGENET_FOLDER / "wnids.txt").is_file():
            from torchvision.datasets.utils import download_and_extract_archive

            download_and_extract_archive(TINY_IMAGENET_URL, str(root), md5=TINY_IMAGENET_MD5)
        return root
    if kind == "imagenette":
        size = size or "full"
        if size not in IMAGENETTE_FOLDERS:
            raise PackingError(f"imagenette size {size!r} unknown; use one of {', '.join(IMAGENETTE_FOLDERS)}")
        from torchvision.datasets import Imagenette

        for split in SPLITS:  # the archive holds both; the second call only checks
            Imagenette(str(root), split=split, size=size, download=True)
        return root
    if kind == "imagefolder":
        raise PackingError("ImageNet cannot be fetched: download it from image-net.org (needs an account) and "
                           f"prepare {LAYOUTS['imagefolder']}")
    raise PackingError(f"unknown kind {kind!r}; use one of {', '.join(KINDS)}")
