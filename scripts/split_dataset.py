"""Snakemake entry point: a seeded train/val/test split written as file lists."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from palette.data import read_file_list, split_files, write_file_list

files = read_file_list(snakemake.input.files)
splits = split_files(files, fractions=dict(snakemake.params.fractions), seed=snakemake.params.seed,
                     holdout=dict(snakemake.params.holdout))
for name in ("train", "val", "test"):
    write_file_list(snakemake.output[name], splits[name])
    print(f"{name}: {len(splits[name])} images")
