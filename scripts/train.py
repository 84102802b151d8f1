"""Snakemake entry point: train one experiment's model (resuming from its work folder).

Exits with palette.train.RESUME_EXIT_CODE when preempted or out of time; the rule's `retries`
then resumes from the work folder, which lies outside the declared outputs.
"""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "a", buffering=1)

import shutil
from pathlib import Path

from palette.lease import count_gpus, lease_gpus

config = dict(snakemake.params.train_config)
config["train_files"] = str(Path(snakemake.input.train).resolve())
runtime_minutes = snakemake.resources.get("runtime")
if config.get("time_budget") is None and isinstance(runtime_minutes, (int, float)) and runtime_minutes > 0:
    # Leave time to save before the scheduler's limit; the retry resumes.
    config["time_budget"] = max(60.0, runtime_minutes * 60 * 0.95 - 300)
if config.get("device", "auto") != "cpu" and snakemake.resources.get("gpu", 0) and count_gpus():
    lease = lease_gpus(snakemake.resources.gpu, wait_seconds=600)
    print(f"GPU lease: {lease.devices}")

from palette.train import train

work_dir = Path(snakemake.params.work_dir)
print(f"attempt {snakemake.attempt}: training {config['name']} in {work_dir}")
train(config, work_dir, Path(snakemake.output.checkpoint))
shutil.copyfile(work_dir / "log.csv", snakemake.output.log_csv)
