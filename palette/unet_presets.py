"""The U-Net presets (palette.unet.build_unet) as plain data, and the checks a config can make
against them without torch: the trainer's config (palette.config) and the workflow's dry run
(rules/common.smk) refuse an unknown preset, an unknown option or an image size the network
cannot take before anything is built.
"""

from __future__ import annotations

_PAPER = dict(
    in_channels=6,
    out_channels=3,
    base_channels=256,
    channel_mults=(1, 1, 2, 2, 4, 4),
    num_res_blocks=2,
    attention_resolutions=(32, 16, 8),
    image_size=256,
    attention_type="global",
    num_head_channels=64,
    dropout=0.0,
)

PRESETS: dict[str, dict] = {
    # Palette's model (guided diffusion's 256x256 U-Net): 552.8 M parameters, 16 attention layers.
    "paper": _PAPER,
    # The paper's attention ablation (docs/paper.md, "Ablation variants"). Local: 552.8 M like the
    # paper. The paper gives the other two variants' sizes (603 M, 624 M) but not their layouts;
    # a res block in place of every one of the 16 attention layers would make 761 M (a res block
    # has 18 C^2 weights where attention has 4 C^2). These layouts match the sizes within 1 %:
    # attention is removed everywhere, and res blocks stand at the deepest (8x8) level only,
    # where a 3x3 convolution's reach matters least against global attention:
    # - no attention ("2x ResNet blocks"): an extra res block after each encoder and decoder res
    #   block at 8x8, the middle block two res blocks: 606.3 M (paper 603 M, +0.5 %);
    # - dilated: a res block with dilation 2 then 4 (increasing; receptive field 13 > 8) after
    #   each res block at 8x8, the middle block included: 627.2 M (paper 624 M, +0.5 %).
    "paper_local": {**_PAPER, "attention_type": "local"},
    "paper_no_attention": {
        **_PAPER, "attention_type": "none", "attention_resolutions": (8,), "middle_context_block": False,
    },
    "paper_dilated": {
        **_PAPER, "attention_type": "dilated", "attention_resolutions": (8,), "dilation_rates": (2, 4),
    },
    # The public reproduction's size with its attention bug fixed. Its config asks for attention
    # at 16, but a 4-level U-Net on 256 inputs has feature maps 256/128/64/32 only, so neither a
    # 16x16 map nor a down-sampling factor of 16 exists; the fix puts attention at the deepest,
    # 32x32, level (encoder and decoder, besides the middle block it already had).
    "public": dict(
        in_channels=6,
        out_channels=3,
        base_channels=64,
        channel_mults=(1, 2, 4, 8),
        num_res_blocks=2,
        attention_resolutions=(32,),
        image_size=256,
        num_head_channels=32,
        dropout=0.2,
    ),
    # A CPU demo model for 64x64 crops: 1.5 M parameters, 1.5 GFLOP per 64x64 forward.
    "small": dict(
        in_channels=6,
        out_channels=3,
        base_channels=32,
        channel_mults=(1, 1, 2, 2),
        num_res_blocks=1,
        attention_resolutions=(16,),
        image_size=64,
        num_head_channels=32,
        dropout=0.0,
    ),
    # For tests: about 0.1 M parameters, 32x32 inputs (any multiple of 4 works).
    "tiny": dict(
        in_channels=6,
        out_channels=3,
        base_channels=8,
        channel_mults=(1, 2, 2),
        num_res_blocks=1,
        attention_resolutions=(16, 8),
        image_size=32,
        num_head_channels=8,
        num_groups=4,
    ),
}

# The keyword arguments of palette.unet.UNet (model_overrides may set any of them).
UNET_ARGUMENTS = (
    "in_channels", "out_channels", "base_channels", "channel_mults", "num_res_blocks",
    "attention_resolutions", "image_size", "attention_type", "num_head_channels", "dropout",
    "noise_embedding", "num_groups", "dilation_rates", "use_checkpoint", "middle_context_block",
)  # fmt: skip


def size_factor(preset: str, overrides: dict | None = None) -> int:
    """What an input's height and width must divide by: the U-Net halves them between its
    levels, 2^(levels - 1) for len(channel_mults) levels."""
    mults = (overrides or {}).get("channel_mults", PRESETS[preset]["channel_mults"])
    return 2 ** (len(mults) - 1)


def network_problem(preset, overrides, image_size) -> str | None:
    """Why `preset` with `overrides` cannot train on `image_size` crops, in one line naming the
    config key; None when it can (as far as the table tells: the constructor checks the rest)."""
    if preset not in PRESETS:
        return f"key 'preset' has value {preset!r}: no such U-Net preset; known presets: {', '.join(PRESETS)}"
    overrides = overrides or {}
    unknown = [str(key) for key in overrides if key not in UNET_ARGUMENTS]
    if unknown:
        return (f"key 'model_overrides' names {', '.join(map(repr, unknown))}, not a U-Net option; "
                f"options: {', '.join(UNET_ARGUMENTS)}")
    mults = overrides.get("channel_mults", PRESETS[preset]["channel_mults"])
    if not isinstance(mults, (list, tuple)) or not mults:
        return f"key 'model_overrides' has channel_mults {mults!r}: expected a list of at least one multiplier"
    factor = size_factor(preset, overrides)
    if isinstance(image_size, int) and image_size % factor:
        return (f"key 'image_size' has value {image_size}, which preset {preset!r} cannot take: its U-Net has "
                f"{len(mults)} levels and halves the image {len(mults) - 1} times, so the size must be a "
                f"multiple of {factor} (e.g. {max(factor, image_size // factor * factor)})")
    return None
