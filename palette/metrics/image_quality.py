"""PSNR, SSIM and MS-SSIM on uint8 RGB images.

PSNR and SSIM are scikit-image's (`data_range=255`); SSIM uses Wang et al.'s settings (11x11
Gaussian window, sigma 1.5, population covariances), the same as MS-SSIM's per-scale terms.

MS-SSIM (Wang, Simoncelli & Bovik 2003): contrast-structure terms at scales 1..M-1 and full SSIM
at scale M, weighted by the standard exponents (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), with 2x2
average-pool downsampling between scales and 'valid' filtering, per channel, then averaged over
channels. Five scales need a side of at least 176 px (11 * 2^4); smaller images use as many
scales as fit (the coarsest at least 11 px) with the leading weights renormalised to sum to 1,
and the number of scales is reported alongside.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW_SIZE = 11
WINDOW_SIGMA = 1.5
K1, K2 = 0.01, 0.03


def psnr(reference: np.ndarray, image: np.ndarray) -> float:
    """PSNR in dB of uint8 images (data range 255); inf for identical images."""
    if np.array_equal(reference, image):
        return float("inf")  # skimage would warn about the division by zero
    return float(peak_signal_noise_ratio(reference, image, data_range=255))


def ssim(reference: np.ndarray, image: np.ndarray) -> float:
    """SSIM of uint8 RGB images, Wang et al. settings, mean over channels."""
    return float(structural_similarity(reference, image, data_range=255, channel_axis=2,
                                       gaussian_weights=True, sigma=WINDOW_SIGMA,
                                       use_sample_covariance=False))


def ms_ssim_scales(height: int, width: int, max_scales: int = len(MS_SSIM_WEIGHTS)) -> int:
    """How many scales fit: the coarsest scale must still hold one 11x11 window."""
    scales, side = 0, min(height, width)
    while scales < max_scales and side >= WINDOW_SIZE:
        scales += 1
        side //= 2
    if scales == 0:
        raise ValueError(f"images of {height}x{width} are smaller than the {WINDOW_SIZE}-px SSIM window")
    return scales


def _gaussian_window(dtype=torch.float64) -> torch.Tensor:
    coords = torch.arange(WINDOW_SIZE, dtype=dtype) - (WINDOW_SIZE - 1) / 2
    kernel = torch.exp(-(coords**2) / (2 * WINDOW_SIGMA**2))
    return kernel / kernel.sum()


def _ssim_terms(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor, data_range: float):
    """Mean SSIM and mean contrast-structure over 'valid' windows; x, y [N, 1, H, W]."""
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2

    def blur(t):  # separable Gaussian, valid region only
        t = F.conv2d(t, window.view(1, 1, 1, -1))
        return F.conv2d(t, window.view(1, 1, -1, 1))

    mu_x, mu_y = blur(x), blur(y)
    sigma_xx = blur(x * x) - mu_x**2
    sigma_yy = blur(y * y) - mu_y**2
    sigma_xy = blur(x * y) - mu_x * mu_y
    contrast_structure = (2 * sigma_xy + c2) / (sigma_xx + sigma_yy + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return (luminance * contrast_structure).mean(dim=(1, 2, 3)), contrast_structure.mean(dim=(1, 2, 3))


def ms_ssim(first: np.ndarray, second: np.ndarray, scales: int | None = None) -> tuple[float, int]:
    """MS-SSIM of two uint8 [H, W, 3] (or [H, W]) images; returns (value, scales used)."""
    a = torch.from_numpy(np.asarray(first, np.float64))
    b = torch.from_numpy(np.asarray(second, np.float64))
    if a.shape != b.shape:
        raise ValueError(f"MS-SSIM needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    # channels become the batch: MS-SSIM per channel, averaged at the end
    x, y = a.permute(2, 0, 1)[:, None], b.permute(2, 0, 1)[:, None]
    available = ms_ssim_scales(*a.shape[:2])
    scales = available if scales is None else scales
    if not 1 <= scales <= available:
        raise ValueError(f"{scales} scales requested, {available} fit images of {tuple(a.shape[:2])}")
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=torch.float64)
    weights = weights / weights.sum()
    window = _gaussian_window()
    factors = []
    for scale in range(scales):
        full, contrast_structure = _ssim_terms(x, y, window, 255.0)
        if scale == scales - 1:
            factors.append(full)
        else:
            factors.append(contrast_structure)
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    # negative terms (anti-correlated structure) are clamped as in common implementations
    stacked = torch.stack(factors).clamp_min(0.0)
    per_channel = torch.prod(stacked ** weights[:, None], dim=0)
    return float(per_channel.mean()), scales


# ---------------------------------------------------------------------------------------------
# Residual sampling noise. A diffusion model that has not learned to remove the last noise leaves
# coloured speckle that FID on a few images does not show clearly; its signature is extra energy
# at the highest spatial frequencies. The ratio below is that energy in the samples over the same
# energy in the ground truth: about 1 for clean samples, above 1 for speckle, below 1 for blur.

NOISE_BLUR_SIGMA = 1.0  # pixels: what a 1-pixel Gaussian removes is the finest detail and the speckle


def high_frequency_energy(image: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Mean square of (image - its Gaussian blur, sigma NOISE_BLUR_SIGMA) of a uint8 RGB image in
    [0, 1] units, over all pixels or weighted by `weights` [H, W] (e.g. the generated pixels)."""
    import cv2

    pixels = image.astype(np.float64) / 255.0
    residual = pixels - cv2.GaussianBlur(pixels, (0, 0), NOISE_BLUR_SIGMA, borderType=cv2.BORDER_REFLECT)
    energy = (residual ** 2).mean(axis=2)
    if weights is None:
        return float(energy.mean())
    return float((energy * weights).sum() / max(weights.sum(), 1.0))


def high_frequency_ratio(samples, targets, masks=None) -> float:
    """sum of high_frequency_energy over the samples / the same sum over their ground truths (pairs
    in the same order); with masks ([H, W], True = generated), over the generated pixels only."""
    masks = masks if masks is not None else [None] * len(targets)
    sample_energy = sum(high_frequency_energy(s, m) for s, m in zip(samples, masks))
    target_energy = sum(high_frequency_energy(t, m) for t, m in zip(targets, masks))
    return sample_energy / target_energy if target_energy > 0 else float("nan")
