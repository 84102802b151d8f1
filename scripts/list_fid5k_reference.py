"""Snakemake entry point: FID-5K's own reference set (rules/reference.smk), ImageNet validation
images by file name from position dataset.expected.fid5k_reference_offset on (the paper's:
10,000..14,999), disjoint from the dataset.expected.fid5k evaluated ones (docs/paper.md, "Which
set and reference each table uses"), in either validation layout."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from palette.data import write_file_list
from palette.reference_sets import fid5k_reference_files

params = snakemake.params
files = fid5k_reference_files(params.imagenet_val, params.evaluated, params.offset, params.images)
write_file_list(snakemake.output[0], files)
print(f"FID-5K reference: {files[0].name} .. {files[-1].name} ({len(files)} images, after the "
      f"{params.evaluated} evaluated ones)")
