"""The command-buffer setting of ``gpu_check.sh buffers`` to A/B next: the TF32 one-stretch
decoder's lowest transient memory among the settings within 5% of the fastest (printed as the
``env`` words to prefix; ``MLX_DEFAULTS=1`` for MLX's own)."""

import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
tf32 = [r for r in rows if r["tf32"] == "1"] or rows
fastest = min(r["ms"] for r in tf32)
best = min((r for r in tf32 if r["ms"] <= 1.05 * fastest), key=lambda r: r["transient_mib"])
print("MLX_DEFAULTS=1" if best["env"] == "default" else best["env"])
