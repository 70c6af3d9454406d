"""Files that carry their own SHA-256: torch payloads read back only if every byte is intact.

A file is a header line, the SHA-256 of the payload in hex, a newline, then the payload
(`torch.save` of an object). Checkpoints and the synthetic data set's cache use it: a job
killed mid-write, a full disk, a copy cut short or a flipped bit shows up as a
`DamagedFileError` when read, never as silently wrong weights or images. Writes go to a
temporary file in the same folder (`.<name>.<8 random characters>.tmp`), synced, then renamed
over the target, so a reader sees the old file or the new one, never half of one. The file gets
the mode a plain `open(path, "w")` would give (0666 less the umask), so a data root shared by a
group stays usable by the group. A write killed midway leaves its temporary behind;
`remove_stale_temps` clears them when a run starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import secrets
import time
from pathlib import Path

import torch

MAGIC = b"hybrid-sha256-v1\n"
DIGEST_HEX = 64
# the temporaries' random part: what tempfile.mkstemp used (older versions' leftovers match too)
TEMP_CHARACTERS, TEMP_RANDOM_LENGTH, TEMP_SUFFIX = "abcdefghijklmnopqrstuvwxyz0123456789_", 8, ".tmp"
STALE_TEMP_AGE_S = 60.0


class DamagedFileError(ValueError):
    """A file that is not as `write` left it: empty, truncated, altered, or written by something else."""

    def __init__(self, path: Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = Path(path), problem


def write(path: Path, obj) -> None:
    """`obj` to `path`, atomically, with the SHA-256 of its serialised bytes in front."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    payload = buffer.getvalue()
    digest = hashlib.sha256(payload).hexdigest().encode()
    path = Path(path)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + digest + b"\n")
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())  # else a crash soon after the rename can leave an empty file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _temp_name(path: Path, random_part: str) -> Path:
    return path.parent / f".{path.name}.{random_part}{TEMP_SUFFIX}"


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new temporary file beside `path`, opened for writing: (descriptor, its path).

    Not tempfile.mkstemp: that creates the file mode 0600, so on a data root shared by a group
    only its creator could read a checkpoint or the data cache. Here the file is created with
    mode 0666 and the kernel applies the umask (and a folder's default ACL) exactly as for
    `open(path, "w")`. No umask is read: reading it means setting it (os.umask), which races
    with any thread creating a file meanwhile, and /proc/self/status is Linux-only.
    O_EXCL refuses an existing name or a planted symlink, as mkstemp does.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        random_part = "".join(secrets.choice(TEMP_CHARACTERS) for _ in range(TEMP_RANDOM_LENGTH))
        tmp = _temp_name(path, random_part)
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: no free temporary name for {path.name} after 100 tries")


def remove_stale_temps(path: Path, *, min_age_s: float = STALE_TEMP_AGE_S) -> list[Path]:
    """Delete the temporaries that killed writes of `path` left behind; return those removed.

    Only regular files beside `path` named exactly `.<name>.<8 random characters>.tmp` count:
    never `path` itself, nor the temporaries of another target (`.<name>.bak.<...>.tmp`
    belongs to `<name>.bak`). The rule for a concurrent writer: a temporary is removed only if
    unmodified for more than `min_age_s` (60 s) - a live write puts its bytes in one go
    (the payload is serialised in memory first), fsyncs and renames, so its file is seconds
    old. In this pipeline a run directory has one job at a time anyway (Snakemake locks its
    outputs); if a writer stalled past the age all the same, its rename fails with
    FileNotFoundError and the old file stays whole: an error, never a damaged file.
    """
    path = Path(path)
    pattern = re.compile(re.escape(f".{path.name}.") + f"[{re.escape(TEMP_CHARACTERS)}]{{{TEMP_RANDOM_LENGTH}}}"
                         + re.escape(TEMP_SUFFIX))
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(path.parent))
    except FileNotFoundError:
        return removed
    for entry in entries:
        if not pattern.fullmatch(entry.name) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime <= min_age_s:
                continue
            os.unlink(entry.path)
        except FileNotFoundError:  # another process cleared it first
            continue
        removed.append(Path(entry.path))
    return sorted(removed)


def read(path: Path, *, weights_only: bool = True):
    """What `write` stored at `path`; DamagedFileError if any byte differs from what was written.

    OSErrors (missing, a directory, no permission) pass through for the caller to name.
    """
    data = Path(path).read_bytes()
    payload = verified_payload(path, data)
    try:
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=weights_only)
    except Exception as err:  # noqa: BLE001 - the digest matched: the writer stored something unloadable
        raise DamagedFileError(path, f"checksum matches but the payload does not load ({type(err).__name__}: {err})") from None


def verified_payload(path: Path, data: bytes) -> bytes:
    """The payload of a file's bytes `data`, after checking its header and digest."""
    if not data:
        raise DamagedFileError(path, "empty file (0 bytes)")
    header_end = len(MAGIC) + DIGEST_HEX + 1
    if not data.startswith(MAGIC):
        if MAGIC.startswith(data):
            raise DamagedFileError(path, f"truncated to {len(data)} bytes, within the header")
        raise DamagedFileError(path, "no checksum header (written by something else, or by an older version)")
    if len(data) < header_end:
        raise DamagedFileError(path, f"truncated to {len(data)} bytes, within the header")
    stored = data[len(MAGIC) : header_end - 1]
    payload = data[header_end:]
    if hashlib.sha256(payload).hexdigest().encode() != stored:
        raise DamagedFileError(path, f"SHA-256 mismatch over its {len(payload)} payload bytes (truncated or altered)")
    return payload
