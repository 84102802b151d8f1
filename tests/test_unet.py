"""Tests of palette.unet / palette.nn: sizes against the paper, attention placement, the
attention variants, noise-level embeddings, presets, memory format and checkpointing."""

from collections import Counter

import pytest
import torch
from torch import nn

from palette.nn import NOISE_EMBEDDINGS, ResBlock, SelfAttention
from palette.unet import (
    PRESETS,
    UNet,
    attention_layout,
    build_unet,
    count_attention_layers,
    count_parameters,
    forward_flops,
)

PAPER_PARAMETERS = 552.8e6  # docs/paper.md, Model (the paper's Table 5 rounds it to 552 M)
PAPER_FORWARD_FLOPS = 2.24e12  # docs/paper.md: about 2.24 TFLOP per 256x256 forward pass


def _on_meta(preset: str, **overrides) -> UNet:
    with torch.device("meta"):
        return build_unet(preset, **overrides)


def _randomize_zero_parameters(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give the zero-initialised layers random weights, so every layer affects the output and
    receives gradient (at initialisation the output conv is zero and so is most of the gradient)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.any():
                parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))
    return model


def _inputs(batch: int, height: int, width: int, channels: int = 6, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, channels, height, width, generator=generator)
    gamma = torch.rand(batch, generator=generator) * 0.98 + 0.01
    return x, gamma


# ---------------------------------------------------------------------------------------------
# Sizes and placement of the paper's model


def test_paper_preset_matches_the_paper_in_size_and_attention():
    model = _on_meta("paper")
    assert abs(count_parameters(model) - PAPER_PARAMETERS) / PAPER_PARAMETERS < 0.005
    assert count_attention_layers(model) == 16
    layout = Counter(attention_layout(model))
    # 2 per encoder level, 3 per decoder level at 32/16/8, plus the middle block at 8.
    assert layout == {
        ("encoder", 32): 2, ("encoder", 16): 2, ("encoder", 8): 2,
        ("middle", 8): 1,
        ("decoder", 32): 3, ("decoder", 16): 3, ("decoder", 8): 3,
    }  # fmt: skip


def test_paper_forward_flops_counted_on_meta_device():
    flops = forward_flops(_on_meta("paper"), 256)
    assert abs(flops - PAPER_FORWARD_FLOPS) / PAPER_FORWARD_FLOPS < 0.01


def test_public_preset_has_encoder_and_decoder_attention():
    model = _on_meta("public")
    positions = Counter(position for position, _ in attention_layout(model))
    assert positions == {"encoder": 2, "middle": 1, "decoder": 3}
    # A 4-level U-Net on 256 inputs has 256/128/64/32 maps: the config's "16" exists neither as
    # a map size nor as a factor, so the fix attends at the deepest (32x32) level.
    assert {resolution for _, resolution in attention_layout(model)} == {32}
    # Without encoder/decoder attention it is the public reproduction's 62.6 M parameter model.
    bugged = _on_meta("public", attention_resolutions=())
    assert abs(count_parameters(bugged) - 62.6e6) / 62.6e6 < 0.005


def test_attention_resolution_that_is_not_a_feature_map_size_is_an_error():
    with pytest.raises(ValueError, match=r"256, 128, 64, 32"):
        _on_meta("public", attention_resolutions=(16,))


def test_attention_resolutions_are_feature_map_sizes_at_the_reference_image_size():
    # At image_size 64 the levels are 64/32/16: "16" is level 2, whose maps are 8x8 for a 32 input.
    model = UNet(
        base_channels=8, channel_mults=(1, 2, 2), num_res_blocks=1, attention_resolutions=(16,),
        image_size=64, num_head_channels=8, num_groups=4,
    )  # fmt: skip
    assert set(attention_layout(model)) == {("encoder", 16), ("middle", 16), ("decoder", 16)}
    seen_sizes = set()
    for module in model.modules():
        if isinstance(module, SelfAttention):
            module.register_forward_hook(lambda m, args, out: seen_sizes.add(tuple(out.shape[2:])))
    model(*_inputs(1, 32, 32))
    assert seen_sizes == {(8, 8)}


