"""Building blocks of the Palette U-Net (palette.unet assembles them).

The blocks follow the guided-diffusion U-Net (Dhariwal & Nichol 2021) that Palette uses
(docs/paper.md, "Model"), written as small named modules:

- `GroupNorm32`: GroupNorm computed in float32 whatever the activation dtype.
- `ResBlock`: GroupNorm -> SiLU -> conv, then a scale-shift GroupNorm conditioned on the
  noise-level embedding -> SiLU -> dropout -> zero-initialised conv, plus a skip path. With
  `resample="down"` / `"up"` it is the BigGAN-style resampling block (average-pool / nearest
  upsampling inside the block, on both paths). `dilations` turns its two 3x3 convs into dilated
  ones (the "dilated convolutions instead of attention" ablation).
- `SelfAttention`: multi-head self-attention over the pixels of a feature map with
  `torch.nn.functional.scaled_dot_product_attention`; `blocks_per_side=1` is global attention,
  `blocks_per_side=2` the paper's local variant (the map is cut into a 2x2 grid of
  non-overlapping blocks and each block attends only within itself).
- Noise-level embeddings of gamma (= alpha-bar): `NOISE_EMBEDDINGS` maps a name to a function
  `gamma [B] -> [B, dim]`; see `log_snr_embedding` (the default), `wavegrad_embedding` (SR3 /
  WaveGrad) and `raw_gamma_embedding` (the public reproduction's, kept for comparison).

Every block that can sit in the U-Net's encoder/decoder takes `(x, emb)`; `SelfAttention`
ignores `emb`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# ----------------------------------------------------------------------------------------------
# Noise-level embeddings


def sinusoidal_embedding(values: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Transformer-style sinusoidal features of a batch of scalars: `[B] -> [B, dim]` (float32).

    Frequencies run geometrically from 1 down to 1/max_period (radians per unit of `values`);
    the first half of the features are cosines, the second half sines (zero-padded if `dim`
    is odd).
    """
    half = dim // 2
    exponent = torch.arange(half, dtype=torch.float64, device=values.device) / half
    frequencies = torch.exp(-math.log(max_period) * exponent)
    angles = values.to(torch.float64)[:, None] * frequencies[None, :]
    embedding = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    if dim % 2:
        embedding = F.pad(embedding, (0, 1))
    return embedding.to(torch.float32)


# log-SNR = log(gamma / (1 - gamma)). Palette's training schedule spans about -10 .. +14
# (gamma 4.4e-5 .. 1 - 1e-6) and its inference schedule reaches -46 (gamma 7e-21); float32 gamma
# just below 1 gives at most about +16.6. Clamping to +-50 keeps every level the project uses
# distinct while keeping gamma = 0 or 1 (log-SNR = -inf / +inf) finite.
LOG_SNR_LIMIT = 50.0
# The sinusoid's input is 20 * log-SNR, i.e. -1000 .. 1000: the same span as the integer
# timesteps guided diffusion embeds with max period 10000, so the lowest frequency still turns
# monotonically across the whole clamped range while the highest separates levels 0.05 apart.
LOG_SNR_SCALE = 20.0


def log_snr(gamma: Tensor) -> Tensor:
    """log(gamma / (1 - gamma)) in float64, clamped to +-LOG_SNR_LIMIT."""
    gamma = gamma.to(torch.float64)
    value = torch.log(gamma) - torch.log1p(-gamma)
    return value.nan_to_num(nan=0.0).clamp(-LOG_SNR_LIMIT, LOG_SNR_LIMIT)


def log_snr_embedding(gamma: Tensor, dim: int) -> Tensor:
    """Default: sinusoidal embedding of 20 * log-SNR(gamma), log-SNR clamped to +-50.

    log-SNR spreads the levels evenly where diffusion needs them (gamma 1e-5 vs 1e-4 and
    0.999 vs 0.9999 are each about 2.3 apart), so both ends of the schedule are resolved.
    """
    return sinusoidal_embedding(LOG_SNR_SCALE * log_snr(gamma), dim)


def wavegrad_embedding(gamma: Tensor, dim: int) -> Tensor:
    """SR3 / WaveGrad: sinusoidal embedding of 5000 * sqrt(gamma).

    WaveGrad (Chen et al. 2021, section 3.2) conditions on the continuous noise level
    sqrt(alpha-bar) with a sinusoidal positional encoding scaled by 5000; SR3 (Saharia et al.
    2021), which Palette follows, conditions on gamma the same way. It resolves the clean end
    well but compresses the noisy end (sqrt(1e-5) vs sqrt(1e-4) are 34 units apart, 0.999 vs
    0.9999 only 2.25).
    """
    return sinusoidal_embedding(5000.0 * torch.sqrt(gamma.to(torch.float64).clamp(0.0, 1.0)), dim)


def raw_gamma_embedding(gamma: Tensor, dim: int) -> Tensor:
    """The public reproduction's: sinusoidal embedding of gamma in [0, 1] itself, max period 10000.

    Kept only to reproduce that model and for comparison: neighbouring noise levels get almost
    identical embeddings (docs/paper.md; the reproduction's issue #4).
    """
    return sinusoidal_embedding(gamma, dim)


NOISE_EMBEDDINGS: dict[str, Callable[[Tensor, int], Tensor]] = {
    "log_snr": log_snr_embedding,
    "wavegrad": wavegrad_embedding,
    "raw_gamma": raw_gamma_embedding,
}


