"""`palette sample` and `palette infer` on a checkpoint trained for a few steps."""

import numpy as np
import pytest

from palette.cli import main
from palette.data import demo_photo_paths, write_evaluation_set
from palette.imageio import load_image, load_mask, save_image
from palette.train import train


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inference")
    config = dict(name="t", task="inpainting", preset="tiny", image_size=32, batch_size=2, steps=4, num_workers=0,
                  warmup_steps=0, log_every=2, checkpoint_every=4)
    return train(config, folder / "work", folder / "final.pt")


def test_sample_writes_every_sample_reproducibly_and_keeps_known_pixels(checkpoint, tmp_path):
    set_dir = write_evaluation_set(demo_photo_paths()[:3], "inpainting_center", tmp_path / "set", 32, seed=0)
    out = tmp_path / "samples"
    args = ["sample", "--checkpoint", str(checkpoint), "--input", str(set_dir), "--output", str(out),
            "--samples", "2", "--steps", "4", "--batch-size", "2"]
    assert main(args) == 0
    names = sorted(p.name for p in (set_dir / "source").iterdir())
    for k in (0, 1):
        assert sorted(p.name for p in (out / f"sample_{k}").iterdir()) == names
    first = {p.name: load_image(p) for p in (out / "sample_1").iterdir()}
    assert any(not np.array_equal(first[n], load_image(out / "sample_0" / n)) for n in names)  # diverse
    # A killed run resumes: missing files are redrawn identically, whatever the batch they fall in.
    (out / "sample_1" / names[1]).unlink()
    assert main(args[:-1] + ["1"]) == 0
    assert np.array_equal(load_image(out / "sample_1" / names[1]), first[names[1]])
    for name in names:
        known = ~load_mask(set_dir / "mask" / name)
        source = load_image(set_dir / "source" / name)
        assert np.array_equal(first[name][known], source[known])


def test_infer_restores_one_image_and_rejects_bad_input(checkpoint, tmp_path, capsys):
    photo = load_image(demo_photo_paths()[0])[:64, :96]
    save_image(tmp_path / "photo.png", photo)
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[16:48, 32:64] = 255
    save_image(tmp_path / "mask.png", np.repeat(mask[..., None], 3, axis=2))
    args = ["infer", "--checkpoint", str(checkpoint), "--image", str(tmp_path / "photo.png"), "--steps", "3"]
    assert main(args + ["--mask", str(tmp_path / "mask.png"), "--output", str(tmp_path / "out.png")]) == 0
    restored = load_image(tmp_path / "out.png")
    assert restored.shape == (32, 48, 3)  # resized to the model's size (it has global attention)
    assert main(args + ["--output", str(tmp_path / "no_mask.png")]) == 2
    assert "needs a mask" in capsys.readouterr().err
    (tmp_path / "broken.png").write_bytes((tmp_path / "photo.png").read_bytes()[:200])
    args[args.index(str(tmp_path / "photo.png"))] = str(tmp_path / "broken.png")
    assert main(args + ["--mask", str(tmp_path / "mask.png"), "--output", str(tmp_path / "x.png")]) == 2
    assert "broken.png" in capsys.readouterr().err


def test_cli_sampler_defaults_are_the_fast_preset():
    import argparse

    from palette.diffusion import SamplerConfig
    from palette.inference import add_sampler_arguments, sampler_from_arguments

    parser = argparse.ArgumentParser()
    add_sampler_arguments(parser)
    assert sampler_from_arguments(parser.parse_args([])) == SamplerConfig.from_dict({"preset": "fast"})
    assert sampler_from_arguments(parser.parse_args(["--sampler", "paper"])) == SamplerConfig()
    inference_range = sampler_from_arguments(parser.parse_args(["--noise-range", "inference", "--no-clip-x0"]))
    assert (inference_range.beta_end, inference_range.clip_x0) == (0.09, False)
    for sampler in ("ancestral", "paper"):
        scaled = sampler_from_arguments(parser.parse_args(["--sampler", sampler, "--noise-scale", "0.8"]))
        assert (scaled.name, scaled.noise_scale) == (sampler, 0.8)


