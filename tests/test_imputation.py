"""The paper's inpainting baseline: an unconditional model (no source channels) used by imputation."""

import csv

import pytest
import torch

from palette import diffusion as D
from palette.checkpoint import load_model
from palette.config import ConfigError, load_config, work_key
from palette.data import demo_photo_paths, write_evaluation_set
from palette.inference import restore, sample_evaluation_set
from palette.imageio import list_images, load_image, to_tensor
from palette.models import build_model
from palette.train import train
from palette.unet import build_unet


def _holed_batch(size=16, batch=3):
    torch.manual_seed(0)
    target = torch.rand(batch, 3, size, size) * 2 - 1
    mask = torch.zeros(batch, 1, size, size)
    mask[..., 4:12, 3:10] = 1
    mask[-1, :, 0:3, :] = 1  # masks differ between images
    return target * (1 - mask), mask


@pytest.mark.parametrize("name,steps,clip", [("ancestral", 6, False), ("ddim", 4, True), ("dpm_solver_pp", 5, True)])
def test_imputation_keeps_known_pixels_bit_exactly(name, steps, clip):
    source, mask = _holed_batch()
    model = build_unet("tiny", in_channels=3).eval()
    config = D.SamplerConfig(name=name, steps=steps, clip_x0=clip, eta=0.0)
    output = D.impute(model, source, mask, config, [torch.Generator().manual_seed(i) for i in range(3)], progress=False)
    known = (mask <= 0.5).expand_as(source)
    assert torch.equal(output[known], source[known])
    assert torch.isfinite(output).all()
    assert not torch.equal(output[~known], source[~known])  # the hole was generated, not copied


def test_imputation_draws_known_pixels_at_each_noise_level():
    """The network sees y alone, and its known pixels are the source noised to the current level:
    an oracle that records its inputs finds sqrt(gamma) * source + sqrt(1 - gamma) * noise there."""
    source, mask = _holed_batch(batch=1)
    seen = []

    def oracle(y, gamma):
        assert y.shape[1] == 3  # no source channels
        seen.append((y.clone(), float(gamma[0])))
        return torch.zeros_like(y)

    config = D.SamplerConfig(name="ancestral", steps=8)
    D.impute(oracle, source, mask, config, torch.Generator().manual_seed(0), progress=False)
    known = (mask <= 0.5).expand_as(source)
    for y, gamma in seen:
        residual = (y[known] - gamma ** 0.5 * source[known]) / (1 - gamma) ** 0.5
        assert abs(residual.std().item() - 1) < 0.15 and abs(residual.mean().item()) < 0.15, gamma


def test_imputation_refuses_images_without_mask():
    source, mask = _holed_batch()
    mask[2] = 0
    with pytest.raises(ValueError, match="imputation needs a mask"):
        D.impute(build_unet("tiny", in_channels=3), source, mask, D.SamplerConfig(name="ddim", steps=2), progress=False)


def test_conditioning_none_builds_a_three_channel_model_and_checks_objective():
    config = load_config({"preset": "tiny", "conditioning": "none"})
    assert build_model(config).in_channels == 3
    assert build_model(load_config({"preset": "tiny"})).in_channels == 6
    with pytest.raises(ConfigError, match="'conditioning' has value 'none'"):
        load_config({"conditioning": "none", "objective": "regression"})
    # adding the key did not rename the work folders of existing (conditional) runs
    assert work_key({"lr": 1e-3}) == work_key({"lr": 1e-3, "conditioning": "source"})
    assert work_key({"lr": 1e-3}) != work_key({"lr": 1e-3, "conditioning": "none"})


def test_unconditional_model_trains_and_imputes_from_its_checkpoint(tmp_path):
    """Trained by the same trainer (the loss falls), recorded in the checkpoint, and sampled by
    `sample_evaluation_set` through imputation with the known pixels kept exactly."""
    config = {"name": "uncond", "task": "inpainting", "conditioning": "none", "preset": "tiny", "image_size": 16,
              "batch_size": 8, "steps": 60, "lr": 2e-3, "warmup_steps": 5, "ema_decay": 0.9, "log_every": 10,
              "checkpoint_every": 60, "num_workers": 0, "tensorboard": False, "progress_bar": False, "device": "cpu"}
    final = train(config, tmp_path / "work")
    with open(final.with_suffix(".csv"), newline="") as handle:
        losses = [float(row["loss"]) for row in csv.DictReader(handle)]
    assert losses[-1] < 0.7 * losses[0], losses

    model, stored = load_model(final)
    assert stored.conditioning == "none" and model.in_channels == 3
    set_dir = tmp_path / "set"
    write_evaluation_set(demo_photo_paths()[:2], "inpainting_center", set_dir, 16, seed=0)
    out = sample_evaluation_set(final, set_dir, tmp_path / "samples", {"name": "ddim", "steps": 3, "clip_x0": True},
                                samples_per_input=1, device="cpu")
    for path in list_images(set_dir / "source"):
        sampled = to_tensor(load_image(out / "sample_0" / path.name))
        source = to_tensor(load_image(path))
        mask = to_tensor(load_image(set_dir / "mask" / path.name))[:1] > 0
        known = (~mask).expand_as(source)
        assert torch.equal(sampled[known], source[known])

    source, mask = _holed_batch(size=16, batch=1)
    with pytest.raises(ValueError, match="imputation needs a mask"):
        restore(model, "diffusion", source, None, D.SamplerConfig(name="ddim", steps=2), [torch.Generator()],
                conditioning="none")
