"""Snakemake entry point: training curves of every experiment."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.report import plot_training_curves

plot_training_curves(list(snakemake.input), snakemake.params.experiments, snakemake.output[0])
