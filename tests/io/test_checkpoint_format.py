"""The checkpoint file format (polyak/io/checkpoint.py): whole-file integrity, validation order, messages.

Format 2: magic b"POLYAK\\x00\\x02", uint64 header length H, H bytes of JSON header, payload, and a
32-byte SHA-256 of everything before it. The crafting helper below rebuilds that layout (so the test
also pins it) and recomputes the digest, so that only the header validation can catch a crafted field.
"""

import hashlib
import json
import os
import re
import struct
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import polyak
from polyak.io import checkpoint as checkpoint_module
from polyak.io.checkpoint import (
    MAGIC,
    MAGIC_V1,
    MAX_HEADER_BYTES,
    CheckpointError,
    read_checkpoint,
    read_checkpoint_bytes,
    write_checkpoint,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "v0_1_357b62c"
ALL_DTYPES = ["float16", "float32", "float64", "int8", "int16", "int32", "int64",
              "uint8", "uint16", "uint32", "uint64", "bool"]


def craft(header: dict, payload: bytes = b"", magic: bytes = MAGIC, header_bytes: bytes | None = None) -> bytes:
    """A format-2 file with the given header and a valid whole-file digest."""
    hb = json.dumps(header, sort_keys=True).encode() if header_bytes is None else header_bytes
    body = magic + struct.pack("<Q", len(hb)) + hb + payload
    return body + hashlib.sha256(body).digest()


def good_header(**arrays_override) -> tuple[dict, bytes]:
    arrays = {"w": {"dtype": "float32", "shape": [2, 3], "offset": 0, "nbytes": 24},
              "b": {"dtype": "int64", "shape": [], "offset": 24, "nbytes": 8}}
    arrays.update(arrays_override)
    return {"format": 2, "metadata": {"library_version": "0.1.0", "gamma": 0.99}, "arrays": arrays}, bytes(32)


def rejected(data: bytes, name: str = "<test>") -> CheckpointError:
    """read_checkpoint_bytes(data) must raise CheckpointError: not return, not raise anything else."""
    try:
        read_checkpoint_bytes(data, name)
    except CheckpointError as exc:
        return exc
    except BaseException as exc:  # noqa: BLE001 - the point of the test
        pytest.fail(f"{name}: {type(exc).__name__} escaped instead of CheckpointError: {exc}")
    pytest.fail(f"{name}: loaded silently")


# -- layout and round trip -------------------------------------------------------------------------------

def test_every_allowed_dtype_round_trips_including_0d_and_empty(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for dt in ALL_DTYPES:
        if dt == "bool":
            full = rng.integers(0, 2, size=(3, 4)).astype(bool)
        elif dt.startswith("float"):
            full = rng.normal(size=(3, 4)).astype(dt)
        else:
            info = np.iinfo(dt)
            full = rng.integers(info.min, info.max, size=(3, 4), dtype=dt, endpoint=True)
        arrays[f"{dt}/full"] = full
        arrays[f"{dt}/0d"] = full[1, 2].copy().reshape(())
        arrays[f"{dt}/empty"] = np.zeros((0, 5), dt)
    arrays["big_endian"] = np.arange(5, dtype=">i4")
    arrays["fortran"] = np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3))
    meta = {"library_version": polyak.__version__, "nested": {"a": [1, 2.5, None, "x"]}, "rng": 2**100}
    path = tmp_path / "all.polyak"
    write_checkpoint(path, arrays, meta)
    raw = path.read_bytes()
    for got, got_meta in (read_checkpoint(path), read_checkpoint_bytes(raw)):
        assert got_meta == meta
        assert list(got) == sorted(arrays)  # the header's (sorted) order, as format 1 returned them
        for k, v in arrays.items():
            assert got[k].dtype == v.dtype.newbyteorder("=") and got[k].shape == v.shape, k
            np.testing.assert_array_equal(got[k], v, err_msg=k)
            assert got[k].flags.writeable and got[k].dtype.isnative
    assert [p.name for p in tmp_path.iterdir()] == ["all.polyak"]


