"""Which images the evaluation uses (palette.reference_sets): FID-5K, the paper's counts, and
the ImageNet validation labels of CA in the formats they circulate in. Torch-free and fast."""

from __future__ import annotations

import pytest

from palette.reference_sets import (
    FID5K_REFERENCE_NAME,
    IMAGENET_LABEL_FILES,
    evaluation_subset_name,
    fid5k_files,
    fid5k_reference_files,
    fid5k_reference_problem,
    fid_reference_name,
    imagenet_folder_labels,
    imagenet_validation_files,
    imagenet_validation_labels,
    imagenet_validation_layout,
    paper_evaluation_count,
    read_imagenet_validation_labels,
    reference_name,
    reference_split_problem,
    reference_targets_problem,
)

VAL_NUMBERS = [7, 1, 12, 3, 10, 2, 5, 11, 4, 9, 6, 8]  # created out of order
WNIDS = ["n01440764", "n01443537", "n01484850"]


def val_name(number: int) -> str:
    return f"ILSVRC2012_val_{number:08d}.JPEG"


def make_validation(val, layout: str) -> dict[str, str]:
    """Empty validation files in `layout`; image n belongs to class n % 3. Returns name -> wnid."""
    classes = {val_name(n): WNIDS[n % 3] for n in VAL_NUMBERS}
    for name, wnid in classes.items():
        folder = val / wnid if layout == "wnid" else val
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).touch()
    (val / "README.txt").touch()  # not a validation image
    (val / "ILSVRC2012_val_1.JPEG").touch()  # not the published naming
    return classes


@pytest.mark.parametrize("layout", ["flat", "wnid"])
def test_fid5k_is_the_first_validation_images_by_name_whatever_the_layout_and_order(tmp_path, layout):
    classes = make_validation(tmp_path, layout)
    chosen = fid5k_files(tmp_path, 5)
    assert [path.name for path in chosen] == [val_name(n) for n in (1, 2, 3, 4, 5)]
    assert all(path.is_file() for path in chosen)  # the actual paths, in either layout
    if layout == "wnid":
        assert [path.parent.name for path in chosen] == [classes[path.name] for path in chosen]
    assert fid5k_files(tmp_path, 5) == chosen  # deterministic
    with pytest.raises(ValueError, match="FID-5K needs 5000"):
        fid5k_files(tmp_path, 5000)


@pytest.mark.parametrize("layout", ["flat", "wnid"])
def test_fid5k_reference_is_later_validation_images_never_the_evaluated_ones(tmp_path, layout):
    """FID-5K after ColTran (docs/paper.md, "Which set and reference each table uses"): the first images
    by file name are evaluated, `count` others from position `offset` on are the reference."""
    make_validation(tmp_path, layout)  # images 1..12
    evaluated = fid5k_files(tmp_path, 4)
    reference = fid5k_reference_files(tmp_path, evaluated=4, offset=8, count=4)
    assert [path.name for path in reference] == [val_name(n) for n in (9, 10, 11, 12)]
    assert all(path.is_file() for path in reference) and not set(evaluated) & set(reference)
    assert fid5k_reference_files(tmp_path, 4, 4, 4) == list(imagenet_validation_files(tmp_path).values())[4:8]
    with pytest.raises(ValueError, match="dataset.expected.fid5k_reference_offset is 3: .* overlap the 4 evaluated"):
        fid5k_reference_files(tmp_path, evaluated=4, offset=3, count=4)
    with pytest.raises(ValueError, match=r"validation images 9..13 .*fid5k_reference_offset 8.*found 12"):
        fid5k_reference_files(tmp_path, evaluated=4, offset=8, count=5)


def test_fid5k_reference_sizes_are_checked_when_the_dag_is_built():
    paper = {"fid5k": 5000, "fid5k_reference_offset": 10000, "fid5k_reference": 5000, "imagenet_validation": 50000}
    assert fid5k_reference_problem(paper) is None
    assert "dataset.expected.fid5k_reference_offset is 4000" in fid5k_reference_problem(
        dict(paper, fid5k_reference_offset=4000))
    too_small = fid5k_reference_problem(dict(paper, imagenet_validation=12000))
    assert "dataset.expected.fid5k_reference 5000 runs past the 12000 validation images" in too_small


def test_each_subset_names_its_fid_reference():
    assert fid_reference_name("imagenet", "fid5k") == FID5K_REFERENCE_NAME == "imagenet_val_fid5k_reference"
    assert fid_reference_name("imagenet", "test") == "imagenet_val50k"
    assert fid_reference_name("places2", "test") == "places2_val36500"


