"""Snakemake entry point: multi-scale crops of the photos installed with the project."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from pathlib import Path

from palette.data import demo_photo_paths, make_crops, write_file_list

photos = demo_photo_paths()
print(f"{len(photos)} demo photos: {', '.join(Path(p).name for p in photos)}")
crops = make_crops(
    photos,
    snakemake.output.crops,
    crop_size=snakemake.params.crop_size,
    scales=snakemake.params.scales,
    crops_per_scale=snakemake.params.crops_per_scale,
    seed=snakemake.params.seed,
)
write_file_list(snakemake.output.files, crops)
print(f"{len(crops)} crops written to {snakemake.output.crops}")