def test_ablation_variants_on_meta_device():
    paper = count_parameters(_on_meta("paper"))
    local = _on_meta("paper_local")
    assert count_parameters(local) == paper and count_attention_layers(local) == 16
    # docs/paper.md, "Ablation variants": 603 M without attention, 624 M dilated.
    for preset, paper_size, context_blocks in (("paper_no_attention", 603e6, 5), ("paper_dilated", 624e6, 6)):
        model = _on_meta(preset)
        assert count_attention_layers(model) == 0
        assert len(model.context_layout) == context_blocks
        assert {resolution for _, resolution in model.context_layout} == {8}
        assert abs(count_parameters(model) / paper_size - 1) < 0.01, (preset, count_parameters(model))
    assert [position for position, _ in _on_meta("paper_no_attention").context_layout].count("middle") == 0
    dilations = {m.dilation for m in _on_meta("paper_dilated").modules() if isinstance(m, nn.Conv2d)}
    assert dilations == {(1, 1), (2, 2), (4, 4)}


# ---------------------------------------------------------------------------------------------
# The attention variants run, train, and generalise to other sizes


@pytest.mark.parametrize("attention_type", ["global", "local", "none", "dilated"])
def test_attention_types_forward_and_backward(attention_type):
    model = _randomize_zero_parameters(build_unet("tiny", attention_type=attention_type))
    x, gamma = _inputs(2, 32, 32)
    x.requires_grad_(True)
    out = model(x, gamma)
    assert out.shape == (2, 3, 32, 32)
    out.square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    assert model.input_conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("attention_type", ["local", "none", "dilated"])
@pytest.mark.parametrize("size", [(48, 80), (36, 44)])
def test_non_global_variants_run_on_non_square_inputs(attention_type, size):
    # 36x44 gives 9x11 maps at the deepest level: the local 2x2 grid then has unequal blocks.
    model = _randomize_zero_parameters(build_unet("tiny", attention_type=attention_type))
    out = model(*_inputs(1, *size))
    assert out.shape == (1, 3, *size) and torch.isfinite(out).all()


def test_input_size_must_be_divisible_by_the_down_sampling():
    with pytest.raises(ValueError, match="divisible by 4"):
        build_unet("tiny")(*_inputs(1, 30, 32))


def test_local_attention_stays_within_its_block_and_global_does_not():
    torch.manual_seed(0)
    local = _randomize_zero_parameters(SelfAttention(16, num_head_channels=8, blocks_per_side=2, num_groups=4))
    global_ = _randomize_zero_parameters(SelfAttention(16, num_head_channels=8, blocks_per_side=1, num_groups=4))
    global_.load_state_dict(local.state_dict())
    # GroupNorm pools statistics over the whole map; take it out to look at attention alone.
    local.norm = global_.norm = nn.Identity()
    x = torch.randn(1, 16, 8, 10)
    changed = x.clone()
    changed[..., 1, 1] += 3.0  # inside the top-left block (rows 0-3, columns 0-4)
    with torch.no_grad():
        diff_local = (local(changed) - local(x)).abs()
        diff_global = (global_(changed) - global_(x)).abs()
    top_left = (slice(None), slice(None), slice(0, 4), slice(0, 5))
    outside = diff_local.clone()
    outside[top_left] = 0
    assert diff_local[top_left].max() > 1e-3
    assert outside.max() < 1e-6
    global_outside = diff_global.clone()
    global_outside[top_left] = 0
    assert global_outside.max() > 1e-3