def test_byte_layout_is_magic_length_header_payload_digest(tmp_path):
    path = tmp_path / "m.polyak"
    write_checkpoint(path, {"a": np.arange(3, dtype=np.float32), "b": np.array(7, np.int64)}, {"k": 1})
    raw = path.read_bytes()
    assert raw[:8] == MAGIC == b"POLYAK\x00\x02"  # a format-1 reader says "format 0002 is not supported"
    (n,) = struct.unpack("<Q", raw[8:16])
    header = json.loads(raw[16:16 + n])
    assert header == {"format": 2, "metadata": {"k": 1},
                      "arrays": {"a": {"dtype": "float32", "shape": [3], "offset": 0, "nbytes": 12},
                                 "b": {"dtype": "int64", "shape": [], "offset": 12, "nbytes": 8}}}
    payload = raw[16 + n:-32]
    assert payload == np.arange(3, dtype="<f4").tobytes() + np.array(7, "<i8").tobytes()
    assert raw[-32:] == hashlib.sha256(raw[:-32]).digest()
    assert craft(header)[:16 + n] == raw[:16 + n]  # the helper builds the same layout


# -- the property test: every flipped byte, every truncation ----------------------------------------------

@pytest.fixture(scope="module")
def small_model_file(tmp_path_factory) -> bytes:
    """A real model file of about 2 KB: tabular Q-learning on FrozenLake, trained a little."""
    model = polyak.QLearning("FrozenLake-v1", seed=0)
    model.learn(300)
    path = model.save(tmp_path_factory.mktemp("q") / "q.polyak")
    return path.read_bytes()


@pytest.fixture(scope="module")
def sac_model_file(tmp_path_factory) -> Path:
    model = polyak.SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[8]), buffer_size=100,
                       batch_size=16, seed=0)
    return model.save(tmp_path_factory.mktemp("sac") / "sac.polyak")


def sweep(raw: bytes, positions) -> None:
    n = struct.unpack("<Q", raw[8:16])[0]
    read_checkpoint_bytes(raw)  # the intact file loads
    for i in positions:
        for mask in (0xFF, 0x01):
            data = bytearray(raw)
            data[i] ^= mask
            exc = rejected(bytes(data), f"byte {i} ^ {mask:#04x}")
            if i >= 16:  # header, payload and digest: the whole-file SHA-256 catches it, and says so
                assert "corrupted" in str(exc) and "SHA-256" in str(exc), (i, mask, str(exc))
    for length in positions:
        exc = rejected(raw[:length], f"truncated to {length} bytes")
        expected = "too short to be a polyak checkpoint" if length < 16 else "truncated checkpoint"
        assert expected in str(exc), (length, str(exc))
    assert n > 0


def test_every_flipped_byte_and_every_truncation_of_a_model_file_is_a_checkpoint_error(small_model_file):
    raw = small_model_file
    assert raw[:8] == MAGIC and 1000 < len(raw) < 4000
    t = time.perf_counter()
    sweep(raw, range(len(raw)))
    assert time.perf_counter() - t < 60


def test_flipped_bytes_of_a_sac_model_file(sac_model_file):
    raw = sac_model_file.read_bytes()
    n = struct.unpack("<Q", raw[8:16])[0]
    # every byte of the preamble and of the first and last 64 bytes of header, payload and digest; a stride elsewhere
    picks = set(range(0, 80)) | set(range(16 + n - 64, 16 + n + 64)) | set(range(len(raw) - 64, len(raw)))
    sweep(raw, sorted(picks | set(range(0, len(raw), 13))))


