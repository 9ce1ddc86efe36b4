"""`SynthConfig`: the synthesizer hyper-parameters, parsed once from RVC's 18-entry config list."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from .errors import UnsupportedCheckpointError

__all__ = ["SynthConfig", "KNOWN_CONFIGS", "derive_config"]


@dataclass(frozen=True)
class SynthConfig:
    """Hyper-parameters of an RVC synthesizer (``SynthesizerTrnMs{256,768}NSFsid[_nono]``).

    Field order is the order of RVC's positional config list, followed by what the
    checkpoint says besides it (``version``, ``has_f0``).
    """

    spec_channels: int
    segment_size: int
    inter_channels: int
    hidden_channels: int
    filter_channels: int
    n_heads: int
    n_layers: int
    kernel_size: int
    p_dropout: float
    resblock: str
    resblock_kernel_sizes: tuple[int, ...]
    resblock_dilation_sizes: tuple[tuple[int, ...], ...]
    upsample_rates: tuple[int, ...]
    upsample_initial_channel: int
    upsample_kernel_sizes: tuple[int, ...]
    n_speakers: int
    gin_channels: int
    sample_rate: int
    version: str = "v2"
    has_f0: bool = True

    @property
    def feature_dim(self) -> int:
        """Content-feature width: 256 (v1) or 768 (v2)."""
        return 256 if self.version == "v1" else 768

    @property
    def hop(self) -> int:
        """Output samples per 10 ms frame (= prod(upsample_rates) = sample_rate / 100)."""
        return int(np.prod(self.upsample_rates))

    @classmethod
    def from_list(cls, cfg: Sequence[Any], *, version: str, has_f0: bool) -> SynthConfig:
        """Parse RVC's positional config list (18 entries, sample rate last)."""
        if not isinstance(cfg, (list, tuple)) or len(cfg) != 18:
            n = len(cfg) if isinstance(cfg, (list, tuple)) else type(cfg).__name__
            raise UnsupportedCheckpointError(
                f"checkpoint 'config' has {n} entries, expected RVC's list of 18 synthesizer settings"
            )
        try:
            c = cls(
                spec_channels=int(cfg[0]),
                segment_size=int(cfg[1]),
                inter_channels=int(cfg[2]),
                hidden_channels=int(cfg[3]),
                filter_channels=int(cfg[4]),
                n_heads=int(cfg[5]),
                n_layers=int(cfg[6]),
                kernel_size=int(cfg[7]),
                p_dropout=float(cfg[8]),
                resblock=str(cfg[9]),
                resblock_kernel_sizes=tuple(int(k) for k in cfg[10]),
                resblock_dilation_sizes=tuple(tuple(int(d) for d in ds) for ds in cfg[11]),
                upsample_rates=tuple(int(r) for r in cfg[12]),
                upsample_initial_channel=int(cfg[13]),
                upsample_kernel_sizes=tuple(int(k) for k in cfg[14]),
                n_speakers=int(cfg[15]),
                gin_channels=int(cfg[16]),
                sample_rate=_parse_sr(cfg[17]),
                version=version,
                has_f0=bool(has_f0),
            )
        except (TypeError, ValueError) as exc:
            raise UnsupportedCheckpointError(f"checkpoint 'config' is malformed ({exc})") from None
        c.validate()
        return c

    def to_list(self) -> list[Any]:
        """The RVC positional config list (inverse of :meth:`from_list`)."""
        return [
            self.spec_channels,
            self.segment_size,
            self.inter_channels,
            self.hidden_channels,
            self.filter_channels,
            self.n_heads,
            self.n_layers,
            self.kernel_size,
            self.p_dropout,
            self.resblock,
            list(self.resblock_kernel_sizes),
            [list(d) for d in self.resblock_dilation_sizes],
            list(self.upsample_rates),
            self.upsample_initial_channel,
            list(self.upsample_kernel_sizes),
            self.n_speakers,
            self.gin_channels,
            self.sample_rate,
        ]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SynthConfig:
        return cls.from_list([d[f] for f in _FIELDS[:18]], version=str(d["version"]), has_f0=bool(d["has_f0"]))

    def validate(self) -> None:
        if self.version not in ("v1", "v2"):
            raise UnsupportedCheckpointError(f"model version '{self.version}' is unknown; expected 'v1' or 'v2'")
        if self.resblock not in ("1", "2"):
            raise UnsupportedCheckpointError(f"resblock type '{self.resblock}' is unknown; expected '1' or '2'")
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes) or not self.upsample_rates:
            raise UnsupportedCheckpointError("config: upsample_rates and upsample_kernel_sizes differ in length")
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise UnsupportedCheckpointError("config: resblock kernel and dilation lists differ in length")
        if self.hidden_channels % self.n_heads or self.inter_channels % 2:
            raise UnsupportedCheckpointError("config: hidden_channels must divide by n_heads, inter_channels be even")
        if self.sample_rate != self.hop * 100:
            raise UnsupportedCheckpointError(
                f"config: sample rate {self.sample_rate} Hz does not equal 100 x prod(upsample_rates) = "
                f"{self.hop * 100}; RVC synthesizers produce one hop per 10 ms frame"
            )