def test_a_reference_of_test_images_only_is_refused():
    """CelebA-HQ or the demo with no validation split would score the outputs against their own ground truth."""
    fractions = {"train": 0.9, "val": 0.0, "test": 0.1}
    problem = reference_split_problem(["val", "test"], fractions, {})
    assert problem.startswith("dataset.split.val is 0, so the FID reference")
    assert reference_split_problem(["val", "test"], dict(fractions, val=0.1), {}) is None
    assert reference_split_problem(["val"], fractions, {"val": ["chelsea"]}) is None  # held-out photos fill val
    assert "evaluation.reference.splits is ['test']" in reference_split_problem(["test"], fractions, {})
    assert "all 2 FID reference images are test images" in reference_targets_problem(["a.png", "b.png"],
                                                                                      ["a.png", "b.png", "c.png"])
    assert reference_targets_problem(["a.png", "v.png"], ["a.png", "b.png"]) is None


@pytest.mark.parametrize("layout", ["flat", "wnid"])
def test_validation_images_are_found_in_either_layout(tmp_path, layout):
    make_validation(tmp_path, layout)
    files = imagenet_validation_files(tmp_path)
    assert list(files) == [val_name(n) for n in sorted(VAL_NUMBERS)]
    assert all(path.is_file() and path.name == name for name, path in files.items())
    assert imagenet_validation_layout(tmp_path) == layout


def test_layout_is_none_without_validation_images_and_one_image_twice_is_refused(tmp_path):
    assert imagenet_validation_layout(tmp_path / "absent") is None
    (tmp_path / "n01440764").mkdir()
    (tmp_path / "n01440764" / "notes.txt").touch()
    (tmp_path / "ILSVRC2012_val_1.JPEG").touch()
    assert imagenet_validation_layout(tmp_path) is None
    (tmp_path / "n01440764" / val_name(3)).touch()
    (tmp_path / val_name(3)).touch()
    with pytest.raises(ValueError, match="in two places"):
        imagenet_validation_files(tmp_path)


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


def test_label_counts_follow_the_expected_sizes(tmp_path):
    wnids = fake_wnids(4)
    path = tmp_path / IMAGENET_LABEL_FILES[0]
    path.write_text("\n".join(wnids[i % 4] for i in range(12)) + "\n")
    labels = read_imagenet_validation_labels(path, expected=12, classes=4)
    assert [labels[f"ILSVRC2012_val_{i:08d}"] for i in (1, 2, 5)] == [0, 1, 0]
    with pytest.raises(ValueError, match="4 distinct wnids, expected the 1000"):
        read_imagenet_validation_labels(path, expected=12)
    indices = tmp_path / "val_labels.csv"
    indices.write_text("name,label\nILSVRC2012_val_00000001,3\nILSVRC2012_val_00000002,4\n")
    with pytest.raises(ValueError, match="outside 0..3 for ILSVRC2012_val_00000002"):
        read_imagenet_validation_labels(indices, expected=0, classes=4)


def test_class_folders_are_the_labels_when_no_file_is_placed(tmp_path):
    val = tmp_path / "imagenet" / "val"
    classes = make_validation(val, "wnid")
    expected = {name.removesuffix(".JPEG"): sorted(WNIDS).index(wnid) for name, wnid in classes.items()}
    assert imagenet_folder_labels(val, expected=12, classes=3) == expected
    labels, source = imagenet_validation_labels(tmp_path / "imagenet", val, expected=12, classes=3)
    assert labels == expected and "<wnid>" in source
    with pytest.raises(ValueError, match="labels for 12 images, expected 13"):
        imagenet_validation_labels(tmp_path / "imagenet", val, expected=13, classes=3)
    # a placed file wins over the folders
    placed = tmp_path / "imagenet" / IMAGENET_LABEL_FILES[0]
    placed.write_text("\n".join(WNIDS[(i + 1) % 3] for i in range(1, 13)) + "\n")
    labels, source = imagenet_validation_labels(tmp_path / "imagenet", val, expected=12, classes=3)
    assert source == str(placed) and labels["ILSVRC2012_val_00000001"] == 2


def test_flat_validation_without_a_label_file_fails_with_instructions(tmp_path):
    val = tmp_path / "imagenet" / "val"
    make_validation(val, "flat")
    with pytest.raises(FileNotFoundError, match="val/<wnid>/"):
        imagenet_validation_labels(tmp_path / "imagenet", val, expected=12, classes=3)