def test_the_same_through_the_file_path_and_polyak_load(sac_model_file, tmp_path):
    raw = sac_model_file.read_bytes()
    n = struct.unpack("<Q", raw[8:16])[0]
    header = raw[16:16 + n]
    seed_digit = 16 + header.index(b'"seed": 0') + len(b'"seed": ')
    gamma_digit = 16 + header.index(b'"gamma": 0.99') + len(b'"gamma": 0.9')
    offset_digit = 16 + header.index(b'"offset": ') + len(b'"offset": ')
    positions = [0, 7, 9, 15, 16, seed_digit, gamma_digit, offset_digit, 16 + n, len(raw) // 2 + 16 + n // 2,
                 len(raw) - 33, len(raw) - 1]
    bad = tmp_path / "bad.polyak"
    for i in positions:
        for mask in (0x01, 0xFF):
            data = bytearray(raw)
            data[i] ^= mask
            bad.write_bytes(bytes(data))
            with pytest.raises(CheckpointError):
                read_checkpoint(bad)
            with pytest.raises(CheckpointError):
                polyak.load(bad)
    for length in (0, 10, 16, 16 + n // 2, 16 + n, len(raw) - 32, len(raw) - 1):
        bad.write_bytes(raw[:length])
        with pytest.raises(CheckpointError):
            polyak.load(bad)
    bad.write_bytes(raw + b"\x00")
    with pytest.raises(CheckpointError, match="corrupted"):
        polyak.load(bad)
    assert type(polyak.load(sac_model_file)).__name__ == "SAC"


def test_a_changed_hyperparameter_in_the_header_is_caught(sac_model_file):
    raw = sac_model_file.read_bytes()
    changed = raw.replace(b'"gamma": 0.99', b'"gamma": 0.98', 1)
    assert changed != raw and len(changed) == len(raw)
    with pytest.raises(CheckpointError, match="corrupted checkpoint \\(SHA-256 mismatch"):
        read_checkpoint_bytes(changed)


# -- crafted headers with a valid digest: only the validation stands between them and the loader -----------

def test_a_crafted_valid_file_loads():
    header, payload = good_header()
    arrays, meta = read_checkpoint_bytes(craft(header, payload))
    assert arrays["w"].shape == (2, 3) and arrays["b"].shape == () and meta["gamma"] == 0.99


def test_huge_sizes_are_refused_before_anything_is_allocated():
    cases = [
        good_header(w={"dtype": "float32", "shape": [10**12], "offset": 0, "nbytes": 4 * 10**12}),
        good_header(w={"dtype": "float64", "shape": [10**6, 10**6], "offset": 0, "nbytes": 8 * 10**12}),
        good_header(w={"dtype": "float32", "shape": [2, 3], "offset": 0, "nbytes": 10**15}),
        good_header(w={"dtype": "uint8", "shape": [0, 2**62 + 1], "offset": 0, "nbytes": 0}),
        good_header(w={"dtype": "float32", "shape": [2**40, 0, 2**40], "offset": 0, "nbytes": 0}),
        good_header(w={"dtype": "uint8", "shape": [10**30], "offset": 0, "nbytes": 10**30}),
        good_header(w={"dtype": "uint8", "shape": [1] * 33, "offset": 0, "nbytes": 1}),
    ]
    tracemalloc.start()
    try:
        for header, payload in cases:
            t = time.perf_counter()
            tracemalloc.reset_peak()
            exc = rejected(craft(header, payload))
            peak = tracemalloc.get_traced_memory()[1]
            assert time.perf_counter() - t < 1.0
            assert peak < 5 * 2**20, (str(exc), peak)
            assert "arrays['w']" in str(exc) or "truncated checkpoint" in str(exc), str(exc)
            if header["arrays"]["w"]["nbytes"] == 0:
                assert "arrays['w'].shape" in str(exc) and "is too large" in str(exc), str(exc)
    finally:
        tracemalloc.stop()


def test_a_huge_header_length_is_refused_before_reading_it():
    data = MAGIC + struct.pack("<Q", MAX_HEADER_BYTES + 1) + b"{}" + bytes(40)
    with pytest.raises(CheckpointError, match="over the 67108864-byte limit"):
        read_checkpoint_bytes(data)
    data = MAGIC + struct.pack("<Q", 2**63) + bytes(100)
    with pytest.raises(CheckpointError, match="limit"):
        read_checkpoint_bytes(data)
    data = MAGIC + struct.pack("<Q", 1000) + bytes(100)
    with pytest.raises(CheckpointError, match="truncated checkpoint \\(header length field says 1000 bytes"):
        read_checkpoint_bytes(data)


W = "arrays\\['w'\\]"


@pytest.mark.parametrize("override, message", [
    (dict(w={"dtype": "float32", "shape": [2, 3], "offset": -24, "nbytes": 24}), W + ".offset must be a non-negative int"),
    (dict(w={"dtype": "float32", "shape": [2, 3], "offset": 0, "nbytes": -1}), W + ".nbytes must be a non-negative int"),
    (dict(w={"dtype": "float32", "shape": [2, 3], "offset": 0.0, "nbytes": 24}), W + ".offset must be a non-negative int"),
    (dict(w={"dtype": "float32", "shape": [2, 3], "offset": True, "nbytes": 24}), W + ".offset must be a non-negative int"),
    (dict(b={"dtype": "int64", "shape": [], "offset": 16, "nbytes": 8}), "arrays\\['b'\\].offset is 16: it overlaps the previous"),
    (dict(b={"dtype": "int64", "shape": [], "offset": 0, "nbytes": 8}), W + ".offset is 0: it overlaps the previous"),
    (dict(w={"dtype": "float32", "shape": [2, 3], "offset": 4, "nbytes": 24}), W + ".offset is 4: it leaves a gap after byte 0"),
    (dict(b={"dtype": "int64", "shape": [], "offset": 28, "nbytes": 8}), "arrays\\['b'\\].offset is 28: it leaves a gap"),
    (dict(w={"dtype": "object", "shape": [2, 3], "offset": 0, "nbytes": 24}), W + ".dtype is 'object', not one of"),
    (dict(w={"dtype": "float128", "shape": [2, 3], "offset": 0, "nbytes": 24}), W + ".dtype is 'float128'"),
    (dict(w={"dtype": "<f4", "shape": [2, 3], "offset": 0, "nbytes": 24}), W + ".dtype is '<f4'"),
    (dict(w={"dtype": 5, "shape": [2, 3], "offset": 0, "nbytes": 24}), W + ".dtype is 5"),
    (dict(w={"dtype": "float32", "shape": [2, -3], "offset": 0, "nbytes": 24}), W + ".shape must be a list"),
    (dict(w={"dtype": "float32", "shape": "2,3", "offset": 0, "nbytes": 24}), W + ".shape must be a list"),
    (dict(w={"dtype": "float32", "shape": [2.0, 3], "offset": 0, "nbytes": 24}), W + ".shape must be a list"),
    (dict(w={"dtype": "float32", "shape": [2, 3], "offset": 0, "nbytes": 20}), W + ".nbytes is 20, but shape"),
    (dict(w={"dtype": "float64", "shape": [2, 3], "offset": 0, "nbytes": 24}), W + ".nbytes is 24, but shape"),
    (dict(w={"dtype": "float32", "shape": [2, 3], "offset": 0}), W + ".nbytes is missing"),
    (dict(w={"dtype": "float32", "shape": [2, 3], "offset": 0, "nbytes": 24, "x": 1}), "unknown header field " + W + ".x"),
    (dict(w=[0, 24]), W + " must be a JSON object, got a list"),
    (dict(w=None), W + " must be a JSON object, got null"),
])
def test_crafted_array_entries_are_refused_naming_the_field(override, message):
    header, payload = good_header(**override)
    exc = rejected(craft(header, payload))
    assert "invalid checkpoint header" in str(exc) and "SHA-256" not in str(exc)
    assert re.search(message, str(exc)), str(exc)


@pytest.mark.parametrize("change, message", [
    (lambda h: h.update(arrays=[["w", "float32"]]), "header field 'arrays' must be a JSON object, got a list"),
    (lambda h: h.update(arrays="w"), "header field 'arrays' must be a JSON object, got a string"),
    (lambda h: h.pop("arrays"), "header field 'arrays' is missing"),
    (lambda h: h.pop("metadata"), "header field 'metadata' is missing"),
    (lambda h: h.update(metadata=[1, 2]), "header field 'metadata' must be a JSON object, got a list"),
    (lambda h: h.update(metadata=None), "header field 'metadata' must be a JSON object, got null"),
    (lambda h: h.pop("format"), "header field 'format' is missing"),
    (lambda h: h.update(format="2"), "header field 'format' must be an int, got '2'"),
    (lambda h: h.update(format=2.0), "header field 'format' must be an int"),
    (lambda h: h.update(format=1), "header field 'format' is 1 but the magic bytes say format 2"),
    (lambda h: h.update(payload_sha256="00" * 32), "unknown header field 'payload_sha256'"),
])
def test_crafted_top_level_fields_are_refused_naming_the_field(change, message):
    header, payload = good_header()
    change(header)
    exc = rejected(craft(header, payload))
    assert message in str(exc), str(exc)


def test_format_99_in_the_header_names_99_and_the_supported_versions():
    header, payload = good_header()
    header["format"] = 99
    header["metadata"]["library_version"] = "7.0.0"
    exc = rejected(craft(header, payload))
    assert "format 99" in str(exc) and "reads formats 1-2" in str(exc) and "polyak 7.0.0" in str(exc), str(exc)


def test_a_newer_format_is_refused_naming_both_versions_and_the_writing_library():
    header, payload = good_header()
    header["format"] = 3
    header["metadata"]["library_version"] = "0.9.0"
    exc = rejected(craft(header, payload, magic=b"POLYAK\x00\x03"))
    assert (f"written by format 3 (polyak 0.9.0), this polyak ({polyak.__version__}) reads formats 1-2"
            in str(exc)), str(exc)
    exc = rejected(b"POLYAK\x01\x00" + bytes(8))  # format 256, header unreadable: no library version
    assert "written by format 256, this polyak" in str(exc)
    exc = rejected(b"POLYAK\x00\x00" + bytes(100))
    assert "unknown polyak checkpoint format 0" in str(exc)


@pytest.mark.parametrize("header_bytes, message", [
    (b"", "header is not valid JSON"),
    (b"{not json", "header is not valid JSON"),
    (b"\xff\xfe{}", "header is not UTF-8"),
    (b"[1, 2]", "header must be a JSON object, got a list"),
    (b"[" * 100_000 + b"]" * 100_000, "header is not valid JSON"),  # RecursionError inside json
])
def test_unparseable_headers_with_a_valid_digest(header_bytes, message):
    exc = rejected(craft({}, header_bytes=header_bytes))
    assert message in str(exc), str(exc)


def test_a_bool_array_holding_other_bytes_is_refused():
    header = {"format": 2, "metadata": {}, "arrays": {"m": {"dtype": "bool", "shape": [3], "offset": 0, "nbytes": 3}}}
    assert read_checkpoint_bytes(craft(header, b"\x00\x01\x01"))[0]["m"].tolist() == [False, True, True]
    with pytest.raises(CheckpointError, match="array 'm' is bool but holds bytes other than 0 and 1"):
        read_checkpoint_bytes(craft(header, b"\x00\x02\x01"))


def test_payload_size_must_match_the_header():
    header, payload = good_header()
    with pytest.raises(CheckpointError, match="truncated checkpoint \\(array 'b' ends at payload byte 32"):
        read_checkpoint_bytes(craft(header, payload[:-1]))
    with pytest.raises(CheckpointError, match="1 unexpected bytes after the payload"):
        read_checkpoint_bytes(craft(header, payload + b"\x00"))


# -- the file itself: directory, missing, short, wrong kind ---------------------------------------------

def test_paths_that_are_not_checkpoint_files(tmp_path):
    with pytest.raises(CheckpointError, match="is a directory, not a checkpoint file"):
        read_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        read_checkpoint(tmp_path / "missing.polyak")
    (tmp_path / "afile").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        read_checkpoint(tmp_path / "afile" / "m.polyak")
    for n in (0, 1, 10, 15):
        (tmp_path / "short.polyak").write_bytes(MAGIC[:min(n, 8)] + bytes(max(n - 8, 0)))
        with pytest.raises(CheckpointError, match=f"too short to be a polyak checkpoint \\({n} bytes\\)"):
            read_checkpoint(tmp_path / "short.polyak")
    (tmp_path / "x.npz").write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(CheckpointError, match="not a polyak checkpoint \\(bad magic bytes"):
        read_checkpoint(tmp_path / "x.npz")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo")
        with pytest.raises(CheckpointError, match="is not a regular file"):
            read_checkpoint(tmp_path / "fifo")


def test_an_unreadable_file_is_a_checkpoint_error(tmp_path, monkeypatch):
    path = tmp_path / "m.polyak"
    write_checkpoint(path, {"w": np.ones(2, np.float32)}, {})

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(checkpoint_module, "open", denied, raising=False)  # works as root too
    with pytest.raises(CheckpointError, match="cannot read checkpoint \\(Permission denied\\)"):
        read_checkpoint(path)


# -- writing: permissions and atomicity ---------------------------------------------------------------------

@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002, 0o027])
def test_written_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = tmp_path / "sub" / "m.polyak"
        write_checkpoint(path, {"w": np.ones(2, np.float32)}, {})
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask
        write_checkpoint(path, {"w": np.zeros(2, np.float32)}, {})  # an overwrite too
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    finally:
        os.umask(old)
    assert [p.name for p in path.parent.iterdir()] == ["m.polyak"]


