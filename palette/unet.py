"""The Palette U-Net: guided diffusion's 256x256 U-Net without class conditioning (docs/paper.md, Model).

    model = build_unet("paper")                  # 552.8 M parameters, 16 attention layers
    eps = model(torch.cat([source, noisy_target], dim=1), gamma)   # gamma = alpha-bar, [B]

Layout. `len(channel_mults)` levels; level l works at 1/2^l of the input size with
`base_channels * channel_mults[l]` channels. The encoder has `num_res_blocks` res blocks per
level and a down-sampling res block between levels; the middle is res block, context block,
res block; the decoder has `num_res_blocks + 1` res blocks per level, each fed the matching
encoder activation (skip connection), and an up-sampling res block between levels. Every res
block at a level listed in `attention_resolutions` is followed by a context block.

Attention placement. `attention_resolutions` are FEATURE-MAP sizes for an input of
`image_size` (guided diffusion's convention, e.g. 32/16/8 at 256), never down-sampling factors
(the public reproduction compared its `attn_res: [16]` with the factor and so had no
encoder/decoder attention). They are turned into level indices once, at construction:
`resolution == image_size / 2^level`; a resolution that is no level's size is an error. The
levels are then fixed, so an input of another size keeps attention at the same levels (a
512x512 input through `paper` attends at 64/32/16, a 48x80 input at the maps of those levels).
Inputs must have H and W divisible by 2^(levels - 1); the middle block has a context block at
the deepest level unless `middle_context_block=False` (then it is two res blocks).

Context blocks, `attention_type`:
- "global": full multi-head self-attention (`num_head_channels` per head), the paper's model.
- "local": self-attention within each block of a 2x2 grid of the map ("4 non-overlapping query
  blocks"); same parameters as global.
- "none": each attention layer is replaced by an extra res block ("2x ResNet blocks").
- "dilated": each attention layer is replaced by a res block whose two 3x3 convs are dilated
  by `dilation_rates` (default (2, 4): receptive field 13 pixels per block, covering the whole
  8x8 map of the deepest `paper` level and most of a 16x16 one while staying
  resolution-independent).
The three non-global variants run on any size and aspect ratio that meets the divisibility rule.

Memory format: `model.to(memory_format=torch.channels_last)` with channels-last inputs gives
the same outputs; on an H200 (torch 2.11, bf16 autocast, batch 8 at 256) it was slower than
the default layout for `paper` (348 vs 267 ms per forward+backward; GroupNorm and elementwise
kernels dominate), so contiguous is the default. `use_checkpoint=True` recomputes each
encoder/decoder step in the backward pass (less memory, same gradients).

Noise level: the net receives gamma in (0, 1] as a float tensor [B] (or a scalar / one value,
broadcast); `noise_embedding` picks how it is embedded (palette.nn.NOISE_EMBEDDINGS):
"log_snr" (default), "wavegrad" (SR3 / WaveGrad), "raw_gamma" (the public reproduction's).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.checkpoint import checkpoint
from torch.utils.flop_counter import FlopCounterMode

from palette.nn import (
    NOISE_EMBEDDINGS,
    ConditionedSequential,
    GroupNorm32,
    ResBlock,
    SelfAttention,
    zero_module,
)
from palette.unet_presets import PRESETS, UNET_ARGUMENTS as _UNET_ARGUMENTS  # noqa: F401 (PRESETS: re-exported)

ATTENTION_TYPES = ("global", "local", "none", "dilated")


class UNet(nn.Module):
    """Noise-level-conditioned U-Net: `forward(x [B, in, H, W], gamma [B]) -> [B, out, H, W]`.

    x is cat(source, noisy target) on channels (in_channels = 6 for RGB -> RGB); a regression
    baseline uses in_channels = 3 and a constant gamma. Defaults are the paper's model.
    """

    def __init__(
        self,
        in_channels: int = 6,
        out_channels: int = 3,
        base_channels: int = 256,
        channel_mults: Sequence[int] = (1, 1, 2, 2, 4, 4),
        num_res_blocks: int = 2,
        attention_resolutions: Sequence[int] = (32, 16, 8),
        image_size: int = 256,
        attention_type: str = "global",
        num_head_channels: int = 64,
        dropout: float = 0.0,
        noise_embedding: str = "log_snr",
        num_groups: int = 32,
        dilation_rates: tuple[int, int] = (2, 4),
        use_checkpoint: bool = False,
        middle_context_block: bool = True,
    ):
        super().__init__()
        if attention_type not in ATTENTION_TYPES:
            raise ValueError(f"attention_type must be one of {ATTENTION_TYPES}, got {attention_type!r}")
        if noise_embedding not in NOISE_EMBEDDINGS:
            raise ValueError(
                f"noise_embedding must be one of {tuple(NOISE_EMBEDDINGS)}, got {noise_embedding!r}"
            )
        levels = len(channel_mults)
        if image_size % 2 ** (levels - 1):
            raise ValueError(
                f"image_size {image_size} is not divisible by 2^{levels - 1} ({levels} levels)"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.base_channels = base_channels
        self.num_levels = levels
        self.image_size = image_size
        self.attention_type = attention_type
        self.noise_embedding = noise_embedding
        self.use_checkpoint = use_checkpoint
        # Feature-map size of each level for an image_size input.
        self.level_resolutions = tuple(image_size // 2**level for level in range(levels))
        self.attention_levels = self._levels_of(attention_resolutions)
        # (position, reference resolution) of every context block, in forward order.
        self.context_layout: list[tuple[str, int]] = []

        embedding_channels = 4 * base_channels
        self.noise_mlp = nn.Sequential(
            nn.Linear(base_channels, embedding_channels),
            nn.SiLU(),
            nn.Linear(embedding_channels, embedding_channels),
        )

        def res_block(channels_in: int, channels_out: int | None = None, **kwargs) -> ResBlock:
            return ResBlock(
                channels_in,
                embedding_channels,
                channels_out,
                dropout=dropout,
                num_groups=num_groups,
                **kwargs,
            )

        def context_block(channels: int, position: str, level: int) -> nn.Module:
            if attention_type in ("global", "local"):
                block = SelfAttention(
                    channels,
                    num_head_channels=num_head_channels,
                    blocks_per_side=1 if attention_type == "global" else 2,
                    num_groups=num_groups,
                )
                block.position, block.resolution = position, self.level_resolutions[level]
            elif attention_type == "none":
                block = res_block(channels)
            else:
                block = res_block(channels, dilations=tuple(dilation_rates))
            self.context_layout.append((position, self.level_resolutions[level]))
            return block

        channels = base_channels * channel_mults[0]
        self.input_conv = nn.Conv2d(in_channels, channels, 3, padding=1)
        skip_channels = [channels]

        self.encoder = nn.ModuleList()
        for level, mult in enumerate(channel_mults):
            for _ in range(num_res_blocks):
                blocks = [res_block(channels, base_channels * mult)]
                channels = base_channels * mult
                if level in self.attention_levels:
                    blocks.append(context_block(channels, "encoder", level))
                self.encoder.append(ConditionedSequential(blocks))
                skip_channels.append(channels)
            if level != levels - 1:
                self.encoder.append(ConditionedSequential([res_block(channels, resample="down")]))
                skip_channels.append(channels)

        middle_context = [context_block(channels, "middle", levels - 1)] if middle_context_block else []
        self.middle = ConditionedSequential([res_block(channels), *middle_context, res_block(channels)])

        self.decoder = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mults))):
            for index in range(num_res_blocks + 1):
                blocks = [res_block(channels + skip_channels.pop(), base_channels * mult)]
                channels = base_channels * mult
                if level in self.attention_levels:
                    blocks.append(context_block(channels, "decoder", level))
                if level != 0 and index == num_res_blocks:
                    blocks.append(res_block(channels, resample="up"))
                self.decoder.append(ConditionedSequential(blocks))

        self.output = nn.Sequential(
            GroupNorm32(num_groups, channels),
            nn.SiLU(),
            zero_module(nn.Conv2d(channels, out_channels, 3, padding=1)),
        )

    def _levels_of(self, attention_resolutions: Sequence[int]) -> frozenset[int]:
        levels = set()
        for resolution in attention_resolutions:
            if resolution not in self.level_resolutions:
                raise ValueError(
                    f"attention resolution {resolution} is not a feature-map size of this U-Net "
                    f"for image_size {self.image_size}; its levels are {self.level_resolutions} "
                    "(attention_resolutions are feature-map sizes, not down-sampling factors)"
                )
            levels.add(self.level_resolutions.index(resolution))
        return frozenset(levels)

    def _gamma_batch(self, gamma: Tensor | float, batch: int, device: torch.device) -> Tensor:
        gamma = torch.as_tensor(gamma, device=device).reshape(-1)
        if gamma.numel() == 1:
            gamma = gamma.expand(batch)
        if gamma.numel() != batch:
            raise ValueError(f"gamma has {gamma.numel()} values for a batch of {batch}")
        return gamma

    def _check_input(self, x: Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected x of shape [B, {self.in_channels}, H, W], got {tuple(x.shape)}")
        multiple = 2 ** (self.num_levels - 1)
        if x.shape[2] % multiple or x.shape[3] % multiple:
            raise ValueError(
                f"input H, W = {tuple(x.shape[2:])} must be divisible by {multiple} "
                f"(2^(levels - 1) for {self.num_levels} levels)"
            )

    def _run_step(self, step: nn.Module, h: Tensor, emb: Tensor) -> Tensor:
        if self.use_checkpoint and self.training and torch.is_grad_enabled():
            return checkpoint(step, h, emb, use_reentrant=False)
        return step(h, emb)

    def noise_level_embedding(self, gamma: Tensor) -> Tensor:
        """gamma [B] -> the embedding [B, 4 * base_channels] every res block is conditioned on."""
        features = NOISE_EMBEDDINGS[self.noise_embedding](gamma, self.base_channels)
        return self.noise_mlp(features.to(self.noise_mlp[0].weight.dtype))

    def forward(self, x: Tensor, gamma: Tensor | float) -> Tensor:
        self._check_input(x)
        emb = self.noise_level_embedding(self._gamma_batch(gamma, x.shape[0], x.device))
        h = self.input_conv(x)
        skips = [h]
        for step in self.encoder:
            h = self._run_step(step, h, emb)
            skips.append(h)
        h = self._run_step(self.middle, h, emb)
        for step in self.decoder:
            h = self._run_step(step, torch.cat([h, skips.pop()], dim=1), emb)
        return self.output(h)


# ----------------------------------------------------------------------------------------------
# Presets
# The table lives in palette.unet_presets (no torch), so the config checks can name an unknown preset
# or a size the network cannot take without importing torch (rules/common.smk, `snakemake -n`).


def build_unet(preset: str, **overrides) -> UNet:
    """`UNet(**PRESETS[preset], **overrides)`, with errors that name what is unknown."""
    if preset not in PRESETS:
        raise KeyError(f"unknown U-Net preset {preset!r}; known presets: {sorted(PRESETS)}")
    unknown = sorted(set(overrides) - set(_UNET_ARGUMENTS))
    if unknown:
        raise TypeError(
            f"unknown U-Net option(s) {unknown} for preset {preset!r}; options: {list(_UNET_ARGUMENTS)}"
        )
    return UNet(**{**PRESETS[preset], **overrides})


# ----------------------------------------------------------------------------------------------
# Inspection


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (works for models on the meta device)."""
    return sum(parameter.numel() for parameter in model.parameters())


