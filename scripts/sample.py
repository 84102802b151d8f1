"""Snakemake entry point: sample one experiment's model on one evaluation set with one sampler."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from palette.lease import lease_for_job

device = snakemake.params.device
lease_for_job(snakemake.resources.get("gpu", 0), device)  # before CUDA starts

from palette.inference import sample_evaluation_set

sampler = dict(snakemake.params.sampler)
if sampler["name"] == "regression":
    sampler = {}  # one forward pass: the checkpoint's objective decides, the sampler is unused
sample_evaluation_set(
    snakemake.input.checkpoint,
    snakemake.input.evaluation_set,
    snakemake.output[0],
    sampler=sampler,
    samples_per_input=snakemake.params.samples_per_input,
    seed=snakemake.params.seed,
    batch_size=snakemake.params.batch_size,
    device=device,
)
