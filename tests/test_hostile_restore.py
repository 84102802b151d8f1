"""Hostile inputs, round 2, for `palette eval`, `palette infer` (plain, folders, --full-resolution,
--extend), `palette sample`, image decoding and checkpoints (the style of tests/test_hostile.py):
each bad input ends with exit code 2 and one line naming the file, value or variable at fault,
nothing the user had changes, and files a rerun would reuse are kept only if they decode.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from palette import data
from palette.cli import main
from palette.imageio import ImageLoadError, load_image, load_mask, read_rgb, save_image, save_mask
from palette.metrics.inception import FEATURE_DIM
from test_hostile import infer, model, photo, refused, snapshot  # noqa: F401 (model, photo: the fixtures)

MAX_PIXELS_ENV = "PALETTE_MAX_IMAGE_PIXELS"  # the documented name (README), spelt out


def eval_argv(folder: Path, *extra: str) -> list[str]:
    return ["eval", "-s", str(folder / "gt"), "-d", str(folder / "samples"), "--no-progress", "--device", "cpu", *extra]


@pytest.fixture
def evaluation(tmp_path) -> Path:
    """Two ground-truth images and their outputs."""
    rng = np.random.default_rng(3)
    for name in ("a", "b"):
        save_image(tmp_path / "gt" / f"{name}.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
        save_image(tmp_path / "samples" / f"{name}.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    return tmp_path


# ----------------------------------------------------------------------------- eval --reference, --json
def statistics_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """Damaged FID statistics, each with what its refusal must say. Full-size ones (2048
    features) are compressed: an identity covariance is a few KB."""
    folder.mkdir()
    mu, sigma = np.zeros(FEATURE_DIM), np.eye(FEATURE_DIM)
    cases = {}

    def write(name, expected, **arrays):
        np.savez_compressed(folder / name, **arrays)
        cases[name] = (folder / name, expected)

    write("good.npz", None, mu=mu, sigma=sigma, count=10)
    whole = (folder / "good.npz").read_bytes()
    (folder / "truncated.npz").write_bytes(whole[: len(whole) // 2])
    cases["truncated.npz"] = (folder / "truncated.npz", "cut off or damaged")
    (folder / "text.npz").write_text("mu,sigma\n1,2\n")
    cases["text.npz"] = (folder / "text.npz", "not an .npz archive")
    (folder / "empty.npz").write_bytes(b"")
    cases["empty.npz"] = (folder / "empty.npz", "an empty file")
    np.save(folder / "bare.npy", mu)
    (folder / "bare.npy").rename(folder / "bare.npz")
    cases["bare.npz"] = (folder / "bare.npz", "a single .npy array")
    write("no_mu.npz", "it has no mu", sigma=sigma)
    infinite = sigma.copy()
    infinite[5, 7] = np.inf
    write("sigma_inf.npz", "sigma holds 1 non-finite values (first sigma[5, 7] = inf)", mu=mu, sigma=infinite)
    write("mu_nan.npz", "mu holds 1 non-finite values", mu=np.where(np.arange(FEATURE_DIM) == 3, np.nan, 0.0),
          sigma=sigma)
    write("mu_short.npz", f"mu has shape [10], expected [{FEATURE_DIM}]", mu=np.zeros(10), sigma=np.eye(10))
    write("sigma_flat.npz", f"sigma has shape [{FEATURE_DIM}], expected [{FEATURE_DIM}, {FEATURE_DIM}]", mu=mu,
          sigma=np.ones(FEATURE_DIM))
    write("count_nan.npz", "count is nan, expected a whole number of images", mu=mu, sigma=sigma, count=np.nan)
    write("strings.npz", "mu holds <U1 values, not numbers", mu=np.array(["a"] * FEATURE_DIM), sigma=sigma)
    return cases


def test_eval_refuses_reference_statistics_that_are_damaged_non_finite_or_misshapen(evaluation, capsys):
    cases = statistics_files(evaluation / "statistics")
    before = snapshot(evaluation)
    for name, (path, expected) in cases.items():
        if expected is None:
            continue
        message = refused(eval_argv(evaluation, "--metrics", "fid", "--reference", str(path)), capsys)
        assert str(path) in message and expected in message, (name, message)
    assert snapshot(evaluation) == before


def test_every_reader_of_statistics_files_checks_them(tmp_path):
    from palette.metrics.fid import FeatureStatistics
    from palette.verdict import ReferenceStatistics

    cases = statistics_files(tmp_path / "statistics")
    good = FeatureStatistics.load(cases["good.npz"][0], FEATURE_DIM)
    assert good.count == 10 and good.mu.shape == (FEATURE_DIM,)
    for load in (FeatureStatistics.load, ReferenceStatistics.load):
        for name in ("truncated.npz", "text.npz", "no_mu.npz", "sigma_inf.npz", "mu_nan.npz"):
            path, expected = cases[name]
            with pytest.raises(ValueError, match="non-finite|npz|no mu") as error:
                load(path)
            assert str(error.value).startswith(str(path)) and expected in str(error.value)


def test_the_per_image_files_of_the_report_are_checked_on_load(tmp_path):
    from palette.verdict import load_per_image

    names = np.array(["a", "b", "c"])
    good = tmp_path / "good.npz"
    np.savez(good, names=names, psnr=np.array([30.0, np.inf, 20.0]), pool3=np.zeros((3, 4)))
    assert set(load_per_image(good)) == {"names", "psnr", "pool3"}  # PSNR of identical images: inf is kept
    cases = {
        "nan.npz": (dict(names=names, ssim=np.array([0.5, np.nan, 0.2])),
                    "'ssim' holds 1 non-finite values (first at image b)"),
        "rows.npz": (dict(names=names, pool3=np.zeros((2, 4))),
                     "'pool3' has shape [2, 4], not one row per image (3 names)"),
        "inf.npz": (dict(names=names, pool3=np.full((3, 4), -np.inf)),
                    "'pool3' holds 12 non-finite values (first at image a)"),
    }
    for name, (arrays, expected) in cases.items():
        np.savez(tmp_path / name, **arrays)
        with pytest.raises(ValueError) as error:
            load_per_image(tmp_path / name)
        assert str(error.value) == f"{tmp_path / name}: {expected}"
    (tmp_path / "cut.npz").write_bytes(good.read_bytes()[:100])
    with pytest.raises(ValueError, match="cut.npz: unreadable .npz archive of per-image values: cut off"):
        load_per_image(tmp_path / "cut.npz")


def test_eval_json_does_not_overwrite_an_existing_file_without_force(evaluation, capsys):
    existing = evaluation / "metrics.json"
    existing.write_text('{"fid": 12.5}\n')
    before = snapshot(evaluation)
    argv = eval_argv(evaluation, "--metrics", "psnr", "--json", str(existing))
    message = refused(argv, capsys)
    assert str(existing) in message and "--force" in message
    message = refused(eval_argv(evaluation, "--metrics", "psnr", "--json", str(evaluation / "gt")), capsys)
    assert "is a folder" in message
    inside_a_file = evaluation / "gt" / "a.png" / "metrics.json"
    message = refused(eval_argv(evaluation, "--metrics", "psnr", "--json", str(inside_a_file)), capsys)
    assert f"{evaluation / 'gt' / 'a.png'} is a file, not a folder" in message
    assert snapshot(evaluation) == before
    assert main([*argv, "--force"]) == 0
    assert "psnr" in json.loads(existing.read_text())


# ----------------------------------------------------------------------------- image sizes
def decompression_bomb(path: Path, width: int = 12000, height: int = 12000) -> Path:
    """A small PNG (a few hundred KB) that decodes to width x height pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("1", (width, height)).save(path)
    return path


