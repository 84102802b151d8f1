"""Snakemake entry point: check the user's CelebA-HQ folder and list its images."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from palette.data import write_file_list
from palette.workflow_data import check_celebahq_layout

images = check_celebahq_layout(snakemake.params.root, expected=snakemake.params.expected)
write_file_list(snakemake.output.files, images)
print(f"{len(images)} CelebA-HQ images under {snakemake.params.root}")
