"""rvc_runtime.gather: MLX's gathers off CUDA; on MLX's CUDA backend the kernels, which must
give NumPy's values bit for bit (the tests that need CUDA skip elsewhere)."""

from __future__ import annotations

import mlx.core as mx
import numpy as np
import pytest

from rvc_runtime import gather

CUDA = mx.default_device() == mx.gpu and mx.cuda.is_available()


def _cases():
    rng = np.random.default_rng(1)
    for dtype in (np.float32, np.float16, np.int32, np.int64):
        a = (rng.standard_normal((4, 7, 5)) * 1000).astype(dtype)
        yield a, rng.integers(-7, 7, size=(3, 9)).astype(np.int32)


def test_choose_is_mlx_off_cuda():
    if CUDA:
        pytest.skip("MLX's CUDA backend chooses the kernels")
    assert gather.choose() is gather.MLX
    assert gather.Gather("cuda") == gather.CUDA


@pytest.mark.parametrize(
    "g", [gather.MLX, pytest.param(gather.CUDA, marks=pytest.mark.skipif(not CUDA, reason="MLX's CUDA backend only"))]
)
def test_take_matches_numpy(g):
    for a, idx in _cases():
        for axis in (0, 1, 2, -1):
            n = a.shape[axis]
            i = np.clip(idx, -n, n - 1)
            np.testing.assert_array_equal(
                np.array(g.take(mx.array(a), mx.array(i), axis=axis)), np.take(a, i, axis=axis)
            )


@pytest.mark.parametrize(
    "g", [gather.MLX, pytest.param(gather.CUDA, marks=pytest.mark.skipif(not CUDA, reason="MLX's CUDA backend only"))]
)
def test_take_along_axis_matches_numpy(g):
    for a, idx in _cases():
        i = np.clip(idx[:, :4], -5, 4)  # (3, 4) along the last axis of (4, 7, 5): broadcast over axis 0
        for ib in (i[None, :, :], np.broadcast_to(i[None, :1, :], (4, 1, 4)).copy()):
            want = np.take_along_axis(a[:, :3], ib, axis=-1) if ib.shape[1] == 3 else np.take_along_axis(a, ib, axis=-1)
            src = a[:, :3] if ib.shape[1] == 3 else a
            np.testing.assert_array_equal(np.array(g.take_along_axis(mx.array(src), mx.array(ib), axis=-1)), want)
        j = np.clip(idx[:2, :5], -7, 6).T[None]  # (1, 5, 2) along axis 1
        np.testing.assert_array_equal(
            np.array(g.take_along_axis(mx.array(a[:, :, :2]), mx.array(j), axis=1)),
            np.take_along_axis(a[:, :, :2], np.broadcast_to(j, (4, 5, 2)), axis=1),
        )


@pytest.mark.skipif(not CUDA, reason="MLX's CUDA backend only")
def test_cuda_is_chosen_on_cuda():
    assert gather.choose() is gather.CUDA
