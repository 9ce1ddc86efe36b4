"""The IVF scan's distances as one CUDA kernel (MLX's CUDA backend).

The portable scan gathers every candidate vector into a (queries, candidates, D) array and
reduces it: at 60 s of audio (3,100 queries, lists of up to 633 vectors of 768) that is
gigabytes written and read again, in blocks evaluated one after another (H200, CUPTI: the
row sums 15 ms and the gather 6 ms of the search's 27 ms of kernels). Here one thread block
per query keeps the query in shared memory, and each group of ``LANES`` threads reads one
candidate straight from the device store, in faiss-cpu's own order for ``fvec_L2sqr`` on the
host (:mod:`._faiss_order`, measured once): lane ``l`` accumulates ``d * d`` with
``d = v[i] - q[i]`` for ``i = l, l + LANES, ...`` (fused, or a product then a sum, never
contracted), then the lane sums are halved pairwise (``LANES/2``, ..., 1 apart). AVX-512 hosts:
16 lanes, fused (measured bit for bit against IVF-Flat distances, 768 dims, 2,500 pairs); an
AVX2-only AMD EPYC: 8 lanes, not fused. So the scores are FAISS's, in float32 whatever the
matmul precision, for dimensions that are multiples of 16 (RVC's 256 and 768). Slots past a
list's end get +inf. Imported lazily (imports mlx).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mlx.core as mx

WARPS = 8  # warps per query's thread block (32 / LANES groups per warp: W is a multiple of 32)

_SOURCE = """
    __shared__ float qs[DIM];
    const int qi = blockIdx.x;
    const int lane = threadIdx.x % LANES, grp = threadIdx.x / LANES, groups = blockDim.x / LANES;
    for (int i = threadIdx.x; i < DIM; i += blockDim.x) qs[i] = q[(size_t)qi * DIM + i];
    __syncthreads();
    for (int p = 0; p < NP; ++p) {
        const int l = lists[qi * NP + p];
        const int off = offsets[l], n = sizes[l];
        float* out = dist + ((size_t)qi * NP + p) * W;
        for (int j = grp; j < W; j += groups) {  // W is a multiple of groups: uniform trip count
            const bool in = j < n;
            if (!__any_sync(0xffffffffu, in)) {  // every group of the warp past the list: the same branch
                if (lane == 0) out[j] = __int_as_float(0x7f800000);
                continue;
            }
            const float* v = store + (size_t)(off + (in ? j : 0)) * DIM;
            float s = 0.0f;
            for (int i = lane; i < DIM; i += LANES) {
                const float d = __fsub_rn(v[i], qs[i]);
                s = FUSED ? __fmaf_rn(d, d, s) : __fadd_rn(s, __fmul_rn(d, d));  // (intrinsics: never contracted)
            }
            #pragma unroll
            for (int o = LANES / 2; o > 0; o >>= 1) s = __fadd_rn(s, __shfl_xor_sync(0xffffffffu, s, o));
            if (lane == 0) out[j] = in ? s : __int_as_float(0x7f800000);
        }
    }
"""

_kernel: Callable[..., Any] | None = None


def distances(q: Any, lists: Any, store: Any, offsets: Any, sizes: Any, width: int, *, order: tuple[int, bool]) -> Any:
    """Squared L2 from each query to each slot of its probed lists.

    ``q`` (Q, D) float32; ``lists`` (Q, P) int32 list numbers; ``store`` (N + 1, D) float32,
    the lists' vectors one after another; ``offsets``/``sizes`` (nlist,) int32; ``width``:
    slots per list (at least the largest list scanned); ``order``: (lanes 8 or 16, fused), the
    summation order (:func:`._faiss_order.faiss_order`). Returns (Q, P * width) float32, +inf
    past each list's end. Lazy like any MLX op: a build or launch failure surfaces at eval.
    """
    global _kernel
    if _kernel is None:
        _kernel = mx.fast.cuda_kernel(
            name="rvc_ivf_l2",
            input_names=["q", "lists", "store", "offsets", "sizes"],
            output_names=["dist"],
            source=_SOURCE,
        )
    nq, d = q.shape
    nprobe = lists.shape[1]
    (out,) = _kernel(
        inputs=[q, lists, store, offsets, sizes],
        template=[("DIM", d), ("NP", nprobe), ("W", width), ("LANES", int(order[0])), ("FUSED", bool(order[1]))],
        grid=(nq * 32 * WARPS, 1, 1),
        threadgroup=(32 * WARPS, 1, 1),
        output_shapes=[(nq, nprobe * width)],
        output_dtypes=[mx.float32],
    )
    return out
