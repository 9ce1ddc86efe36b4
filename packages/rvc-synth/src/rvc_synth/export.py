"""`convert_checkpoint`: an RVC ``.pth`` -> ``config.json`` + ``model.safetensors`` (MLX layout)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from rvc_runtime import public_mode

from .checkpoint import CONFIG_FILE, WEIGHTS_FILE, read_checkpoint
from .errors import OutputExistsError
from .model import sanitize

_DTYPES = {"float32": np.float32, "float16": np.float16}


def convert_checkpoint(
    pth: str | Path, out_dir: str | Path, *, dtype: str = "float32", overwrite: bool = False
) -> Path:
    """Convert an RVC checkpoint to a folder that :func:`rvc_synth.load` reads without pickle.

    The folder holds ``config.json`` (the :class:`SynthConfig` and the checkpoint's metadata)
    and ``model.safetensors`` (sanitized weights: weight norm fused, MLX layouts) in ``dtype``
    (``"float32"`` or ``"float16"``). Written to a temporary folder and renamed; an existing
    ``out_dir`` is replaced only with ``overwrite=True``.
    """
    from safetensors.numpy import save_file

    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise OutputExistsError(f"{out_dir} already exists; pass overwrite=True (CLI: --force) to replace it")
    ckpt = read_checkpoint(pth)
    weights = ckpt.weights if ckpt.converted else sanitize(ckpt.weights)
    weights = {k: np.ascontiguousarray(v.astype(_DTYPES[dtype])) for k, v in weights.items()}
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        save_file(weights, str(tmp / WEIGHTS_FILE), metadata={"format": "mlx", "source": Path(pth).name})
        doc = {"config": ckpt.config.to_dict(), "metadata": ckpt.metadata, "dtype": dtype}
        (tmp / CONFIG_FILE).write_text(json.dumps(doc, indent=2))
        public_mode(tmp)  # mkdtemp made it 0700 (and safetensors its files 0600)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