_FIELDS = [f for f in SynthConfig.__dataclass_fields__]


def _parse_sr(v: Any) -> int:
    if isinstance(v, str):
        v = v.strip().lower()
        return int(v[:-1]) * 1000 if v.endswith("k") else int(v)
    return int(v)


def _cfg(spec: int, rates: list[int], kernels: list[int], sr: int) -> list[Any]:
    return [spec, 32, 192, 192, 768, 2, 6, 3, 0, "1", [3, 7, 11], [[1, 3, 5]] * 3, rates, 512, kernels, 109, 256, sr]


# The reference's configs/{v1,v2}/*.json ("v2 40k" models are trained with the v1 40k config).
KNOWN_CONFIGS: dict[str, list[Any]] = {
    "v1_32k": _cfg(513, [10, 4, 2, 2, 2], [16, 16, 4, 4, 4], 32000),
    "v1_40k": _cfg(1025, [10, 10, 2, 2], [16, 16, 4, 4], 40000),
    "v1_48k": _cfg(1025, [10, 6, 2, 2, 2], [16, 16, 4, 4, 4], 48000),
    "v2_32k": _cfg(513, [10, 8, 2, 2], [20, 16, 4, 4], 32000),
    "v2_40k": _cfg(1025, [10, 10, 2, 2], [16, 16, 4, 4], 40000),
    "v2_48k": _cfg(1025, [12, 10, 2, 2], [24, 20, 4, 4], 48000),
}


def _shape(w: Mapping[str, np.ndarray], key: str) -> tuple[int, ...] | None:
    for k in (key, key + "_v", key.replace(".weight", ".parametrizations.weight.original1")):
        if k in w:
            return tuple(w[k].shape)
    return None


def derive_config(weights: Mapping[str, np.ndarray], *, sample_rate: int | None = None) -> SynthConfig:
    """Rebuild the config of a training-format checkpoint (no config inside) from its weight shapes.

    Widths, layer counts, heads and speaker count come from the shapes; upsampling, dilations
    and the sample rate come from the one known RVC config (v1/v2 x 32k/40k/48k) consistent
    with the shapes. Raises :class:`UnsupportedCheckpointError` when none or several fit.
    """
    phone = _shape(weights, "enc_p.emb_phone.weight")
    if phone is None or len(phone) != 2:
        raise UnsupportedCheckpointError("no 'enc_p.emb_phone.weight' tensor: not an RVC synthesizer checkpoint")
    version = {256: "v1", 768: "v2"}.get(phone[1])
    if version is None:
        raise UnsupportedCheckpointError(f"content-feature width {phone[1]} is neither 256 (v1) nor 768 (v2)")
    has_f0 = "enc_p.emb_pitch.weight" in weights
    hidden = phone[0]
    n_layers = len({k.split(".")[3] for k in weights if k.startswith("enc_p.encoder.attn_layers.")})
    rel = _shape(weights, "enc_p.encoder.attn_layers.0.emb_rel_k")
    ffn = _shape(weights, "enc_p.encoder.ffn_layers.0.conv_1.weight")
    proj = _shape(weights, "enc_p.proj.weight")
    emb_g = _shape(weights, "emb_g.weight")
    pre = _shape(weights, "dec.conv_pre.weight")
    if rel is None or ffn is None or proj is None or emb_g is None or pre is None or n_layers == 0:
        raise UnsupportedCheckpointError("checkpoint lacks encoder/decoder tensors of an RVC synthesizer")
    n_ups = len({k.split(".")[2] for k in weights if k.startswith("dec.ups.")})
    ups_k = [(_shape(weights, f"dec.ups.{i}.weight") or (0, 0, 0))[2] for i in range(n_ups)]
    noise_k = [(_shape(weights, f"dec.noise_convs.{i}.weight") or (0, 0, 0))[2] for i in range(n_ups)]
    spec = _shape(weights, "enc_q.pre.weight")
    fits = []
    for name, cfg in KNOWN_CONFIGS.items():
        rates, kernels = cfg[12], cfg[14]
        if not name.startswith(version) or list(kernels) != ups_k:
            continue
        if sample_rate is not None and cfg[17] != sample_rate:
            continue
        if has_f0 and noise_k[0] != 2 * int(np.prod(rates[1:])):
            continue
        if spec is not None and spec[1] != cfg[0]:
            continue
        fits.append(cfg)
    if len(fits) != 1:
        what = "no known RVC config" if not fits else f"{len(fits)} known RVC configs"
        raise UnsupportedCheckpointError(
            f"cannot tell this training checkpoint's configuration: {what} match its upsampler "
            f"(kernels {ups_k}); pass the sample rate explicitly or use an inference-format model"
        )
    cfg = list(fits[0])
    cfg[2], cfg[3] = proj[0] // 2, hidden
    cfg[4], cfg[5], cfg[6], cfg[7] = ffn[0], hidden // rel[2], n_layers, ffn[2]
    cfg[13], cfg[15], cfg[16] = pre[0], emb_g[0], emb_g[1]
    return SynthConfig.from_list(cfg, version=version, has_f0=has_f0)


def with_speakers(cfg: SynthConfig, n: int) -> SynthConfig:
    return replace(cfg, n_speakers=n)
