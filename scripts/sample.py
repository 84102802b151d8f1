"""Snakemake entry point: one shard of one experiment's samples on one evaluation set with one
sampler (rules/sample.smk), resuming at the first image the shard has not written."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "a", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from palette.lease import lease_for_job

device = snakemake.params.device
lease_for_job(snakemake.resources.get("gpu", 0), device)  # before CUDA starts

import json
from pathlib import Path

from palette.attempts import AttemptLog
from palette.files import atomic_write
from palette.inference import SamplingStopped, sample_evaluation_set
from palette.attempts import time_budget_seconds
from palette.launch import slurm_seconds_left
from palette.signals import StopSignals
from palette.shards import checkpoint_digest, claim, set_listing_digest, shard_names, written

# a stop signal outside the sampling loop is noted, not fatal: the bookkeeping below finishes (the loop
# itself stops between batches on one, palette.inference)
signals = StopSignals().__enter__()
index, count = int(snakemake.wildcards.index), int(snakemake.wildcards.shards)
job = f"{snakemake.wildcards.experiment}/{snakemake.wildcards.task}/{snakemake.wildcards.sampler} shard {index}"
attempt = int(snakemake.resources.get("attempt", 1))  # Snakemake's attempt number of this job
shard_dir = Path(snakemake.params.shard_dir)
sampler = dict(snakemake.params.sampler)
settings = dict(sampler=sampler, samples_per_input=snakemake.params.samples_per_input, seed=snakemake.params.seed)
if sampler["name"] == "regression":
    sampler = {}  # one forward pass: the checkpoint's objective decides, the sampler is unused
names = shard_names(snakemake.input.evaluation_set, index, count, snakemake.params.shard_size)
provenance = dict(settings, checkpoint=checkpoint_digest(snakemake.input.checkpoint),
                  evaluation_set=set_listing_digest(snakemake.input.evaluation_set), names=names)
start = claim(shard_dir, provenance)  # images made from anything else are removed first
attempts = AttemptLog(shard_dir / "attempts.tsv")
complete = start >= len(names) * settings["samples_per_input"]  # all written: only the record is left
stalled = None if complete else attempts.stalled(job, attempt, start, unit="image")
if stalled:
    print(f"sample {job}: {stalled}", flush=True)
    sys.exit(1)
attempts.begin(job, attempt, start)
budget = snakemake.params.time_budget
if budget is None:
    budget = time_budget_seconds(snakemake.resources.get("runtime"), slurm_seconds_left())
print(f"sampling {job} of {count}: {len(names)} inputs x {settings['samples_per_input']} samples, {start} written, "
      f"time budget {budget} s", flush=True)
code, stopped_by = 0, None
try:
    sample_evaluation_set(
        snakemake.input.checkpoint,
        snakemake.input.evaluation_set,
        shard_dir,
        sampler=sampler,
        samples_per_input=snakemake.params.samples_per_input,
        seed=snakemake.params.seed,
        batch_size=snakemake.params.batch_size,
        device=device,
        names=names,
        time_budget=budget,
    )
except SamplingStopped as stopped:
    print(f"sample {job}: {stopped}", flush=True)
    code, stopped_by = stopped.code, stopped.reason
except BaseException:
    code = 1
    raise
finally:
    attempts.end(job, attempt, written(shard_dir), code, stopped_by)
if code == 0:
    with atomic_write(snakemake.output.shard, "w") as handle:
        json.dump({"job": job, "inputs": len(names), "images": written(shard_dir)}, handle)
sys.exit(code)
