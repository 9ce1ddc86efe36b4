from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
# torchpickle, the torch-free .pth writer of rvc-pth's tests
sys.path.append(str(Path(__file__).parents[2] / "rvc-pth" / "tests"))

VARIANTS = [f"{v}_{f}_{sr}" for v in ("v1", "v2") for f in ("f0", "nof0") for sr in ("32k", "40k", "48k")]
