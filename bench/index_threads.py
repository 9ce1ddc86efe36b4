"""FAISS search time against OpenMP threads for small and large query counts (20,000 x 768 IVF
index as the pipeline bench's). Not a test.  python bench/index_threads.py"""

import os
import time

import faiss
import numpy as np

from rvc_index import build_index

idx = build_index(np.random.default_rng(0).standard_normal((20000, 768)).astype(np.float32))
print(type(idx.faiss_index).__name__, "nprobe", idx.nprobe, "cores", os.cpu_count())
for threads in (os.cpu_count(), 4, 1):
    faiss.omp_set_num_threads(threads)
    for nq in (300, 500, 1200, 4000):
        q = np.random.default_rng(1).standard_normal((nq, 768)).astype(np.float32)
        idx.blend(q, rate=0.75)
        t = time.perf_counter()
        for _ in range(5):
            idx.blend(q, rate=0.75)
        print(f"threads {threads:2d} rows {nq:5d}: blend {(time.perf_counter() - t) / 5 * 1000:7.2f} ms", flush=True)
