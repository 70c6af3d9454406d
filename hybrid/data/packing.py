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
ImageNet; decoding runs in a process pool, in order. `load_packed` maps the arrays back after
the cheap checks of `hybrid.data.pack_check` (headers, sizes, classes, labels against the
manifest); `verify` recomputes the hashes (a run's load does so once per pack and host).
The folders' layouts, and `fetch`, are in `hybrid.data.layouts`.
The command line: `python -m hybrid.data.packing --help`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap
from PIL import Image
from tqdm import tqdm

from hybrid.data.layouts import IMAGENETTE_FOLDERS, KINDS, LAYOUTS, SPLITS, PackingError, Split, fetch, list_images
from hybrid.data.pack_check import (
                                    PACK_COMMAND,
                                    check_array,
                                    check_classes,
                                    check_labels,
                                    check_manifest,
                                    content_hash,
                                    file_sha256,
                                    verify_once,
)

FORMAT_VERSION = 1


RESIZE_FILTER = Image.Resampling.BICUBIC
RESIZE_RULE = ("PIL BICUBIC (antialiased, reducing_gap=None): shorter side to image_size, longer "
               "side int(image_size * long / short) as torchvision Resize; centre crop at "
               "offsets int(round((side - image_size) / 2)) as torchvision CenterCrop")


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
        files = {name: file_sha256(tmp / name) for name in names}
        manifest = {
            "format_version": FORMAT_VERSION, "kind": kind, "size": (size or "full") if kind == "imagenette" else None,
            "source": str(Path(source).resolve()), "image_size": image_size, "resize": RESIZE_RULE,
            "pillow": Image.__version__, "num_classes": len(listing.classes), "splits": splits,
            "files": files, "content_hash": content_hash(files),
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
    """The manifest of the pack at `dest`, its fields checked (`pack_check.check_manifest`);
    PackingError if there is none, it is damaged or files are missing."""
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
    check_manifest(dest, manifest)
    if missing := [name for name in manifest["files"] if not (dest / name).is_file()]:
        raise PackingError(f"{dest} is not a complete pack (missing {', '.join(missing)}); "
                           f"delete it and run: {hint}")
    return manifest


def load_packed(dest: Path, split: str, mmap: bool = True) -> tuple[np.ndarray, np.ndarray, list[str], dict]:
    """(images N x 3 x S x S uint8, labels int64, class names, manifest) of one split.

    Checked first against the manifest, without reading an image: the arrays' headers and
    sizes, classes.json, every label (`hybrid.data.pack_check`); a failure is one
    PackingError naming the file, `verify` and how to pack again. The images are a read-only
    memory map when `mmap`, so a large pack costs no RAM until read; the labels are always
    read whole.
    """
    if split not in SPLITS:
        raise PackingError(f"split {split!r} unknown; use one of {', '.join(SPLITS)}")
    dest = Path(dest)
    manifest = read_manifest(dest)
    classes = check_classes(dest, manifest)
    count, size = manifest["splits"][split]["count"], manifest["image_size"]
    check_array(dest, manifest, f"{split}_images.npy", (count, 3, size, size), np.uint8)
    check_array(dest, manifest, f"{split}_labels.npy", (count,), np.int64)
    images = np.load(dest / f"{split}_images.npy", mmap_mode="r" if mmap else None)
    labels = np.load(dest / f"{split}_labels.npy")
    check_labels(dest, manifest, split, labels)
    return images, labels, classes, manifest


def verify(dest: Path) -> dict:
    """Recomputes every file's SHA-256; PackingError naming the first that differs. Returns the
    manifest. A success is recorded for this host, so that the next run's load skips the hashing."""
    dest = Path(dest)
    manifest = read_manifest(dest)
    verify_once(dest, manifest, force=True)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hybrid.data.packing", description=__doc__.splitlines()[0])
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
            print(f"{args.kind} ready: pack it with python -m hybrid.data.packing pack {args.kind} --source {source} "
                  "--dest DIR --image-size N" + (f" --size {args.size}" if args.size else ""))
    except (PackingError, FileNotFoundError, NotADirectoryError, PermissionError) as error:
        print(f"error: {error}".replace("\n", " "), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
