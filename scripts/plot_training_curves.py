"""Snakemake entry point: training curves of every experiment."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from palette.report import plot_training_curves

plot_training_curves(list(snakemake.input), snakemake.params.experiments, snakemake.output[0])
