"""Snakemake entry point: download the ctest10k list (Larsson et al. 2016) and check it."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from palette.workflow_data import download, file_digest, read_ctest10k

path = download(snakemake.params.url, snakemake.output[0], sha256=snakemake.params.sha256)
names = read_ctest10k(path, expected_count=snakemake.params.expected_count)
sha256 = snakemake.params.sha256 or file_digest(path)  # pinned and checked, or to be pinned
print(f"{len(names)} ctest10k names from {snakemake.params.url}; sha256 {sha256}")
