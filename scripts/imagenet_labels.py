"""Snakemake entry point: check the ILSVRC2012 validation labels and write them as `name,label`
(torchvision class indices), for the paper's CA: a placed label file, else the folder names of a
val/<wnid>/ layout. Fails with instructions when there are none."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

import csv
from pathlib import Path

from palette.reference_sets import imagenet_validation_labels

labels, source = imagenet_validation_labels(snakemake.params.path, snakemake.params.imagenet_val,
                                            expected=snakemake.params.expected, classes=snakemake.params.classes)
Path(snakemake.output[0]).parent.mkdir(parents=True, exist_ok=True)
with open(snakemake.output[0], "w", newline="") as handle:
    writer = csv.writer(handle)
    writer.writerow(["name", "label"])
    writer.writerows(sorted(labels.items()))
print(f"{source}: {len(labels)} validation labels, {len(set(labels.values()))} classes")
