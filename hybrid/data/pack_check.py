"""A pack's files checked as a run loads them: the cheap checks every time, the SHA-256s once
per pack and host.

Every load (`hybrid.data.packing.read_manifest` and `load_packed`) checks, without reading
the images:
- manifest.json: its fields and types, per-class counts that sum to each split's count, the
  same classes in both splits, and its content hash against its file hashes;
- each `.npy` file's header against manifest.json (dtype, shape, C order) and the file's
  size against the header (a truncated or padded array);
- classes.json: exactly the manifest's class names, in index order;
- the labels (read whole, 8 bytes an image): within [0, num_classes), and the count of
  every class equal to the manifest's, so any one damaged label is caught.

Once per pack and host (`verify_once`, when a run loads a pack): every file's SHA-256 against
manifest.json, as `python -m hybrid.data.packing verify` does, then recorded in
DEST/verified/<host>.json, keyed by the content hash and each file's size and mtime. A later
load on that host whose key matches skips the hashing; any write to a file (an edit, a
truncation, a copy over it) changes its mtime, so it is hashed again. Damage below the file
system after the first verification (a bit rotting on disk) is not seen by a load; `verify`
recomputes every hash on demand. Every problem is one `PackingError` naming the file and
the fix.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import time
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from hybrid.data.layouts import SPLITS, PackingError

log = logging.getLogger("hybrid.data")

PACK_COMMAND = "python -m hybrid.data.packing pack KIND --source DIR --dest {dest} --image-size N"
HEADER_READERS = {(1, 0): npy_format.read_array_header_1_0, (2, 0): npy_format.read_array_header_2_0}


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def content_hash(files: dict[str, str]) -> str:
    """One hash over the files' names and hashes, in name order."""
    return hashlib.sha256("".join(f"{name} {digest}\n" for name, digest in sorted(files.items())).encode()).hexdigest()


def repack_command(dest: Path, manifest: dict | None = None) -> str:
    """The command that made the pack at `dest` (from its manifest), else the generic one."""
    try:
        size = f" --size {manifest['size']}" if manifest["kind"] == "imagenette" else ""
        return (f"python -m hybrid.data.packing pack {manifest['kind']} --source {manifest['source']} "
                f"--dest {dest} --image-size {manifest['image_size']}{size}")
    except (KeyError, TypeError):
        return PACK_COMMAND.format(dest=dest)


def fix(dest: Path, manifest: dict | None = None) -> str:
    return (f"check the pack with python -m hybrid.data.packing verify {dest}; to pack again, delete {dest} "
            f"and run: {repack_command(dest, manifest)}")


def check_manifest(dest: Path, manifest) -> None:
    """The fields the loaders read, of the right types and consistent with each other."""
    def bad(why: str):
        return PackingError(f"{dest / 'manifest.json'}: {why}; delete {dest} and run: {repack_command(dest, manifest)}")

    if not isinstance(manifest, dict):
        raise bad("not a JSON object")
    files, splits = manifest.get("files"), manifest.get("splits")
    if not (isinstance(files, dict) and files and all(isinstance(v, str) for v in files.values())):
        raise bad("no file hashes ('files')")
    for key in ("image_size", "num_classes"):
        if not _count(manifest.get(key)) or manifest[key] < 1:
            raise bad(f"{key!r} is {manifest.get(key)!r}, not a positive integer")
    if not isinstance(splits, dict) or set(splits) != set(SPLITS):
        raise bad(f"'splits' must hold {' and '.join(SPLITS)}")
    names = None
    for split, entry in splits.items():
        per_class = entry.get("per_class") if isinstance(entry, dict) else None
        if not (isinstance(per_class, dict) and _count(entry.get("count")) and all(map(_count, per_class.values()))
                and sum(per_class.values()) == entry["count"]):
            raise bad(f"split {split!r}: its count and per-class counts disagree or are missing")
        if names is not None and list(per_class) != names:
            raise bad("the splits list different classes")
        names = list(per_class)
    if len(names) != manifest["num_classes"]:
        raise bad(f"num_classes {manifest['num_classes']} but {len(names)} classes counted")
    if content_hash(files) != manifest.get("content_hash"):
        raise bad("its content hash does not match its file hashes")


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_array(dest: Path, manifest: dict, name: str, shape: tuple[int, ...], dtype) -> None:
    """`dest/name`'s .npy header says `dtype` and `shape` in C order, and the file holds that
    much data: no more, no less. Reads the header only."""
    path = dest / name
    try:
        with open(path, "rb") as f:
            version = npy_format.read_magic(f)
            if version not in HEADER_READERS:
                raise ValueError(f"format version {version[0]}.{version[1]}")
            header = HEADER_READERS[version](f)
            offset = f.tell()
    except (ValueError, TypeError, OverflowError) as error:  # numpy's messages for a damaged header
        why = str(error).replace("\n", " ")
        raise PackingError(f"{path}: damaged or truncated .npy header ({why}); {fix(dest, manifest)}") from None
    found, fortran, found_dtype = header
    if found != shape or found_dtype != np.dtype(dtype) or fortran:
        raise PackingError(f"{path}: its header says {found_dtype} {found}{' Fortran order' if fortran else ''}, "
                           f"manifest.json {np.dtype(dtype)} {shape} (a damaged header or a file from another "
                           f"pack); {fix(dest, manifest)}")
    needed = offset + int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    if (size := os.stat(path).st_size) != needed:
        raise PackingError(f"{path}: {size} bytes, but its header and manifest.json need {needed} "
                           f"({'truncated' if size < needed else 'data past the array'}); {fix(dest, manifest)}")


