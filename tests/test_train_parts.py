"""The training engine's parts: config schema, data stream, EMA, learning-rate schedule, MFU peaks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from palette.config import (
    COMPATIBILITY_KEYS, ConfigError, TrainConfig, defaults, load_config, micro_batches, schema, work_key,
)
from palette.ema import EMA
from palette.distributed import device_peak_flops, peak_flops
from palette.data import SampleStream, epoch_permutation, noise_generator
from palette.train import learning_rate

REPO = Path(__file__).resolve().parents[1]


def test_schema_and_dataclass_agree_and_every_key_is_documented():
    fields = [field.name for field in dataclasses.fields(TrainConfig)]
    assert fields == list(schema()["properties"])
    for key, spec in schema()["properties"].items():
        assert "default" in spec and spec.get("description"), key
    assert set(COMPATIBILITY_KEYS) <= set(fields)


def test_defaults_are_the_papers():
    config = load_config({})
    assert (config.lr, config.warmup_steps, config.ema_decay, config.batch_size, config.steps, config.loss) == (
        1e-4, 10_000, 0.9999, 1024, 1_000_000, "l2")


@pytest.mark.parametrize("values, message", [
    ({"lerning_rate": 1}, "unknown key 'lerning_rate' (value 1)"),
    ({"steps": "many"}, "key 'steps' has value 'many'"),
    ({"objective": "gan"}, "key 'objective' has value 'gan'"),
    ({"batch_size": 6, "grad_accumulation": 4}, "does not divide by grad_accumulation=4"),
    ({"batch_size": 6, "micro_batch_size": 4}, "does not divide by micro_batch_size=4"),
    ({"micro_batch_size": 8, "grad_accumulation": 4}, "'micro_batch_size' (8) and 'grad_accumulation' (4) are both set"),
])
def test_config_errors_name_key_and_value(values, message):
    with pytest.raises(ConfigError) as error:
        load_config(values)
    assert message in str(error.value)


def test_micro_batches_per_step_follow_the_gpu_count():
    assert micro_batches(load_config({"batch_size": 1024, "grad_accumulation": 4}), 8) == 4
    assert micro_batches(load_config({"batch_size": 1024, "micro_batch_size": 8}), 8) == 16
    assert micro_batches(load_config({"batch_size": 1024, "micro_batch_size": 8}), 1) == 128
    with pytest.raises(ConfigError, match="micro_batch_size x GPUs = 8 x 3"):
        micro_batches(load_config({"batch_size": 1024, "micro_batch_size": 8}), 3)
    with pytest.raises(ConfigError, match="grad_accumulation x GPUs = 4 x 3"):
        micro_batches(load_config({"batch_size": 1024, "grad_accumulation": 4}), 3)


def test_work_key_changes_with_what_a_checkpoint_must_share_only():
    base = {"task": "inpainting", "lr": 1e-4, "steps": 1000}
    assert work_key(base) == work_key({**base, "steps": 2000, "compile": True, "micro_batch_size": 8, "log_every": 7})
    assert work_key(base) == work_key({**base, "lr": 0.0001, "batch_size": 1024})  # defaults and 1e-4 == 0.0001
    for change in ({"lr": 2e-4}, {"task": "jpeg"}, {"model_overrides": {"dropout": 0.1}}, {"seed": 1}):
        assert work_key(base) != work_key({**base, **change}), change


def test_example_configs_are_valid():
    paths = sorted((REPO / "config" / "train").glob("*.yaml"))
    assert paths
    for path in paths:
        load_config(path)
    paper = load_config(REPO / "config" / "train" / "paper_inpainting.yaml")
    assert (paper.preset, paper.batch_size, paper.lr, paper.warmup_steps, paper.ema_decay) == ("paper", 1024, 1e-4, 10_000, 0.9999)


def test_sample_stream_covers_each_epoch_once_and_splits_over_ranks_and_micro_batches():
    def take(stream, count):
        iterator = iter(stream)
        return [next(iterator) for _ in range(count)]

    # one process: 10 items, batch 4 -> a step can span two epochs; each epoch is a permutation
    single = [item for batch in take(SampleStream(10, 7, 4, 1, 0, 1, start=0), 10) for item in batch]
    assert [n for _, _, n in single] == list(range(40))  # each item carries its number in the run
    for epoch in range(4):
        assert sorted(index for e, index, _ in single if e == epoch) == list(range(10))
    assert [index for e, index, _ in single if e == 1] == epoch_permutation(10, 7, 1).tolist()

    # 2 ranks x 2 micro-batches of 1 consume the same samples per step as one process
    ranks = [take(SampleStream(10, 7, 4, 2, rank, 2, start=0), 20) for rank in (0, 1)]
    for step in range(10):
        together = [ranks[rank][2 * step + micro][0] for micro in (0, 1) for rank in (0, 1)]
        assert together == single[4 * step: 4 * step + 4]

    # resuming at step 3 continues exactly where the stream was
    assert [p for b in take(SampleStream(10, 7, 4, 1, 0, 1, start=12), 5) for p in b] == single[12:32]


def test_ema_is_the_closed_form_average_and_foreach_equals_the_loop():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    start = {name: t.clone() for name, t in model.state_dict().items()}
    fast, slow = EMA(model, 0.9), EMA(model, 0.9, foreach=False)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
        model[1].num_batches_tracked += 5
    for _ in range(10):
        fast.update()
        slow.update()
    for name, value in model.state_dict().items():
        if value.is_floating_point():
            expected = value + 0.9 ** 10 * (start[name] - value)  # ema_n = w + d^n (ema_0 - w)
            torch.testing.assert_close(fast.state_dict()[name], expected)
            assert torch.equal(fast.state_dict()[name], slow.state_dict()[name])
        else:
            assert torch.equal(fast.state_dict()[name], value)


def test_learning_rate_warms_up_linearly_then_stays():
    config = load_config({"lr": 1e-4, "warmup_steps": 10_000})
    assert learning_rate(0, config) == pytest.approx(1e-8)
    assert learning_rate(4_999, config) == pytest.approx(5e-5)
    assert learning_rate(9_999, config) == learning_rate(500_000, config) == 1e-4
    assert learning_rate(0, load_config({"warmup_steps": 0})) == 1e-4


def test_mfu_peaks_by_device_name():
    assert device_peak_flops(torch.device("cpu"), "fp32") is None
    assert peak_flops("NVIDIA H200", "bf16") == 989e12
    assert peak_flops("NVIDIA H100 PCIe", "bf16") == 756e12
    assert peak_flops("NVIDIA H100 80GB HBM3", "tf32") == 494.7e12
    assert peak_flops("NVIDIA L40", "bf16") == 181e12 and peak_flops("NVIDIA L4", "bf16") == 121e12
    assert peak_flops("Tesla V100-SXM2-16GB", "bf16") is None  # no bf16 tensor cores
    assert peak_flops("Some Future GPU", "bf16") is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_step_never_waits_for_the_gpu():
    """Loss (Algorithm 1, masked), backward, fused Adam and the EMA update queue GPU work without
    a single host synchronisation, so the CPU runs ahead of the GPU (the trainer syncs only at
    log rows and saves)."""
    from palette.diffusion import diffusion_loss
    from palette.unet import build_unet

    device = torch.device("cuda")
    model = build_unet("tiny").to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
    ema = EMA(model, 0.999)
    source = torch.rand(4, 3, 32, 32, device=device) * 2 - 1
    target = torch.rand(4, 3, 32, 32, device=device) * 2 - 1
    mask = torch.zeros(4, 1, 32, 32, device=device)
    mask[:2, :, 8:24, 8:24] = 1  # two masked samples, two without a mask (the multi-task mixture)
    loss_sum = torch.zeros((), device=device)

    samples = iter(range(1_000))

    def step():
        nonlocal loss_sum
        generators = [noise_generator(0, next(samples), device) for _ in range(4)]  # as palette.train does
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = diffusion_loss(model, source, target, mask, generator=generators)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema.update()
        loss_sum += loss.detach()

    step()  # first calls may set things up (cuDNN, caches)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(2):
            step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(loss_sum)


def test_the_training_loop_reads_in_short_functions():
    """docs/architecture.md: the loop is Trainer.run over run_step / forward_backward / log / save;
    no function of palette/train.py grows past a screenful again."""
    import ast

    source = (REPO / "palette" / "train.py").read_text()
    lengths = {node.name: node.end_lineno - node.lineno + 1 for node in ast.walk(ast.parse(source))
               if isinstance(node, ast.FunctionDef)}
    assert {"run", "run_step", "forward_backward", "log", "save", "stop_reason"} <= set(lengths)
    assert max(lengths.values()) <= 80, {name: n for name, n in lengths.items() if n > 80}
