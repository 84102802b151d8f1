"""Which images the evaluation uses, as the paper says (docs/paper.md, evaluation protocol).

- Evaluation subsets: the colorization and JPEG tables use FID-5K, the first 5000 ImageNet
  validation images by file name; the others ctest10k (ImageNet) or places10k (Places2).
- FID reference sets: the full validation set (ImageNet 50,000, Places2 36,500); CelebA-HQ's
  held-out images; the demo's validation crops (never its test crops, the evaluation targets).
- CA labels: the ILSVRC2012 validation ground truth, mapped to torchvision's class order.

Torch-free: the Snakefile reads these while building the DAG.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

# The paper's evaluation-set sizes per subset (docs/paper.md). FID is biased upward at small n,
# so an FID over fewer images than these is not comparable with the paper's number.
PAPER_EVALUATION_COUNTS = {"ctest10k": 10000, "places10k": 10950, "fid5k": 5000}
FID5K_COUNT = 5000
_IMAGENET_VAL_NAME = re.compile(r"^ILSVRC2012_val_\d{8}\.JPEG$")


def reference_name(dataset_kind: str) -> str:
    """Name of the FID reference set of the paper's protocol for a data set kind."""
    return {"imagenet": "imagenet_val50k", "places2": "places2_val36500", "celebahq": "celebahq_heldout",
            "demo_photos": "demo_val", "folder": "folder_heldout", "paired": "paired_heldout"}[dataset_kind]


def evaluation_subset_name(dataset_kind: str, subset: str) -> str:
    """The evaluation set's name as the paper calls it: fid5k, ctest10k, places10k, or
    `<kind>_test` for the data sets the paper names no set for."""
    if subset == "fid5k":
        return "fid5k"
    return {"imagenet": "ctest10k", "places2": "places10k"}.get(dataset_kind, f"{dataset_kind}_test")


def paper_evaluation_count(dataset_kind: str, subset: str) -> int | None:
    """The paper's number of evaluation images for a subset, or None where the paper has none
    (CelebA-HQ, the demo): then no FID of ours is comparable with a paper number."""
    return PAPER_EVALUATION_COUNTS.get(evaluation_subset_name(dataset_kind, subset))


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

# Label files looked for beside the validation images when evaluation.imagenet_labels is null.
IMAGENET_LABEL_FILES = ("imagenet_2012_validation_synset_labels.txt", "LOC_val_solution.csv", "val_labels.csv")

IMAGENET_LABELS_INSTRUCTIONS = """\
CA (docs/paper.md) is top-1 accuracy of ResNet-50 against the true ILSVRC2012 validation labels.
Place one of these files at {path} (or name yours in evaluation.imagenet_labels):
  - imagenet_2012_validation_synset_labels.txt: one wnid per line for ILSVRC2012_val_00000001 ..
    00050000 (the per-image synset list TensorFlow's ImageNet tools use), or
  - LOC_val_solution.csv from the ImageNet object-localisation challenge (ImageId,PredictionString),
    or
  - val_labels.csv: a CSV `name,label` with torchvision class indices (0..999).
All three come from the ILSVRC2012 devkit (https://image-net.org/download.php, after accepting
its terms). Or remove `ca` from evaluation.metrics.
"""

_WNID = re.compile(r"^n\d{8}$")


def read_imagenet_validation_labels(path: str | os.PathLike, expected: int = 50000) -> dict[str, int]:
    """ImageNet validation labels as {image stem: torchvision class index}.

    torchvision's class order is the sorted order of the 1000 wnids, so wnid labels map onto it
    by sorting the wnids the file holds (a full validation label list holds all 1000). Accepted:
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
        import csv

        with open(path, newline="") as handle:
            labels = {Path(row["name"]).stem: int(row["label"]) for row in csv.DictReader(handle)}
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
