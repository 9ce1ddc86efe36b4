"""RMVPE's BiGRU recurrence as one CUDA kernel (MLX's CUDA backend).

Stepping the GRU from Python costs a few kernel launches per frame: 1,000 sequential steps per
10 s of audio took ~90 ms on an H100, whatever the input's length, and dominated short files.
Here one thread block per direction runs every step: 3H threads each compute one column of
``h @ Wh`` (``Wh`` read from L2, ``h`` in shared memory), then H of them apply the gates. Same
equations as :func:`rvc_f0._mlx_net._gru_step` in float32 (only the summation order of the
``h @ Wh`` dot products differs). Imported lazily (imports mlx).
"""

from __future__ import annotations

import logging

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

_kernel = None
_failed = False


def available(x: mx.array, hidden: int) -> bool:
    """Whether the kernel applies: float32 on MLX's CUDA backend, 3 * hidden <= 1024 threads."""
    return (not _failed and x.dtype == mx.float32 and 3 * hidden <= 1024
            and mx.default_device() == mx.gpu and mx.cuda.is_available())


def gru_sequences(proj: mx.array, wh: mx.array, bhn: mx.array) -> mx.array | None:
    """Run D independent GRUs over T steps, from h = 0.

    ``proj`` (D, T, 3H): input projections ``x Wx + b`` (gate order r, z, n); ``wh`` (D, H, 3H):
    hidden weights, transposed; ``bhn`` (D, H): the hidden bias of the n gate. Returns (D, T, H)
    float32, or None if the kernel cannot be built here (logged once; the caller steps in MLX)."""
    global _kernel, _failed
    d, t, g = proj.shape
    h = g // 3
    try:
        if _kernel is None:
            _kernel = mx.fast.cuda_kernel(name="rvc_bigru", input_names=["proj", "wh", "bhn", "steps"],
                                          output_names=["out"], source=_SOURCE)
        (out,) = _kernel(inputs=[proj, wh, bhn, mx.array([t], dtype=mx.int32)], template=[("NH", h)],
                         grid=(d * g, 1, 1), threadgroup=(g, 1, 1), output_shapes=[(d, t, h)],
                         output_dtypes=[mx.float32])
        mx.eval(out)
        return out
    except Exception as exc:  # noqa: BLE001 (a JIT or launch failure: fall back for good, once)
        _failed = True
        log.warning("RMVPE BiGRU CUDA kernel unavailable (%s); stepping it in MLX", exc)
        return None
