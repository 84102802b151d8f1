"""`evaluate_folders` and `palette eval`: names must correspond, sample_K folders give diversity,
the table and JSON carry every requested metric, IS says why it is unavailable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from palette.metrics.evaluate import FileMismatchError, evaluate_folders, sample_folders


@pytest.fixture(autouse=True, scope="module")
def private_weights_dir(tmp_path_factory):
    """Keep the converted-Inception cache out of the working tree's resources folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PALETTE_WEIGHTS_DIR", str(tmp_path_factory.mktemp("weights")))
        yield


def write_set(root: Path, count: int = 4, samples: int = 2, size: int = 64, seed: int = 0):
    """GT crops of a real photo, and `samples` noisy versions of each as sample_K folders."""
    import skimage.data

    rng = np.random.default_rng(seed)
    photo = skimage.data.coffee()
    gt, out = root / "gt", root / "samples"
    gt.mkdir(parents=True)
    for index in range(count):
        top, left = rng.integers(0, photo.shape[0] - size), rng.integers(0, photo.shape[1] - size)
        crop = photo[top : top + size, left : left + size]
        Image.fromarray(crop).save(gt / f"img_{index}.png")
        for k in range(samples):
            folder = out / f"sample_{k}"
            folder.mkdir(parents=True, exist_ok=True)
            noisy = np.clip(crop + rng.normal(0, 8 + 8 * k, crop.shape), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(folder / f"img_{index}.png")
    return gt, out


def test_mismatched_names_are_listed(tmp_path):
    gt, out = write_set(tmp_path, samples=1)
    (out / "sample_0" / "img_1.png").rename(out / "sample_0" / "other.png")
    with pytest.raises(FileMismatchError) as raised:
        evaluate_folders(gt, out, metrics="psnr", progress=False)
    message = str(raised.value)
    assert "only in ground truth: img_1" in message and "only in samples: other" in message


def test_sample_folders_are_ordered_numerically(tmp_path):
    for k in (10, 2, 0, 1):
        (tmp_path / f"sample_{k}").mkdir()
    assert [p.name for p in sample_folders(tmp_path)] == ["sample_0", "sample_1", "sample_2", "sample_10"]
    plain = tmp_path / "sample_0"
    assert sample_folders(plain) == [plain]


def test_identical_outputs_score_perfectly(tmp_path):
    gt, _ = write_set(tmp_path, samples=1)
    results = evaluate_folders(gt, gt, metrics="pd,psnr,ssim,ms_ssim", device="cpu", progress=False)
    assert results["pd"] == pytest.approx(0.0, abs=1e-6)
    assert results["ssim"] == pytest.approx(1.0)
    assert results["psnr_identical_images"] == 4
    assert results["diversity_unavailable"].startswith("diversity needs")


def test_palette_eval_cli_writes_table_and_json(tmp_path, capsys, monkeypatch):
    from palette.cli import main

    monkeypatch.setenv("PALETTE_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("PALETTE_OFFLINE", "1")
    gt, out = write_set(tmp_path / "set")
    json_path = tmp_path / "metrics.json"
    code = main(["eval", "-s", str(gt), "-d", str(out), "--json", str(json_path), "--device", "cpu",
                 "--metrics", "fid,is,pd,ca,psnr,ssim,diversity", "--no-progress"])
    assert code == 0
    table = capsys.readouterr().out
    results = json.loads(json_path.read_text())
    for key in ("fid", "pd", "classifier_agreement", "psnr", "ssim", "lpips_diversity", "ms_ssim_diversity"):
        assert key in table and np.isfinite(results[key]), key
    assert results["num_samples"] == 2 and results["n_images"] == 4
    assert results["ca_classifier"] == "efficientnet_lite0"
    assert results["fid_reference"]["name"].startswith("ground truth")
    assert results["fid_reference"]["count"] == 4 and results["fid_reference"]["path"] == str(gt)
    assert "classifier agreement (EfficientNet-Lite0)" in results["classifier_measure"]
    assert "ca_top1" not in results  # no labels: never the paper's CA
    assert results["fid"] > 0 and results["pd"] > 0
    # sample_1 is noisier than sample_0, so consecutive samples differ
    assert 0 < results["lpips_diversity"] < 1 and 0 < results["ms_ssim_diversity"] < 1
    assert results["ms_ssim_scales"] == 3  # 64 px images fit three scales
    # IS: unavailable offline, with its reason, and no number under its name
    assert results["is"] is None
    assert "1008-logit head" in results["is_unavailable"] and "inception_full" in results["is_unavailable"]


def test_palette_eval_reports_mismatch_as_an_error(tmp_path, capsys):
    from palette.cli import main

    gt, out = write_set(tmp_path, samples=1)
    (gt / "img_0.png").unlink()
    assert main(["eval", "-s", str(gt), "-d", str(out), "--metrics", "psnr", "--no-progress"]) == 2
    assert "only in samples: img_0" in capsys.readouterr().err


def test_json_stays_strict_for_identical_images(tmp_path):
    from palette.cli import main

    gt, _ = write_set(tmp_path, samples=1)
    json_path = tmp_path / "identical.json"
    assert main(["eval", "-s", str(gt), "-d", str(gt), "--metrics", "psnr,ssim", "--json", str(json_path),
                 "--no-progress"]) == 0
    results = json.loads(json_path.read_text())  # json.loads accepts Infinity, so check the text too
    assert "Infinity" not in json_path.read_text()
    assert results["psnr"] == "inf" and results["ssim"] == pytest.approx(1.0)


def test_explicit_weight_paths_take_precedence_and_are_checked(tmp_path, capsys):
    from palette.cli import main
    from palette.weights import WeightsNotFoundError

    gt, out = write_set(tmp_path, samples=1)
    with pytest.raises(WeightsNotFoundError, match="explicit path"):
        evaluate_folders(gt, out, metrics="pd", weight_paths={"inception_fid": tmp_path / "missing.pt"},
                         progress=False)
    with pytest.raises(ValueError, match="unknown weight names"):
        evaluate_folders(gt, out, metrics="pd", weight_paths={"inception": "x"}, progress=False)
    tampered = tmp_path / "lite0.pth"
    tampered.write_bytes(b"not a classifier")
    code = main(["eval", "-s", str(gt), "-d", str(out), "--metrics", "ca", "--classifier", "efficientnet_lite0",
                 "--weight", f"efficientnet_lite0={tampered}", "--no-progress"])
    assert code == 2
    assert f"refusing weight file {tampered}" in capsys.readouterr().err


def test_per_image_values_are_written_with_the_documented_keys(tmp_path):
    gt, out = write_set(tmp_path)
    npz_path = tmp_path / "per_image.npz"
    results = evaluate_folders(gt, out, metrics="fid,is,pd,ca,psnr,ssim,lpips", device="cpu", progress=False,
                               per_image_path=npz_path)
    with np.load(npz_path) as data:
        values = {key: data[key] for key in data.files}
    # IS has no head offline, labels were not given: their keys are absent, never zero-filled
    assert set(values) == {"names", "pool3", "perceptual_distance", "classifier_agreement", "psnr", "ssim",
                           "lpips_diversity"}
    assert list(values["names"]) == [f"img_{i}" for i in range(4)]
    assert values["pool3"].shape == (4, 2048) and values["pool3"].dtype == np.float32
    assert values["classifier_agreement"].dtype == bool
    for key, metric in (("perceptual_distance", "pd"), ("psnr", "psnr"), ("ssim", "ssim"),
                        ("lpips_diversity", "lpips_diversity")):
        assert values[key].shape == (4,) and values[key].dtype == np.float64
        assert values[key].mean() == pytest.approx(results[metric], rel=1e-9), key
    assert values["classifier_agreement"].mean() == pytest.approx(results["classifier_agreement"])


def test_each_image_is_decoded_once(tmp_path, monkeypatch):
    """One pass: Inception, classifier, PSNR/SSIM and diversity share one decode per file."""
    import palette.metrics.evaluate as evaluate_module

    gt, out = write_set(tmp_path)
    reads = []
    original = evaluate_module.read_rgb

    def counting_read(path):
        reads.append(Path(path))
        return original(path)

    monkeypatch.setattr(evaluate_module, "read_rgb", counting_read)
    evaluate_folders(gt, out, metrics="pd,ca,psnr,ssim,lpips,ms_ssim", device="cpu", progress=False, batch_size=3)
    assert len(reads) == len(set(reads)) == 4 * 3  # 4 ground truths + 2 x 4 samples, each once


def test_noise_ratio_sees_speckle_in_the_generated_pixels(tmp_path):
    from palette.data import demo_photo_paths
    from palette.imageio import load_image, save_image, save_mask

    rng = np.random.default_rng(0)
    mask = np.zeros((64, 64), bool)
    mask[16:48, 16:48] = True
    for index, path in enumerate(demo_photo_paths()[:3]):
        target = np.ascontiguousarray(load_image(path)[:64, :64])
        speckled = np.clip(target + rng.normal(0, 25, target.shape), 0, 255).astype(np.uint8)
        save_image(tmp_path / "target" / f"{index}.png", target)
        save_image(tmp_path / "clean" / f"{index}.png", target)
        save_image(tmp_path / "noisy" / f"{index}.png", np.where(mask[..., None], speckled, target))
        save_mask(tmp_path / "mask" / f"{index}.png", mask)
    clean = evaluate_folders(tmp_path / "target", tmp_path / "clean", metrics="noise", progress=False,
                             mask_dir=tmp_path / "mask")
    assert clean["noise_ratio"] == pytest.approx(1.0)
    noisy = evaluate_folders(tmp_path / "target", tmp_path / "noisy", metrics="noise", progress=False,
                             mask_dir=tmp_path / "mask", per_image_path=tmp_path / "noisy.npz")
    whole = evaluate_folders(tmp_path / "target", tmp_path / "noisy", metrics="noise", progress=False)
    assert noisy["noise_ratio"] > whole["noise_ratio"] > 1.2  # the known pixels dilute it
    per_image = np.load(tmp_path / "noisy.npz")
    assert per_image["noise_energy_sample"].sum() / per_image["noise_energy_target"].sum() == pytest.approx(
        noisy["noise_ratio"])
