"""Snakemake entry point: the user's image folder (dataset.kind folder) as train/val/test lists."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from palette.data import write_file_list
from palette.workflow_data import folder_splits

splits = folder_splits(snakemake.params.root, dict(snakemake.params.fractions), snakemake.params.seed)
for name in ("train", "val", "test"):
    write_file_list(snakemake.output[name], splits[name])
    print(f"{name}: {len(splits[name])} images from {snakemake.params.root}")
