"""Snakemake entry point: an external experiment's model, copied or converted into
RESULTS/checkpoints/NAME.pt once it loads and fits the experiment, with its record beside it
(rule import_checkpoint, palette.external_model)."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from palette.external_model import bring_in

record = bring_in(
    snakemake.wildcards.experiment,
    dict(snakemake.params.source),
    dict(snakemake.params.expected),
    snakemake.output.checkpoint,
    snakemake.output.record,
)
print(f"{record['experiment']}: {record['label']}, {record['kind']} checkpoint from {record['source']}")
for change in record["departures"]:
    print(f"  departs from the paper: {change}")
