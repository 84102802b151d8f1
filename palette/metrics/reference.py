"""FID reference statistics of a reference image set, and the evaluation subsets of the paper.

docs/paper.md, evaluation protocol: FID is measured against statistics of the *full validation
set* (ImageNet: 50,000 images; Places2: 36,500), not against the evaluation targets themselves;
the colorization and JPEG tables use FID-5K (the first 5000 ImageNet validation images) as the
evaluation set, the others ctest10k (ImageNet) or places10k (Places2).

Reference images get exactly the evaluation targets' preprocessing (`palette.data`'s largest
centre square resized to the model's image size) before clean-fid's resize to 299, so that the
reference and the scored images differ only in what the model did. The statistics file records
the image count, a digest of the file list (names and bytes, in list order) and the digest of
the Inception weights, so an evaluation can say exactly what it was compared against.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Sequence

from palette.metrics.fid import STATISTICS_VERSION, FeatureStatistics, StreamingStatistics

# The paper's evaluation-set sizes per subset (docs/paper.md). FID is biased upward at small n,
# so an FID over fewer images than these is not comparable with the paper's number.
PAPER_EVALUATION_COUNTS = {"ctest10k": 10000, "places10k": 10950, "fid5k": 5000}
FID5K_COUNT = 5000
_IMAGENET_VAL_NAME = re.compile(r"^ILSVRC2012_val_\d{8}\.JPEG$")


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


def imagenet_validation_names(val_dir: str | os.PathLike) -> list[str]:
    """ILSVRC2012 validation file names in `val_dir`, sorted by name (= by image number)."""
    return sorted(p.name for p in Path(val_dir).iterdir() if _IMAGENET_VAL_NAME.match(p.name))


def fid5k_names(val_dir: str | os.PathLike, count: int = FID5K_COUNT) -> list[str]:
    """FID-5K: the first `count` ImageNet validation images by file name, i.e.
    ILSVRC2012_val_00000001 .. ILSVRC2012_val_00005000 (zero-padded numbers sort like numbers).
    Deterministic: depends only on the names present, never on listing order or a seed."""
    names = imagenet_validation_names(val_dir)
    if len(names) < count:
        raise ValueError(f"{val_dir}: FID-5K needs {count} ILSVRC2012 validation images, found {len(names)}")
    return names[:count]


# ---------------------------------------------------------------------------------------------
# ImageNet validation labels for CA (docs/paper.md: top-1 of ResNet-50 against the true labels)
# ---------------------------------------------------------------------------------------------

IMAGENET_LABELS_INSTRUCTIONS = """\
CA (docs/paper.md) is top-1 accuracy of ResNet-50 against the true ILSVRC2012 validation labels.
Place one of these files at {path} (or set evaluation.imagenet_labels):
  - the per-image synset list, one wnid per line for ILSVRC2012_val_00000001 .. 00050000 (as
    TensorFlow's imagenet_2012_validation_synset_labels.txt), or
  - LOC_val_solution.csv from the ImageNet object-localisation challenge (ImageId,PredictionString),
    or
  - a CSV `name,label` with torchvision class indices (0..999).
Both are derived from the ILSVRC2012 devkit (https://image-net.org/download.php, after accepting
its terms). Or remove `ca` from evaluation.metrics.
"""

_WNID = re.compile(r"^n\d{8}$")


def read_imagenet_validation_labels(path: str | os.PathLike, expected: int = 50000) -> dict[str, int]:
    """ImageNet validation labels as {image stem: torchvision class index}.

    torchvision's class order is the sorted order of the 1000 wnids, so wnid labels map onto it
    by sorting the wnids the file names (a full validation label list holds all 1000). Accepted:
    one wnid per line (line i = ILSVRC2012_val_{i:08d}), LOC_val_solution.csv, or a `name,label`
    CSV of class indices. Raises ValueError naming the file on anything else.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ImageNet validation labels not found: {path}\n\n"
                                + IMAGENET_LABELS_INSTRUCTIONS.format(path=path))
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{path}: empty labels file")
    header = lines[0].lower().replace(" ", "")
    if header.startswith("imageid,predictionstring"):
        wnids = {}
        for line in lines[1:]:
            image, prediction = line.split(",", 1)
            wnids[Path(image).stem] = prediction.split()[0]
    elif {"name", "label"} <= set(header.split(",")):
        from palette.metrics.classifier import read_labels

        labels = {Path(name).stem: label for name, label in read_labels(path).items()}
        bad = [name for name, label in labels.items() if not 0 <= label < 1000]
        if bad:
            raise ValueError(f"{path}: class indices outside 0..999 for {', '.join(bad[:5])}")
        return labels
    else:
        wnids = {f"ILSVRC2012_val_{index:08d}": line.split()[-1] for index, line in enumerate(lines, start=1)}
    bad = sorted(w for w in set(wnids.values()) if not _WNID.match(w))
    if bad:
        raise ValueError(f"{path}: {len(bad)} labels are not ImageNet wnids (nXXXXXXXX), e.g. {bad[:3]}")
    classes = sorted(set(wnids.values()))
    if len(classes) != 1000:
        raise ValueError(f"{path}: {len(classes)} distinct wnids, expected the 1000 ILSVRC2012 classes "
                         "(the full validation label list)")
    if expected and len(wnids) != expected:
        raise ValueError(f"{path}: labels for {len(wnids)} images, expected {expected}")
    index = {wnid: position for position, wnid in enumerate(classes)}
    return {name: index[wnid] for name, wnid in wnids.items()}


def paper_evaluation_count(dataset_kind: str, subset: str) -> int | None:
    """The paper's number of evaluation images for a subset, or None where the paper has none
    (CelebA-HQ, the demo): then no FID of ours is comparable with a paper number."""
    name = evaluation_subset_name(dataset_kind, subset)
    return PAPER_EVALUATION_COUNTS.get(name)


def evaluation_subset_name(dataset_kind: str, subset: str) -> str:
    """The evaluation set's name as the paper calls it: fid5k, ctest10k, places10k, or
    `<kind> test` for the data sets the paper has no named set for."""
    if subset == "fid5k":
        return "fid5k"
    return {"imagenet": "ctest10k", "places2": "places10k"}.get(dataset_kind, f"{dataset_kind} test")


def reference_name(dataset_kind: str) -> str:
    """The reference set of the paper's protocol for this data set (see rules/reference.smk)."""
    return {"imagenet": "imagenet_val50k", "places2": "places2_val36500", "celebahq": "celebahq_heldout",
            "demo_photos": "demo_val"}[dataset_kind]


def describe_statistics(stats: FeatureStatistics, path: str | os.PathLike | None) -> dict:
    """The `fid_reference` record of a metrics JSON."""
    return {"name": stats.name, "path": None if path is None else str(path), "count": int(stats.count),
            "files_digest": stats.files_digest, "weights_digest": stats.weights_digest}
