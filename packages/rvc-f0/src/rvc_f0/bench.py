"""Speed of the neural pitch estimators on this machine (not part of the public API).

``pitch_speed(seconds=10)`` -> ``{method: seconds of compute per second of 16 kHz audio}`` for
rmvpe, crepe-tiny, crepe and fcpe. Every network gets seeded random weights of its real shapes
(RMVPE full width, CREPE capacity 4 and 32, FCPE): the arithmetic is the same as with the real
files, no weights need to be present and nothing is downloaded. Importing this module is cheap;
mlx is imported when ``pitch_speed`` runs (importing ``rvc_f0`` first preloads OpenBLAS for it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

BENCH_METHODS = ("rmvpe", "crepe-tiny", "crepe", "fcpe")


def pitch_speed(
    seconds: float = 10,
    *,
    methods: Iterable[str] = BENCH_METHODS,
    repeats: int = 1,
    progress: Callable[[str, float], None] | None = None,
) -> dict[str, float]:
    """Seconds of compute per second of audio for each method (lower is better; < 1 = faster
    than real time), on a ``seconds`` long seeded noise signal, after a 1 s warm-up call, best
    of ``repeats``. ``progress(method, s_per_s)`` is called after each method."""
    audio = (np.random.default_rng(0).standard_normal(int(16000 * seconds)) * 0.1).astype(np.float32)
    out: dict[str, float] = {}
    for method in methods:
        fn = _random_model(method)
        fn(audio[:16000])  # warm-up: lazy imports, first-call allocations
        best = float("inf")
        for _ in range(max(1, repeats)):
            t = time.perf_counter()
            fn(audio)
            best = min(best, time.perf_counter() - t)
        out[method] = best / seconds
        if progress is not None:
            progress(method, out[method])
    return out


def _random_state(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    state = {}
    for name, shape in shapes.items():
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        a = rng.standard_normal(shape) / np.sqrt(fan_in)
        if name.endswith(("running_var", "_BN.weight", "norm.weight", "input_stack.1.weight", "weight_g")):
            a = 1 + 0.1 * np.abs(a)
        state[name] = a.astype(np.float32)
    return state


def random_model(method: str) -> Callable[[np.ndarray], np.ndarray]:
    """The network of ``method`` (``rmvpe``: an ``RMVPEModel`` of full width; ``crepe``,
    ``crepe-tiny``, ``fcpe``) with seeded random weights, for speed measurements without files."""
    return _random_model(method)


def _random_model(method: str) -> Callable[[np.ndarray], np.ndarray]:
    if method == "rmvpe":
        import mlx.core as mx
        from mlx_rmvpe import E2E

        from ._mlx_net import correct_decoder
        from ._rmvpe import RMVPEModel

        mx.random.seed(0)
        net = E2E(4, 1, (2, 2))
        net.eval()
        corrected = correct_decoder(net)
        mx.eval(net.parameters())  # drawn now: a compiled U-Net would draw lazy weights at every call
        return RMVPEModel(net, Path("-"), corrected)
    if method in ("crepe", "crepe-tiny"):
        from ._crepe import CAPACITY, CrepeModel, CrepeNet, expected_shapes

        c = CAPACITY[method]
        state = _random_state(expected_shapes({"conv1.weight": np.zeros((32 * c, 1, 512, 1))}), 0)
        return CrepeModel(CrepeNet(state), Path("-"))
    if method == "fcpe":
        from ._fcpe import FCPEModel, FCPENet, expected_shapes

        state = _random_state(expected_shapes({}), 0)
        state["cent_table"] = np.linspace(2051.1487, 9151.2891, 360, dtype=np.float32)
        return FCPEModel(FCPENet(state), Path("-"))
    from .errors import UnknownMethodError

    raise UnknownMethodError(f"method={method!r} has no speed benchmark; expected one of {', '.join(BENCH_METHODS)}")
