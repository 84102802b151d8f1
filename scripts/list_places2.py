"""Snakemake entry point: Places2 file lists (train: Places365-Standard; test: places10k, the first
dataset.expected.places10k_per_class validation images of each of the places2_classes classes)."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from pathlib import Path

from palette.data import write_file_list
from palette.workflow_data import places10k_names, places2_train_paths

# Each archive is extracted into its own folder: the file lists sit at its top, the images in
# the archives' own top-level folders (val_256/, data_256/).
filelist = Path(snakemake.input.filelist)
val_images = Path(snakemake.input.val_images) / "val_256"
train_images = Path(snakemake.input.train_images) / "data_256"
test_names = places10k_names(filelist / "places365_val.txt", per_class=snakemake.params.per_class,
                             classes=snakemake.params.classes)
test_set = set(test_names)
val_names = [
    line.split()[0] for line in (filelist / "places365_val.txt").read_text().splitlines() if line.strip()
]
write_file_list(snakemake.output.test, [val_images / name for name in test_names])
write_file_list(snakemake.output.val, [val_images / name for name in val_names if name not in test_set])
train = places2_train_paths(filelist / "places365_train_standard.txt", train_images)
write_file_list(snakemake.output.train, train)
print(f"train {len(train)}, val {len(val_names) - len(test_set)}, test (places10k) {len(test_names)}")