def test_a_failed_write_removes_its_temporary_file_and_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "m.polyak"
    write_checkpoint(path, {"w": np.ones(3, np.float32)}, {"v": 1})
    seen = []

    def boom(src, dst):
        seen.append(Path(src).name)
        raise OSError("rename failed")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="rename failed"):
        write_checkpoint(path, {"w": np.zeros(3, np.float32)}, {"v": 2})
    monkeypatch.undo()
    assert len(seen) == 1 and seen[0].startswith(".m.polyak.") and seen[0].endswith(".tmp")
    assert [p.name for p in tmp_path.iterdir()] == ["m.polyak"]
    assert read_checkpoint(path)[1] == {"v": 1}
    with pytest.raises(TypeError, match="dtype"):
        write_checkpoint(path, {"s": np.array(["a"])}, {})
    with pytest.raises(TypeError, match="metadata must be a dict"):
        write_checkpoint(path, {}, [1])
    assert [p.name for p in tmp_path.iterdir()] == ["m.polyak"]


# -- format 1 (polyak 0.1.0) still reads ------------------------------------------------------------------

LEGACY = sorted(FIXTURES.glob("*.polyak"))


@pytest.mark.parametrize("path", LEGACY, ids=lambda p: p.name)
def test_format_1_files_still_read(path):
    raw = path.read_bytes()
    assert raw[:8] == MAGIC_V1
    (n,) = struct.unpack("<Q", raw[8:16])
    header = json.loads(raw[16:16 + n])
    arrays, meta = read_checkpoint(path)
    assert meta == header["metadata"] and meta["library_version"] == "0.1.0"
    assert list(arrays) == list(header["arrays"])
    for name, e in header["arrays"].items():
        assert arrays[name].dtype == np.dtype(e["dtype"]) and list(arrays[name].shape) == e["shape"]
        assert arrays[name].nbytes == e["nbytes"]
    assert sum(a.nbytes for a in arrays.values()) == len(raw) - 16 - n


