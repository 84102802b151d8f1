"""Snakemake entry point (a local rule): stage the metric networks' weights and record them
(palette.weights.stage), where the network is, before any compute job needs them."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from palette.weights import stage

manifest = stage(list(snakemake.params.names), snakemake.params.weights_dir)
for name, entry in manifest["weights"].items():
    print(f"{name:24s} {entry.get('path') or 'unavailable: ' + entry['unavailable']}")
