"""Frechet Inception Distance (Heusel et al. 2017) with clean-fid's preprocessing.

Statistics are accumulated while streaming (float64 sums, shifted by the first batch's mean for
numerical stability), so a 50k-image reference set never needs its features in memory.
Reference statistics are cached as .npz files keyed by the content of the reference folder
(names and bytes of every image) plus the feature extractor's identity, so they are computed
once per reference set and recomputed whenever an image changes.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from scipy import linalg

from palette.imageio import list_images
from palette.metrics.inception import FEATURE_DIM

# Part of every cache key: change it when the preprocessing or the network changes.
STATISTICS_VERSION = "clean-fid-clean/tf-inception-2015-12-05/pool3/v1"


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    # scipy's `disp` argument is deprecated (1.17); its singular-matrix warning is noise here,
    # the non-finite check below is what matters.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(linalg.sqrtm(matrix))


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """d^2 = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), in float64 (Heusel et al. 2017).

    As clean-fid / the TF reference: when the matrix square root is not finite, `eps` is added
    to both diagonals; an imaginary part of the square root (numerical noise) is dropped if
    its diagonal is below 1e-3, otherwise it is an error.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics shapes differ: {mu1.shape}/{sigma1.shape} vs {mu2.shape}/{sigma2.shape}")
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"imaginary component {np.max(np.abs(covmean.imag))} in the FID square root")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


class StreamingStatistics:
    """Mean and (N-1)-normalised covariance of feature vectors seen batch by batch, in float64."""

    def __init__(self, dim: int = FEATURE_DIM):
        self.dim = dim
        self.count = 0
        self._shift: np.ndarray | None = None
        self._sum = np.zeros(dim, np.float64)
        self._outer = np.zeros((dim, dim), np.float64)

    def update(self, features: np.ndarray) -> None:
        features = np.asarray(features, np.float64).reshape(-1, self.dim)
        if len(features) == 0:
            return
        if self._shift is None:
            self._shift = features.mean(axis=0)
        centred = features - self._shift
        self.count += len(features)
        self._sum += centred.sum(axis=0)
        self._outer += centred.T @ centred

    def mean_and_covariance(self) -> tuple[np.ndarray, np.ndarray]:
        if self.count < 2:
            raise ValueError(f"FID statistics need at least 2 images, got {self.count}")
        if self.count < self.dim:  # rank-deficient covariance: FID is biased upwards, strongly for small N
            warnings.warn(f"FID statistics from {self.count} images (fewer than the {self.dim} Inception features): "
                          "the value is strongly biased by the sample size; compare FIDs only at equal N "
                          "(the paper uses 10,000 images or more)", stacklevel=2)
        centred_mean = self._sum / self.count
        covariance = (self._outer - self.count * np.outer(centred_mean, centred_mean)) / (self.count - 1)
        return self._shift + centred_mean, covariance


@dataclass
class FeatureStatistics:
    mu: np.ndarray
    sigma: np.ndarray
    count: int

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".part.npz")
        np.savez(temporary, mu=self.mu, sigma=self.sigma, count=self.count, version=STATISTICS_VERSION)
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "FeatureStatistics":
        with np.load(path) as data:
            count = int(data["count"]) if "count" in data else -1
            return cls(np.asarray(data["mu"], np.float64), np.asarray(data["sigma"], np.float64), count)

    @classmethod
    def from_features(cls, features: np.ndarray) -> "FeatureStatistics":
        stats = StreamingStatistics(features.shape[1])
        stats.update(features)
        return cls(*stats.mean_and_covariance(), stats.count)


def folder_content_key(paths: Sequence[Path]) -> str:
    """sha256 over (name, bytes) of every image: the cache key of a reference set."""
    digest = hashlib.sha256(STATISTICS_VERSION.encode())
    for path in paths:
        digest.update(path.name.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def statistics_of_feature_batches(batches: Iterable[np.ndarray]) -> FeatureStatistics:
    stats = StreamingStatistics()
    for batch in batches:
        stats.update(batch)
    return FeatureStatistics(*stats.mean_and_covariance(), stats.count)


def folder_statistics(folder: str | os.PathLike, model=None, cache_dir: str | os.PathLike | None = None,
                      device=None, batch_size: int = 32, progress: bool = True) -> FeatureStatistics:
    """FID statistics of every image in `folder`, streamed; cached in `cache_dir` when given."""
    from palette.metrics.inception import iter_file_features, load_inception

    paths = list_images(folder)
    cache_path = None
    if cache_dir is not None:
        cache_path = Path(cache_dir) / f"fid-stats-{folder_content_key(paths)}.npz"
        if cache_path.is_file():
            return FeatureStatistics.load(cache_path)
    model = model if model is not None else load_inception(device)
    stats = statistics_of_feature_batches(
        iter_file_features(model, paths, batch_size, f"FID statistics {Path(folder).name}", progress)
    )
    if cache_path is not None:
        stats.save(cache_path)
    return stats


def fid_between_folders(folder1, folder2, model=None, device=None, batch_size: int = 32,
                        progress: bool = True) -> float:
    """FID between the images of two folders (no caching)."""
    first = folder_statistics(folder1, model, None, device, batch_size, progress)
    second = folder_statistics(folder2, model, None, device, batch_size, progress)
    return frechet_distance(first.mu, first.sigma, second.mu, second.sigma)


def fid_against_statistics(folder, reference: FeatureStatistics | str | os.PathLike, model=None,
                           device=None, batch_size: int = 32, progress: bool = True) -> float:
    """FID of a folder against precomputed reference statistics (an .npz with mu and sigma)."""
    if not isinstance(reference, FeatureStatistics):
        reference = FeatureStatistics.load(reference)
    stats = folder_statistics(folder, model, None, device, batch_size, progress)
    return frechet_distance(stats.mu, stats.sigma, reference.mu, reference.sigma)