def test_format_1_damage_is_still_caught_where_format_1_can_catch_it():
    """Format 1 protects only the payload: every truncation and every flip outside the header is an error;
    a flip inside the header is an error or, where the changed header still validates, a silent load
    (the reason format 2 exists). Never another exception."""
    raw = (FIXTURES / "qlearning_frozenlake.polyak").read_bytes()
    (n,) = struct.unpack("<Q", raw[8:16])
    silent = 0
    for i in range(len(raw)):
        for mask in (0xFF, 0x01):
            data = bytearray(raw)
            data[i] ^= mask
            try:
                read_checkpoint_bytes(bytes(data))
            except CheckpointError:
                continue
            except BaseException as exc:  # noqa: BLE001
                pytest.fail(f"byte {i} ^ {mask:#04x}: {type(exc).__name__}: {exc}")
            assert 16 <= i < 16 + n, f"byte {i} ^ {mask:#04x} outside the header loaded silently"
            silent += 1
    assert silent > 0  # documented: format-1 headers are unprotected
    for length in range(len(raw)):
        rejected(raw[:length], f"format 1 truncated to {length}")
    data = bytearray(raw)
    data[-1] ^= 0x01
    with pytest.raises(CheckpointError, match="payload SHA-256 mismatch"):
        read_checkpoint_bytes(bytes(data))
