"""One-file, code-free checkpoints, written atomically, with a SHA-256 over the whole file.

Format version 2 (what `write_checkpoint` writes), little-endian:

    offset        size  field
    0             8     magic b"POLYAK\\x00\\x02" (b"POLYAK" + the format version as a big-endian uint16)
    8             8     header length H (uint64)
    16            H     UTF-8 JSON header, keys sorted:
                            {"format": 2,
                             "metadata": {...},                     (the caller's, a JSON object)
                             "arrays": {name: {"dtype": str, "shape": [int, ...],
                                               "offset": int, "nbytes": int}}}
    16 + H        P     payload: the raw little-endian array bytes, contiguous, in the order written
                        (P = the sum of the arrays' nbytes; offsets are relative to the payload start)
    16 + H + P    32    SHA-256 of bytes [0, 16 + H + P): magic, length, header and payload

The digest covers every byte before it, so one flipped byte anywhere (the magic, the length, the
header's gamma or seed or an array's offset, the payload, or the digest itself) fails the check.

Format version 1 (what polyak 0.1.0 wrote, until format 2 replaced it) is read as before: magic
b"POLYAK\\x00\\x01", the same length and header, with "format": 1 and "payload_sha256" (hex) in the
header, then the payload and no trailer. Its digest covers only the payload: a changed byte in a
version-1 *header* that still parses and passes the field checks below cannot be detected. Re-save a
model to get a version-2 file. (A format-1 reader given a format-2 file reports "format 0002 is not
supported by this version".)

Reading (`read_checkpoint`, or `read_checkpoint_bytes` for a file already in memory), in this order,
and nothing is allocated from a size the file has not been checked to hold:
  1. the path must be an existing regular file (a directory, a missing file and a permission problem
     each get their own message), opened and sized with fstat;
  2. the 16-byte preamble is read first (a shorter file is "too short to be a polyak checkpoint");
     the magic must say polyak, and a format newer than this reader's is refused with a message naming
     both versions (and the writing polyak's version when the header shows it);
  3. the header length is checked against the file size and `MAX_HEADER_BYTES` before it is read;
  4. every header field is validated, with an error naming the field: format (an int, equal to the
     magic's), metadata (a JSON object), arrays (an object of {dtype in the allowed set, shape a list
     of non-negative ints, offset/nbytes non-negative ints, nbytes == prod(shape) * itemsize}), offsets
     contiguous from 0 and the total equal to the payload the file holds ("truncated" when it holds
     less); in a version-2 file whose header fails, the whole-file digest decides whether to call it
     corrupted (digest mismatch) or merely invalid (a crafted or buggy header with a valid digest);
  5. only then is the payload read, array by array, and the digest checked before anything is returned.
Loading parses JSON and raw bytes only: no pickle, nothing is executed. Every problem with the file's
content (and OSErrors such as a permission problem) surfaces as `CheckpointError`, a ValueError.

Why hand-written and not safetensors: safetensors has no whole-file hash (the header would still be
unprotected, so the digest would have to be added around it anyway), its metadata is a flat str->str
map where ours is nested JSON, and the version-1 reader must stay hand-written regardless; the format
above is a few dozen lines on top of JSON and hashlib, with no new dependency.

Writing is atomic: a temporary file `.NAME.XXXXXXXX.tmp` in the destination folder (created with mode
0o666 & ~umask, as a plain open() would, so model files follow the umask like other run outputs),
fsync, rename over NAME, fsync the folder; on any failure the temporary file is removed and a previous
NAME is left untouched.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import secrets
import stat
import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from polyak._version import __version__

MAGIC_PREFIX = b"POLYAK"
FORMAT_VERSION = 2
SUPPORTED_FORMATS = (1, 2)
MAGIC_V1 = MAGIC_PREFIX + (1).to_bytes(2, "big")
MAGIC = MAGIC_PREFIX + FORMAT_VERSION.to_bytes(2, "big")
PREAMBLE_BYTES = 16  # magic + header length
DIGEST_BYTES = 32  # the version-2 trailer: SHA-256 of everything before it
MAX_HEADER_BYTES = 64 * 2**20  # a sane limit: real headers are a few KB
MAX_NDIM = 32
_MAX_EXTENT = 2**62  # the product of an array's non-zero dimensions times its itemsize must stay below this
_ALLOWED_DTYPES = {"float32", "float64", "int32", "int64", "uint32", "uint8", "bool", "int8", "int16", "uint16", "uint64", "float16"}
_ENTRY_KEYS = {"dtype", "shape", "offset", "nbytes"}
_HEADER_KEYS = {1: {"format", "metadata", "arrays", "payload_sha256"}, 2: {"format", "metadata", "arrays"}}
_CHUNK = 1 << 20


class CheckpointError(ValueError):
    """The file is not a readable polyak checkpoint (truncated, corrupted, wrong kind or version)."""


# -- writing -------------------------------------------------------------------------------------------

def write_checkpoint(path: str | os.PathLike, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> None:
    """Atomically write arrays + JSON metadata in format 2: temp file in the same folder, fsync, rename."""
    path = Path(path)
    if not isinstance(metadata, dict):
        raise TypeError(f"checkpoint metadata must be a dict, got {type(metadata).__name__}")
    entries, chunks, offset = {}, [], 0
    for name, value in arrays.items():
        if not isinstance(name, str):
            raise TypeError(f"checkpoint array names must be str, got {name!r}")
        arr = np.array(value, copy=None, order="C")  # (np.ascontiguousarray would turn 0-d into 1-d)
        if arr.dtype.name not in _ALLOWED_DTYPES:
            raise TypeError(f"cannot checkpoint array {name!r} of dtype {arr.dtype}")
        data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        entries[name] = {"dtype": arr.dtype.name, "shape": list(arr.shape), "offset": offset, "nbytes": len(data)}
        chunks.append(data)
        offset += len(data)
    header = json.dumps({"format": FORMAT_VERSION, "metadata": metadata, "arrays": entries}, sort_keys=True).encode()
    if len(header) > MAX_HEADER_BYTES:
        raise ValueError(f"checkpoint header would be {len(header)} bytes, over the {MAX_HEADER_BYTES}-byte limit "
                         "readers accept: keep large data in arrays, not in metadata")
    digest = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            for part in (MAGIC, struct.pack("<Q", len(header)), header, *chunks):
                digest.update(part)
                f.write(part)
            f.write(digest.digest())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _create_temp(path: Path) -> tuple[int, str]:
    """A new `.NAME.XXXXXXXX.tmp` next to `path`, mode 0o666 & ~umask (mkstemp would force 0o600)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(path.parent, f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file next to {path}")


# -- reading -------------------------------------------------------------------------------------------

def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, metadata) from a checkpoint file of format 1 or 2; `CheckpointError` for anything wrong."""
    path = Path(path)
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint ({exc.strerror or exc})") from exc
    if stat.S_ISDIR(st.st_mode):
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    if not stat.S_ISREG(st.st_mode):
        raise CheckpointError(f"{path}: is not a regular file, not a checkpoint file")
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):  # replaced between stat and open
                raise CheckpointError(f"{path}: is not a regular file, not a checkpoint file")
            return _read(f, st.st_size, str(path))
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file") from None
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint ({exc.strerror or exc})") from exc


def read_checkpoint_bytes(data: bytes | bytearray | memoryview,
                          name: str = "<bytes>") -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """`read_checkpoint` for a checkpoint already in memory; `name` is used in messages."""
    data = bytes(data)
    return _read(io.BytesIO(data), len(data), name)


def _read(f: BinaryIO, size: int, label: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    def fail(message: str) -> CheckpointError:
        return CheckpointError(f"{label}: {message}")

    # 1. the preamble, read alone
    if size < PREAMBLE_BYTES:
        raise fail(f"too short to be a polyak checkpoint ({size} bytes)")
    preamble = _read_exact(f, PREAMBLE_BYTES, fail)
    magic, (header_len,) = preamble[:8], struct.unpack("<Q", preamble[8:])
    if magic[:6] != MAGIC_PREFIX:
        raise fail("not a polyak checkpoint (bad magic bytes; another kind of file, or damaged)")
    version = int.from_bytes(magic[6:8], "big")
    if version not in SUPPORTED_FORMATS:
        if version > max(SUPPORTED_FORMATS):
            raise fail(_newer_format_message(version, _peek_library_version(f, header_len, size)))
        raise fail(f"unknown polyak checkpoint format {version} (this polyak reads formats {_supported()}); damaged?")
    trailer = DIGEST_BYTES if version >= 2 else 0

    # 2. the header length against the file size and the limit, before reading it
    if header_len > MAX_HEADER_BYTES:
        raise fail(f"header length field says {header_len} bytes, over the {MAX_HEADER_BYTES}-byte limit "
                   "(corrupted, or not a polyak checkpoint)")
    room = size - PREAMBLE_BYTES - trailer
    if header_len > room:
        raise fail(f"truncated checkpoint (header length field says {header_len} bytes, "
                   f"the file has {max(room, 0)} after the preamble{' and digest' if trailer else ''})")
    header_bytes = _read_exact(f, header_len, fail)
    payload_size = room - header_len

    # 3. every header field
    try:
        header = _parse_header(header_bytes, version)
        layout = _validate_arrays(header["arrays"], payload_size)
    except _Truncated as exc:
        raise fail(f"truncated checkpoint ({exc})") from None
    except _BadHeader as exc:
        if version >= 2 and not _whole_file_digest_ok(f, size):
            raise fail(f"corrupted checkpoint (SHA-256 mismatch over the whole file; the header also fails "
                       f"validation: {exc})") from None
        lib = _library_version(getattr(exc, "header", None))
        raise fail(f"invalid checkpoint header: {exc}{f' (written by polyak {lib})' if lib else ''}") from None

    # 4. the payload, now known to be exactly what is left of the file
    digest = hashlib.sha256(preamble + header_bytes) if version >= 2 else hashlib.sha256()
    loaded = {}
    for name, dtype, shape, nbytes in layout:
        data = _read_exact(f, nbytes, fail)
        digest.update(data)
        loaded[name] = (data, dtype, shape)
    if version >= 2:
        if _read_exact(f, DIGEST_BYTES, fail) != digest.digest():
            raise fail("corrupted checkpoint (SHA-256 mismatch over the whole file)")
    elif digest.hexdigest() != header["payload_sha256"]:
        raise fail("corrupted checkpoint (payload SHA-256 mismatch)")

    arrays = {}
    for name in header["arrays"]:  # the header's order, as format-1 readers returned them
        data, dtype, shape = loaded[name]
        if dtype.kind == "b" and np.frombuffer(data, np.uint8).max(initial=0) > 1:
            raise fail(f"invalid checkpoint header: array {name!r} is bool but holds bytes other than 0 and 1")
        arrays[name] = np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
    return arrays, header["metadata"]


class _BadHeader(Exception):
    """A header field fails validation (message names the field)."""


class _Truncated(Exception):
    """The header describes more payload than the file holds."""


def _read_exact(f: BinaryIO, n: int, fail) -> bytes:
    data = f.read(n)
    if len(data) != n:  # the file shrank while being read
        raise fail(f"truncated checkpoint (wanted {n} more bytes, got {len(data)})")
    return data


def _parse_header(header_bytes: bytes, version: int) -> dict[str, Any]:
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise _BadHeader(f"header is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except (ValueError, RecursionError) as exc:
        raise _BadHeader(f"header is not valid JSON ({str(exc)[:200]})") from None
    if not isinstance(header, dict):
        raise _BadHeader(f"header must be a JSON object, got {_kind(header)}")
    problem = _check_header_fields(header, version)
    if problem:
        err = _BadHeader(problem)
        err.header = header
        raise err
    return header


def _check_header_fields(header: dict[str, Any], version: int) -> str | None:
    missing = sorted(_HEADER_KEYS[version] - set(header))
    if missing:
        return f"header field {missing[0]!r} is missing"
    unknown = sorted(set(header) - _HEADER_KEYS[version])
    if unknown:
        return f"unknown header field {unknown[0]!r} in a format-{version} checkpoint"
    fmt = header["format"]
    if not _is_int(fmt):
        return f"header field 'format' must be an int, got {_short(fmt)}"
    if fmt != version:
        if fmt not in SUPPORTED_FORMATS:
            return (f"header field 'format' says the file was written by format {fmt}, this polyak reads "
                    f"formats {_supported()} (and the magic bytes say format {version})")
        return f"header field 'format' is {fmt} but the magic bytes say format {version}"
    if not isinstance(header["metadata"], dict):
        return f"header field 'metadata' must be a JSON object, got {_kind(header['metadata'])}"
    if not isinstance(header["arrays"], dict):
        return f"header field 'arrays' must be a JSON object, got {_kind(header['arrays'])}"
    if version == 1:
        h = header["payload_sha256"]
        if not (isinstance(h, str) and len(h) == 64 and all(c in "0123456789abcdef" for c in h)):
            return f"header field 'payload_sha256' must be 64 lowercase hex digits, got {_short(h)}"
    return None


def _validate_arrays(entries: dict[str, Any], payload_size: int) -> list[tuple[str, np.dtype, tuple, int]]:
    """[(name, little-endian dtype, shape, nbytes)] in payload order; _BadHeader / _Truncated otherwise."""
    layout = []
    for name, e in entries.items():
        where = f"arrays[{name!r}]"
        if not isinstance(e, dict):
            raise _BadHeader(f"header field {where} must be a JSON object, got {_kind(e)}")
        missing, unknown = sorted(_ENTRY_KEYS - set(e)), sorted(set(e) - _ENTRY_KEYS)
        if missing:
            raise _BadHeader(f"header field {where}.{missing[0]} is missing")
        if unknown:
            raise _BadHeader(f"unknown header field {where}.{unknown[0]}")
        if not isinstance(e["dtype"], str) or e["dtype"] not in _ALLOWED_DTYPES:
            raise _BadHeader(f"header field {where}.dtype is {_short(e['dtype'])}, not one of "
                             f"{', '.join(sorted(_ALLOWED_DTYPES))}")
        shape = e["shape"]
        if not (isinstance(shape, list) and len(shape) <= MAX_NDIM and all(_is_int(d) and d >= 0 for d in shape)):
            raise _BadHeader(f"header field {where}.shape must be a list of at most {MAX_NDIM} non-negative ints, "
                             f"got {_short(shape)}")
        for key in ("offset", "nbytes"):
            if not (_is_int(e[key]) and e[key] >= 0):
                raise _BadHeader(f"header field {where}.{key} must be a non-negative int, got {_short(e[key])}")
        dtype = np.dtype(e["dtype"]).newbyteorder("<")
        if math.prod(max(d, 1) for d in shape) * dtype.itemsize > _MAX_EXTENT:  # numpy refuses these, even empty
            raise _BadHeader(f"header field {where}.shape {_short(shape)} is too large for an array")
        expected = math.prod(shape) * dtype.itemsize
        if e["nbytes"] != expected:
            raise _BadHeader(f"header field {where}.nbytes is {e['nbytes']}, but shape {shape} of {e['dtype']} "
                             f"takes {expected} bytes")
        layout.append((e["offset"], e["nbytes"], name, dtype, tuple(shape)))
    layout.sort(key=lambda t: (t[0], t[1]))
    end = 0
    for offset, nbytes, name, _, _ in layout:
        if offset != end:
            what = "overlaps the previous array" if offset < end else f"leaves a gap after byte {end}"
            raise _BadHeader(f"header field arrays[{name!r}].offset is {offset}: it {what} "
                             "(arrays must be contiguous from payload offset 0)")
        end = offset + nbytes
        if end > payload_size:
            raise _Truncated(f"array {name!r} ends at payload byte {end}, the file holds {payload_size} payload bytes")
    if end != payload_size:
        raise _BadHeader(f"the arrays take {end} payload bytes but the file holds {payload_size}: "
                         f"{payload_size - end} unexpected bytes after the payload")
    return [(name, dtype, shape, nbytes) for _, nbytes, name, dtype, shape in layout]


def _whole_file_digest_ok(f: BinaryIO, size: int) -> bool:
    """Whether the version-2 trailer matches the file (streamed in chunks: nothing big is allocated)."""
    digest, left = hashlib.sha256(), size - DIGEST_BYTES
    f.seek(0)
    while left > 0:
        chunk = f.read(min(_CHUNK, left))
        if not chunk:
            return False
        digest.update(chunk)
        left -= len(chunk)
    return f.read(DIGEST_BYTES) == digest.digest()


def _peek_library_version(f: BinaryIO, header_len: int, size: int) -> str | None:
    """Best effort, for the message about a newer format: the writer's polyak version, if its header shows it."""
    if header_len > min(MAX_HEADER_BYTES, size - PREAMBLE_BYTES):
        return None
    try:
        return _library_version(json.loads(f.read(header_len).decode("utf-8")))
    except (ValueError, RecursionError):
        return None


def _library_version(header: Any) -> str | None:
    meta = header.get("metadata") if isinstance(header, dict) else None
    version = meta.get("library_version") if isinstance(meta, dict) else None
    return version[:40] if isinstance(version, str) else None


def _newer_format_message(version: int, library_version: str | None) -> str:
    by = f" (polyak {library_version})" if library_version else ""
    return (f"checkpoint written by format {version}{by}, this polyak ({__version__}) reads formats "
            f"{_supported()}: upgrade polyak to load it")


def _supported() -> str:
    return f"{min(SUPPORTED_FORMATS)}-{max(SUPPORTED_FORMATS)}"


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _kind(x: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a bool", int: "a number",
            float: "a number", type(None): "null"}.get(type(x), type(x).__name__)


def _short(x: Any) -> str:
    text = repr(x)
    return text if len(text) <= 80 else text[:77] + "..."
