"""configure_gpu: MLX CUDA's environment settings, set only where the user has not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import rvc_runtime


def test_sets_defaults_and_creates_the_kernel_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLX_CUDA_CONV_CACHE_SIZE", raising=False)
    monkeypatch.delenv("MLX_PTX_CACHE_DIR", raising=False)
    monkeypatch.delenv("MLX_USE_CUDA_GRAPHS", raising=False)
    monkeypatch.delenv("MLX_MAX_OPS_PER_BUFFER", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    got = rvc_runtime.configure_gpu()
    want = {
        "MLX_CUDA_CONV_CACHE_SIZE": "1024",
        "MLX_PTX_CACHE_DIR": str(tmp_path / "rvc" / "mlx-kernels"),
        "MLX_USE_CUDA_GRAPHS": "0",
        "MLX_MAX_OPS_PER_BUFFER": "8",
    }
    assert got == want and {k: os.environ[k] for k in want} == want
    assert (tmp_path / "rvc" / "mlx-kernels").is_dir()


def test_keeps_what_the_user_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLX_CUDA_CONV_CACHE_SIZE", "64")
    monkeypatch.setenv("MLX_PTX_CACHE_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("MLX_USE_CUDA_GRAPHS", "1")
    monkeypatch.setenv("MLX_MAX_OPS_PER_BUFFER", "100")
    got = rvc_runtime.configure_gpu(conv_cache=4096, kernel_dir=tmp_path / "other", cuda_graphs=False, ops_per_buffer=4)
    assert got == {
        "MLX_CUDA_CONV_CACHE_SIZE": "64",
        "MLX_PTX_CACHE_DIR": str(tmp_path / "mine"),
        "MLX_USE_CUDA_GRAPHS": "1",
        "MLX_MAX_OPS_PER_BUFFER": "100",
    }
    assert not (tmp_path / "other").exists()


def test_explicit_values_and_a_bad_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLX_CUDA_CONV_CACHE_SIZE", raising=False)
    monkeypatch.delenv("MLX_PTX_CACHE_DIR", raising=False)
    monkeypatch.delenv("MLX_USE_CUDA_GRAPHS", raising=False)
    monkeypatch.delenv("MLX_MAX_OPS_PER_BUFFER", raising=False)
    got = rvc_runtime.configure_gpu(conv_cache=2048, kernel_dir=tmp_path / "k", cuda_graphs=True, ops_per_buffer=16)
    assert got == {
        "MLX_CUDA_CONV_CACHE_SIZE": "2048",
        "MLX_PTX_CACHE_DIR": str(tmp_path / "k"),
        "MLX_USE_CUDA_GRAPHS": "1",
        "MLX_MAX_OPS_PER_BUFFER": "16",
    }
    with pytest.raises(ValueError, match="conv_cache=0"):
        rvc_runtime.configure_gpu(conv_cache=0)
    with pytest.raises(ValueError, match="ops_per_buffer=0"):
        rvc_runtime.configure_gpu(ops_per_buffer=0)
    with pytest.raises(ValueError, match="memory_limit=0"):
        rvc_runtime.configure_gpu(memory_limit=0)


def test_memory_limit_only_with_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """The limit is MLX's, lowered only with CUDA, never raised (a lower one is kept), and the
    first call's choice is kept by later ones (an app's ``memory_limit=None`` before
    ``VoiceConverter``'s default call)."""
    import mlx.core as mx

    from rvc_runtime import _gpu

    before = mx.get_memory_limit()
    calls: list[int] = []
    monkeypatch.setattr(mx, "set_memory_limit", lambda n: calls.append(n) or before)
    monkeypatch.setattr(mx.cuda, "is_available", lambda: False)
    monkeypatch.setattr(_gpu, "_limit_chosen", False)
    rvc_runtime.configure_gpu(memory_limit=0.5)
    assert calls == []  # the CPU and Apple GPUs: untouched
    monkeypatch.setattr(mx.cuda, "is_available", lambda: True)
    monkeypatch.setattr(_gpu, "_limit_chosen", False)
    rvc_runtime.configure_gpu(memory_limit=0.5)
    assert calls == [2**29]
    rvc_runtime.configure_gpu()  # a later call (VoiceConverter's) keeps the first choice
    assert calls == [2**29]
    monkeypatch.setattr(_gpu, "_limit_chosen", False)
    monkeypatch.setattr(mx, "get_memory_limit", lambda: 2**28)
    rvc_runtime.configure_gpu(memory_limit=0.5)
    assert calls == [2**29]  # already lower: kept
    monkeypatch.setattr(_gpu, "_limit_chosen", False)
    rvc_runtime.configure_gpu(memory_limit=None)
    rvc_runtime.configure_gpu()
    assert calls == [2**29]  # None first: MLX's limit stays


def test_command_buffers_left_to_metal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """macOS: MLX's Metal backend reads MLX_MAX_OPS_PER_BUFFER too (its own defaults per GPU):
    not set there."""
    monkeypatch.delenv("MLX_MAX_OPS_PER_BUFFER", raising=False)
    monkeypatch.setenv("MLX_PTX_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr("sys.platform", "darwin")
    got = rvc_runtime.configure_gpu(memory_limit=None)
    assert "MLX_MAX_OPS_PER_BUFFER" not in got and "MLX_MAX_OPS_PER_BUFFER" not in os.environ


def test_compile_follows_the_warmup_mark(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CUDA: MLX's compile is on where ``mark_kernels_built`` marked the kernel folder for this
    MLX version (``rvc warmup``), off elsewhere; ``compile=`` forces it; the user's
    ``MLX_DISABLE_COMPILE`` wins. (MLX's CUDA check and compile switches are spied here.)"""
    import mlx.core as mx

    from rvc_runtime import _gpu

    calls: list[str] = []
    monkeypatch.setattr(mx.cuda, "is_available", lambda: True)
    monkeypatch.setattr(mx, "enable_compile", lambda: calls.append("on"))
    monkeypatch.setattr(mx, "disable_compile", lambda: calls.append("off"))
    monkeypatch.setattr(mx, "set_memory_limit", lambda limit: 0)
    monkeypatch.setenv("MLX_PTX_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("MLX_DISABLE_COMPILE", raising=False)
    monkeypatch.setattr(_gpu, "_compile_chosen", False)
    rvc_runtime.configure_gpu()
    rvc_runtime.configure_gpu()  # the first call's choice stands
    assert calls == ["off"]
    mark = rvc_runtime.mark_kernels_built()
    assert mark == tmp_path / f"compiled-by-rvc-warmup-mlx-{mx.__version__}" and mark.is_file()
    monkeypatch.setattr(_gpu, "_compile_chosen", False)
    rvc_runtime.configure_gpu()
    rvc_runtime.configure_gpu(compile=False)  # explicit: applies even after a choice
    assert calls == ["off", "on", "off"]
    monkeypatch.setenv("MLX_DISABLE_COMPILE", "1")
    rvc_runtime.configure_gpu(compile=True)
    assert calls == ["off", "on", "off"]
    assert rvc_runtime.mark_kernels_built() is None  # compile was off: nothing built to mark
