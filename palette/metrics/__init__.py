"""The paper's evaluation metrics (docs/paper.md, evaluation protocol), offline and matched to references.

- `fid`: FID with clean-fid's 'clean' preprocessing and the TF Inception 2015-12-05 weights
- `inception_score`: IS with the 1008-logit head, or the reason it is unavailable
- `classifier`: CA (ResNet-50 top-1 against labels; EfficientNet-Lite0 numbers under their own names)
- `reference`: FID reference statistics of a reference set (which sets: palette.reference_sets)
- `lpips_metric`, `image_quality`: LPIPS and MS-SSIM diversity, PSNR and SSIM
- `evaluate`: `evaluate_folders(gt_dir, sample_dir, ...)`, used by `palette eval` and the workflow
Weights come from `palette.weights`.
"""

from palette.metrics.evaluate import FileMismatchError, evaluate_folders
from palette.metrics.fid import (
    FeatureStatistics,
    fid_against_statistics,
    fid_between_folders,
    folder_statistics,
    frechet_distance,
)

__all__ = [
    "FeatureStatistics",
    "FileMismatchError",
    "evaluate_folders",
    "fid_against_statistics",
    "fid_between_folders",
    "folder_statistics",
    "frechet_distance",
]
