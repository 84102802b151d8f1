"""Snakemake entry point: the file list of the FID reference set (rules/reference.smk).

demo_photos / celebahq / folder / paired: the prepared images of the chosen splits (refused when they are test
images only: the evaluation targets' list); imagenet: every ILSVRC2012
validation image (flat or in val/<wnid>/; 50,000); places2: every Places365 validation image (36,500). The expected
counts come from dataset.expected.
"""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from palette.data import read_file_list, write_file_list
from palette.imageio import list_images
from palette.reference_sets import imagenet_validation_files, reference_targets_problem

kind = snakemake.params.kind
if kind in ("demo_photos", "celebahq", "folder", "paired"):
    files = [file for split in snakemake.input.splits for file in read_file_list(split)]
    problem = reference_targets_problem(files, read_file_list(snakemake.input.test[0]))
    if problem:  # e.g. a folder whose val/ sub-folder is empty: docs/paper.md rules this reference out
        raise SystemExit(f"the {kind} reference set: {problem}")
elif kind == "imagenet":
    files = list(imagenet_validation_files(snakemake.params.imagenet_val).values())
else:
    files = list_images(snakemake.input.val_images[0], recursive=True)
expected = snakemake.params.expected
if expected is not None and len(files) != expected:
    raise SystemExit(f"the {kind} reference set has {len(files)} images, expected the full validation set of "
                     f"{expected} (dataset.expected)")
if len(files) < 2:
    raise SystemExit(f"the {kind} reference set has {len(files)} images; FID statistics need at least 2")
write_file_list(snakemake.output[0], files)
print(f"{kind} reference: {len(files)} images -> {snakemake.output[0]}")
