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

from palette.frechet import covariance_factor, frechet_distance, trace_sqrt_product  # noqa: F401 (re-exported)
from palette.frechet import load_statistics
from palette.imageio import list_images
from palette.metrics.inception import FEATURE_DIM

# Part of every cache key: change it when the preprocessing or the network changes.
STATISTICS_VERSION = "clean-fid-clean/tf-inception-2015-12-05/pool3/v1"


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
    """FID statistics, and where they come from (reference files, docs/architecture.md):
    `name` of the image set, `files_digest` over its file names and bytes, `weights_digest` of
    the Inception that made the features."""

    mu: np.ndarray
    sigma: np.ndarray
    count: int
    name: str = ""
    files_digest: str = ""
    weights_digest: str = ""

    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".part.npz")
        np.savez(temporary, mu=np.asarray(self.mu, np.float64), sigma=np.asarray(self.sigma, np.float64),
                 count=self.count, name=self.name, files_digest=self.files_digest,
                 weights_digest=self.weights_digest, version=STATISTICS_VERSION)
        os.replace(temporary, path)

    @classmethod
    def load(cls, path: str | os.PathLike, dim: int | None = None) -> "FeatureStatistics":
        """Checked (palette.frechet.load_statistics): a damaged file, missing or non-finite
        mu/sigma, or shapes that do not fit (`dim` features, when given) raise ValueError naming it."""
        return cls(**load_statistics(path, dim))

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
            try:
                return FeatureStatistics.load(cache_path, FEATURE_DIM)
            except ValueError as error:  # a damaged cache file is recomputed, not trusted (nor fatal)
                warnings.warn(f"recomputing cached FID statistics: {error}", stacklevel=2)
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
        reference = FeatureStatistics.load(reference, FEATURE_DIM)
    stats = folder_statistics(folder, model, None, device, batch_size, progress)
    return frechet_distance(stats.mu, stats.sigma, reference.mu, reference.sigma)
