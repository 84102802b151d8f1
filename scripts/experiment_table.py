"""Snakemake entry point: one table (TSV) per experiment from its metrics JSON files."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from palette.report import experiment_table

table = experiment_table(snakemake.input)
table.to_csv(snakemake.output[0], sep="\t", index=False)
print(table.to_string())
