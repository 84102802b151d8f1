"""Snakemake entry point: metrics of one experiment x task variant x sampler, as JSON."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from palette.lease import lease_for_job

device = snakemake.params.device
lease_for_job(snakemake.resources.get("gpu", 0), device)  # before CUDA starts

import json
from pathlib import Path

from palette.metrics import evaluate_folders

evaluation_set = Path(snakemake.input.evaluation_set)
results = evaluate_folders(
    evaluation_set / "target",
    snakemake.input.samples,
    metrics=list(snakemake.params.metrics),
    device=device,
    batch_size=snakemake.params.batch_size,
    weights_dir=snakemake.params.weights_dir,
    progress=False,
)
results = {
    "experiment": snakemake.wildcards.experiment,
    "task": snakemake.wildcards.task,
    "sampler": snakemake.wildcards.sampler,
    **results,
}
Path(snakemake.output[0]).write_text(json.dumps(results, indent=2, sort_keys=True, default=str) + "\n")
print(json.dumps(results, indent=2, default=str))
