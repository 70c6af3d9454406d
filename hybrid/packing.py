"""Image data sets packed once into fixed-size uint8 arrays, the only form training reads.

Larger data sets (ImageNet, Tiny ImageNet, Imagenette) arrive as folders of JPEGs. Decoding
them every epoch costs more than the network for small images, and a JPEG that fails in
epoch 40 fails a whole run, so `pack` decodes every image once, up front, and writes:

    DEST/train_images.npy   uint8, N x 3 x S x S (channels first, RGB)
    DEST/train_labels.npy   int64, N (indices into classes.json)
    DEST/val_images.npy     the same for the validation split
    DEST/val_labels.npy
    DEST/classes.json       the class names (folder names / WordNet ids), index order
    DEST/manifest.json      format version, kind, source, image size, the resize rule,
                            counts per split and class, mode conversions, SHA-256 of every
                            file above, one content hash over them, time taken

The rules, the same for every kind:
- Classes are the sorted training class names; validation must have exactly that set.
- Each image is decoded whole by PIL (`load()`: a truncated JPEG is an error, not grey
  pixels), converted to RGB (`to_rgb`: 16-bit greyscale scaled, everything else through
  PIL's `convert`, as torchvision's loader does; no EXIF rotation, as torchvision), its
  shorter side resized to S with PIL's BICUBIC filter (antialiased, exact:
  `reducing_gap=None`), and centre-cropped to S x S. Sizes and offsets round as
  torchvision's `Resize(S)` and `CenterCrop(S)` do.
- Any problem (a missing folder, an empty class, class sets that differ, an unreadable
  image) is a `PackingError` naming the file or folder and the fix, raised before or
  during packing. Packing writes into a hidden sibling folder and renames it to DEST only
  when complete: a failure never leaves a half-written DEST. An existing DEST is refused
  (an empty folder is allowed); delete it to pack again.

Arrays are written through `numpy.lib.format.open_memmap`, so memory stays small for
ImageNet; decoding runs in a process pool, in order. `load_packed` maps the arrays back,
`verify` recomputes the hashes. `fetch` downloads Tiny ImageNet and Imagenette where there
is internet (never on compute nodes). The command line: `python -m hybrid.packing --help`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap
from PIL import Image
from tqdm import tqdm

FORMAT_VERSION = 1
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
RESIZE_FILTER = Image.Resampling.BICUBIC
RESIZE_RULE = ("PIL BICUBIC (antialiased, reducing_gap=None): shorter side to image_size, longer "
               "side int(image_size * long / short) as torchvision Resize; centre crop at "
               "offsets int(round((side - image_size) / 2)) as torchvision CenterCrop")
LAYOUTS = {
    "imagefolder": "ROOT/train/<class>/<images>, ROOT/val/<class>/<images>",
    "tiny-imagenet": f"ROOT/{TINY_IMAGENET_FOLDER}/{{wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG, "
                     f"val/val_annotations.txt}} (ROOT may be {TINY_IMAGENET_FOLDER} itself)",
    "imagenette": "ROOT/imagenette2[-320|-160]/{train,val}/<wnid>/*.JPEG (torchvision's Imagenette)",
}
PACK_COMMAND = "python -m hybrid.packing pack KIND --source DIR --dest {dest} --image-size N"


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
    when the run leaves it out (hybrid.config). Packing checks the rest (empty classes, val)."""
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
                           f"get it with python -m hybrid.packing fetch tiny-imagenet --root {root}")
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
                           f"python -m hybrid.packing fetch imagenette --root {root} --size {size}")
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


# --- decoding -----------------------------------------------------------------------


def to_rgb(img: Image.Image) -> Image.Image:
    """`img` as 8-bit RGB. 16- and 32-bit integer greyscale (16-bit PNGs) is scaled by
    255/65535 (PIL's own convert would clip it at 255); every other mode goes through
    `convert("RGB")` (alpha dropped, palettes and CMYK mapped), via RGBA for the few
    modes PIL cannot convert directly."""
    if img.mode == "RGB":
        return img
    if img.mode == "I" or img.mode.startswith("I;16"):
        grey = np.asarray(img, dtype=np.float64) * (255 / 65535)
        return Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8), "L").convert("RGB")
    try:
        return img.convert("RGB")
    except ValueError:  # e.g. "La": premultiplied alpha
        return img.convert("RGBA").convert("RGB")


def resize_center_crop(img: Image.Image, size: int) -> Image.Image:
    """Shorter side to `size` (BICUBIC), then the centre `size` x `size` (torchvision's rounding)."""
    width, height = img.size
    if width <= height:
        new = (size, int(size * height / width))
    else:
        new = (int(size * width / height), size)
    img = img.resize(new, RESIZE_FILTER, reducing_gap=None)
    left = round((new[0] - size) / 2)  # Python's round, as torchvision's int(round(...))
    top = round((new[1] - size) / 2)
    return img.crop((left, top, left + size, top + size))


