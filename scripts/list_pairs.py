"""Snakemake entry point: the user's source/target pairs (dataset.kind paired) as train/val/test
lists of the targets, and the pair list (target, source) beside them."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from palette.data import write_file_list
from palette.workflow_data import paired_splits, write_pairs

splits, pairs = paired_splits(snakemake.params.root, dict(snakemake.params.fractions), snakemake.params.seed)
write_pairs(snakemake.output.pairs, pairs)
for name in ("train", "val", "test"):
    write_file_list(snakemake.output[name], splits[name])
    print(f"{name}: {len(splits[name])} pairs from {snakemake.params.root}")