def test_self_attention_matches_a_direct_computation():
    torch.manual_seed(0)
    attention = _randomize_zero_parameters(SelfAttention(16, num_head_channels=8, num_groups=4))
    x = torch.randn(2, 16, 3, 5)
    q, k, v = attention.to_qkv(attention.norm(x)).flatten(2).chunk(3, dim=1)  # [B, C, hw] each
    heads = []
    for head in range(2):
        rows = slice(8 * head, 8 * head + 8)
        weights = torch.softmax(q[:, rows].transpose(1, 2) @ k[:, rows] / 8**0.5, dim=-1)
        heads.append(v[:, rows] @ weights.transpose(1, 2))  # [B, c, hw]
    expected = x + attention.projection(torch.cat(heads, dim=1).reshape(2, 16, 3, 5))
    torch.testing.assert_close(attention(x), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_attention_gives_the_fused_kernels_unit_stride_inputs(monkeypatch, memory_format):
    # Flash / memory-efficient attention need q, k, v with stride 1 in the channel dimension;
    # otherwise scaled_dot_product_attention silently uses the math kernel (hw x hw matrices).
    strides = []
    original = torch.nn.functional.scaled_dot_product_attention

    def spy(query, key, value, **kwargs):
        strides.extend(tensor.stride(-1) for tensor in (query, key, value))
        return original(query, key, value, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    attention = SelfAttention(16, num_head_channels=8, num_groups=4)
    attention(torch.randn(2, 16, 6, 8).contiguous(memory_format=memory_format))
    assert strides == [1, 1, 1]


# ---------------------------------------------------------------------------------------------
# Noise-level conditioning


def _separation(embedding_name: str, gamma_a: float, gamma_b: float) -> float:
    """Distance between two levels' embeddings relative to an embedding's norm."""
    embedding = NOISE_EMBEDDINGS[embedding_name](torch.tensor([gamma_a, gamma_b]), 256)
    return ((embedding[0] - embedding[1]).norm() / embedding[0].norm()).item()


@pytest.mark.parametrize("gamma_a, gamma_b", [(1e-5, 1e-4), (0.999, 0.9999)])
def test_default_noise_embedding_separates_neighbouring_levels_at_both_ends(gamma_a, gamma_b):
    default = build_unet("tiny").noise_embedding
    assert default == "log_snr"
    separation = _separation(default, gamma_a, gamma_b)
    raw = _separation("raw_gamma", gamma_a, gamma_b)  # gamma in [0, 1], max period 10000
    assert separation > 0.5
    assert separation > 1000 * raw
    assert _separation("wavegrad", gamma_a, gamma_b) > 100 * raw


def test_noise_embeddings_are_finite_at_gamma_zero_and_one():
    for name in NOISE_EMBEDDINGS:
        embedding = NOISE_EMBEDDINGS[name](torch.tensor([0.0, 1.0, 7e-21]), 32)
        assert torch.isfinite(embedding).all(), name


def test_output_depends_on_noise_level_and_accepts_a_constant_gamma():
    # The regression baseline: 3 input channels and a constant gamma (scalar or one value).
    model = _randomize_zero_parameters(build_unet("tiny", in_channels=3)).eval()
    x, _ = _inputs(2, 32, 32, channels=3)
    with torch.no_grad():
        scalar = model(x, 1.0)
        vector = model(x, torch.ones(2))
        other = model(x, torch.full((2,), 1e-4))
    torch.testing.assert_close(scalar, vector)
    assert (scalar - other).abs().max() > 1e-3


def test_fresh_model_outputs_zero():
    # The output conv is zero-initialised, as in guided diffusion.
    model = build_unet("tiny")
    assert model(*_inputs(2, 32, 32)).abs().max() == 0


# ---------------------------------------------------------------------------------------------
# Presets, memory format, helpers


def test_build_unet_names_unknown_presets_and_options():
    with pytest.raises(KeyError, match="nope.*paper"):
        build_unet("nope")
    with pytest.raises(TypeError, match="attn_res"):
        build_unet("tiny", attn_res=(16,))
    with pytest.raises(ValueError, match="attention_type"):
        build_unet("tiny", attention_type="windowed")
    assert {"paper", "paper_local", "paper_no_attention", "paper_dilated", "public", "small",
            "tiny"} <= set(PRESETS)  # fmt: skip


def test_small_and_tiny_presets_are_small():
    assert count_parameters(build_unet("tiny")) <= 100_000
    assert count_parameters(build_unet("small")) <= 5_000_000


@pytest.mark.parametrize("attention_type", ["global", "local", "dilated"])
def test_channels_last_forward_equals_contiguous_forward(attention_type):
    model = _randomize_zero_parameters(build_unet("tiny", attention_type=attention_type)).eval()
    x, gamma = _inputs(2, 32, 48)
    with torch.no_grad():
        reference = model(x, gamma)
        model = model.to(memory_format=torch.channels_last)
        out = model(x.to(memory_format=torch.channels_last), gamma)
    torch.testing.assert_close(out, reference, rtol=1e-4, atol=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients():
    x, gamma = _inputs(2, 32, 32)
    gradients = []
    for use_checkpoint in (False, True):
        torch.manual_seed(0)  # the same weights both times
        model = _randomize_zero_parameters(build_unet("tiny", use_checkpoint=use_checkpoint))
        model(x, gamma).square().mean().backward()
        gradients.append([p.grad for p in model.parameters()])
    for plain, checkpointed in zip(*gradients):
        torch.testing.assert_close(checkpointed, plain)


def test_forward_flops_same_on_meta_and_cpu():
    with torch.device("meta"):
        meta = forward_flops(build_unet("tiny"), (32, 48))
    cpu = forward_flops(build_unet("tiny"), (32, 48))
    assert meta == cpu > 0


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual.float().cpu() - expected).norm() / expected.norm()).item()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("attention_type", ["global", "local", "none", "dilated"])
def test_cuda_float32_and_bfloat16_channels_last_match_cpu(attention_type):
    torch.manual_seed(0)
    model = _randomize_zero_parameters(build_unet("tiny", attention_type=attention_type)).eval()
    x, gamma = _inputs(2, 36, 44)
    with torch.no_grad():
        expected = model(x, gamma)
        model = model.cuda()
        x, gamma = x.cuda(), gamma.cuda()
        # cuDNN convolutions may run in TF32 (10-bit mantissa): about 1e-3 relative.
        assert _relative_error(model(x, gamma), expected) < 1e-2
        model = model.to(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(x.contiguous(memory_format=torch.channels_last), gamma)
    assert _relative_error(out, expected) < 5e-2
    model.train()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        model(x, gamma).float().square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def _conv(k: int, c_in: int, c_out: int, size: int) -> int:
    """FLOPs of a k x k convolution on a size x size output map: 2 per multiply-add, no bias."""
    return 2 * k * k * c_in * c_out * size * size


def _linear(n_in: int, n_out: int) -> int:
    return 2 * n_in * n_out


def _res_block(c_in: int, c_out: int, size: int, embedding: int, conv_size: int | None = None) -> int:
    """conv1 and conv2 (3x3) at `conv_size` (the resampled size), the embedding projection to a
    scale and a shift, and a 1x1 skip conv where the width changes."""
    conv_size = conv_size or size
    skip = _conv(1, c_in, c_out, size) if c_in != c_out else 0
    return _conv(3, c_in, c_out, conv_size) + _linear(embedding, 2 * c_out) + _conv(3, c_out, c_out, conv_size) + skip


def _attention(channels: int, size: int) -> int:
    """1x1 convs to q, k, v and back, and the two N x N matmuls over N = size^2 pixels: Q K^T and
    (softmax) V, each N * N * C multiply-adds summed over the heads."""
    n = size * size
    return _conv(1, channels, 3 * channels, size) + 2 * 2 * n * n * channels + _conv(1, channels, channels, size)


def test_forward_flops_equal_a_count_by_hand():
    """A two-level U-Net (16x16 and 8x8 maps, 8 and 16 channels, attention at 8x8) counted layer
    by layer. The counter (torch.utils.flop_counter) counts convolutions, matmuls and attention,
    2 FLOPs per multiply-add, and not biases, norms, activations, softmax or the sinusoid."""
    model = UNet(in_channels=6, out_channels=3, base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                 attention_resolutions=(8,), image_size=16, num_head_channels=8, num_groups=4)
    e = 32  # the noise-level embedding: 4 x base channels
    by_hand = [
        _linear(8, e) + _linear(e, e),  # noise MLP on the 8-d sinusoid
        _conv(3, 6, 8, 16),  # input conv
        # encoder: level 0 (16x16, 8 ch), a down-sampling res block, level 1 (8x8, 16 ch) with attention
        _res_block(8, 8, 16, e),
        _res_block(8, 8, 16, e, conv_size=8),
        _res_block(8, 16, 8, e), _attention(16, 8),
        # middle: res block, attention, res block
        _res_block(16, 16, 8, e), _attention(16, 8), _res_block(16, 16, 8, e),
        # decoder level 1: inputs concatenated with the skips (16 then 8 channels), then up-sampling
        _res_block(16 + 16, 16, 8, e), _attention(16, 8),
        _res_block(16 + 8, 16, 8, e), _attention(16, 8), _res_block(16, 16, 8, e, conv_size=16),
        # decoder level 0: skips of 8 channels
        _res_block(16 + 8, 8, 16, e),
        _res_block(8 + 8, 8, 16, e),
        _conv(3, 8, 3, 16),  # output conv
    ]
    assert count_attention_layers(model) == 4  # their N^2 matmuls: 4 x 4 x 64^2 x 16 = 1,048,576 FLOPs
    assert forward_flops(model, 16) == sum(by_hand) == 10_623_488
    assert forward_flops(model, 16, batch_size=3) == 3 * sum(by_hand)
