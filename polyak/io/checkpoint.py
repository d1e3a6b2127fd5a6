"""One-file, code-free checkpoints, written atomically.

Format (version 1), little-endian:
    8 bytes   magic  b"POLYAK\\x00\\x01"
    8 bytes   header length H (uint64)
    H bytes   UTF-8 JSON header: {"format": 1, "metadata": {...},
                                  "arrays": {name: {"dtype", "shape", "offset", "nbytes"}},
                                  "payload_sha256": hex}
    payload   the raw array bytes, concatenated in header order

Loading parses JSON and raw bytes only: no pickle, nothing is executed. A truncated or corrupted
file fails the length or SHA-256 check with a `CheckpointError` that says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"POLYAK\x00\x01"
FORMAT_VERSION = 1
_ALLOWED_DTYPES = {"float32", "float64", "int32", "int64", "uint32", "uint8", "bool", "int8", "int16", "uint16", "uint64", "float16"}


class CheckpointError(ValueError):
    """The file is not a readable polyak checkpoint (truncated, corrupted, wrong kind or version)."""


def write_checkpoint(path: str | os.PathLike, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> None:
    """Atomically write arrays + JSON metadata: temp file in the same folder, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    entries, chunks, offset = {}, [], 0
    digest = hashlib.sha256()
    for name, value in arrays.items():
        arr = np.array(value, copy=None, order="C")  # (np.ascontiguousarray would turn 0-d into 1-d)
        if arr.dtype.name not in _ALLOWED_DTYPES:
            raise TypeError(f"cannot checkpoint array {name!r} of dtype {arr.dtype}")
        data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        entries[name] = {"dtype": arr.dtype.name, "shape": list(arr.shape), "offset": offset, "nbytes": len(data)}
        chunks.append(data)
        digest.update(data)
        offset += len(data)
    header = json.dumps({"format": FORMAT_VERSION, "metadata": metadata, "arrays": entries,
                         "payload_sha256": digest.hexdigest()}, sort_keys=True).encode()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(MAGIC)
            f.write(struct.pack("<Q", len(header)))
            f.write(header)
            for data in chunks:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    raw = path.read_bytes()
    if len(raw) < 16 or raw[:8] != MAGIC:
        if raw[:6] == MAGIC[:6]:
            raise CheckpointError(f"{path}: polyak checkpoint format {raw[6:8].hex()} is not supported by this version")
        raise CheckpointError(f"{path}: not a polyak checkpoint (bad magic bytes; truncated or another format)")
    (header_len,) = struct.unpack("<Q", raw[8:16])
    if 16 + header_len > len(raw):
        raise CheckpointError(f"{path}: truncated checkpoint (header says {header_len} bytes, file has {len(raw) - 16})")
    try:
        header = json.loads(raw[16:16 + header_len].decode())
        entries = header["arrays"]
        payload = memoryview(raw)[16 + header_len:]
        expected = sum(e["nbytes"] for e in entries.values())
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: corrupted checkpoint header ({exc})") from None
    if len(payload) != expected:
        raise CheckpointError(f"{path}: truncated checkpoint (payload has {len(payload)} bytes, expected {expected})")
    if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise CheckpointError(f"{path}: corrupted checkpoint (payload SHA-256 mismatch)")
    arrays = {}
    for name, e in entries.items():
        if e["dtype"] not in _ALLOWED_DTYPES:
            raise CheckpointError(f"{path}: array {name!r} has unsupported dtype {e['dtype']!r}")
        dtype = np.dtype(e["dtype"]).newbyteorder("<")
        buf = payload[e["offset"]:e["offset"] + e["nbytes"]]
        arrays[name] = np.frombuffer(buf, dtype=dtype).reshape(e["shape"]).astype(dtype.newbyteorder("="))
    return arrays, header["metadata"]