# ----------------------------------------------------------------------------------------------
# Layers


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 (as guided diffusion does), returned in the input dtype.

    Low-precision statistics over large feature maps are what make fp16/bf16 U-Nets unstable.
    """

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.float()).to(x.dtype)


def zero_module(module: nn.Module) -> nn.Module:
    """Zero a module's parameters, so a residual branch starts as the identity."""
    for parameter in module.parameters():
        nn.init.zeros_(parameter)
    return module


def _resample(x: Tensor, resample: str | None) -> Tensor:
    if resample == "down":
        return F.avg_pool2d(x, kernel_size=2, stride=2)
    if resample == "up":
        return F.interpolate(x, scale_factor=2.0, mode="nearest")
    return x


class ResBlock(nn.Module):
    """Residual block conditioned on the noise-level embedding by scale-shift GroupNorm.

    h = conv1(SiLU(norm1(x)));  h = norm2(h) * (1 + scale) + shift with (scale, shift) a linear
    function of SiLU(emb);  out = skip(x) + conv2(dropout(SiLU(h))), conv2 zero-initialised.
    `resample` ("down" / "up") halves / doubles H and W between norm1 and conv1 and on the skip
    path (BigGAN-style resampling). The skip is a 1x1 conv when the width changes.
    """

    def __init__(
        self,
        in_channels: int,
        embedding_channels: int,
        out_channels: int | None = None,
        *,
        dropout: float = 0.0,
        resample: str | None = None,
        dilations: tuple[int, int] = (1, 1),
        num_groups: int = 32,
    ):
        super().__init__()
        if resample not in (None, "down", "up"):
            raise ValueError(f"resample must be None, 'down' or 'up', got {resample!r}")
        out_channels = out_channels or in_channels
        self.resample = resample
        self.norm1 = GroupNorm32(num_groups, in_channels)
        self.conv1 = nn.Conv2d(
            in_channels, out_channels, 3, padding=dilations[0], dilation=dilations[0]
        )
        self.embedding_projection = nn.Linear(embedding_channels, 2 * out_channels)
        self.norm2 = GroupNorm32(num_groups, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_module(
            nn.Conv2d(out_channels, out_channels, 3, padding=dilations[1], dilation=dilations[1])
        )
        if in_channels == out_channels:
            self.skip = nn.Identity()
        else:
            self.skip = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = F.silu(self.norm1(x))
        h = self.conv1(_resample(h, self.resample))
        scale, shift = self.embedding_projection(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(_resample(x, self.resample)) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over a feature map's pixels, with a residual connection.

    GroupNorm -> 1x1 conv to q, k, v -> scaled_dot_product_attention per head (`num_head_channels`
    channels each) -> zero-initialised 1x1 output projection. With `blocks_per_side = n > 1` the
    map is cut into an n x n grid of non-overlapping blocks (sizes differ by at most one pixel
    when H or W is not divisible by n) and each block attends only within itself; n = 2 is the
    paper's "local self-attention, 4 non-overlapping query blocks".
    """

    def __init__(
        self,
        channels: int,
        *,
        num_head_channels: int = 64,
        blocks_per_side: int = 1,
        num_groups: int = 32,
    ):
        super().__init__()
        if channels % num_head_channels:
            raise ValueError(
                f"attention width {channels} is not divisible by num_head_channels={num_head_channels}"
            )
        self.num_heads = channels // num_head_channels
        self.blocks_per_side = blocks_per_side
        self.norm = GroupNorm32(num_groups, channels)
        self.to_qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.projection = zero_module(nn.Conv2d(channels, channels, 1))
        # Where the block sits in the U-Net; the U-Net fills these in (see palette.unet).
        self.position = ""
        self.resolution = 0

    def _attend(self, qkv: Tensor) -> Tensor:
        """[B, 3C, h, w] -> [B, C, h, w]: every pixel attends to every pixel of this map."""
        batch, three_channels, height, width = qkv.shape
        head_channels = three_channels // (3 * self.num_heads)
        # Channels last in memory, so q, k, v have unit stride in their channel dimension: the
        # fused (flash / memory-efficient) kernels need that and otherwise fall back to the
        # math kernel, which materialises the hw x hw attention matrix. (A permute + reshape of
        # an NCHW tensor is a view with channel stride hw, so the copy must be explicit.)
        qkv = qkv.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1)
        qkv = qkv.reshape(batch, height * width, 3, self.num_heads, head_channels)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(dim=0)  # each [B, heads, hw, c]
        out = F.scaled_dot_product_attention(query, key, value)
        out = out.transpose(1, 2).reshape(batch, height, width, -1)
        return out.permute(0, 3, 1, 2)

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        qkv = self.to_qkv(self.norm(x))
        if self.blocks_per_side == 1:
            out = self._attend(qkv)
        else:
            rows = []
            for row in qkv.tensor_split(self.blocks_per_side, dim=2):
                blocks = row.tensor_split(self.blocks_per_side, dim=3)
                rows.append(torch.cat([self._attend(block) for block in blocks], dim=3))
            out = torch.cat(rows, dim=2)
        return x + self.projection(out)


class ConditionedSequential(nn.ModuleList):
    """Blocks applied in order, each called as block(x, emb)."""

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        for block in self:
            x = block(x, emb)
        return x