def decode(path: Path, size: int) -> tuple[np.ndarray, str]:
    """The packed pixels of one image file (uint8, 3 x size x size) and its original mode."""
    with Image.open(path) as img:
        img.load()  # decodes every byte: a truncated file raises here, not later
        mode = img.mode
        pixels = np.asarray(resize_center_crop(to_rgb(img), size), dtype=np.uint8)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)), mode


def _decode_job(job: tuple[str, int]) -> tuple[np.ndarray | None, str]:
    """`decode` for the pool: a failure comes back as (None, reason), never as a pickled exception."""
    path, size = job
    try:
        return decode(Path(path), size)
    except Exception as error:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError, ...
        return None, f"{type(error).__name__}: {error}".replace("\n", " ")


# --- packing ------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _content_hash(files: dict[str, str]) -> str:
    """One hash over the files' names and hashes, in name order."""
    return hashlib.sha256("".join(f"{name} {digest}\n" for name, digest in sorted(files.items())).encode()).hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_split(folder: Path, split: str, data: Split, image_size: int, decoded, classes) -> dict:
    """Writes one split's arrays from the `decoded` iterator; returns its manifest entry."""
    images = open_memmap(folder / f"{split}_images.npy", mode="w+", dtype=np.uint8,
                         shape=(len(data.paths), 3, image_size, image_size))
    modes = Counter()
    tty = sys.stderr.isatty()
    with tqdm(total=len(data.paths), desc=f"packing {split}", unit="img", file=sys.stderr,
              mininterval=1.0 if tty else 30.0) as bar:
        for i, (path, (pixels, mode)) in enumerate(zip(data.paths, decoded)):
            if pixels is None:
                raise PackingError(f"{path}: cannot decode ({mode}); replace or delete the file and pack again")
            images[i] = pixels
            if mode != "RGB":
                modes[mode] += 1
            bar.update()
    images.flush()
    del images
    np.save(folder / f"{split}_labels.npy", np.asarray(data.labels, dtype=np.int64))
    per_class = Counter(data.labels)
    return {"count": len(data.paths), "per_class": {name: per_class[i] for i, name in enumerate(classes)},
            "conversions": dict(sorted(modes.items()))}


def pack(kind: str, source: Path, dest: Path, image_size: int, *, size: str | None = None,
         workers: int | None = None) -> dict:
    """Packs `source` (laid out as `kind`) into `dest`, all or nothing; returns the manifest.

    `workers` decoding processes (default min(8, CPUs); 1 decodes in this process).
    Refuses an existing `dest` unless it is an empty folder.
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise PackingError(f"image size must be a positive integer, got {image_size!r}")
    workers = min(8, os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise PackingError(f"workers must be at least 1, got {workers}")
    dest = Path(dest)
    if dest.exists() and not (dest.is_dir() and not any(dest.iterdir())):
        raise PackingError(f"{dest} already exists; delete it to pack again, or choose another --dest")
    started = time.monotonic()
    listing = list_images(kind, source, size=size)
    if not any(listing.splits[s].paths for s in SPLITS):
        raise PackingError(f"{source}: no images found; {kind} expects {LAYOUTS[kind]}")

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.packing-", dir=dest.parent))
    try:
        splits = {}
        pool = Pool(workers) if workers > 1 else None
        try:
            for split in SPLITS:
                data = listing.splits[split]
                jobs = [(str(p), image_size) for p in data.paths]
                decoded = (pool.imap(_decode_job, jobs, chunksize=max(1, min(64, len(jobs) // (4 * workers))))
                           if pool else map(_decode_job, jobs))
                splits[split] = _write_split(tmp, split, data, image_size, decoded, listing.classes)
        finally:
            if pool:
                pool.terminate()  # stops the workers at once, also after an error
                pool.join()
        (tmp / "classes.json").write_text(json.dumps(list(listing.classes), indent=1) + "\n")
        names = [f"{s}_{a}.npy" for s in SPLITS for a in ("images", "labels")] + ["classes.json"]
        for name in names:
            _fsync(tmp / name)
        files = {name: _sha256(tmp / name) for name in names}
        manifest = {
            "format_version": FORMAT_VERSION, "kind": kind, "size": (size or "full") if kind == "imagenette" else None,
            "source": str(Path(source).resolve()), "image_size": image_size, "resize": RESIZE_RULE,
            "pillow": Image.__version__, "num_classes": len(listing.classes), "splits": splits,
            "files": files, "content_hash": _content_hash(files),
            "seconds": round(time.monotonic() - started, 3), "workers": workers,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        _fsync(tmp / "manifest.json")
        try:
            os.rename(tmp, dest)  # atomic; replaces only an empty folder
        except OSError as error:
            raise PackingError(f"{dest} appeared while packing ({error.strerror}); delete it and pack again") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


# --- reading ------------------------------------------------------------------------


def read_manifest(dest: Path) -> dict:
    """The manifest of the pack at `dest`; PackingError if there is none or files are missing."""
    dest = Path(dest)
    hint = PACK_COMMAND.format(dest=dest)
    if not dest.is_dir():
        raise PackingError(f"no pack at {dest}; make it with: {hint}")
    path = dest / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise PackingError(f"{dest} is not a complete pack (no manifest.json); delete it and run: {hint}") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise PackingError(f"{path} is damaged ({error}); delete {dest} and run: {hint}") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        raise PackingError(f"{path}: not a pack of format {FORMAT_VERSION}; delete {dest} and run: {hint}")
    if missing := [name for name in manifest["files"] if not (dest / name).is_file()]:
        raise PackingError(f"{dest} is not a complete pack (missing {', '.join(missing)}); "
                           f"delete it and run: {hint}")
    return manifest


def load_packed(dest: Path, split: str, mmap: bool = True) -> tuple[np.ndarray, np.ndarray, list[str], dict]:
    """(images N x 3 x S x S uint8, labels int64, class names, manifest) of one split.

    The images are a read-only memory map when `mmap`, so a large pack costs no RAM
    until read; the labels are always read whole.
    """
    if split not in SPLITS:
        raise PackingError(f"split {split!r} unknown; use one of {', '.join(SPLITS)}")
    dest = Path(dest)
    manifest = read_manifest(dest)
    images = np.load(dest / f"{split}_images.npy", mmap_mode="r" if mmap else None)
    labels = np.load(dest / f"{split}_labels.npy")
    classes = json.loads((dest / "classes.json").read_text())
    count, size = manifest["splits"][split]["count"], manifest["image_size"]
    if images.shape != (count, 3, size, size) or images.dtype != np.uint8 or labels.shape != (count,):
        raise PackingError(f"{dest / f'{split}_images.npy'}: shape {images.shape} or labels {labels.shape} "
                           f"differ from manifest.json; run python -m hybrid.packing verify {dest}, then pack again")
    return images, labels, classes, manifest


def verify(dest: Path) -> dict:
    """Recomputes every file's SHA-256; PackingError naming the first that differs. Returns the manifest."""
    dest = Path(dest)
    manifest = read_manifest(dest)
    for name, digest in sorted(manifest["files"].items()):
        if _sha256(dest / name) != digest:
            raise PackingError(f"{dest / name}: SHA-256 differs from manifest.json (damaged or altered); "
                               f"delete {dest} and run: {PACK_COMMAND.format(dest=dest)}")
    if _content_hash(manifest["files"]) != manifest["content_hash"]:
        raise PackingError(f"{dest / 'manifest.json'}: content hash does not match its file hashes; pack again")
    return manifest


