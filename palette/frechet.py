"""The Frechet distance between two Gaussians (Heusel et al. 2017), exactly and in float64, from
symmetric eigendecompositions only. numpy alone (no torch), so palette.metrics.fid and the
report's bootstrap (palette.verdict) share one implementation, and one checked reader of the
statistics files (`load_statistics`) and of any other .npz (`read_npz`).
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np


def symmetric_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix from its eigendecomposition;
    eigenvalues below zero (rounding of a rank-deficient covariance) count as zero."""
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr((S1 S2)^(1/2)) for covariances S1, S2, exactly and in float64.

    S1 S2 is similar to the symmetric M = S1^(1/2) S2 S1^(1/2) (S1 S2 = S1^(1/2) M S1^(-1/2)),
    so the square roots of M's eigenvalues are those of (S1 S2)^(1/2): two symmetric
    eigendecompositions (`eigh`) instead of a general Schur-based `sqrtm` of a non-symmetric
    matrix (several times slower at 2048 x 2048, and it needs clean-fid's eps retry when S1 S2
    is singular, which the symmetric form does not).
    """
    root1 = symmetric_sqrt(sigma1)
    middle = root1 @ sigma2 @ root1
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)  # symmetric up to rounding
    return float(np.sqrt(np.clip(eigenvalues, 0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2, factor1: np.ndarray | None = None) -> float:
    """d^2 = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), in float64 (Heusel et al. 2017).

    The trace of the matrix square root comes from `trace_sqrt_product` (symmetric
    eigenvalues). It equals clean-fid's `sqrtm`-based value to rounding where that one is well
    defined (tests/test_metrics_fid.py), and needs no eps fallback for singular products.

    factor1: optionally a [d, k] matrix F with S1 = F F^T (`covariance_factor` of the features
    S1 came from). With k < d (fewer images than feature dimensions) the nonzero eigenvalues of
    S1 S2 = F (F^T S2) are those of the k x k symmetric F^T S2 F: the same trace, exactly, at a
    fraction of the cost.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics shapes differ: {mu1.shape}/{sigma1.shape} vs {mu2.shape}/{sigma2.shape}")
    diff = mu1 - mu2
    if factor1 is not None and factor1.shape[1] < factor1.shape[0]:
        factor1 = np.asarray(factor1, np.float64)
        small = factor1.T @ sigma2 @ factor1
        eigenvalues = np.linalg.eigvalsh((small + small.T) / 2)
        trace_sqrt = float(np.sqrt(np.clip(eigenvalues, 0, None)).sum())
    else:
        trace_sqrt = trace_sqrt_product(sigma1, sigma2)
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def covariance_factor(features: np.ndarray) -> np.ndarray:
    """[d, n] matrix F with F F^T the (n-1)-normalised covariance of `features` [n, d]."""
    features = np.asarray(features, np.float64)
    return (features - features.mean(axis=0)).T / np.sqrt(max(len(features) - 1, 1))


def read_npz(path: str | os.PathLike, what: str = "arrays") -> dict[str, np.ndarray]:
    """Every array of an .npz, read completely; ValueError naming the file when it is not one.

    A cut-off archive (BadZipFile, or an error while a member is read), a text file or a
    pickle (numpy's "pickled data" complaint: pickles are never loaded) and a bare .npy all
    become one line naming `path` and what it should hold (`what`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {'not a file' if path.exists() else 'no such file'} ({what} expected)")
    try:
        archive = np.load(path, allow_pickle=False)
        arrays = None
        if hasattr(archive, "files"):  # not a bare .npy array
            with archive:
                arrays = {key: archive[key] for key in archive.files}
    except ValueError as error:
        if "pickle" in str(error):
            raise ValueError(f"{path}: not an .npz archive of {what} (neither a zip archive nor an .npy file; "
                             f"pickles are not loaded)") from None
        raise ValueError(f"{path}: unreadable .npz archive of {what}: {error}") from None
    except (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error) as error:
        reason = "an empty file" if isinstance(error, EOFError) else f"cut off or damaged ({error})"
        raise ValueError(f"{path}: unreadable .npz archive of {what}: {reason}") from None
    if arrays is None:
        raise ValueError(f"{path}: a single .npy array, not an .npz archive of {what}")
    return arrays


def load_statistics(path: str | os.PathLike, dim: int | None = None) -> dict:
    """FID statistics from an .npz, checked before any use: `mu` a finite [d] vector, `sigma` a
    finite [d, d] matrix (d = `dim` when given), `count` (when present) a whole number of at
    least 2; text fields (name, digests) as str. Returns {"mu", "sigma" (float64), "count" (-1
    when absent), "name", "files_digest", "weights_digest" ("" when absent)}; ValueError names
    the file and the problem (a NaN or inf would otherwise surface as "Eigenvalues did not
    converge" from deep inside the distance, naming nothing)."""
    arrays = read_npz(path, "FID statistics (mu, sigma)")
    missing = [key for key in ("mu", "sigma") if key not in arrays]
    if missing:
        raise ValueError(f"{path}: FID statistics need mu and sigma; it has no {' and no '.join(missing)} "
                         f"(it holds: {', '.join(arrays) or 'nothing'})")
    values = {}
    for key in ("mu", "sigma"):
        array = arrays[key]
        if array.dtype.kind not in "biuf":
            raise ValueError(f"{path}: {key} holds {array.dtype} values, not numbers")
        values[key] = array.astype(np.float64)
    mu, sigma = values["mu"], values["sigma"]
    size = mu.shape[0] if mu.ndim == 1 else None
    if size is None or size < 1 or (dim is not None and size != dim):
        expected = f"[{dim}]" if dim is not None else "[d]"
        raise ValueError(f"{path}: mu has shape {list(mu.shape)}, expected {expected}")
    if sigma.shape != (size, size):
        raise ValueError(f"{path}: sigma has shape {list(sigma.shape)}, expected [{size}, {size}] to match mu")
    for key, array in (("mu", mu), ("sigma", sigma)):
        bad = ~np.isfinite(array)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{path}: {key} holds {int(bad.sum())} non-finite values "
                             f"(first {key}{list(index)} = {array[index]})")
    count = -1
    if "count" in arrays:
        value = arrays["count"]
        number = value.item() if value.ndim == 0 and value.dtype.kind in "iuf" else None
        if number is None or not math.isfinite(number) or number != int(number) or number < 2:
            raise ValueError(f"{path}: count is {value.tolist()!r}, expected a whole number of images of at least 2")
        count = int(number)
    text = {}
    for key in ("name", "files_digest", "weights_digest"):
        value = arrays.get(key)
        if value is not None and (value.ndim != 0 or value.dtype.kind not in "US"):
            raise ValueError(f"{path}: {key} is not a text ({value.dtype}, shape {list(value.shape)})")
        text[key] = "" if value is None else str(value)
    return {"mu": mu, "sigma": sigma, "count": count, **text}
