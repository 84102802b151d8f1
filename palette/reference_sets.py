"""Which images the evaluation uses, as the paper says (docs/paper.md, "Which set and reference
each table uses").

- Evaluation subsets: the colorization table uses FID-5K, the first 5000 ImageNet validation
  images by file name; every other table ctest10k (ImageNet) or places10k (Places2).
- FID reference sets: for ctest10k and places10k the full validation set (ImageNet 50,000,
  Places2 36,500); for FID-5K, 5000 *other* validation images (by file name, positions
  10,000..14,999, after ColTran's evaluator), disjoint from the evaluated ones; CelebA-HQ's
  held-out images; the demo's validation crops. Never the evaluation targets alone.
- CA labels: the ILSVRC2012 validation ground truth, mapped to torchvision's class order.
- The ImageNet validation images in either common layout: flat (val/ILSVRC2012_val_*.JPEG) or
  one folder per class (val/<wnid>/ILSVRC2012_val_*.JPEG).

Torch-free: the Snakefile reads these while building the DAG.
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

# The paper's evaluation-set sizes per subset (docs/paper.md). FID is biased upward at small n,
# so an FID over fewer images than these is not comparable with the paper's number.
PAPER_EVALUATION_COUNTS = {"ctest10k": 10000, "places10k": 10950, "fid5k": 5000}
# FID-5K's own reference set (fid5k_reference_files): other validation images than the evaluated ones.
FID5K_REFERENCE_NAME = "imagenet_val_fid5k_reference"
# The paper's reference sizes (docs/paper.md): an FID against a smaller reference is not its number either.
PAPER_REFERENCE_COUNTS = {"imagenet_val50k": 50000, "places2_val36500": 36500, FID5K_REFERENCE_NAME: 5000}
IMAGENET_VAL_NAME = re.compile(r"^ILSVRC2012_val_\d{8}\.JPEG$")
WNID = re.compile(r"^n\d{8}$")
# Entries looked at to tell a validation folder's layout: enough to pass a few stray files, few
# enough that a dry run never walks 50,000 names.
_LAYOUT_PEEK = 1000


def reference_name(dataset_kind: str) -> str:
    """Name of the FID reference set of the paper's protocol for a data set kind."""
    return {"imagenet": "imagenet_val50k", "places2": "places2_val36500", "celebahq": "celebahq_heldout",
            "demo_photos": "demo_val", "folder": "folder_heldout", "paired": "paired_heldout"}[dataset_kind]


def fid_reference_name(dataset_kind: str, subset: str) -> str:
    """Name of the FID reference an evaluation subset is scored against (docs/paper.md, "Which set
    and reference each table uses"): FID-5K's own disjoint reference, else the data set's."""
    return FID5K_REFERENCE_NAME if subset == "fid5k" else reference_name(dataset_kind)


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


def imagenet_validation_layout(val_dir: str | os.PathLike) -> str | None:
    """How `val_dir` holds the ILSVRC2012 validation images: "flat" (val/ILSVRC2012_val_*.JPEG),
    "wnid" (val/<wnid>/ILSVRC2012_val_*.JPEG, one folder per class) or None (none found).
    Looks at the first entries only, so it is cheap enough for a dry run."""
    val_dir = Path(val_dir)
    if not val_dir.is_dir():
        return None
    with os.scandir(val_dir) as entries:
        for entry in itertools.islice(entries, _LAYOUT_PEEK):
            if IMAGENET_VAL_NAME.match(entry.name) and entry.is_file():
                return "flat"
            if WNID.match(entry.name) and entry.is_dir():
                with os.scandir(entry.path) as inner:
                    if any(IMAGENET_VAL_NAME.match(item.name) for item in itertools.islice(inner, _LAYOUT_PEEK)):
                        return "wnid"
    return None


def imagenet_validation_files(val_dir: str | os.PathLike) -> dict[str, Path]:
    """ILSVRC2012 validation images under `val_dir` as {file name: path}, sorted by name (= by
    image number), in either layout: flat or one <wnid>/ folder per class. ValueError naming both
    paths when one image name is found twice."""
    val_dir = Path(val_dir)
    found: dict[str, Path] = {}
    with os.scandir(val_dir) as entries:
        for entry in entries:
            if WNID.match(entry.name) and entry.is_dir():
                with os.scandir(entry.path) as inner:
                    paths = [Path(item.path) for item in inner if IMAGENET_VAL_NAME.match(item.name)]
            elif IMAGENET_VAL_NAME.match(entry.name):
                paths = [Path(entry.path)]
            else:
                continue
            for path in paths:
                if path.name in found:
                    raise ValueError(f"{path} and {found[path.name]}: one ILSVRC2012 validation image in two places")
                found[path.name] = path
    return dict(sorted(found.items()))


