"""Stand-in data sets (palette.standins): each miniature passes the real layout checks and listing
code, its overlay validates over its preset, and building twice gives the same bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml
from PIL import Image
from snakemake.utils import validate

from palette.config import deep_merge
from palette.reference_sets import (
    fid5k_files,
    fid5k_reference_files,
    fid5k_reference_problem,
    imagenet_validation_files,
    imagenet_validation_labels,
)
from palette.standins import IMAGENET_WNIDS, OVERLAY_NAME, build, main
from palette.workflow_data import (
    PLACES365_ARCHIVES,
    check_celebahq_layout,
    check_imagenet_layout,
    download,
    missing_data,
    places2_archive_source,
    places2_train_paths,
    places10k_names,
    read_ctest10k,
    safe_extract,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """Each stand-in built once: kind (imagenet in both validation layouts) -> its root."""
    base = tmp_path_factory.mktemp("standins")
    roots = {"imagenet": base / "imagenet", "imagenet_wnid": base / "imagenet_wnid",
             "places2": base / "places2", "celebahq": base / "celebahq"}
    for name, root in roots.items():
        build(name.removesuffix("_wnid"), root, val_layout="wnid" if name.endswith("wnid") else "flat")
    return roots


def merged_config(kind: str, root: Path) -> dict:
    """The preset with the stand-in's overlay merged over it, validated (defaults filled)."""
    preset = yaml.safe_load((ROOT / "config" / "presets" / f"{kind}.yaml").read_text())
    overlay = yaml.safe_load((root / OVERLAY_NAME).read_text())
    assert set(overlay) == {"dataset"}
    config = deep_merge(preset, overlay)
    validate(config, str(ROOT / "config" / "schema.yaml"))
    return config