def test_images_over_the_pixel_limit_are_refused_before_decoding(tmp_path, monkeypatch):
    bomb = decompression_bomb(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 200_000
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    for read in (load_image, load_mask, read_rgb):
        with pytest.raises(ImageLoadError) as error:
            read(bomb)
        message = str(error.value)
        assert str(bomb) in message and "12000x12000" in message and MAX_PIXELS_ENV in message, message
    small = save_image(tmp_path / "small.png", np.zeros((10, 20, 3), np.uint8))
    monkeypatch.setenv(MAX_PIXELS_ENV, "199")
    with pytest.raises(ImageLoadError, match="20x10 = 200 pixels is over the limit of 199"):
        load_image(small)
    monkeypatch.setenv(MAX_PIXELS_ENV, "200")
    assert load_image(small).shape == (10, 20, 3)
    for value in ("lots", "0", "-5"):
        monkeypatch.setenv(MAX_PIXELS_ENV, value)
        with pytest.raises(ValueError, match=f"{MAX_PIXELS_ENV}='{value}': expected a positive whole number"):
            load_image(small)


def test_infer_refuses_a_decompression_bomb_in_a_folder_before_any_work(model, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    rng = np.random.default_rng(0)
    save_image(tmp_path / "photos" / "a.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    bomb = decompression_bomb(tmp_path / "photos" / "b.png")
    hole = np.zeros((32, 32), bool)
    hole[4:12, 4:12] = True
    save_mask(tmp_path / "masks" / "a.png", hole)
    save_mask(tmp_path / "masks" / "b.png", hole)
    before = snapshot(tmp_path)
    for mode in ([], ["--full-resolution"]):
        message = refused(["infer", "--checkpoint", str(model), "--image", str(tmp_path / "photos"), "--mask",
                           str(tmp_path / "masks"), "--output", str(tmp_path / "out"), "--steps", "2", "--device",
                           "cpu", *mode], capsys)
        assert str(bomb) in message and "12000x12000" in message and MAX_PIXELS_ENV in message, message
    assert snapshot(tmp_path) == before  # nothing written, not even a.png


# ----------------------------------------------------------------------------- the model's own size
@pytest.fixture(scope="module")
def model_at_16(tmp_path_factory) -> Path:
    """The tiny preset (made for 32x32) trained on 16x16 crops."""
    from palette.train import train

    folder = tmp_path_factory.mktemp("model16")
    files = data.make_crops(data.demo_photo_paths()[:1], folder / "crops", crop_size=32, scales=(0.5,),
                            crops_per_scale=2)
    config = dict(task="inpainting", preset="tiny", image_size=16, batch_size=2, steps=2, warmup_steps=0,
                  num_workers=0, log_every=1, checkpoint_every=2, tensorboard=False, progress_bar=False,
                  train_files=str(data.write_file_list(folder / "train.txt", files)))
    return train(config, folder / "run")


def test_infer_resizes_to_the_size_the_model_was_trained_at_not_its_presets(model_at_16, tmp_path, capsys):
    rng = np.random.default_rng(0)
    save_image(tmp_path / "photos" / "p.png", rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    hole = np.zeros((40, 48), bool)
    hole[10:30, 10:30] = True
    save_mask(tmp_path / "masks" / "p.png", hole)
    base = ["infer", "--checkpoint", str(model_at_16), "--steps", "2", "--device", "cpu"]
    assert main([*base, "--image", str(tmp_path / "photos" / "p.png"), "--mask", str(tmp_path / "masks" / "p.png"),
                 "--output", str(tmp_path / "one.png")]) == 0
    assert "resized" in capsys.readouterr().out
    assert load_image(tmp_path / "one.png").shape == (16, 19, 3)  # short side 16, not the preset's 32
    assert main([*base, "--image", str(tmp_path / "photos"), "--mask", str(tmp_path / "masks"),
                 "--output", str(tmp_path / "folder")]) == 0
    assert load_image(tmp_path / "folder" / "p.png").shape == (16, 19, 3)
    # --full-resolution: the default window is 16 as well, so a 20-pixel photo fits it
    save_image(tmp_path / "narrow.png", rng.integers(0, 256, (20, 40, 3), dtype=np.uint8))
    save_mask(tmp_path / "narrow_mask.png", hole[:20, :40])
    assert main([*base, "--image", str(tmp_path / "narrow.png"), "--mask", str(tmp_path / "narrow_mask.png"),
                 "--full-resolution", "--output", str(tmp_path / "narrow_out.png")]) == 0
    assert load_image(tmp_path / "narrow_out.png").shape == (20, 40, 3)


# ----------------------------------------------------------------------------- --full-resolution, --extend
def test_full_resolution_refuses_thin_images_bad_windows_and_counts_in_one_line(model, photo, tmp_path, capsys):
    rng = np.random.default_rng(0)
    thin = save_image(tmp_path / "thin.png", rng.integers(0, 256, (1, 500, 3), dtype=np.uint8))
    thin_mask = np.zeros((1, 500), bool)
    thin_mask[0, 100:200] = True
    save_mask(tmp_path / "thin_mask.png", thin_mask)
    before = snapshot(tmp_path)
    out = tmp_path / "out.png"
    cases = [
        (["--image", str(thin), "--mask", str(tmp_path / "thin_mask.png"), "--full-resolution"],
         [str(thin), "500x1 pixels", "smaller than one 32-pixel window"]),
        (["--image", str(thin), "--task", "uncropping", "--extend", "down"],
         [str(thin), "less than the half window (16)"]),
        (["--mask", str(photo["mask"]), "--full-resolution", "--window", "7"],
         ["--window 7 is not a multiple of 8", "try --window 8"]),
        (["--mask", str(photo["mask"]), "--full-resolution", "--window", "0"],
         ["argument --window: expected a positive integer, got 0"]),
        (["--mask", str(photo["mask"]), "--full-resolution", "--overlap", "32"],
         ["--overlap must be in 0..31 for a 32-pixel window, got 32"]),
        (["--mask", str(photo["mask"]), "--full-resolution", "--batch-size", "0"],
         ["argument --batch-size: expected a positive integer, got 0"]),
        *[(["--task", "uncropping", "--extend", "right", "--times", times],
           [f"argument --times: expected a positive integer, got {shown}"])
          for times, shown in (("0", "0"), ("-3", "-3"), ("many", "'many'"))],
    ]
    for extra, expected in cases:
        argv = infer(model, photo, out, *extra)
        if "--image" in extra:  # replace the fixture's photo
            at = argv.index("--image")
            del argv[at:at + 2]
        message = refused(argv, capsys)
        assert all(part in message for part in expected), (extra, message)
    assert snapshot(tmp_path) == before and not out.exists()


def test_an_all_black_mask_is_refused_at_full_resolution_and_in_folders(model, photo, tmp_path, capsys):
    before = snapshot(tmp_path)
    message = refused(infer(model, photo, tmp_path / "out.png", "--mask", str(photo["black"]), "--full-resolution"),
                      capsys)
    assert str(photo["black"]) in message and "marks no pixel to fill" in message
    assert snapshot(tmp_path) == before
    (tmp_path / "photos").mkdir()
    (tmp_path / "masks").mkdir()
    (tmp_path / "photos" / "p.png").write_bytes(photo["image"].read_bytes())
    (tmp_path / "masks" / "p.png").write_bytes(photo["black"].read_bytes())
    before = snapshot(tmp_path)
    for mode in ([], ["--full-resolution"]):
        message = refused(["infer", "--checkpoint", str(model), "--image", str(tmp_path / "photos"), "--mask",
                           str(tmp_path / "masks"), "--output", str(tmp_path / "out"), "--steps", "2", "--device",
                           "cpu", *mode], capsys)
        assert str(tmp_path / "masks" / "p.png") in message and "marks no pixel to fill" in message
    assert snapshot(tmp_path) == before


# ----------------------------------------------------------------------------- checkpoints
def test_a_checkpoint_with_nan_weights_is_refused_naming_the_tensor(model, photo, tmp_path, capsys):
    from palette.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(model)
    name = next(key for key, value in state["ema"].items() if value.is_floating_point())
    state["ema"][name] = torch.full_like(state["ema"][name], float("nan"))
    broken = save_checkpoint(state, tmp_path / "nan.pt")  # a valid digest: only the numbers are wrong
    before = snapshot(tmp_path)
    for argv in (infer(broken, photo, tmp_path / "out.png", "--mask", str(photo["mask"])),
                 infer(broken, photo, tmp_path / "out.png", "--mask", str(photo["mask"]), "--full-resolution")):
        message = refused(argv, capsys)
        assert f"checkpoint {broken} has non-finite weights: ema tensor {name!r}" in message, message
    assert snapshot(tmp_path) == before and not (tmp_path / "out.png").exists()


# ----------------------------------------------------------------------------- resumed runs
def cut_off(path: Path) -> bytes:
    """Truncate a finished output as a full disk or a killed copy would; returns its old bytes."""
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    return whole


def test_a_resumed_folder_restore_redoes_a_cut_off_output(model, tmp_path, capsys):
    rng = np.random.default_rng(0)
    hole = np.zeros((32, 32), bool)
    hole[8:20, 8:20] = True
    for name in ("a", "b"):
        save_image(tmp_path / "photos" / f"{name}.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
        save_mask(tmp_path / "masks" / f"{name}.png", hole)
    out = tmp_path / "out"
    argv = ["infer", "--checkpoint", str(model), "--image", str(tmp_path / "photos"), "--mask", str(tmp_path / "masks"),
            "--output", str(out), "--steps", "2", "--device", "cpu"]
    assert main(argv) == 0
    whole = cut_off(out / "b.png")
    kept = (out / "a.png").stat().st_mtime_ns
    capsys.readouterr()
    assert main(argv) == 0
    output = capsys.readouterr().out
    assert f"redoing a damaged output: cannot load image '{out / 'b.png'}'" in output
    assert "skipping 1 finished outputs" in output
    assert (out / "b.png").read_bytes() == whole  # redone, identically (seeded by name)
    assert (out / "a.png").stat().st_mtime_ns == kept


def test_a_resumed_sampling_run_redoes_a_cut_off_sample(model, tmp_path, capsys):
    rng = np.random.default_rng(0)
    hole = np.zeros((32, 32), bool)
    hole[8:20, 8:20] = True
    for name in ("a", "b"):
        save_image(tmp_path / "set" / "source" / f"{name}.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
        save_mask(tmp_path / "set" / "mask" / f"{name}.png", hole)
    samples = tmp_path / "samples"
    argv = ["sample", "--checkpoint", str(model), "--input", str(tmp_path / "set"), "--output", str(samples),
            "--steps", "2", "--device", "cpu"]
    assert main(argv) == 0
    whole = cut_off(samples / "sample_0" / "a.png")
    kept = (samples / "sample_0" / "b.png").stat().st_mtime_ns
    capsys.readouterr()
    assert main(argv) == 0
    assert f"redoing a damaged output: cannot load image '{samples / 'sample_0' / 'a.png'}'" in capsys.readouterr().out
    assert (samples / "sample_0" / "a.png").read_bytes() == whole
    assert (samples / "sample_0" / "b.png").stat().st_mtime_ns == kept


def test_a_damaged_cache_of_reference_statistics_is_recomputed(tmp_path, monkeypatch):
    from palette.imageio import list_images
    from palette.metrics import inception
    from palette.metrics.fid import FeatureStatistics, folder_content_key, folder_statistics

    for index in range(3):
        save_image(tmp_path / "reference" / f"{index}.png", np.full((8, 8, 3), index * 40, np.uint8))
    features = np.random.default_rng(0).normal(size=(3, FEATURE_DIM))
    monkeypatch.setattr(inception, "iter_file_features", lambda *args, **kwargs: iter([features]))
    cache = tmp_path / "cache" / f"fid-stats-{folder_content_key(list_images(tmp_path / 'reference'))}.npz"
    cache.parent.mkdir()
    cache.write_bytes(b"PK\x03\x04 cut off")
    with pytest.warns(UserWarning, match=f"recomputing cached FID statistics: {cache}: unreadable .npz"):
        stats = folder_statistics(tmp_path / "reference", model=object(), cache_dir=tmp_path / "cache")
    assert stats.count == 3 and FeatureStatistics.load(cache, FEATURE_DIM).count == 3  # rewritten, whole