def test_restore_adds_the_source_back_for_a_residual_model():
    """A v network that knows its clean target is 0 (v = sqrt(gamma / (1 - gamma)) y): for a
    residual model that is the source itself, for a plain one mid-grey. `restore` reads what the
    network denoises from the attributes build_model sets."""
    import torch

    from palette.config import load_config
    from palette.diffusion import SamplerConfig
    from palette.inference import restore
    from palette.models import build_model

    class CleanIsZero(torch.nn.Module):
        num_levels = 1

        def __init__(self, residual):
            super().__init__()
            built = build_model(load_config({"task": "jpeg", "preset": "tiny", "prediction": "v", "residual": residual}))
            self.prediction, self.residual = built.prediction, built.residual

        def forward(self, x, gamma):
            g = gamma.view(-1, 1, 1, 1)
            return (g / (1 - g)).sqrt() * x[:, -3:]

    source = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    sampler = SamplerConfig.from_dict({"preset": "fast", "name": "ancestral", "steps": 20})
    outputs = {residual: restore(CleanIsZero(residual), "diffusion", source, None, sampler,
                                 [torch.Generator().manual_seed(1) for _ in range(2)]) for residual in (False, True)}
    torch.testing.assert_close(outputs[True], source, atol=1e-3, rtol=0)
    assert outputs[False].abs().max() < 1e-3


def test_the_sampler_recorded_beside_the_checkpoint_is_the_default(checkpoint, tmp_path, capsys):
    """The workflow (rule record_sampler) and `palette import` write CHECKPOINT.sampler.yaml; infer and
    sample use it when the command line names no sampler option, say so, and follow an explicit one."""
    import shutil

    from palette.diffusion import SamplerConfig
    from palette.sampler_presets import sampler_record_path, write_sampler_record

    model = shutil.copy(checkpoint, tmp_path / "inpainting.pt")
    settings = {"preset": "fast", "name": "ancestral", "steps": 3, "noise_scale": 0.8}  # as the demo samples
    write_sampler_record(sampler_record_path(model), "ancestral_100", settings)
    photo = load_image(demo_photo_paths()[0])[:32, :32]
    save_image(tmp_path / "photo.png", photo)
    mask = np.zeros((32, 32, 3), np.uint8)
    mask[8:24, 8:24] = 255
    save_image(tmp_path / "mask.png", mask)
    args = ["infer", "--checkpoint", str(model), "--image", str(tmp_path / "photo.png"), "--mask", str(tmp_path / "mask.png")]
    assert main(args + ["--output", str(tmp_path / "recorded.png")]) == 0
    said = capsys.readouterr().out
    assert "sampler: ancestral_100 (ancestral, 3 steps, noise scale 0.8), recorded in" in said
    assert main(args + ["--output", str(tmp_path / "chosen.png"), "--steps", "2"]) == 0
    assert "sampler: dpm_solver_pp, 2 steps (the command line)" in capsys.readouterr().out
    # the recorded sampler is the one that ran: the same image as asking for it by hand
    assert main(args + ["--output", str(tmp_path / "by_hand.png"), "--sampler", "ancestral", "--steps", "3",
                        "--variance", "posterior", "--clip-x0", "--noise-scale", "0.8"]) == 0
    assert np.array_equal(load_image(tmp_path / "recorded.png"), load_image(tmp_path / "by_hand.png"))
    assert SamplerConfig.from_dict(settings).steps == 3
    sampler_record_path(model).write_text("name: x\nsettings: {name: warp_drive}\n")
    assert main(args + ["--output", str(tmp_path / "bad.png")]) == 2
    assert "inpainting.sampler.yaml" in capsys.readouterr().err
