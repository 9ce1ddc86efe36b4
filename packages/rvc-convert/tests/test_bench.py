"""``rvc_convert.bench``: what a row reports (device, precision, peak device memory); never timings."""

from __future__ import annotations

import mlx.core as mx
import pytest
from mlx.utils import tree_flatten

from rvc_convert import bench


def _param_bytes(module) -> int:
    return sum(v.nbytes for _, v in tree_flatten(module.parameters()))


@pytest.fixture(scope="module")
def models() -> dict:
    return bench.build_models()


def test_measure_reports_device_precision_and_device_memory(models: dict) -> None:
    row = bench.measure(0.5, models, warmup=0.5)
    assert set(bench.STAGES) <= set(row) and row["seconds"] == 0.5
    assert row["precision"] == "float32"
    assert row["device"].split()[0] == ("gpu" if mx.default_device() == mx.gpu else "cpu")
    # MLX's allocator holds at least the synthesizer's and ContentVec's weights during the run
    weights = _param_bytes(models["synth"]) + _param_bytes(models["contentvec"].model)
    assert weights > 400 * 2**20  # full-size models: ~0.5 GB of float32
    assert row["peak_device_mb"] * 2**20 >= weights
    assert "first_call_s" in row  # the warm-up was at the measured length
    first = row["first_call_stages"]  # where the first call's time went, stage by stage
    assert set(first) == set(bench.STAGES) and all(v > 0 for v in first.values())
    # every value is rounded to 1 ms: the sum of the rounded stages may exceed the rounded total
    # by half a millisecond per value (seen: 3.442 against 3.441)
    assert sum(first.values()) <= row["first_call_s"] + 0.5e-3 * (len(first) + 1)


def test_build_models_in_half_precision(models: dict) -> None:
    synth = bench.build_models(dtype="bfloat16")["synth"]
    assert synth.dtype == mx.bfloat16
    assert _param_bytes(synth) * 2 == _param_bytes(models["synth"])


def test_run_rejects_an_unknown_precision() -> None:
    with pytest.raises(ValueError, match="precision='fp8'; expected one of float32, tf32, float16, bfloat16"):
        bench.run((1.0,), precision="fp8")


def test_precision_label_says_tf32_does_nothing_on_the_cpu() -> None:
    assert bench.precision_label("float32", tf32=True, on_gpu=False) == "float32 (tf32 has no effect on the CPU)"
    assert bench.precision_label("float32", tf32=True, on_gpu=True) == "tf32"
    assert bench.precision_label("float32", tf32=False, on_gpu=False) == "float32"
    assert bench.precision_label("float16", tf32=True, on_gpu=True) == "float16"
    assert bench.precision_label("bfloat16", tf32=False, on_gpu=False) == "bfloat16"


def test_measure_labels_a_cpu_tf32_run_float32(models: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLX_ENABLE_TF32", "1")
    row = bench.measure(0.5, models, warmup=0.5)
    expected = "tf32" if mx.default_device() == mx.gpu else "float32 (tf32 has no effect on the CPU)"
    assert row["precision"] == expected


def test_bench_environment_per_precision() -> None:
    """float32 is exact and tf32 is TF32 whatever the caller set; half precisions keep the
    caller's choice for the float32 stages (default exact)."""
    env = bench._bench_env
    assert env("float32", {"MLX_ENABLE_TF32": "1"})["MLX_ENABLE_TF32"] == "0"
    assert env("tf32", {})["MLX_ENABLE_TF32"] == "1"
    assert env("float16", {})["MLX_ENABLE_TF32"] == "1"
    assert env("float16", {"MLX_ENABLE_TF32": "1", "X": "y"}) == {"MLX_ENABLE_TF32": "1", "X": "y"}
    assert env("bfloat16", {"MLX_ENABLE_TF32": "0"})["MLX_ENABLE_TF32"] == "0"


def test_measure_reports_medians_of_repeats(models: dict) -> None:
    row = bench.measure(0.5, models, warmup=0.5, repeats=3)
    assert row["repeats"] == 3 and row["total"] >= max(row[k] for k in bench.STAGES)
    with pytest.raises(ValueError, match="repeats=0"):
        bench.measure(0.5, models, repeats=0)
