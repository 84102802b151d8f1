"""Snakemake entry point: check the ILSVRC2012 validation labels and write them as `name,label`
(torchvision class indices), for the paper's CA. Fails with instructions when they are missing."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

import csv
from pathlib import Path

from palette.reference_sets import IMAGENET_LABEL_FILES, read_imagenet_validation_labels

path = Path(snakemake.params.path)
if path.is_dir():  # no explicit file: the first known label file placed beside the images
    path = next((path / name for name in IMAGENET_LABEL_FILES if (path / name).is_file()), path / IMAGENET_LABEL_FILES[0])
labels = read_imagenet_validation_labels(path)
Path(snakemake.output[0]).parent.mkdir(parents=True, exist_ok=True)
with open(snakemake.output[0], "w", newline="") as handle:
    writer = csv.writer(handle)
    writer.writerow(["name", "label"])
    writer.writerows(sorted(labels.items()))
print(f"{path}: {len(labels)} validation labels, {len(set(labels.values()))} classes")
