"""Snakemake entry point: extract an archive safely (no path traversal, no links) into its folder."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from palette.workflow_data import safe_extract

written = safe_extract(snakemake.input[0], snakemake.output[0])
print(f"{len(written)} files extracted from {snakemake.input[0]} into {snakemake.output[0]}")
