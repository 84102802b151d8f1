"""Snakemake entry point: link every shard's images of one sampling run into the samples folder
the evaluation reads, after checking that no image is missing (palette.shards.gather)."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from palette.shards import gather

shard_dirs = [path[: -len(".json")] for path in snakemake.input.shards]
images = gather(shard_dirs, snakemake.input.evaluation_set, snakemake.output[0], snakemake.params.samples_per_input)
print(f"{images} images from {len(shard_dirs)} shard(s) in {snakemake.output[0]}")
