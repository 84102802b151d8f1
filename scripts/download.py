"""Snakemake entry point: download one public archive (http(s):// or file://) and check its md5."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from palette.workflow_data import download

path = download(snakemake.params.url, snakemake.output[0], md5=snakemake.params.md5)
print(f"{snakemake.params.url} -> {path} (md5 {snakemake.params.md5} checked)")
