"""rvc-f0 tests: OpenBLAS for MLX's CPU matmuls, as `import rvc_f0` used to load it (now explicit)."""

from __future__ import annotations

import rvc_runtime

# These tests run with the CPU libraries rvc-convert and the `rvc` command set up (OpenBLAS for
# MLX's CPU matmuls, oneDNN), loaded before anything imports MLX; importing the packages loads nothing.
rvc_runtime.configure_cpu()
