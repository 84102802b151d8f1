"""Snakemake entry point: one table (TSV) per experiment from its metrics JSON files."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.report import experiment_table

table = experiment_table(snakemake.input)
table.to_csv(snakemake.output[0], sep="\t", index=False)
print(table.to_string())
