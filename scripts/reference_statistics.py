"""Snakemake entry point: FID reference statistics of the reference set (rules/reference.smk)."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from palette.lease import lease_for_job

device = snakemake.params.device
lease_for_job(snakemake.resources.get("gpu", 0), device)  # before CUDA starts

from palette.data import read_file_list
from palette.weights import check_staged, weights_for
from palette.metrics.inception import load_inception
from palette.metrics.reference import reference_statistics

if snakemake.input.weights:  # staged on the login node: no download from here (one line if missing)
    check_staged(snakemake.input.weights[0], weights_for(["fid"]))
files = read_file_list(snakemake.input.files)
stats = reference_statistics(
    files,
    image_size=snakemake.params.image_size,
    name=snakemake.params.name,
    model=load_inception(device, weights_dir=snakemake.params.weights_dir),
    batch_size=snakemake.params.batch_size,
)
stats.save(snakemake.output[0])
print(f"{stats.name}: {stats.count} images, files {stats.files_digest}, Inception {stats.weights_digest}")
