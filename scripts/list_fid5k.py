"""Snakemake entry point: FID-5K, the first 5000 ImageNet validation images by file name (the
evaluation set of the paper's colorization and JPEG tables)."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from pathlib import Path

from palette.data import write_file_list
from palette.reference_sets import fid5k_names

val = Path(snakemake.params.imagenet_val)
names = fid5k_names(val)
write_file_list(snakemake.output[0], [val / name for name in names])
print(f"FID-5K: {names[0]} .. {names[-1]} ({len(names)} images)")