# --- fetching (where there is internet) ---------------------------------------------


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


# --- command line -------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hybrid.packing", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    pack_cmd = commands.add_parser("pack", help="decode, resize and crop a data set into uint8 arrays")
    pack_cmd.add_argument("kind", choices=KINDS)
    pack_cmd.add_argument("--source", required=True, type=Path, help="the data set's folder")
    pack_cmd.add_argument("--dest", required=True, type=Path, help="the pack's folder (must not exist)")
    pack_cmd.add_argument("--image-size", required=True, type=int, help="side of the square images")
    pack_cmd.add_argument("--size", choices=tuple(IMAGENETTE_FOLDERS), help="Imagenette variant (default full)")
    pack_cmd.add_argument("--workers", type=int, help="decoding processes (default min(8, CPUs))")
    verify_cmd = commands.add_parser("verify", help="recompute a pack's SHA-256s")
    verify_cmd.add_argument("dest", type=Path)
    fetch_cmd = commands.add_parser("fetch", help="download tiny-imagenet or imagenette (needs internet)")
    fetch_cmd.add_argument("kind", choices=KINDS)
    fetch_cmd.add_argument("--root", required=True, type=Path)
    fetch_cmd.add_argument("--size", choices=tuple(IMAGENETTE_FOLDERS))
    args = parser.parse_args(argv)

    try:
        if args.command == "pack":
            m = pack(args.kind, args.source, args.dest, args.image_size, size=args.size, workers=args.workers)
            print(f"packed {args.kind} into {args.dest}: {m['splits']['train']['count']} train and "
                  f"{m['splits']['val']['count']} val images, {m['num_classes']} classes, "
                  f"{m['image_size']}x{m['image_size']}, content hash {m['content_hash'][:16]}, {m['seconds']:.0f} s")
        elif args.command == "verify":
            m = verify(args.dest)
            print(f"{args.dest}: intact, content hash {m['content_hash'][:16]}")
        else:
            try:
                source = fetch(args.kind, args.root, size=args.size)
            except (OSError, RuntimeError) as error:  # URLError is an OSError; md5 mismatch a RuntimeError
                print(f"error: could not fetch {args.kind} into {args.root}: {error}".replace("\n", " "),
                      file=sys.stderr)
                return 1
            print(f"{args.kind} ready: pack it with python -m hybrid.packing pack {args.kind} --source {source} "
                  "--dest DIR --image-size N" + (f" --size {args.size}" if args.size else ""))
    except (PackingError, FileNotFoundError, NotADirectoryError, PermissionError) as error:
        print(f"error: {error}".replace("\n", " "), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
