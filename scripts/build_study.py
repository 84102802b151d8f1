"""Snakemake entry point: build the human 2AFC study from one experiment's samples."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from pathlib import Path

from palette.study import build_study

settings = snakemake.params.study
path = build_study(
    snakemake.input.evaluation_set,
    snakemake.input.samples,
    Path(snakemake.output.study).parent,
    raters=settings["raters"],
    trials_per_rater=settings["trials_per_rater"],
    catch_trials=settings["catch_trials"],
    seed=snakemake.params.seed,
    task=settings["task"],
    label=snakemake.params.label,
)
print(f"wrote {path}; serve it with: palette study serve {path.parent}")
