"""The torch-free importer of RVC's hubert_base.pt (fairseq HuBERT/ContentVec checkpoint).

The checkpoints here are written like ``torch.save`` writes them (a zip with ``<name>/data.pkl``
and raw storages under ``<name>/data/``), with the standard library only: stand-in classes whose
``__module__``/``__qualname__`` are torch's, omegaconf's, fairseq's are pickled from fake
modules registered in ``sys.modules`` for the duration of the write. The state dict is the tiny
ContentVec fixture mapped back to fairseq's names, so the imported file must reproduce the
PyTorch goldens."""

from __future__ import annotations

import argparse
import collections
import contextlib
import enum
import io
import json
import pickle
import sys
import types
import typing
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rvc_features import import_hubert, load_contentvec
from rvc_features.errors import OutputExistsError, WeightsFormatError, WeightsNotFoundError

# --- a torch.save look-alike ------------------------------------------------------------------


class _StorageRef:
    def __init__(self, key: str, array: np.ndarray) -> None:
        self.key, self.array = key, array


class _Tensor:
    def __init__(self, ref: _StorageRef) -> None:
        self.ref = ref

    def __reduce_ex__(self, protocol):  # what torch.Tensor pickles as
        a = self.ref.array
        stride = tuple(s // a.itemsize for s in a.strides)
        return (
            _FAKE["torch._utils"]._rebuild_tensor_v2,
            (self.ref, 0, a.shape, stride, False, collections.OrderedDict()),
        )


_FAKE: dict[str, types.ModuleType] = {}


@contextlib.contextmanager
def _fake_modules():
    names = [
        "torch",
        "torch._utils",
        "omegaconf",
        "omegaconf.dictconfig",
        "omegaconf.nodes",
        "omegaconf.base",
        "fairseq",
        "fairseq.data",
        "fairseq.data.dictionary",
        "fairseq.dataclass",
        "fairseq.dataclass.constants",
    ]
    saved = {n: sys.modules.get(n) for n in names}
    for n in names:
        _FAKE[n] = sys.modules[n] = types.ModuleType(n)

    def cls(module: str, name: str, base: type = object) -> type:
        c = type(name, (base,), {"__module__": module, "__qualname__": name})
        setattr(_FAKE[module], name, c)
        return c

    def _rebuild_tensor_v2(*args):  # never called: only pickled by reference
        raise AssertionError

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    _FAKE["torch._utils"]._rebuild_tensor_v2 = _rebuild_tensor_v2
    for st in ("FloatStorage", "HalfStorage"):
        cls("torch", st)
    cls("omegaconf.dictconfig", "DictConfig")
    cls("omegaconf.nodes", "AnyNode")
    cls("omegaconf.nodes", "EnumNode")
    cls("omegaconf.base", "ContainerMetadata")
    cls("omegaconf.base", "Metadata")
    cls("fairseq.data.dictionary", "Dictionary")
    mode = enum.Enum(
        "EXTRACTOR_MODE_CHOICES",
        {"default": "default", "layer_norm": "layer_norm"},
        module="fairseq.dataclass.constants",
    )
    _FAKE["fairseq.dataclass.constants"].EXTRACTOR_MODE_CHOICES = mode
    try:
        yield _FAKE
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def _obj(module: str, name: str, **state):
    o = getattr(_FAKE[module], name)()
    o.__dict__.update(state)
    return o


def _dictconfig(content: dict) -> object:
    meta = _obj("omegaconf.base", "ContainerMetadata", ref_type=typing.Any, object_type=dict, optional=True, key=None)
    cfg = _obj("omegaconf.dictconfig", "DictConfig", _metadata=meta, _parent=None, _content={})
    for k, v in content.items():
        if isinstance(v, dict):
            node = _dictconfig(v)
        elif isinstance(v, enum.Enum):
            node = _obj(
                "omegaconf.nodes",
                "EnumNode",
                _val=v,
                _parent=cfg,
                _metadata=_obj("omegaconf.base", "Metadata", ref_type=type(v), key=k),
            )
        else:
            node = _obj(
                "omegaconf.nodes",
                "AnyNode",
                _val=v,
                _parent=cfg,
                _metadata=_obj("omegaconf.base", "Metadata", ref_type=typing.Any, key=k),
            )
        node.__dict__["_parent"] = cfg  # omegaconf's back references: cycles in the pickle
        cfg._content[k] = node
    return cfg


def write_fake_torch_zip(path: Path, build) -> None:
    """``build(fake_modules)`` returns the object to save; tensors as ``np.ndarray`` are wrapped."""
    storages: list[_StorageRef] = []

    def wrap(o):
        if isinstance(o, np.ndarray):
            ref = _StorageRef(str(len(storages)), np.ascontiguousarray(o))
            storages.append(ref)
            return _Tensor(ref)
        if isinstance(o, collections.OrderedDict):
            return collections.OrderedDict((k, wrap(v)) for k, v in o.items())
        if isinstance(o, dict):
            return {k: wrap(v) for k, v in o.items()}
        return o

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _StorageRef):
                st = {np.dtype("float32"): "FloatStorage", np.dtype("float16"): "HalfStorage"}[obj.array.dtype]
                return ("storage", getattr(_FAKE["torch"], st), obj.key, "cpu", obj.array.size)
            return None

    with _fake_modules():
        obj = wrap(build())
        buf = io.BytesIO()
        Pickler(buf, protocol=2).dump(obj)
    name = path.stem
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name}/data.pkl", buf.getvalue())
        for ref in storages:
            zf.writestr(f"{name}/data/{ref.key}", ref.array.tobytes())
        zf.writestr(f"{name}/version", "3\n")


