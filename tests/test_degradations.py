"""Task degradations: what each source is, reproducibility, the JPEG quality distribution."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from palette import degradations as deg
from palette.imageio import load_image, to_tensor, to_uint8


@pytest.fixture(scope="module")
def photo_uint8():
    """A 128x128 crop of a real photo (scikit-image's astronaut) with edges and texture."""
    root = Path(importlib.util.find_spec("skimage").submodule_search_locations[0])
    return load_image(root / "data" / "astronaut.png")[100:228, 200:328].copy()


@pytest.fixture(scope="module")
def photo(photo_uint8):
    return to_tensor(photo_uint8)


def _psnr(a, b):
    return 10 * np.log10(4.0 / float(((a - b) ** 2).mean()))


def _is_on_8bit_grid(tensor):
    levels = (tensor + 1) * 127.5
    return torch.allclose(levels, levels.round(), atol=1e-4)


def test_task_lists():
    assert deg.TRAINING_TASKS == ("colorization", "inpainting", "uncropping", "jpeg",
                                  "super_resolution", "multitask", "paired")
    assert len(deg.EVALUATION_TASKS) == 12 and "jpeg_q5" in deg.EVALUATION_TASKS
    assert deg.EVALUATION_TASKS[-1] == "paired" and not deg.task_uses_mask("paired")
    with pytest.raises(ValueError, match="no synthetic degradation"):
        deg.degrade("paired", torch.zeros(3, 8, 8), np.random.default_rng(0))
    assert deg.task_uses_mask("inpainting_center") and deg.task_uses_mask("uncropping")
    assert deg.task_uses_mask("multitask") and not deg.task_uses_mask("jpeg_q10")
    with pytest.raises(ValueError, match="super_resolution"):
        deg.degrade("deblurring", torch.zeros(3, 8, 8), np.random.default_rng(0))
    with pytest.raises(ValueError, match="colorization"):
        deg.task_uses_mask("colourisation")


def test_colorization_on_ctest10k_is_colorization_on_other_images():
    """colorization_ctest10k differs from colorization only in the images it is scored on (docs/paper.md,
    "Which set and reference each table uses"), never in its inputs."""
    image = torch.rand(3, 16, 16) * 2 - 1
    same = deg.degrade("colorization_ctest10k", image, np.random.default_rng(0))
    assert torch.equal(same.source, deg.degrade("colorization", image, np.random.default_rng(0)).source)
    assert same.mask is None and not deg.task_uses_mask("colorization_ctest10k")
    from palette.tasks import colorization_on_test_list

    assert colorization_on_test_list("imagenet") == "colorization_ctest10k"
    assert colorization_on_test_list("demo_photos") == colorization_on_test_list("places2") == "colorization"


@pytest.mark.parametrize("task", [task for task in deg.ALL_TASKS if task != "paired"])  # paired: from files
def test_every_task_shapes_ranges_and_reproducibility(task, photo):
    first = deg.degrade(task, photo, np.random.default_rng(3))
    again = deg.degrade(task, photo, np.random.default_rng(3))
    assert first.source.shape == (3, 128, 128) and first.source.dtype == torch.float32
    assert torch.equal(first.target, photo)
    assert first.source.min() >= -1 and first.source.max() <= 1
    assert torch.equal(first.source, again.source)
    if first.mask is not None:
        assert torch.equal(first.mask, again.mask)
        assert first.mask.shape == (1, 128, 128) and set(first.mask.unique().tolist()) <= {0.0, 1.0}
    if task in deg.MASKED_TASKS:
        assert first.mask is not None
    elif task != "multitask":
        assert first.mask is None
        assert _is_on_8bit_grid(first.source)


def test_random_tasks_differ_between_seeds(photo):
    for task in ["inpainting", "jpeg", "inpainting_freeform_20_30"]:
        sources = {deg.degrade(task, photo, np.random.default_rng(s)).source.sum().item() for s in range(6)}
        assert len(sources) > 1, task


@pytest.mark.parametrize("task", deg.MASKED_TASKS)
def test_masked_sources_are_zero_in_the_hole(task, photo):
    source, target, mask = deg.degrade(task, photo, np.random.default_rng(11))
    hole = mask.bool().expand(3, -1, -1)
    assert hole.any() and (~hole).any()
    assert torch.all(source[hole] == 0)
    assert torch.equal(source[~hole], target[~hole])


def test_evaluation_masks(photo):
    for task, (low, high) in [("inpainting_freeform_10_20", (0.1, 0.2)),
                              ("inpainting_freeform_30_40", (0.3, 0.4)),
                              ("inpainting_center", (0.2499, 0.2501)),
                              ("uncropping_right", (0.4999, 0.5001))]:
        for seed in range(5):
            area = deg.degrade(task, photo, np.random.default_rng(seed)).mask.mean().item()
            assert low < area < high, task
    mask = deg.degrade("uncropping_right", photo, np.random.default_rng(0)).mask
    assert mask[..., 64:].all() and not mask[..., :64].any()


def test_colorization_is_bt601_luminance(photo, photo_uint8):
    source = deg.degrade("colorization", photo, np.random.default_rng(0)).source
    assert torch.equal(source[0], source[1]) and torch.equal(source[1], source[2])
    pil_gray = np.asarray(Image.fromarray(photo_uint8).convert("L")).astype(int)
    assert np.abs(to_uint8(source)[..., 0].astype(int) - pil_gray).max() <= 1
    # a pure colour maps to its weight
    red = torch.full((3, 4, 4), -1.0)
    red[0] = 1.0
    gray = deg.degrade("colorization", red, np.random.default_rng(0)).source
    assert to_uint8(gray)[0, 0, 0] == round(0.299 * 255)


def test_jpeg_quality_factor_follows_exp_minus_q_over_10():
    qualities, probabilities = deg.jpeg_quality_probabilities()
    assert qualities[0] == 5 and qualities[-1] == 30 and np.isclose(probabilities.sum(), 1)
    np.testing.assert_allclose(probabilities[:-1] / probabilities[1:], np.exp(0.1))
    rng = np.random.default_rng(2024)
    draws = np.array([deg.jpeg_quality_factor(rng) for _ in range(20000)])
    assert draws.min() >= 5 and draws.max() <= 30 and draws.dtype.kind == "i"
    observed = np.array([(draws == q).sum() for q in qualities])
    expected = probabilities * draws.size
    assert stats.chisquare(observed, expected).pvalue > 1e-3
    # the same test rejects a uniform quality factor, the distribution the paper did not use
    uniform = np.random.default_rng(2024).integers(5, 31, size=20000)
    uniform_observed = np.array([(uniform == q).sum() for q in qualities])
    assert stats.chisquare(uniform_observed, expected).pvalue < 1e-10


def test_jpeg_quality_lowers_psnr(photo, photo_uint8):
    psnr = {q: _psnr(deg.degrade(f"jpeg_q{q}", photo, np.random.default_rng(0)).source, photo)
            for q in (5, 10, 20)}
    assert psnr[5] < psnr[10] < psnr[20] < 40
    # it is a real JPEG: identical to Pillow's own encode/decode at that quality
    import io

    buffer = io.BytesIO()
    Image.fromarray(photo_uint8).save(buffer, format="JPEG", quality=10)
    reference = to_tensor(np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")))
    assert torch.equal(deg.degrade("jpeg_q10", photo, np.random.default_rng(0)).source, reference)


def test_training_jpeg_uses_the_drawn_quality(photo):
    rng = np.random.default_rng(9)
    quality = deg.jpeg_quality_factor(np.random.default_rng(9))
    source = deg.degrade("jpeg", photo, rng).source
    assert torch.equal(source, deg.jpeg_compress(photo, quality))


def test_super_resolution_is_bicubic_down_up(photo, photo_uint8):
    source = deg.degrade("super_resolution", photo, np.random.default_rng(0)).source
    assert torch.equal(source, deg.quantize_8bit(deg.bicubic_down_up(photo, 4)))
    # An independent reference: PIL's bicubic resize down to 32x32 (antialiased: PIL widens the kernel
    # by the factor when it shrinks) and back up to 128x128. PIL's cubic has a = -0.5 where torch's has
    # -0.75 and PIL rounds the small image to 8 bits, so the two differ by about one level on average
    # (PSNR 43.8 dB). Measured on this crop, the wrong resamplers are much further away: bilinear
    # 2.7 levels / 34.9 dB, bicubic without antialiasing 4.5 / 29.6, antialiased bilinear down then
    # bicubic up 1.4 / 40.5, area (box) down then bicubic up 1.2 / 41.4.
    pil_small = Image.fromarray(photo_uint8).resize((32, 32), Image.BICUBIC)
    reference = to_tensor(np.asarray(pil_small.resize((128, 128), Image.BICUBIC)))
    level_error = np.abs(to_uint8(source).astype(int) - to_uint8(reference).astype(int)).mean()
    assert level_error < 1.1, f"mean |difference| to PIL's bicubic down-up: {level_error:.2f} levels"
    assert _psnr(source, reference) > 42.5, f"PSNR to PIL's bicubic down-up: {_psnr(source, reference):.1f} dB"
    # smooth: much less high-frequency energy than the original
    def laplacian_energy(x):
        lap = 4 * x[:, 1:-1, 1:-1] - x[:, :-2, 1:-1] - x[:, 2:, 1:-1] - x[:, 1:-1, :-2] - x[:, 1:-1, 2:]
        return float((lap ** 2).mean())

    assert laplacian_energy(source) < 0.2 * laplacian_energy(photo)
    assert 18 < _psnr(source, photo) < 35


def test_multitask_mixes_three_tasks_uniformly(photo):
    small = photo[:, :32, :32].contiguous()
    counts = {"colorization": 0, "inpainting": 0, "jpeg": 0}
    for seed in range(300):
        source, _, mask = deg.degrade("multitask", small, np.random.default_rng(seed))
        if mask is not None:
            counts["inpainting"] += 1
        elif torch.equal(source[0], source[1]) and torch.equal(source[1], source[2]):
            counts["colorization"] += 1
        else:
            counts["jpeg"] += 1
    assert all(70 < count < 130 for count in counts.values()), counts  # 100 each expected


def test_degrade_rejects_bad_images():
    with pytest.raises(ValueError, match="float"):
        deg.degrade("jpeg", torch.zeros(8, 8), np.random.default_rng(0))
    with pytest.raises(ValueError, match="float"):
        deg.degrade("jpeg", torch.zeros(3, 8, 8, dtype=torch.uint8), np.random.default_rng(0))
