"""Snakemake entry point: FID-5K, the first 5000 ImageNet validation images by file name (the
evaluation set of the paper's colorization table; dataset.expected.fid5k images), in either
validation layout (flat or val/<wnid>/). Its reference is scripts/list_fid5k_reference.py's."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from palette.data import write_file_list
from palette.reference_sets import fid5k_files

files = fid5k_files(snakemake.params.imagenet_val, snakemake.params.images)
write_file_list(snakemake.output[0], files)
print(f"FID-5K: {files[0].name} .. {files[-1].name} ({len(files)} images)")
