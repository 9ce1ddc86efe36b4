"""configure_gpu: MLX CUDA's environment settings, set only where the user has not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import rvc_runtime


def test_sets_defaults_and_creates_the_kernel_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLX_CUDA_CONV_CACHE_SIZE", raising=False)
    monkeypatch.delenv("MLX_PTX_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    got = rvc_runtime.configure_gpu()
    want = {"MLX_CUDA_CONV_CACHE_SIZE": "1024", "MLX_PTX_CACHE_DIR": str(tmp_path / "rvc" / "mlx-kernels")}
    assert got == want and {k: os.environ[k] for k in want} == want
    assert (tmp_path / "rvc" / "mlx-kernels").is_dir()


def test_keeps_what_the_user_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLX_CUDA_CONV_CACHE_SIZE", "64")
    monkeypatch.setenv("MLX_PTX_CACHE_DIR", str(tmp_path / "mine"))
    got = rvc_runtime.configure_gpu(conv_cache=4096, kernel_dir=tmp_path / "other")
    assert got == {"MLX_CUDA_CONV_CACHE_SIZE": "64", "MLX_PTX_CACHE_DIR": str(tmp_path / "mine")}
    assert not (tmp_path / "other").exists()


def test_explicit_values_and_a_bad_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLX_CUDA_CONV_CACHE_SIZE", raising=False)
    monkeypatch.delenv("MLX_PTX_CACHE_DIR", raising=False)
    got = rvc_runtime.configure_gpu(conv_cache=2048, kernel_dir=tmp_path / "k")
    assert got == {"MLX_CUDA_CONV_CACHE_SIZE": "2048", "MLX_PTX_CACHE_DIR": str(tmp_path / "k")}
    with pytest.raises(ValueError, match="conv_cache=0"):
        rvc_runtime.configure_gpu(conv_cache=0)
