"""Files that carry their own SHA-256: torch payloads read back only if every byte is intact.

A file is a header line, the SHA-256 of the payload in hex, a newline, then the payload
(`torch.save` of an object). Checkpoints and the synthetic data set's cache use it: a job
killed mid-write, a full disk, a copy cut short or a flipped bit shows up as a
`DamagedFileError` when read, never as silently wrong weights or images. Writes go to a
temporary file in the same folder, synced, then renamed over the target, so a reader sees
the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path

import torch

MAGIC = b"hybrid-sha256-v1\n"
DIGEST_HEX = 64


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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC + digest + b"\n")
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())  # else a crash soon after the rename can leave an empty file
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


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
