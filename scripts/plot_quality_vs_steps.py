"""Snakemake entry point: quality against refinement steps for the sampler sweep."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from palette.report import plot_quality_vs_steps

plot_quality_vs_steps(
    list(snakemake.input), snakemake.params.samplers, dict(snakemake.params.sampler_settings), snakemake.output[0]
)
