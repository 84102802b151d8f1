"""Snakemake entry point: one training job of one experiment, resuming from its work folder.

Rule train_segment trains to the segment's end step and stops with a resumable checkpoint
(`palette train --segment`); rule train trains the last part and writes the final EMA checkpoint.
A long run is a chain of such jobs (rules/train.smk), so however many time limits it needs, each
job needs only a few attempts.

Every shape of job (the CPU, one GPU, G GPUs through torchrun, N nodes through srun + torchrun)
goes through palette.launch, which runs `palette train` in each worker: the same exit codes and
messages on every path (75 = saved, run again; 65 = NaN/inf loss; 78 = bad config). A job
preempted or out of time exits 75 after saving, and the rule's `retries` resumes it from the work
folder, which lies outside the declared outputs. The time budget comes from the job's `runtime`
(under SLURM: the job's own end time) less a margin that scales with it
(palette.attempts.time_budget_seconds). Each attempt is recorded in WORK_DIR/attempts.tsv
(palette.attempts); an attempt whose predecessor made no progress stops with one line.
"""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "a", buffering=1)

import json
from pathlib import Path

import yaml

from palette.attempts import AttemptLog
from palette.checkpoint import CheckpointFolder
from palette.files import atomic_write
from palette.attempts import time_budget_seconds
from palette.launch import launch, slurm_seconds_left
from palette.lease import lease_for_job
from palette.signals import StopSignals

config = dict(snakemake.params.train_config)
name = config["name"]
segment = snakemake.rule == "train_segment"
job = f"segment to step {config['steps']}" if segment else f"final (step {config['steps']})"
config["train_files"] = str(Path(snakemake.input.train).resolve())
if config.get("time_budget") is None:
    config["time_budget"] = time_budget_seconds(snakemake.resources.get("runtime"), slurm_seconds_left())
nodes = int(snakemake.resources.get("nodes", 1) or 1)
gpus = int(snakemake.resources.get("gpu", 0) or 0) if config.get("device", "auto") != "cpu" else 0
gpus_per_node = gpus // nodes  # the `gpu` resource counts the job's GPUs on all its nodes
lease = lease_for_job(gpus_per_node)  # held until this process exits; no-op under SLURM (CUDA_VISIBLE_DEVICES set)

attempt = int(snakemake.resources.get("attempt", 1))  # Snakemake's attempt number of this job
# SLURM's time-limit warning (or a preemption) outside the training itself is noted, not fatal: before
# it, this attempt stops at once; after it, the bookkeeping below finishes (launch passes it on in between).
signals = StopSignals().__enter__()
work_dir = Path(snakemake.params.work_dir)
work_dir.mkdir(parents=True, exist_ok=True)
attempts = AttemptLog(work_dir / "attempts.tsv")
start = CheckpointFolder(work_dir / "checkpoints").latest_step()
# a job whose steps are all trained only records them (or writes the final checkpoint): nothing to judge
stalled = attempts.stalled(job, attempt, start) if start < config["steps"] else None
if stalled:
    print(f"train {name}, {job}: {stalled}", flush=True)
    sys.exit(1)
attempts.begin(job, attempt, start)
if signals.received:
    attempts.end(job, attempt, start, 75, signals.received)
    print(f"train {name}, {job}: stopped by {signals.received} before it began; run again to resume", flush=True)
    sys.exit(75)

config_file = work_dir / ("segment_config.yaml" if segment else "workflow_config.yaml")
config_file.write_text(yaml.safe_dump(config, sort_keys=True))
print(f"training {name} ({job}, attempt {attempt}, from step {start}) in {work_dir}: {nodes} node(s) x "
      f"{max(gpus_per_node, 1)} process(es), time budget {config['time_budget']} s", flush=True)
train_args = ["--config", str(config_file), "--workdir", str(work_dir), "--no-lease"]
# a segment stops at its end step with a resumable checkpoint; the final part writes the EMA checkpoint and
# its CSV log beside it (the train rule's two outputs)
train_args += ["--segment"] if segment else ["--final", snakemake.output.checkpoint]
outcome = {}
code = launch(train_args, work_dir / "ranks", gpus_per_node, nodes, snakemake.threads, log=sys.stdout, outcome=outcome)
reached = CheckpointFolder(work_dir / "checkpoints").latest_step()
stopped_by = outcome["stopped_by"] or ("time budget" if code == 75 else None)  # no signal: the trainer's budget
attempts.end(job, attempt, reached, code, stopped_by)
if code == 0 and segment:
    with atomic_write(snakemake.output.segment, "w") as handle:
        json.dump({"experiment": name, "end": config["steps"], "step": reached, "work_dir": str(work_dir)}, handle)
sys.exit(code)
