"""Snakemake entry point: train one experiment's model (resuming from its work folder).

One GPU or the CPU: palette.train.train runs in this process. G > 1 GPUs: torchrun starts G
workers of `palette train` (DDP), each with OMP_NUM_THREADS = the rule's threads / G. Either way
a job preempted or out of time exits with palette.train.RESUME_EXIT_CODE after saving, and the
rule's `retries` resumes it from the work folder, which lies outside the declared outputs.
"""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "a", buffering=1)

import os
import subprocess
from pathlib import Path

import yaml

from palette.lease import lease_for_job

config = dict(snakemake.params.train_config)
config["train_files"] = str(Path(snakemake.input.train).resolve())
runtime_minutes = snakemake.resources.get("runtime")
if config.get("time_budget") is None and isinstance(runtime_minutes, (int, float)) and runtime_minutes > 0:
    # Stop (and save) before the scheduler's limit: 5 % and 5 minutes of margin.
    config["time_budget"] = max(60.0, runtime_minutes * 60 * 0.95 - 300)
gpus = int(snakemake.resources.get("gpu", 0) or 0) if config.get("device", "auto") != "cpu" else 0
lease_for_job(gpus)  # no-op under SLURM (CUDA_VISIBLE_DEVICES set)

work_dir = Path(snakemake.params.work_dir)
work_dir.mkdir(parents=True, exist_ok=True)
print(f"training {config['name']} in {work_dir}")
if gpus > 1:
    config_file = work_dir / "workflow_config.yaml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=True))
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", f"--nproc_per_node={gpus}",
        "-m", "palette.cli", "train", "--config", str(config_file), "--workdir", str(work_dir),
        "--final", snakemake.output.checkpoint, "--no-lease",
    ]
    environment = dict(os.environ, OMP_NUM_THREADS=str(max(1, snakemake.threads // gpus)))
    print(" ".join(command), flush=True)
    sys.exit(subprocess.run(command, env=environment, stdout=sys.stdout, stderr=sys.stderr).returncode)

from palette.train import train

# Writes the final EMA checkpoint and its CSV log beside it (the rule's two outputs).
train(config, work_dir, Path(snakemake.output.checkpoint))