def fid5k_files(val_dir: str | os.PathLike, count: int) -> list[Path]:
    """FID-5K: the first `count` ImageNet validation images by file name (the paper's 5000:
    ILSVRC2012_val_00000001 .. 00005000; zero-padded numbers sort like numbers), in either
    layout. Deterministic: depends only on the names present, never on listing order or a seed."""
    files = imagenet_validation_files(val_dir)
    if len(files) < count:
        raise ValueError(f"{val_dir}: FID-5K needs {count} ILSVRC2012 validation images, found {len(files)} "
                         "(dataset.expected.fid5k)")
    return list(files.values())[:count]


def _fid5k_overlap(evaluated: int, offset: int) -> str:
    return (f"dataset.expected.fid5k_reference_offset is {offset}: the FID-5K reference would overlap the "
            f"{evaluated} evaluated images (dataset.expected.fid5k); it must be at least {evaluated}")


def fid5k_reference_problem(expected: dict) -> str | None:
    """Why dataset.expected's FID-5K reference cannot be drawn (it would overlap the evaluated
    images, or run past the validation set), naming the key at fault; None when it can."""
    evaluated, offset = expected["fid5k"], expected["fid5k_reference_offset"]
    count, validation = expected["fid5k_reference"], expected["imagenet_validation"]
    if offset < evaluated:
        return _fid5k_overlap(evaluated, offset)
    if offset + count > validation:
        return (f"dataset.expected.fid5k_reference_offset {offset} + dataset.expected.fid5k_reference {count} "
                f"runs past the {validation} validation images (dataset.expected.imagenet_validation)")
    return None


def fid5k_reference_files(val_dir: str | os.PathLike, evaluated: int, offset: int, count: int) -> list[Path]:
    """FID-5K's reference (docs/paper.md, "Which set and reference each table uses"): `count`
    validation images by file name from 0-based position `offset` on (the paper's: 5000 from
    10,000, ILSVRC2012_val_00010001 .. 00015000), disjoint from the `evaluated` first images that
    `fid5k_files` gives. File-name order stands in for the TFDS read order of ColTran's evaluator.
    ValueError naming the dataset.expected key when they would overlap or the set is too small."""
    if offset < evaluated:
        raise ValueError(_fid5k_overlap(evaluated, offset))
    files = imagenet_validation_files(val_dir)
    if len(files) < offset + count:
        raise ValueError(f"{val_dir}: the FID-5K reference needs validation images {offset + 1}..{offset + count} "
                         f"by file name (dataset.expected.fid5k_reference_offset {offset}, "
                         f"dataset.expected.fid5k_reference {count}); found {len(files)} images")
    return list(files.values())[offset:offset + count]


def reference_split_problem(reference_splits, fractions: dict, holdout: dict) -> str | None:
    """Why an FID reference made of a data set's own splits would hold nothing but test images,
    the list the evaluation targets are drawn from (then the outputs would be scored against
    their own ground truth, which docs/paper.md rules out), naming the keys; None when a
    reference split other than test gets images (a fraction above 0 or held-out photos)."""
    others = [split for split in reference_splits if split != "test"]
    if any(fractions.get(split, 0) > 0 or holdout.get(split) for split in others):
        return None
    if not others:
        return (f"evaluation.reference.splits is {list(reference_splits)}: the FID reference would be the test split "
                "alone, the images the evaluation targets are drawn from; add val to it (docs/paper.md)")
    named = " and ".join(f"dataset.split.{split}" for split in others)
    return (f"{named} {'is' if len(others) == 1 else 'are'} 0, so the FID reference (evaluation.reference.splits: "
            f"{list(reference_splits)}) would hold only the test split, the images the evaluation targets are "
            f"drawn from; give {named} a fraction above 0 (docs/paper.md)")


