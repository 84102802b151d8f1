"""Snakemake entry point: sample grid and diversity strip of one experiment on one task variant."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from palette.report import plot_samples

plot_samples(
    snakemake.input.evaluation_set,
    snakemake.input.samples,
    snakemake.output.grid,
    snakemake.output.diversity,
    grid_images=snakemake.params.grid_images,
)
