"""Snakemake entry point: the fixed, seeded evaluation inputs of one task variant."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from palette.data import read_file_list, write_evaluation_set

files = read_file_list(snakemake.input.test)
write_evaluation_set(
    files,
    task=snakemake.params.task,
    out_dir=snakemake.output[0],
    image_size=snakemake.params.image_size,
    seed=snakemake.params.seed,
    masks_file=snakemake.params.masks_file,
    num_images=snakemake.params.num_images,
)
print(f"{snakemake.params.task}: evaluation inputs from {snakemake.input.test} in {snakemake.output[0]}")
