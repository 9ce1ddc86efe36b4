"""RMVPE's BiGRU recurrence as one CUDA kernel (MLX's CUDA backend).

Stepping the GRU from Python costs a few kernel launches per frame: 1,000 sequential steps per
10 s of audio took ~90 ms on an H100, whatever the input's length, and dominated short files.
Here one launch runs every step. By default (``_SOURCE_SPLIT``) 8 thread blocks share each
direction, each holding its columns of ``Wh`` in registers and meeting the others at a barrier
in global memory after every step; where they cannot all be resident at once, one block per
direction (``_SOURCE``: 3H threads each compute one column of ``h @ Wh``, read from L2) does it
alone. Same equations as :func:`rvc_f0._mlx_net._gru_step` in float32 (only the summation order of the
``h @ Wh`` dot products differs). Imported lazily (imports mlx).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import mlx.core as mx

log = logging.getLogger("rvc_f0")

_SOURCE = """
    constexpr int G = 3 * NH;
    __shared__ float hs[NH];
    __shared__ float hp[G];
    const int d = blockIdx.x;
    const int j = threadIdx.x;
    const int T = steps[0];
    const float* W = wh + (size_t)d * NH * G;
    const float* P = proj + (size_t)d * T * G;
    float* O = out + (size_t)d * T * NH;
    const float bn = j < NH ? bhn[d * NH + j] : 0.0f;
    if (j < NH) hs[j] = 0.0f;
    __syncthreads();
    for (int t = 0; t < T; ++t) {
        float pr = 0.0f, pz = 0.0f, pn = 0.0f;
        if (j < NH) {  // issued before the dot product so that their latency hides behind it
            const float* p = P + (size_t)t * G;
            pr = p[j]; pz = p[NH + j]; pn = p[2 * NH + j];
        }
        float acc = 0.0f;
        #pragma unroll 16
        for (int k = 0; k < NH; ++k) acc = fmaf(hs[k], W[k * G + j], acc);
        hp[j] = acc;
        __syncthreads();
        if (j < NH) {
            const float r = 1.0f / (1.0f + expf(-(pr + hp[j])));
            const float z = 1.0f / (1.0f + expf(-(pz + hp[NH + j])));
            const float n = tanhf(pn + r * (hp[2 * NH + j] + bn));
            const float h = (1.0f - z) * n + z * hs[j];
            hs[j] = h;
            O[(size_t)t * NH + j] = h;
        }
        __syncthreads();
    }
"""

# Split version: NB blocks per direction, each owning H / NB hidden units with its share of Wh
# in registers (KS slices of the rows per column); after each step the blocks of a direction
# meet at a barrier in global memory (an atomic counter; a spin that gives up after ~1 s sets
# the abort flag rather than hang, and the caller falls back).
_SOURCE_SPLIT = """
    constexpr int G = 3 * NH;
    constexpr int U = NH / NB;
    constexpr int C = 3 * U;
    constexpr int R = NH / KS;
    __shared__ float hs[NH];
    __shared__ float part[KS][C];
    __shared__ int stop;
    const int dirs = gridDim.x / NB;
    const int d = blockIdx.x / NB, b = blockIdx.x % NB;
    const int tid = threadIdx.x;
    const int c = tid % C, ks = tid / C;
    const int col = (c / U) * NH + b * U + c % U;
    const int T = steps[0];
    const float* W = wh + (size_t)d * NH * G;
    float w[R];
    #pragma unroll
    for (int i = 0; i < R; ++i) w[i] = W[(size_t)(ks * R + i) * G + col];
    const float* P = proj + (size_t)d * T * G;
    float* O = out + (size_t)d * T * NH;
    const int u = b * U + tid;
    const float bn = tid < U ? bhn[d * NH + u] : 0.0f;
    volatile int* cnt = bar + d;
    volatile int* abort_flag = bar + dirs;
    if (tid == 0) stop = 0;
    for (int t = 0; t < T; ++t) {
        float pr = 0.0f, pz = 0.0f, pn = 0.0f;
        if (tid < U) {
            const float* p = P + (size_t)t * G;
            pr = p[u]; pz = p[NH + u]; pn = p[2 * NH + u];
        }
        for (int i = tid; i < NH; i += blockDim.x) hs[i] = t == 0 ? 0.0f : __ldcg(O + (size_t)(t - 1) * NH + i);
        __syncthreads();
        if (stop) break;
        float acc = 0.0f;
        #pragma unroll
        for (int i = 0; i < R; ++i) acc = fmaf(hs[ks * R + i], w[i], acc);
        part[ks][c] = acc;
        __syncthreads();
        if (tid < U) {
            float ar = 0.0f, az = 0.0f, an = 0.0f;
            #pragma unroll
            for (int s = 0; s < KS; ++s) { ar += part[s][tid]; az += part[s][U + tid]; an += part[s][2 * U + tid]; }
            const float r = 1.0f / (1.0f + expf(-(pr + ar)));
            const float z = 1.0f / (1.0f + expf(-(pz + az)));
            const float n = tanhf(pn + r * (an + bn));
            O[(size_t)t * NH + u] = (1.0f - z) * n + z * hs[u];
            __threadfence();
        }
        __syncthreads();
        if (tid == 0) {
            atomicAdd((int*)cnt, 1);
            const int target = NB * (t + 1);
            const long long t0 = clock64();
            while (*cnt < target) {
                if (*abort_flag || clock64() - t0 > (1LL << 31)) { *abort_flag = 1; stop = 1; break; }
            }
            __threadfence();
        }
        __syncthreads();
    }
