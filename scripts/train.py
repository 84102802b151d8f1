"""Snakemake entry point: train one experiment's model (resuming from its work folder).

Every shape of job (the CPU, one GPU, G GPUs through torchrun, N nodes through srun + torchrun)
goes through palette.launch, which runs `palette train` in each worker: the same exit codes and
messages on every path (75 = saved, run again; 65 = NaN/inf loss; 78 = bad config). A job
preempted or out of time exits 75 after saving, and the rule's `retries` resumes it from the work
folder, which lies outside the declared outputs. The time budget comes from the job's `runtime`
(under SLURM: the job's own end time) less a margin that scales with it
(palette.launch.time_budget_seconds).
"""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "a", buffering=1)

from pathlib import Path

import yaml

from palette.launch import launch, slurm_seconds_left, time_budget_seconds
from palette.lease import lease_for_job

config = dict(snakemake.params.train_config)
config["train_files"] = str(Path(snakemake.input.train).resolve())
if config.get("time_budget") is None:
    config["time_budget"] = time_budget_seconds(snakemake.resources.get("runtime"), slurm_seconds_left())
nodes = int(snakemake.resources.get("nodes", 1) or 1)
gpus = int(snakemake.resources.get("gpu", 0) or 0) if config.get("device", "auto") != "cpu" else 0
gpus_per_node = gpus // nodes  # the `gpu` resource counts the job's GPUs on all its nodes
lease = lease_for_job(gpus_per_node)  # held until this process exits; no-op under SLURM (CUDA_VISIBLE_DEVICES set)

work_dir = Path(snakemake.params.work_dir)
work_dir.mkdir(parents=True, exist_ok=True)
config_file = work_dir / "workflow_config.yaml"
config_file.write_text(yaml.safe_dump(config, sort_keys=True))
print(f"training {config['name']} in {work_dir}: {nodes} node(s) x {max(gpus_per_node, 1)} process(es), "
      f"time budget {config['time_budget']} s", flush=True)
# Writes the final EMA checkpoint and its CSV log beside it (the rule's two outputs).
train_args = ["--config", str(config_file), "--workdir", str(work_dir), "--final", snakemake.output.checkpoint,
              "--no-lease"]
sys.exit(launch(train_args, work_dir / "ranks", gpus_per_node, nodes, snakemake.threads, log=sys.stdout))
