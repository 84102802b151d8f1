"""Snakemake entry point: the fixed, seeded evaluation inputs of one task variant."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.data import read_file_list, write_evaluation_set

files = read_file_list(snakemake.input.test)
if snakemake.params.num_images:
    files = files[: snakemake.params.num_images]
write_evaluation_set(
    files,
    task=snakemake.params.task,
    out_dir=snakemake.output[0],
    image_size=snakemake.params.image_size,
    seed=snakemake.params.seed,
)
print(f"{snakemake.params.task}: {len(files)} evaluation inputs in {snakemake.output[0]}")
