"""Snakemake entry point: one split's images preprocessed once (palette.prepare), and its list."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

import json

from palette.data import read_file_list, write_file_list
from palette.prepare import prepare_split
from palette.workflow_data import read_pairs

files = read_file_list(snakemake.input.files)
sources = read_pairs(snakemake.input.pairs[0]) if snakemake.input.pairs else None
skip = json.loads(open(snakemake.input.check).read())["skipped"]
prepared = prepare_split(files, snakemake.output.folder, snakemake.params.image_size, snakemake.params.preprocess,
                         sources=sources, skip=skip, workers=snakemake.threads)
write_file_list(snakemake.output.files, prepared)
print(f"{snakemake.wildcards.split}: {len(prepared)} images ({snakemake.params.preprocess}, "
      f"{len(files) - len(prepared)} skipped by the data check) in {snakemake.output.folder}")
