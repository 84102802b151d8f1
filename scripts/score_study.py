"""Snakemake entry point: the fool rate of the study's answers, with its 95 % interval over raters (cluster bootstrap)."""

import json
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from pathlib import Path

from palette.files import atomic_write
from palette.study import score_study
from palette.study_cli import format_score

result = score_study(
    Path(snakemake.input.study).parent,
    snakemake.input.answers,
    min_catch_accuracy=snakemake.params.min_catch_accuracy,
)
with atomic_write(snakemake.output[0]) as handle:
    handle.write(json.dumps(result, indent=1).encode())
print(format_score(result))
