"""FID reference statistics of a reference image set (which sets: palette.reference_sets).

docs/paper.md, "Which set and reference each table uses": ctest10k (ImageNet) and places10k
(Places2) are measured against statistics of the *full validation set* (50,000 images; 36,500),
never against the evaluation targets alone; the colorization table's FID-5K (the first 5000
ImageNet validation images) against 5000 *other* validation images, its own reference.

Reference images get exactly the evaluation targets' preprocessing (`palette.data`'s largest
centre square resized to the model's image size) before clean-fid's resize to 299, so that the
reference and the scored images differ only in what the model did. The statistics file records
the image count, a digest of the file list (names and bytes, in list order) and the digest of
the Inception weights, so an evaluation can say exactly what it was compared against.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

from palette.metrics.fid import STATISTICS_VERSION, FeatureStatistics, StreamingStatistics


def inception_weights_digest() -> str:
    """Identity of the Inception every feature here comes from: the tensor sha256 that
    `palette.weights.inception_state_dict` checks before the network is built (it refuses any
    other weights, so this digest is the one actually used)."""
    from palette.weights import INCEPTION_FID_STATE_DICT_SHA256

    return INCEPTION_FID_STATE_DICT_SHA256


def files_digest(paths: Sequence[str | os.PathLike]) -> str:
    """sha256 over (name, sha256 of bytes) of every file, in list order."""
    digest = hashlib.sha256(STATISTICS_VERSION.encode())
    for path in paths:
        path = Path(path)
        digest.update(path.name.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def reference_statistics(paths: Sequence[str | os.PathLike], image_size: int, name: str, model=None,
                         device=None, batch_size: int = 32, progress: bool = True) -> FeatureStatistics:
    """Float64 mean and covariance of the pool3 features of `paths`, each image preprocessed as
    an evaluation target (`palette.data.center_square_crop` to `image_size`), streamed batch by
    batch (memory flat in the number of images)."""
    import torch
    from tqdm.auto import tqdm

    from palette.data import center_square_crop
    from palette.imageio import load_image
    from palette.metrics.inception import load_inception, preprocess_batch

    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise ValueError(f"reference set {name!r} needs at least 2 images, got {len(paths)}")
    model = model if model is not None else load_inception(device)
    model_device = next(model.parameters()).device
    stats = StreamingStatistics()
    digest = hashlib.sha256(STATISTICS_VERSION.encode())
    with tqdm(total=len(paths), desc=f"reference {name}", unit="img", disable=not progress) as bar:
        for start in range(0, len(paths), batch_size):
            images = []
            for path in paths[start : start + batch_size]:
                digest.update(path.name.encode() + b"\0")
                digest.update(hashlib.sha256(path.read_bytes()).digest())
                images.append(center_square_crop(load_image(path), image_size))
            with torch.no_grad():
                stats.update(model(preprocess_batch(images).to(model_device)).float().cpu().numpy())
            bar.update(len(images))
    mu, sigma = stats.mean_and_covariance()
    return FeatureStatistics(mu, sigma, stats.count, name=name, files_digest=digest.hexdigest(),
                             weights_digest=inception_weights_digest())


def describe_statistics(stats: FeatureStatistics, path: str | os.PathLike | None) -> dict:
    """The `fid_reference` record of a metrics JSON."""
    return {"name": stats.name, "path": None if path is None else str(path), "count": int(stats.count),
            "files_digest": stats.files_digest, "weights_digest": stats.weights_digest}