def count_attention_layers(model: nn.Module) -> int:
    """Number of self-attention layers (global or local)."""
    return sum(isinstance(module, SelfAttention) for module in model.modules())


def attention_layout(model: nn.Module) -> list[tuple[str, int]]:
    """(position, feature-map size at the reference image_size) of each self-attention layer,
    position being "encoder", "middle" or "decoder"."""
    return [(m.position, m.resolution) for m in model.modules() if isinstance(m, SelfAttention)]


def forward_flops(
    model: UNet, image_size: int | tuple[int, int] | None = None, batch_size: int = 1
) -> int:
    """FLOPs (2 per multiply-add) of one forward pass, counted by torch.utils.flop_counter.

    Runs the model on zero inputs on its own device, so a model built on the meta device is
    counted without memory or time. Convolutions, matmuls and attention (run with the math
    kernel while counting) are counted; norms and activations are not (well under 1 % here).
    """
    image_size = image_size or model.image_size
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    device = next(model.parameters()).device
    x = torch.zeros(batch_size, model.in_channels, height, width, device=device)
    gamma = torch.full((batch_size,), 0.5, device=device)
    counter = FlopCounterMode(display=False)
    # The math attention kernel is made of matmuls the counter knows on every device; the
    # fused CPU kernel (flash_attention_for_cpu) is not counted at all by torch <= 2.14.
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
        model(x, gamma)
    return counter.get_total_flops()