def check_classes(dest: Path, manifest: dict) -> list[str]:
    """classes.json, which must list the manifest's classes in index order."""
    path = dest / "classes.json"
    expected = list(manifest["splits"]["train"]["per_class"])
    try:
        classes = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise PackingError(f"{path}: damaged ({error}); {fix(dest, manifest)}".replace("\n", " ")) from None
    if classes != expected:
        if isinstance(classes, list) and all(isinstance(c, str) for c in classes):
            extra, missing = [c for c in classes if c not in expected], [c for c in expected if c not in classes]
            what = (f"{len(classes)} classes, manifest.json {len(expected)}" +
                    (f"; not packed: {', '.join(extra[:5])}" if extra else "") +
                    (f"; left out: {', '.join(missing[:5])}" if missing else "") +
                    ("; another order" if not (extra or missing) else ""))
        else:
            what = "not a list of class names"
        raise PackingError(f"{path}: {what} (altered since packing); {fix(dest, manifest)}")
    return classes


def check_labels(dest: Path, manifest: dict, split: str, labels: np.ndarray) -> None:
    """Every label a class index, and as many of each class as manifest.json counts."""
    path, classes = dest / f"{split}_labels.npy", list(manifest["splits"][split]["per_class"])
    n = len(classes)
    if len(bad := np.flatnonzero((labels < 0) | (labels >= n))):
        raise PackingError(f"{path}: label {int(labels[bad[0]])} at index {int(bad[0])} is not a class index "
                           f"(0 to {n - 1}; {len(bad)} such labels); {fix(dest, manifest)}")
    counts = np.bincount(labels, minlength=n)
    expected = manifest["splits"][split]["per_class"]
    if wrong := [c for c, got in zip(classes, counts.tolist()) if got != expected[c]]:
        raise PackingError(f"{path}: {len(wrong)} classes counted otherwise than in manifest.json (first "
                           f"{wrong[0]}: {int(counts[classes.index(wrong[0])])} labels, manifest "
                           f"{expected[wrong[0]]}); {fix(dest, manifest)}")


def check_hashes(dest: Path, manifest: dict) -> None:
    """Every file's SHA-256 against manifest.json's (reads every byte)."""
    for name, digest in sorted(manifest["files"].items()):
        if file_sha256(dest / name) != digest:
            raise PackingError(f"{dest / name}: SHA-256 differs from manifest.json (damaged or altered since "
                               f"packing); {fix(dest, manifest)}")


def cache_path(dest: Path) -> Path:
    """DEST/verified/<host>.json: one file a host, so that hosts sharing a pack never race."""
    host = re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()) or "unknown-host"
    return Path(dest) / "verified" / f"{host}.json"


def _cache_key(dest: Path, manifest: dict) -> dict:
    names = sorted(manifest["files"]) + ["manifest.json"]
    stats = {name: os.stat(dest / name) for name in names}
    return {"content_hash": manifest["content_hash"], "host": socket.gethostname(),
            "files": {name: [st.st_size, st.st_mtime_ns] for name, st in stats.items()}}


def verify_once(dest: Path, manifest: dict, force: bool = False) -> bool:
    """`check_hashes` unless this host has recorded it for the files as they are now (or
    `force`); records a success. True when it hashed."""
    dest, path = Path(dest), cache_path(dest)
    key = _cache_key(dest, manifest)  # before hashing: a file written meanwhile is hashed again next time
    if not force:
        try:
            if {k: v for k, v in json.loads(path.read_text()).items() if k != "verified_at"} == key:
                return False
        except (OSError, ValueError, AttributeError):
            pass
        gb = sum(size for size, _ in key["files"].values()) / 1e9
        log.info("%s: checking the SHA-256 of its %.2f GB, once on this host", dest, gb)
    check_hashes(dest, manifest)
    try:
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps({**key, "verified_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n")
        os.replace(tmp, path)
    except OSError as error:  # a read-only pack still trains, hashed by every run
        log.warning("%s: could not record its verification in %s (%s); every run hashes it again",
                    dest, path, error.strerror or error)
    return True
