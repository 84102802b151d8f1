"""Snakemake entry point: check the user's ImageNet folders and write the file lists.

test: the ctest10k validation images; val: the first validation images outside ctest10k;
train: every training image. The validation images may be flat or in val/<wnid>/ folders; a
placed ILSVRC2012_img_val.tar is checked and extracted safely. Counts: dataset.expected.
"""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from pathlib import Path

from palette.data import write_file_list
from palette.imageio import list_images
from palette.reference_sets import imagenet_validation_files
from palette.workflow_data import (
    DataLayoutError,
    check_imagenet_layout,
    extract_imagenet_validation,
    read_ctest10k,
)

root = Path(snakemake.params.root)
if extract_imagenet_validation(root):
    print(f"extracted the validation archive into {root / 'val'}")
check_imagenet_layout(root, min_classes=snakemake.params.classes, expected_val=snakemake.params.validation_images)
validation = imagenet_validation_files(root / "val")
test_names = read_ctest10k(snakemake.input.ctest10k, expected_count=snakemake.params.expected_count)
absent = [name for name in test_names if name not in validation]
if absent:
    raise DataLayoutError(f"{snakemake.input.ctest10k}: {len(absent)} listed images are not in {root / 'val'}, "
                          f"e.g. {absent[0]}")
test_set = set(test_names)
val_names = [name for name in validation if name not in test_set][: snakemake.params.val_images]
write_file_list(snakemake.output.test, [validation[name] for name in test_names])
write_file_list(snakemake.output.val, [validation[name] for name in val_names])
train = list_images(root / "train", recursive=True)
write_file_list(snakemake.output.train, train)
print(f"train {len(train)}, val {len(val_names)}, test (ctest10k) {len(test_names)}")