def tree_digests(root: Path) -> dict[str, str]:
    return {path.relative_to(root).as_posix(): hashlib.md5(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("name", ["imagenet", "imagenet_wnid"])
def test_imagenet_stand_in_passes_the_layout_check_and_the_listings(built, name):
    root = built[name]
    config = merged_config("imagenet", root)
    dataset, expected = config["dataset"], config["dataset"]["expected"]
    assert expected == dict(expected, imagenet_classes=4, imagenet_validation=24, fid5k=8,
                            fid5k_reference_offset=16, fid5k_reference=8)
    assert Path(dataset["root"]) == root and missing_data(dataset, config["evaluation"]) == []
    imagenet = root / "imagenet"
    check_imagenet_layout(imagenet, min_classes=4, expected_val=24)
    assert sorted(p.name for p in (imagenet / "train").iterdir()) == list(IMAGENET_WNIDS)
    assert all(len(list((imagenet / "train" / wnid).glob(f"{wnid}_*.JPEG"))) == 6 for wnid in IMAGENET_WNIDS)
    validation = imagenet_validation_files(imagenet / "val")
    assert list(validation) == [f"ILSVRC2012_val_{n:08d}.JPEG" for n in range(1, 25)]
    # the ctest10k list, fetched through its file:// url and checked like the real one
    listed = download(dataset["test_list"]["url"], root / "fetched.txt", sha256=dataset["test_list"]["sha256"])
    ctest = read_ctest10k(listed, expected_count=dataset["test_list"]["expected_count"])
    assert len(ctest) == 12 and set(ctest) <= set(validation)
    # FID-5K: the first 8 by file name; its reference 17..24, as the paper's 10,001..15,000 of 50,000:
    # disjoint from the evaluated images (docs/paper.md, "Which set and reference each table uses")
    evaluated = fid5k_files(imagenet / "val", expected["fid5k"])
    reference = fid5k_reference_files(imagenet / "val", expected["fid5k"], expected["fid5k_reference_offset"],
                                      expected["fid5k_reference"])
    assert [p.name for p in evaluated] == list(validation)[:8]
    assert [p.name for p in reference] == list(validation)[16:24] and not set(evaluated) & set(reference)
    assert fid5k_reference_problem(expected) is None
    labels, source = imagenet_validation_labels(imagenet, imagenet / "val", expected=24, classes=4)
    assert sorted(set(labels.values())) == [0, 1, 2, 3] and len(labels) == 24
    assert ("<wnid>" in source) == (name == "imagenet_wnid")
    for image in list(validation.values())[:4]:
        with Image.open(image) as opened:
            assert opened.format == "JPEG" and min(opened.size) >= 60


def test_both_imagenet_layouts_hold_the_same_images_and_labels(built):
    flat, wnid = (built[name] / "imagenet" for name in ("imagenet", "imagenet_wnid"))
    flat_files, wnid_files = imagenet_validation_files(flat / "val"), imagenet_validation_files(wnid / "val")
    assert [f.read_bytes() for f in flat_files.values()] == [f.read_bytes() for f in wnid_files.values()]
    file_labels, _ = imagenet_validation_labels(flat, flat / "val", expected=24, classes=4)
    folder_labels, _ = imagenet_validation_labels(wnid, wnid / "val", expected=24, classes=4)
    assert file_labels == folder_labels
    # each class folder's sorted position is its label: the wnids are torchvision's first four
    assert all(file_labels[Path(name).stem] == IMAGENET_WNIDS.index(path.parent.name)
               for name, path in wnid_files.items())


def test_places2_stand_in_downloads_extracts_and_lists(built, tmp_path):
    root = built["places2"]
    config = merged_config("places2", root)
    dataset = config["dataset"]
    assert missing_data(dataset, config["evaluation"]) == []
    assert not (root / "places2").exists()  # left for the workflow to download into
    extracted = {}
    for archive in PLACES365_ARCHIVES:
        url, md5 = places2_archive_source(dataset["places2_archives"], archive)
        assert url.startswith("file://") and md5 != PLACES365_ARCHIVES[archive]
        fetched = download(url, tmp_path / "archives" / archive, md5=md5)
        extracted[archive] = tmp_path / Path(archive).stem
        safe_extract(fetched, extracted[archive])
    # where scripts/list_places2.py looks
    filelist = extracted["filelist_places365-standard.tar"]
    expected = dataset["expected"]
    test = places10k_names(filelist / "places365_val.txt", per_class=expected["places10k_per_class"],
                           classes=expected["places2_classes"])
    assert len(test) == 6 and (filelist / "categories_places365.txt").read_text().startswith("/a/airfield 0\n")
    val_images = extracted["val_256.tar"] / "val_256"
    assert all((val_images / name).is_file() for name in test)
    assert len(list(val_images.glob("Places365_val_*.jpg"))) == expected["places2_validation"] == 12
    train = places2_train_paths(filelist / "places365_train_standard.txt",
                                extracted["train_256_places365standard.tar"] / "data_256")
    assert len(train) == 15 and all(Path(path).is_file() for path in train)
    assert Path(train[0]).relative_to(extracted["train_256_places365standard.tar"]).as_posix() == \
        "data_256/a/airfield/00000001.jpg"


def test_celebahq_stand_in_passes_the_layout_check(built):
    root = built["celebahq"]
    config = merged_config("celebahq", root)
    assert config["dataset"]["expected"]["celebahq"] == 40
    assert missing_data(config["dataset"], config["evaluation"]) == []
    images = check_celebahq_layout(root / "celebahq", expected=40)
    assert [p.name for p in images] == [f"{i:05d}.png" for i in range(40)]
    for image in images[:5]:
        with Image.open(image) as opened:
            assert opened.format == "PNG" and min(opened.size) >= 64


def test_building_twice_gives_the_same_bytes(built, tmp_path):
    for kind, name in (("places2", "places2"), ("imagenet", "imagenet_wnid")):
        build(kind, tmp_path / kind, val_layout="wnid" if name.endswith("wnid") else "flat")
        again = yaml.safe_load((tmp_path / kind / OVERLAY_NAME).read_text())["dataset"]
        first = yaml.safe_load((built[name] / OVERLAY_NAME).read_text())["dataset"]
        for overlay in (again, first):  # the root and the URLs name the folder; the digests must agree
            del overlay["root"]
            del overlay["places2_archives" if kind == "places2" else "test_list"]["url"]
        assert again == first
        assert tree_digests(tmp_path / kind / ("archives" if kind == "places2" else "imagenet")) == \
            tree_digests(built[name] / ("archives" if kind == "places2" else "imagenet"))


def test_a_stand_in_is_never_built_over_existing_files(built, capsys):
    assert main(["celebahq", "--root", str(built["celebahq"])]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
