"""PSNR, SSIM and MS-SSIM against scikit-image and an independent scipy implementation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import structural_similarity

from palette.metrics.image_quality import MS_SSIM_WEIGHTS, ms_ssim, ms_ssim_scales, psnr, ssim


def photo_pair(size: int, sigma: float, seed: int = 0):
    import skimage.data

    photo = skimage.data.astronaut()[100 : 100 + size, 150 : 150 + size]
    rng = np.random.default_rng(seed)
    noisy = np.clip(photo + rng.normal(0, sigma, photo.shape), 0, 255).astype(np.uint8)
    return photo, noisy


def reference_ms_ssim(first: np.ndarray, second: np.ndarray, scales: int = 5) -> float:
    """Wang et al. 2003 written independently: scipy Gaussian filter (11 taps, sigma 1.5) on the
    valid region, 2x2 mean downsampling, per channel, averaged over channels."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    weights = np.array(MS_SSIM_WEIGHTS[:scales]) / np.sum(MS_SSIM_WEIGHTS[:scales])
    values = []
    for channel in range(first.shape[2]):
        x, y = first[..., channel].astype(np.float64), second[..., channel].astype(np.float64)
        product = 1.0
        for scale in range(scales):
            def blur(t):
                return ndimage.gaussian_filter(t, 1.5, truncate=3.5, mode="constant")[5:-5, 5:-5]
            mx, my = blur(x), blur(y)
            vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
            cs = ((2 * cxy + c2) / (vx + vy + c2)).mean()
            if scale == scales - 1:
                term = (((2 * mx * my + c1) / (mx**2 + my**2 + c1)) * (2 * cxy + c2) / (vx + vy + c2)).mean()
            else:
                term = cs
                h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
                x = x[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
                y = y[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
            product *= max(term, 0.0) ** weights[scale]
        values.append(product)
    return float(np.mean(values))


def test_single_scale_equals_scikit_image_ssim():
    first, second = photo_pair(96, 20)
    value, scales = ms_ssim(first, second, scales=1)
    expected = structural_similarity(first, second, data_range=255, channel_axis=2, gaussian_weights=True,
                                     sigma=1.5, use_sample_covariance=False)
    assert scales == 1
    assert value == pytest.approx(expected, abs=1e-6)
    assert ssim(first, second) == pytest.approx(expected, abs=1e-12)


def test_five_scale_ms_ssim_equals_independent_reference():
    first, second = photo_pair(256, 25, seed=1)
    value, scales = ms_ssim(first, second)
    assert scales == 5
    assert value == pytest.approx(reference_ms_ssim(first, second), abs=1e-6)
    assert 0.5 < value < 1.0


def test_ms_ssim_properties():
    first, _ = photo_pair(64, 0)
    assert ms_ssim(first, first)[0] == pytest.approx(1.0, abs=1e-12)
    assert ms_ssim_scales(64, 64) == 3 and ms_ssim_scales(176, 300) == 5 and ms_ssim_scales(175, 300) == 4
    values = [ms_ssim(*photo_pair(128, sigma))[0] for sigma in (5, 20, 60)]
    assert values[0] > values[1] > values[2]
    with pytest.raises(ValueError):
        ms_ssim(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8))


def test_psnr_matches_its_definition():
    first, second = photo_pair(64, 10)
    mse = np.mean((first.astype(np.float64) - second) ** 2)
    assert psnr(first, second) == pytest.approx(10 * np.log10(255**2 / mse), rel=1e-12)


def test_high_frequency_ratio_flags_speckle_not_clean_samples():
    from palette.data import demo_photo_paths
    from palette.imageio import load_image
    from palette.metrics.image_quality import high_frequency_energy, high_frequency_ratio

    targets = [load_image(path)[:96, :96] for path in demo_photo_paths()[:3]]
    rng = np.random.default_rng(0)
    speckled = [np.clip(t + rng.normal(0, 20, t.shape), 0, 255).astype(np.uint8) for t in targets]
    blurred = [cv2.GaussianBlur(t, (0, 0), 2.0) for t in targets]
    assert high_frequency_ratio(targets, targets) == pytest.approx(1.0)
    assert high_frequency_ratio(speckled, targets) > 1.5
    assert high_frequency_ratio(blurred, targets) < 0.5
    # restricted to the generated pixels, noise there is not diluted by the known ones
    mask = np.zeros((96, 96), bool)
    mask[32:64, 32:64] = True
    holed = [np.where(mask[..., None], s, t) for s, t in zip(speckled, targets)]
    assert high_frequency_ratio(holed, targets, [mask] * 3) > high_frequency_ratio(holed, targets)
    flat = np.full((8, 8, 3), 128, np.uint8)
    assert high_frequency_energy(flat) == pytest.approx(0.0, abs=1e-20)