"""

_kernels: dict[str, Callable[..., Any]] = {}
_failed = False  # neither kernel can run here: the caller steps the GRU in MLX
_split_failed = False  # the split kernel's blocks could not all be resident: one block per sequence
_split_met = False  # the split kernel's blocks met once in this process: later runs are not waited for
_pending: list[mx.array] = []  # their abort flags, read by split_ok() after the caller's read-back
SPLIT = (8, 8)  # blocks per sequence, row slices per column (H100: 2.2 ms per 1,000 steps, one block 11.6)


def available(x: mx.array, hidden: int) -> bool:
    """Whether a kernel applies: float32, 3 * hidden <= 1024 threads, none failed to build. (The
    caller runs it only on MLX's CUDA backend: RMVPE's backend chooses that once, at load.)"""
    return not _failed and x.dtype == mx.float32 and 3 * hidden <= 1024


def gru_sequences(proj: mx.array, wh: mx.array, bhn: mx.array) -> mx.array | None:
    """Run D independent GRUs over T steps, from h = 0.

    ``proj`` (D, T, 3H): input projections ``x Wx + b`` (gate order r, z, n); ``wh`` (D, H, 3H):
    hidden weights, transposed; ``bhn`` (D, H): the hidden bias of the n gate. Returns (D, T, H)
    float32, or None if no kernel can be built here (logged once; the caller steps in MLX).

    The result is not evaluated here, except at the split kernel's first run in the process,
    which is waited for to see that its blocks met (the host read-back in the middle of RMVPE
    held the host until the U-Net and the GRU had run, at every call). Later runs are queued
    like any kernel and their abort flags checked by :func:`split_ok` once the caller has read
    its results back."""
    global _failed, _split_failed, _split_met
    blocks, slices = SPLIT
    h = proj.shape[2] // 3
    try:
        if len(_pending) >= 256:  # a caller that never checks: read the old flags (long done)
            split_ok()
        if not _split_failed and h % blocks == 0 and h % slices == 0:
            if _split_met:
                out, aborted = _launch_split(proj, wh, bhn, blocks=blocks, slices=slices)
                _pending.append(aborted)
                return out
            first = _run_split(proj, wh, bhn, blocks=blocks, slices=slices)
            if first is not None:
                _split_met = True
                return first
            _split_failed = True
            log.warning(
                "RMVPE BiGRU: the %d blocks of the split kernel could not all run at once; "
                "using one block per direction",
                2 * blocks,
            )
        return _run_one_block(proj, wh, bhn)
    except Exception as exc:  # noqa: BLE001 (a JIT or launch failure: fall back for good, once)
        _failed = True
        log.warning("RMVPE BiGRU CUDA kernel unavailable (%s); stepping it in MLX", exc)
        return None


def split_ok() -> bool:
    """Whether the split kernel's runs queued since the last call all met at their barriers (call
    it after reading back the results that depend on them: nothing is waited for then). False
    when one gave up waiting (its results are wrong): from then on one block per direction runs,
    so the caller computes again."""
    global _split_failed
    flags = list(_pending)
    _pending.clear()
    if not any(f.item() for f in flags):
        return True
    _split_failed = True
    log.warning("RMVPE BiGRU: a split kernel's blocks could not meet; computing again with one block per direction")
    return False


def _kernel(name: str, source: str, outputs: list[str]) -> Callable[..., Any]:
    if name not in _kernels:
        _kernels[name] = mx.fast.cuda_kernel(
            name=name, input_names=["proj", "wh", "bhn", "steps"], output_names=outputs, source=source
        )
    return _kernels[name]


def _run_one_block(proj: mx.array, wh: mx.array, bhn: mx.array) -> mx.array:
    d, t, g = proj.shape
    (out,) = _kernel("rvc_bigru", _SOURCE, ["out"])(
        inputs=[proj, wh, bhn, _steps(t)],
        template=[("NH", g // 3)],
        grid=(d * g, 1, 1),
        threadgroup=(g, 1, 1),
        output_shapes=[(d, t, g // 3)],
        output_dtypes=[mx.float32],
    )
    return out


def _launch_split(
    proj: mx.array, wh: mx.array, bhn: mx.array, *, blocks: int, slices: int
) -> tuple[mx.array, mx.array]:
    """``blocks`` thread blocks per sequence (``_SOURCE_SPLIT``), queued: ``(out, aborted)``, the
    (D, T, H) result and a scalar that is non-zero where the blocks could not meet (then ``out``
    is wrong)."""
    d, t, g = proj.shape
    h = g // 3
    threads = 3 * (h // blocks) * slices
    out, bar = _kernel("rvc_bigru_split", _SOURCE_SPLIT, ["out", "bar"])(
        inputs=[proj, wh, bhn, _steps(t)],
        template=[("NH", h), ("NB", blocks), ("KS", slices)],
        grid=(d * blocks * threads, 1, 1),
        threadgroup=(threads, 1, 1),
        output_shapes=[(d, t, h), (d + 1,)],
        output_dtypes=[mx.float32, mx.int32],
        init_value=0,
    )
    return out, bar[d:]  # (an integer index would be a gather)


def _run_split(proj: mx.array, wh: mx.array, bhn: mx.array, *, blocks: int, slices: int) -> mx.array | None:
    """:func:`_launch_split`, waited for: the result, or None if the blocks could not meet."""
    out, aborted = _launch_split(proj, wh, bhn, blocks=blocks, slices=slices)
    mx.eval(out, aborted)
    return None if aborted.item() else out


_STEPS: dict[int, mx.array] = {}


def _steps(t: int) -> mx.array:
    """The step count as the kernels' (1,) int32 input, made once per length (an upload each
    time otherwise)."""
    a = _STEPS.get(t)
    if a is None:
        if len(_STEPS) >= 64:
            _STEPS.pop(next(iter(_STEPS)))
        a = _STEPS[t] = mx.array([t], dtype=mx.int32)
        mx.eval(a)
    return a