# --- the tiny fixture in fairseq's names -------------------------------------------------------


def fairseq_state(extractors_dir: Path, dtype=np.float32) -> collections.OrderedDict:
    from safetensors.numpy import load_file

    mlx = load_file(str(extractors_dir / "contentvec_tiny.safetensors"))
    fp = np.load(extractors_dir / "final_proj_tiny.npz")
    sd: collections.OrderedDict = collections.OrderedDict()
    for k, v in mlx.items():
        if k.startswith("feature_extractor.conv_layers."):
            i = k.split(".")[2]
            if k.endswith(".conv.weight"):
                sd[f"feature_extractor.conv_layers.{i}.0.weight"] = v.transpose(0, 2, 1)
            else:
                sd[f"feature_extractor.conv_layers.{i}.2.{k.rsplit('.', 1)[1]}"] = v
        elif k == "encoder.pos_conv.layers.0.g":
            sd["encoder.pos_conv.0.weight_g"] = v.transpose(0, 2, 1)
        elif k == "encoder.pos_conv.layers.0.v":
            sd["encoder.pos_conv.0.weight_v"] = v.transpose(0, 2, 1)
        elif k == "encoder.pos_conv.layers.0.module.bias":
            sd["encoder.pos_conv.0.bias"] = v
        elif k == "encoder.pos_conv.layers.0.module.weight":
            continue
        else:
            sd[k] = v
    sd["final_proj.weight"], sd["final_proj.bias"] = fp["weight"], fp["bias"]
    sd["mask_emb"] = np.zeros(64, np.float32)
    sd["label_embs_concat"] = np.zeros((504, 256), np.float32)
    return collections.OrderedDict((k, v.astype(dtype)) for k, v in sd.items())


TINY_MODEL_CFG = {
    "_name": "hubert",
    "label_rate": 50.0,
    "encoder_layers": 10,
    "encoder_embed_dim": 64,
    "encoder_ffn_embed_dim": 128,
    "encoder_attention_heads": 4,
    "activation_fn": "gelu",
    "conv_feature_layers": "[(32,10,5)] + [(32,3,2)] * 4 + [(32,2,2)] * 2",
    "conv_bias": False,
    "conv_pos": 128,
    "conv_pos_groups": 16,
    "layer_norm_first": False,
    "final_dim": 256,
}


