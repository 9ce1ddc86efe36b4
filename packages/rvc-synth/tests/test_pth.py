"""The restricted .pth reader: real checkpoints, crafted ones, and malicious pickles."""

from __future__ import annotations

import collections
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

import torchpickle
from rvc_synth import UnsafeCheckpointError, UnsupportedCheckpointError
from rvc_synth.errors import CheckpointNotFoundError
from rvc_synth.pth import Inert, read_pth


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
        f32=a, f16=a.astype(np.float16), i64=np.arange(5, dtype=np.int64),
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
                return (torchpickle._rebuild_tensor_v2, (torchpickle._Pid(torchpickle.Tensor(base, "0")), 2, (3, 2), (1, 3), False, collections.OrderedDict()))

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
    payload = {"weight": {"a": np.zeros(2, np.float32)}, "x": _SystemCall(f"touch {marker}")}
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

    p = torchpickle.save({"args": argparse.Namespace(a=1), "w": np.ones(2, np.float32)}, tmp_path / "fs.pth")
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
    with pytest.raises(UnsupportedCheckpointError, match=message):
        read_pth(p)


def test_truncated_checkpoint(tmp_path: Path, ref_dir: Path) -> None:
    data = (ref_dir / "checkpoints" / "v1_f0_32k.pth").read_bytes()
    p = tmp_path / "trunc.pth"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnsupportedCheckpointError):
        read_pth(p)


def test_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match="not found"):
        read_pth(tmp_path / "nope.pth")
    with pytest.raises(UnsupportedCheckpointError, match="folder"):
        read_pth(tmp_path)
