"""Snakemake entry point: check the user's ImageNet folders and write the file lists.

test: the ctest10k validation images; val: the first validation images outside ctest10k;
train: every training image. A placed ILSVRC2012_img_val.tar is checked and extracted safely.
"""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from palette.errors import brief_script_errors

brief_script_errors(f"rule {snakemake.rule}")  # bad input: one line in the log, exit 2

from pathlib import Path

from palette.data import write_file_list
from palette.imageio import list_images
from palette.workflow_data import (
    IMAGENET_VAL_ARCHIVE,
    check_imagenet_layout,
    read_ctest10k,
    safe_extract,
    verify_digest,
)

root = Path(snakemake.params.root)
archive = root / IMAGENET_VAL_ARCHIVE[0]
if archive.exists() and not (root / "val").is_dir():
    verify_digest(archive, IMAGENET_VAL_ARCHIVE[1], "md5")
    safe_extract(archive, root / "val")
check_imagenet_layout(root)
test_names = read_ctest10k(snakemake.input.ctest10k, expected_count=snakemake.params.expected_count)
test_set = set(test_names)
val_names = sorted(p.name for p in (root / "val").iterdir() if p.name not in test_set)
write_file_list(snakemake.output.test, [root / "val" / name for name in test_names])
write_file_list(snakemake.output.val, [root / "val" / name for name in val_names[: snakemake.params.val_images]])
train = list_images(root / "train", recursive=True)
write_file_list(snakemake.output.train, train)
print(f"train {len(train)}, val {min(len(val_names), snakemake.params.val_images)}, test (ctest10k) {len(test_names)}")