def _checkpoint(state, *, style: str):
    def build():
        fake = _FAKE
        dictionary = _obj(
            "fairseq.data.dictionary",
            "Dictionary",
            symbols=["<s>", "<pad>", "0"],
            count=[1, 1, 5],
            indices={"<s>": 0, "<pad>": 1, "0": 2},
            nspecial=2,
        )
        mode = fake["fairseq.dataclass.constants"].EXTRACTOR_MODE_CHOICES.default
        out = {
            "model": state,
            "task_state": {"dictionaries": [dictionary]},
            "extra_state": {"epoch": 3},
            "optimizer_history": [{"criterion_name": "HubertCriterion", "num_updates": 400000}],
        }
        if style == "cfg":
            out["args"] = None
            out["cfg"] = _dictconfig(
                {
                    "common": {"fp16": True},
                    "model": dict(TINY_MODEL_CFG, extractor_mode=mode),
                    "task": {"_name": "hubert_pretraining", "labels": ["km"]},
                }
            )
        else:  # older fairseq: an argparse.Namespace
            out["args"] = argparse.Namespace(arch="hubert", extractor_mode="default", **TINY_MODEL_CFG)
        return out

    return build


@pytest.fixture(scope="module")
def golden(extractors_dir):
    g = np.load(extractors_dir / "contentvec_golden.npz")
    return {k: g[k] for k in g.files}


@pytest.mark.parametrize("style", ["cfg", "args"])
def test_import_reproduces_the_goldens(extractors_dir, golden, tmp_path, style):
    pt = tmp_path / "hubert_base.pt"
    write_fake_torch_zip(pt, _checkpoint(fairseq_state(extractors_dir), style=style))
    out = import_hubert(pt, tmp_path / "contentvec_fp.safetensors")
    assert out == tmp_path / "contentvec_fp.safetensors" and not list(tmp_path.glob(".*part"))
    from safetensors import safe_open

    kw = json.loads(safe_open(str(out), "numpy").metadata()["contentvec_kwargs"])
    assert (kw["encoder_layers"], kw["encoder_embed_dim"], kw["encoder_attention_heads"]) == (10, 64, 4)
    cv = load_contentvec(out)
    assert cv.has_final_proj
    for name in ("synth_1s", "arctic_3s"):
        audio = golden[f"{name}/audio"]
        assert np.abs(cv(audio, version="v2") - golden[f"{name}/last"]).max() <= 1e-4
        assert np.abs(cv.hidden(audio, output_layer=9) - golden[f"{name}/layer9"]).max() <= 1e-4
        assert np.abs(cv(audio, version="v1") - golden[f"{name}/final_proj"]).max() <= 1e-4


def test_import_float16_checkpoint_and_overwrite(extractors_dir, golden, tmp_path):
    pt = tmp_path / "hubert_half.pt"
    write_fake_torch_zip(pt, _checkpoint(fairseq_state(extractors_dir, np.float16), style="cfg"))
    out = tmp_path / "cv.safetensors"
    import_hubert(pt, out)
    with pytest.raises(OutputExistsError, match="overwrite"):
        import_hubert(pt, out)
    import_hubert(pt, out, overwrite=True)
    audio = golden["synth_1s/audio"]
    err = np.abs(load_contentvec(out)(audio, version="v1") - golden["synth_1s/final_proj"]).max()
    assert 0 < err < 0.1  # float16 weights: close, not exact


def test_import_refuses_code_and_non_hubert_files(ref_dir, tmp_path):
    class Evil:
        def __reduce__(self):
            import os

            return (os.system, ("echo pwned",))

    pt = tmp_path / "evil.pt"
    write_fake_torch_zip(pt, lambda: {"model": {}, "cfg": Evil()})
    with pytest.raises(WeightsFormatError, match="system"):
        import_hubert(pt, tmp_path / "x.safetensors")
    with pytest.raises(WeightsFormatError, match="not a fairseq checkpoint"):
        import_hubert(ref_dir / "checkpoints" / "v1_f0_32k.pth", tmp_path / "x.safetensors")
    with pytest.raises(WeightsNotFoundError, match="hubert_base.pt"):
        import_hubert(tmp_path / "missing.pt", tmp_path / "x.safetensors")
    pt2 = tmp_path / "nofp.pt"
    state = collections.OrderedDict(conv=np.zeros(3, np.float32))
    write_fake_torch_zip(pt2, lambda: {"model": state, "args": None})
    with pytest.raises(WeightsFormatError, match="unexpected tensors conv"):
        import_hubert(pt2, tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists() and not list(tmp_path.glob(".*part"))
