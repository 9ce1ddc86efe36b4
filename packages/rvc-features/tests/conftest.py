"""rvc-features tests: the CPU set-up (the shared fixtures are in the root conftest.py)."""

from __future__ import annotations

import rvc_runtime

# These tests run with the CPU libraries rvc-convert and the `rvc` command set up (OpenBLAS for
# MLX's CPU matmuls, oneDNN), loaded before anything imports MLX; importing the packages loads nothing.
rvc_runtime.configure_cpu()