def reference_targets_problem(reference_files, test_files) -> str | None:
    """Why a reference file list is no held-out reference: every file in it is a test image (an
    evaluation target or one of the list they come from); None otherwise."""
    reference = {str(Path(file).resolve()) for file in reference_files}
    if reference and reference <= {str(Path(file).resolve()) for file in test_files}:
        return (f"all {len(reference)} FID reference images are test images, the list the evaluation targets are "
                "drawn from: the FID would score the outputs against their own ground truth (docs/paper.md); give "
                "it held-out images: a val/ sub-folder of dataset.root (dataset.split.val above 0 where the images "
                "are split by fractions), or other splits in evaluation.reference.splits")
    return None


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
its terms). Or lay the validation images out as val/<wnid>/ILSVRC2012_val_*.JPEG (the folder
names are then the labels), or remove `ca` from evaluation.metrics.
"""


def _class_indices(source: str, wnids: dict[str, str], expected: int, classes: int) -> dict[str, int]:
    """{image stem: wnid} -> {image stem: torchvision class index}, checked against the expected
    image and class counts; `source` names the file or folder at fault."""
    bad = sorted(w for w in set(wnids.values()) if not WNID.match(w))
    if bad:
        raise ValueError(f"{source}: {len(bad)} labels are not ImageNet wnids (nXXXXXXXX), e.g. {bad[:3]}")
    ordered = sorted(set(wnids.values()))
    if len(ordered) != classes:
        raise ValueError(f"{source}: {len(ordered)} distinct wnids, expected the {classes} ILSVRC2012 classes "
                         "(the full validation label list; dataset.expected.imagenet_classes)")
    if expected and len(wnids) != expected:
        raise ValueError(f"{source}: labels for {len(wnids)} images, expected {expected}")
    index = {wnid: position for position, wnid in enumerate(ordered)}
    return {name: index[wnid] for name, wnid in wnids.items()}


def read_imagenet_validation_labels(path: str | os.PathLike, expected: int = 50000,
                                    classes: int = 1000) -> dict[str, int]:
    """ImageNet validation labels as {image stem: torchvision class index}.

    torchvision's class order is the sorted order of the wnids, so wnid labels map onto it by
    sorting the wnids the file holds (a full validation label list holds all `classes`).
    Accepted: one wnid per line (line i = ILSVRC2012_val_{i:08d}), LOC_val_solution.csv, or a
    `name,label` CSV of class indices. Raises ValueError naming the file on anything else;
    `expected` 0 skips the image count.
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
        bad = [name for name, label in labels.items() if not 0 <= label < classes]
        if bad:
            raise ValueError(f"{path}: class indices outside 0..{classes - 1} for {', '.join(bad[:5])}")
        return labels
    else:
        wnids = {f"ILSVRC2012_val_{index:08d}": line.split()[-1] for index, line in enumerate(lines, start=1)}
    return _class_indices(str(path), wnids, expected, classes)


def imagenet_folder_labels(val_dir: str | os.PathLike, expected: int = 50000, classes: int = 1000) -> dict[str, int]:
    """Labels of a val/<wnid>/ILSVRC2012_val_*.JPEG layout: each image's folder is its class."""
    wnids = {Path(name).stem: path.parent.name for name, path in imagenet_validation_files(val_dir).items()
             if path.parent != Path(val_dir)}
    if not wnids:
        raise ValueError(f"{val_dir}: no <wnid>/ILSVRC2012_val_*.JPEG folders to read the labels from")
    return _class_indices(f"{val_dir}/<wnid>/", wnids, expected, classes)


def imagenet_validation_labels(location: str | os.PathLike, val_dir: str | os.PathLike, expected: int,
                               classes: int) -> tuple[dict[str, int], str]:
    """The labels CA uses and where they came from. `location` is a label file, or a folder where
    the first of IMAGENET_LABEL_FILES placed there is read; with none placed, a val/<wnid>/ layout
    gives the labels. FileNotFoundError with instructions when there are none."""
    location = Path(location)
    if location.is_dir():
        placed = next((location / name for name in IMAGENET_LABEL_FILES if (location / name).is_file()), None)
        if placed is None and imagenet_validation_layout(val_dir) == "wnid":
            return imagenet_folder_labels(val_dir, expected, classes), f"{val_dir}/<wnid>/ folders"
        location = placed or location / IMAGENET_LABEL_FILES[0]
    return read_imagenet_validation_labels(location, expected, classes), str(location)
