"""Which images the evaluation uses (palette.reference_sets): FID-5K, the paper's counts, and
the ImageNet validation labels of CA in the formats they circulate in. Torch-free and fast."""

from __future__ import annotations

import pytest

from palette.reference_sets import (
    IMAGENET_LABEL_FILES,
    evaluation_subset_name,
    fid5k_names,
    paper_evaluation_count,
    read_imagenet_validation_labels,
    reference_name,
)


def test_fid5k_is_the_first_validation_images_by_name_whatever_the_listing_order(tmp_path):
    numbers = [7, 1, 12, 3, 10, 2, 5, 11, 4, 9, 6, 8]  # created out of order
    for number in numbers:
        (tmp_path / f"ILSVRC2012_val_{number:08d}.JPEG").touch()
    (tmp_path / "README.txt").touch()  # not a validation image
    (tmp_path / "ILSVRC2012_val_1.JPEG").touch()  # not the published naming
    chosen = fid5k_names(tmp_path, count=5)
    assert chosen == [f"ILSVRC2012_val_{n:08d}.JPEG" for n in (1, 2, 3, 4, 5)]
    assert fid5k_names(tmp_path, count=5) == chosen  # deterministic
    with pytest.raises(ValueError, match="FID-5K needs 5000"):
        fid5k_names(tmp_path)


def test_paper_counts_and_names_per_subset():
    assert paper_evaluation_count("imagenet", "fid5k") == 5000
    assert paper_evaluation_count("imagenet", "test") == 10000
    assert paper_evaluation_count("places2", "test") == 10950
    assert paper_evaluation_count("demo_photos", "test") is None  # the paper has no demo numbers
    assert evaluation_subset_name("imagenet", "test") == "ctest10k"
    assert reference_name("imagenet") == "imagenet_val50k" and reference_name("demo_photos") == "demo_val"


def fake_wnids(count: int = 1000) -> list[str]:
    return [f"n{10000000 + 7 * index:08d}" for index in range(count)]


def test_per_image_wnid_list_maps_to_torchvision_class_order(tmp_path):
    wnids = fake_wnids()
    # image i gets class (i * 37) % 1000, written as a wnid; torchvision's index = sorted position
    lines = [wnids[(i * 37) % 1000] for i in range(2000)]
    path = tmp_path / IMAGENET_LABEL_FILES[0]
    path.write_text("\n".join(lines) + "\n")
    labels = read_imagenet_validation_labels(path, expected=2000)
    assert labels["ILSVRC2012_val_00000001"] == 0
    assert labels["ILSVRC2012_val_00000002"] == 37
    assert labels["ILSVRC2012_val_00002000"] == (1999 * 37) % 1000
    with pytest.raises(ValueError, match="expected 50000"):
        read_imagenet_validation_labels(path)


def test_localisation_solution_and_index_csv_are_accepted(tmp_path):
    wnids = fake_wnids()
    solution = tmp_path / "LOC_val_solution.csv"
    rows = [f"ILSVRC2012_val_{i + 1:08d},{wnids[i]} 1 2 3 4 {wnids[i]} 5 6 7 8" for i in range(1000)]
    solution.write_text("ImageId,PredictionString\n" + "\n".join(reversed(rows)) + "\n")
    labels = read_imagenet_validation_labels(solution, expected=1000)
    assert labels["ILSVRC2012_val_00000001"] == 0 and labels["ILSVRC2012_val_00001000"] == 999

    indices = tmp_path / "val_labels.csv"
    indices.write_text("name,label\nILSVRC2012_val_00000001.JPEG,65\nILSVRC2012_val_00000002,970\n")
    assert read_imagenet_validation_labels(indices, expected=0) == {
        "ILSVRC2012_val_00000001": 65, "ILSVRC2012_val_00000002": 970}


def test_missing_or_partial_labels_fail_with_instructions(tmp_path):
    with pytest.raises(FileNotFoundError, match="LOC_val_solution.csv"):
        read_imagenet_validation_labels(tmp_path / "missing.txt")
    partial = tmp_path / "partial.txt"
    partial.write_text("\n".join(fake_wnids(999)) + "\n")
    with pytest.raises(ValueError, match="999 distinct wnids"):
        read_imagenet_validation_labels(partial, expected=0)
    broken = tmp_path / "broken.txt"
    broken.write_text("tabby\n")
    with pytest.raises(ValueError, match="not ImageNet wnids"):
        read_imagenet_validation_labels(broken, expected=0)
